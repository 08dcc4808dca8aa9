"""``serfcast decode`` and ``serfcast keygen`` as a user runs them.

Input arrives as a hex argument, hex lines on standard input, one side of a TCP
stream in hex, or a pcap file; keys come from ``-encrypt`` (in each of Go's flag
spellings) or a keyring file. Output is one JSON object per line, and the exit
status says whether anything failed to decode.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

from serfcast.cli import main
from serfcast.serf.messages import Join, PushPullState, UserEvent
from serfcast.wire.frames import UserMsg
from serfcast.wire.keyring import Keyring, generate_key
from serfcast.wire.messages import PROTOCOL_VSN, Ack, Alive, Ping
from serfcast.wire.packet import build_packet, encode_packet
from serfcast.wire.stream import PushPull, encode_stream

PCAP_PORTS = ["-port", "18401", "-port", "18402"]
PING = Ping(7, "node-b", bytes([127, 0, 0, 1]), 7946, "node-a")


def run(argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """Run the command line; the exit status and the parsed JSON lines."""
    out = io.StringIO()
    status = main(argv, out=out)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


def _feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.fixture(scope="module")
def capture_key(golden_dir: Path) -> str:
    return (golden_dir / "captures" / "encrypt_key.txt").read_text().strip()


def _pcap(golden_dir: Path, name: str) -> str:
    return str(golden_dir / "captures" / f"{name}.pcap")


# ----------------------------------------------------------------------------
# Hex input


def test_hex_argument(capsys: pytest.CaptureFixture[str]) -> None:
    status, records = run(["decode", PING.encode().hex()])
    assert status == 0
    [record] = records
    assert record["type"] == "ping"
    assert record["path"]["transport"] == "udp"
    assert record["fields"]["SeqNo"] == 7
    assert record["fields"]["Node"] == "node-b"
    assert record["fields"]["SourceAddr"]["hex"] == "7f000001"
    assert capsys.readouterr().err == ""


def test_long_hex_argument_is_not_taken_for_a_file_name() -> None:
    # Longer than any file name may be: checking for such a file must not fail.
    event = UserEvent(1, "x", b"x" * 300).encode()
    status, records = run(["decode", UserMsg(event).encode().hex()])
    assert status == 0
    assert records[0]["fields"]["Payload"]["len"] == len(event) > 300


def test_hex_lines_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    packets = [
        PING.encode(),
        build_packet([Ack(7, b"coord"), UserMsg(Join(1, "hi").encode())], crc=True),
        encode_packet(Alive(3, "node-c", vsn=PROTOCOL_VSN), label=b"lbl"),
    ]
    lines = [
        "# one packet per line",
        packets[0].hex(),
        "",
        " ".join(packets[1].hex()[i : i + 8] for i in range(0, 999, 8)).strip(),
    ]
    _feed_stdin(monkeypatch, "\n".join(lines).encode() + b"\n")
    status, records = run(["decode"])
    assert status == 0
    assert [r["type"] for r in records] == ["ping", "ack", "user"]
    assert [r["path"].get("compound") for r in records] == [None, [0], [1]]
    assert records[1]["path"]["crc"] is not None

    _feed_stdin(monkeypatch, packets[2].hex().encode())
    status, records = run(["decode", "-", "-label", "lbl"])
    assert status == 0
    assert records[0]["type"] == "alive" and records[0]["path"]["label"] == "lbl"


def test_stream_hex() -> None:
    message = PushPull(join=True, user_state=PushPullState(ltime=3).encode())
    status, records = run(["decode", "-stream", encode_stream(message).hex()])
    assert status == 0
    [record] = records
    assert record["type"] == "pushPull"
    assert record["path"] == {
        "transport": "tcp",
        "label": "",
        "encrypted": False,
        "compressed": 1,
    }
    assert record["fields"]["Join"] is True
    assert record["fields"]["UserState"]["fields"]["LTime"] == 3


def test_undecodable_packet_is_an_error_line() -> None:
    status, records = run(["decode", "ff0102"])
    assert status == 1
    assert records[0]["error"] and records[0]["raw"] == "ff0102"


def test_bad_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["decode", "00zz"]) == (1, [])
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("serfcast: ") and "hex" in err


# ----------------------------------------------------------------------------
# Captures and keys


def _types(records: list[dict[str, Any]]) -> set[str]:
    return {record["type"] for record in records if "type" in record}


def test_plain_capture(golden_dir: Path) -> None:
    status, records = run(["decode", _pcap(golden_dir, "serf0101_plain"), *PCAP_PORTS])
    assert status == 0
    assert {"ping", "ack", "alive", "user", "pushPull"} <= _types(records)
    assert all({"time", "src", "dst", "path"} <= set(r) for r in records)
    assert {r["path"]["transport"] for r in records} == {"udp", "tcp"}


def test_pcap_on_stdin(golden_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pcap = Path(_pcap(golden_dir, "serf094_plain")).read_bytes()
    _feed_stdin(monkeypatch, pcap)
    status, records = run(["decode", *PCAP_PORTS])
    assert status == 0
    assert {"ping", "ack", "alive", "pushPull"} <= _types(records)


@pytest.mark.parametrize("form", ["separate", "-encrypt=", "--encrypt="])
def test_encrypted_capture_with_a_key(
    golden_dir: Path, capture_key: str, form: str
) -> None:
    key_args = ["-encrypt", capture_key] if form == "separate" else [form + capture_key]
    pcap = _pcap(golden_dir, "serf0101_encrypted")
    status, records = run(["decode", pcap, *PCAP_PORTS, *key_args])
    assert status == 0
    assert {"ping", "ack", "alive", "user", "pushPull"} <= _types(records)
    assert all(r["path"]["encrypted"] for r in records)


def test_encrypted_capture_with_a_keyring_file(
    golden_dir: Path, capture_key: str, tmp_path: Path
) -> None:
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text(json.dumps([generate_key(), capture_key]))
    pcap = _pcap(golden_dir, "serf094_encrypted")
    status, records = run(
        ["decode", pcap, *PCAP_PORTS, "-keyring-file", str(keyring_file)]
    )
    assert status == 0
    assert {"alive", "pushPull"} <= _types(records)
    assert not any("error" in record for record in records)


def test_wrong_key_gives_error_lines(golden_dir: Path) -> None:
    pcap = _pcap(golden_dir, "serf0101_encrypted")
    status, records = run(["decode", pcap, *PCAP_PORTS, "-encrypt", generate_key()])
    assert status == 1
    errors = [record for record in records if "error" in record]
    assert len(errors) > len(records) // 2
    # Undecryptable packets are retried as plaintext (the capture may mix both),
    # so now and then a ciphertext happens to parse; none may claim decryption.
    assert not any(record["path"].get("encrypted") for record in records)


def test_hex_packet_with_a_key() -> None:
    key = generate_key()
    wire = encode_packet(PING, keyring=Keyring.from_base64(key))
    status, records = run(["decode", f"--encrypt={key}", wire.hex()])
    assert status == 0
    assert records[0]["type"] == "ping" and records[0]["path"]["encrypted"]


@pytest.mark.parametrize(
    ("key", "message"),
    [("not base64!", "not valid base64"), ("AAAA", "16, 24 or 32 bytes")],
)
def test_bad_key(key: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["decode", "-encrypt", key, PING.encode().hex()]) == (1, [])
    err = capsys.readouterr().err
    assert err.startswith("serfcast: ") and message in err
    assert err.count("\n") == 1


def test_bad_keyring_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text("{not json")
    assert run(["decode", "-keyring-file", str(keyring_file), "00"]) == (1, [])
    assert "not JSON" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# keygen


def test_keygen_prints_a_fresh_32_byte_key() -> None:
    outputs = []
    for _ in range(2):
        out = io.StringIO()
        assert main(["keygen"], out=out) == 0
        outputs.append(out.getvalue())
    for text in outputs:
        assert text.endswith("\n")
        key = text.rstrip("\n")
        assert len(key) == 44
        assert len(base64.b64decode(key, validate=True)) == 32
    assert outputs[0] != outputs[1]

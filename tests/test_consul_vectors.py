"""Consul's own bytes: every Go vector encodes identically and decodes back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serfcast.consul import ConsulEvent
from serfcast.errors import RemoteProtocolError
from serfcast.serf.messages import UserEvent, decode_serf_message

DATA = Path(__file__).parent / "data"


def _blocks(golden_dir: Path) -> list[dict[str, str]]:
    text = (golden_dir / "vectors" / "consul-go.txt").read_text()
    blocks = []
    for chunk in text.split("\n\n"):
        if chunk.startswith("case:"):
            pairs = (line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
            blocks.append(dict(pairs))
    return blocks


def _event(fields: dict[str, Any]) -> ConsulEvent:
    return ConsulEvent(
        fields["ID"],
        fields["Name"],
        bytes.fromhex(fields["PayloadHex"]),
        fields["NodeFilter"],
        fields["ServiceFilter"],
        fields["TagFilter"],
        fields["Version"],
    )


@pytest.fixture(scope="module")
def blocks(golden_dir: Path) -> list[dict[str, str]]:
    found = _blocks(golden_dir)
    assert len(found) == 21, "consul-go.txt should hold 11 encode and 10 decode cases"
    return found


def test_payload_maps_match_go(blocks: list[dict[str, str]]) -> None:
    encoded = [b for b in blocks if "consul_payload_hex" in b]
    assert len(encoded) == 11
    for block in encoded:
        event = _event(json.loads(block["input"]))
        payload = event.encode_payload()
        assert payload.hex() == block["consul_payload_hex"], block["case"]
        assert len(payload) == int(block["consul_payload_len"])


def test_serf_messages_match_go(blocks: list[dict[str, str]]) -> None:
    for block in (b for b in blocks if "serf_message_hex" in b):
        event = _event(json.loads(block["input"]))
        serf = event.to_serf(int(block["serf_ltime"]))
        assert serf.name == block["serf_name"]
        assert serf.coalesce is (block["serf_cc"] == "true")
        assert serf.encode().hex() == block["serf_message_hex"], block["case"]


def test_serf_messages_decode_back(blocks: list[dict[str, str]]) -> None:
    for block in (b for b in blocks if "serf_message_hex" in b):
        message = decode_serf_message(bytes.fromhex(block["serf_message_hex"]))
        assert isinstance(message, UserEvent)
        assert message.ltime == int(block["serf_ltime"])
        expected = _event(json.loads(block["input"]))
        assert ConsulEvent.from_serf(message) == expected
        assert ConsulEvent.from_serf(message, strict=True) == expected


def test_decoder_cases_follow_go(blocks: list[dict[str, str]]) -> None:
    decoded = [b for b in blocks if "input_hex" in b]
    assert len(decoded) == 10
    for block in decoded:
        data = bytes.fromhex(block["input_hex"])
        if block["go_decode"] == "ok":
            expected = _event(json.loads(block["decoded"]))
            assert ConsulEvent.decode_payload(data, strict=True) == expected
            assert ConsulEvent.decode_payload(data) == expected
        else:
            with pytest.raises(RemoteProtocolError):
                ConsulEvent.decode_payload(data, strict=True)


def test_lenient_decoder_reads_bin_strings(blocks: list[dict[str, str]]) -> None:
    # Go refuses these; serfcast's default reading recovers the same event.
    for block in (b for b in blocks if b.get("go_decode") == "error"):
        event = ConsulEvent.decode_payload(bytes.fromhex(block["input_hex"]))
        assert event.id == "c3f5f7a2-0b1d-4e6f-8a9b-0c1d2e3f4a5b"
        assert event.name == "deploy"
        assert event.version == 1


def _go_outcomes() -> list[dict[str, Any]]:
    lines = (DATA / "go_consul_decode.txt").read_text().splitlines()
    return [json.loads(line) for line in lines if not line.startswith("#")]


def _text(hexed: str) -> str:
    return bytes.fromhex(hexed).decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("case", _go_outcomes(), ids=lambda c: str(c["in"])[:24])
def test_strict_decoder_agrees_with_go_codec(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["in"])
    if not case["ok"]:
        with pytest.raises(RemoteProtocolError):
            ConsulEvent.decode_payload(data, strict=True)
        return
    fields = case["ev"]
    expected = ConsulEvent(
        _text(fields["id"]),
        _text(fields["n"]),
        bytes.fromhex(fields["p"]),
        _text(fields["nf"]),
        _text(fields["sf"]),
        _text(fields["tf"]),
        fields["v"],
    )
    assert ConsulEvent.decode_payload(data, strict=True) == expected

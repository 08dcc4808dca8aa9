"""Real serf traffic: every captured packet decodes, and re-encodes to its bytes.

The captures hold traffic between real serf 0.9.4 and 0.10.1 agents, plain and
encrypted, and the non-member injection runs, whose malformed packets must be
refused with the library's own error and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import INJECT_CAPTURES, SEQUENCE_CAPTURES
from serfcast.errors import RemoteProtocolError
from serfcast.pcap import read_pcap
from serfcast.wire.frames import Malformed, iter_messages
from serfcast.wire.keyring import NONCE_SIZE, Keyring
from serfcast.wire.packet import decode_packet, encode_packet
from serfcast.wire.stream import StreamDecoder, StreamFrame, encode_stream

#: Datagrams the injection runs sent on purpose to provoke errors, plaintext form:
#: a bad CRC, type 255, a compound with bad lengths and a ping with bad msgpack.
MALFORMED_UDP = ("0cdeadbeef", "ff010203", "07030032", "00c1c1")


def _keyring(golden_dir: Path) -> Keyring:
    key = (golden_dir / "captures" / "encrypt_key.txt").read_text().strip()
    return Keyring.from_base64(key)


def _contents(golden_dir: Path, name: str) -> bytes:
    return (golden_dir / "captures" / f"{name}.pcap").read_bytes()


def _decode_stream(payload: bytes, keyring: Keyring | None) -> StreamFrame:
    decoder = StreamDecoder(keyring=keyring, verify_incoming=False)
    decoder.feed(payload)
    return decoder.feed_eof()


def _reencode_datagram(payload: bytes, keyring: Keyring | None) -> bytes:
    packet = decode_packet(payload, keyring=keyring, verify_incoming=False)
    assert not any(isinstance(m, Malformed) for m in iter_messages(packet.frame))
    return encode_packet(
        packet.frame,
        crc=packet.crc is not None,
        keyring=keyring if packet.encrypted else None,
        encryption_version=packet.encryption_version or 1,
        nonce=payload[1 : 1 + NONCE_SIZE] if packet.encrypted else None,
    )


def _reencode_stream(payload: bytes, keyring: Keyring | None) -> bytes:
    frame = _decode_stream(payload, keyring)
    return encode_stream(
        frame.message,
        compress=frame.compressed,
        keyring=keyring if frame.encrypted else None,
        nonce=payload[6 : 6 + NONCE_SIZE] if frame.encrypted else None,
    )


@pytest.mark.parametrize("name", SEQUENCE_CAPTURES)
def test_sequence_capture_round_trips_byte_for_byte(
    golden_dir: Path, name: str
) -> None:
    keyring = _keyring(golden_dir) if "encrypted" in name else None
    contents = read_pcap(_contents(golden_dir, name))
    assert contents.datagrams and contents.streams
    for datagram in contents.datagrams:
        assert _reencode_datagram(datagram.payload, keyring) == datagram.payload
    for stream in contents.streams:
        assert _reencode_stream(stream.payload, keyring) == stream.payload


def _is_deliberately_malformed(payload: bytes, keyring: Keyring | None) -> bool:
    plain = payload
    if keyring is not None:
        try:
            plain = keyring.decrypt(payload)
        except RemoteProtocolError:
            return True  # the wrong-key and the plaintext injections
    return plain.hex().startswith(MALFORMED_UDP)


@pytest.mark.parametrize("name", INJECT_CAPTURES)
def test_injection_capture_decodes_except_deliberate_garbage(
    golden_dir: Path, name: str
) -> None:
    keyring = _keyring(golden_dir) if name.endswith("_enc") else None
    contents = read_pcap(_contents(golden_dir, name))
    refused = 0
    for datagram in contents.datagrams:
        payload = datagram.payload
        if _is_deliberately_malformed(payload, keyring):
            with pytest.raises(RemoteProtocolError):
                decode_packet(payload, keyring=keyring)
            refused += 1
        else:
            packet = decode_packet(payload, keyring=keyring, verify_incoming=False)
            assert iter_messages(packet.frame)
    # An encrypted pool also got one packet sealed with a wrong key and one sent
    # in plaintext; both must be refused when a key is configured.
    assert refused == len(MALFORMED_UDP) + (2 if keyring else 0)
    garbage = [s for s in contents.streams if s.payload.startswith(b"\xfe")]
    assert len(garbage) == 1
    for stream in contents.streams:
        if stream in garbage:
            with pytest.raises(RemoteProtocolError, match="message type 254"):
                _decode_stream(stream.payload, keyring)
        else:
            assert _decode_stream(stream.payload, keyring).message is not None

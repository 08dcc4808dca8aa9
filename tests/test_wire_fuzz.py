"""Fuzzing: any bytes either decode or raise RemoteProtocolError, nothing else.

Two sources of input. Arbitrary bytes find the shallow mistakes (lengths, headers,
type bytes). Mutations of real serf traffic get further: the captured packets and
streams are decrypted and decompressed down to their logical bytes, a few bytes
are flipped, inserted, deleted or cut, and the result is wrapped again (compressed,
CRC-checked, encrypted) so that it passes the outer layers and reaches the inner
decoders. Whatever decodes must also survive being encoded and decoded again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.pcap import read_pcap
from serfcast.wire import lzw, messages
from serfcast.wire.frames import (
    SAFE_COMPOUND_PARTS,
    Compound,
    Compressed,
    Frame,
    Malformed,
    UserMsg,
    compress_frame,
    decode_frame,
    encode_frame,
    iter_messages,
)
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import (
    VSN_LEN,
    Ack,
    Alive,
    CompressHeader,
    Dead,
    ErrResp,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    PushPullHeader,
    Struct,
    Suspect,
    UserMsgHeader,
)
from serfcast.wire.packet import Packet, decode_packet, encode_packet
from serfcast.wire.stream import (
    StreamDecoder,
    StreamFrame,
    encode_stream,
)
from wire_helpers import split_at

T = TypeVar("T")

STRUCTS: tuple[type[Struct], ...] = (
    Ping,
    IndirectPing,
    Ack,
    Nack,
    ErrResp,
    Suspect,
    Alive,
    Dead,
    PushPullHeader,
    PushNodeState,
    UserMsgHeader,
    CompressHeader,
)
KEYRING = Keyring([bytes(range(32)), bytes(range(16))])
CAPTURES = ("serf094_plain", "serf0101_encrypted", "inject_serf0101")


def test_every_message_class_is_fuzzed() -> None:
    defined = {
        cls
        for cls in vars(messages).values()
        if isinstance(cls, type) and issubclass(cls, Struct) and cls is not Struct
    }
    assert defined == set(STRUCTS)


def outcome(decode: Callable[[], T]) -> T | RemoteProtocolError:
    """Run a decoder: its result, or the RemoteProtocolError it raised.

    Any other exception propagates and fails the test.
    """
    try:
        return decode()
    except RemoteProtocolError as exc:
        return exc


# ----------------------------------------------------------------------------
# Seeds from real traffic


@dataclass(frozen=True)
class Seeds:
    """Logical bytes of captured traffic, every outer layer removed."""

    frames: tuple[bytes, ...]
    streams: tuple[bytes, ...]
    bodies: tuple[bytes, ...]
    sealed: tuple[bytes, ...]


def _capture_keyring(golden_dir: Path) -> Keyring:
    key = (golden_dir / "captures" / "encrypt_key.txt").read_text()
    return Keyring.from_base64(key)


def _unwrap(frame: Frame) -> Frame:
    return _unwrap(frame.inner) if isinstance(frame, Compressed) else frame


def _packets(golden_dir: Path, keyring: Keyring) -> list[tuple[bytes, Packet]]:
    """Every captured datagram that decodes, with what it decoded to."""
    found = []
    for name in CAPTURES:
        contents = read_pcap((golden_dir / "captures" / f"{name}.pcap").read_bytes())
        for datagram in contents.datagrams:
            decode = functools.partial(
                decode_packet, datagram.payload, keyring=keyring, verify_incoming=False
            )
            packet = outcome(decode)
            if isinstance(packet, Packet):
                found.append((datagram.payload, packet))
    return found


def _stream_seeds(golden_dir: Path, keyring: Keyring) -> set[bytes]:
    """The logical bytes of every captured stream message that decodes."""
    found = set()
    for name in CAPTURES:
        contents = read_pcap((golden_dir / "captures" / f"{name}.pcap").read_bytes())
        for stream in contents.streams:
            decoder = StreamDecoder(keyring=keyring, verify_incoming=False)
            got = outcome(functools.partial(decoder.feed, stream.payload))
            if isinstance(got, StreamFrame):
                found.add(encode_stream(got.message, compress=False))
    return found


@functools.cache
def load_seeds(golden_dir: Path) -> Seeds:
    """Seeds from the captures, decrypted and decompressed."""
    keyring = _capture_keyring(golden_dir)
    packets = _packets(golden_dir, keyring)
    inner = [_unwrap(packet.frame) for _, packet in packets]
    bodies = {
        leaf.encode_body()
        for frame in inner
        for leaf in iter_messages(frame)
        if isinstance(leaf, Struct)
    }
    return Seeds(
        frames=tuple(sorted({encode_frame(frame) for frame in inner})),
        streams=tuple(sorted(_stream_seeds(golden_dir, keyring))),
        bodies=tuple(sorted(bodies)),
        sealed=tuple(wire for wire, packet in packets if packet.encrypted),
    )


@pytest.fixture(scope="module")
def seeds(golden_dir: Path) -> Seeds:
    found = load_seeds(golden_dir)
    assert len(found.frames) > 20 and len(found.streams) > 4 and found.sealed
    return found


def test_seeds_hold_every_kind_of_traffic(seeds: Seeds) -> None:
    leaves = {type(m) for f in seeds.frames for m in iter_messages(decode_frame(f))}
    assert {Ping, Ack, Alive, Dead, UserMsg} <= leaves
    assert {Compound, Compressed} & {type(decode_frame(f)) for f in seeds.frames}
    assert {stream[0] for stream in seeds.streams} == {6, 8}


# ----------------------------------------------------------------------------
# Mutations

OPERATIONS = ("flip", "replace", "insert", "delete", "truncate")
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(OPERATIONS), st.integers(0, 1 << 16), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)
PICK = st.integers(0, 1 << 16)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    """Apply byte-level edits; positions wrap around the current length."""
    buf = bytearray(data)
    for operation, position, value in mutations:
        if operation == "insert":
            buf.insert(position % (len(buf) + 1), value)
            continue
        if not buf:
            continue
        at = position % len(buf)
        if operation == "flip":
            buf[at] ^= 1 << (value % 8)
        elif operation == "replace":
            buf[at] = value
        elif operation == "delete":
            del buf[at]
        else:
            del buf[at:]
    return bytes(buf)


def _sendable(message: object) -> bool:
    """serfcast refuses to send a Vsn other than six bytes, though peers may."""
    vsn = getattr(message, "vsn", None)
    return vsn is None or len(vsn) == VSN_LEN


def _reencodable(frame: Frame) -> bool:
    if isinstance(frame, Compound):
        size_ok = 1 <= len(frame.parts) <= SAFE_COMPOUND_PARTS and not frame.truncated
        return size_ok and all(_reencodable(part) for part in frame.parts)
    if isinstance(frame, Compressed):
        return _reencodable(frame.inner)
    return _sendable(frame)


def _check_stable(frame: Frame) -> None:
    """A decoded frame encodes to bytes that decode to the same frame."""
    if _reencodable(frame):
        assert decode_frame(encode_frame(frame)) == frame


# ----------------------------------------------------------------------------
# Arbitrary bytes


FRAME_TYPES = (Compound, Compressed, Malformed, UserMsg, *STRUCTS)


def _every_packet_decoder(data: bytes) -> None:
    decoders: list[Callable[[], Packet]] = [
        lambda: decode_packet(data),
        lambda: decode_packet(data, keyring=KEYRING),
        lambda: decode_packet(data, keyring=KEYRING, verify_incoming=False),
        lambda: decode_packet(data, label=b"lbl"),
    ]
    for decoder in decoders:
        assert isinstance(outcome(decoder), Packet | RemoteProtocolError)
    frame = outcome(lambda: decode_frame(data))
    assert isinstance(frame, (*FRAME_TYPES, RemoteProtocolError))


@settings(deadline=None, max_examples=400)
@given(st.binary(max_size=200))
@example(b"")
@example(b"\xf4")
@example(b"\xf4\x00")
@example(b"\xf4\x05ab")
@example(b"\x0c\x00\x00\x00")
@example(b"\x07")
@example(b"\x07\x00")
@example(b"\x07\xff\x00\x01")
@example(b"\x09\x80")
@example(b"\x09\x82\xa4Algo\x01\xa3Buf\xa0")
@example(b"\x09\x81\xa3Buf\xa3\x00\x01\x02")
@example(b"\x01" + bytes(44))
@example(b"\x00" + bytes(60))
def test_arbitrary_bytes_into_packet_decoders(data: bytes) -> None:
    _every_packet_decoder(data)


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=120))
@example(b"\x80")
@example(b"\xdf\xff\xff\xff\xff")
@example(b"\xdd\xff\xff\xff\xff")
@example(b"\x81\xa5SeqNo\xcf\xff\xff\xff\xff\xff\xff\xff\xff")
@example(b"\x81\xa1x\xd4\xff\x00")
@example(b"\x81\xa1x" + b"\x91" * 2000 + b"\xc0")
def test_arbitrary_bytes_into_every_struct(body: bytes) -> None:
    for cls in STRUCTS:
        message = outcome(functools.partial(cls.decode_body, body))
        assert isinstance(message, cls | RemoteProtocolError)


def _run_stream(
    chunks: list[bytes], *, keyring: Keyring | None, expect_label: bool
) -> StreamFrame | RemoteProtocolError:
    decoder = StreamDecoder(
        keyring=keyring, expect_label_header=expect_label, verify_incoming=False
    )
    for chunk in chunks:
        got = outcome(functools.partial(decoder.feed, chunk))
        if isinstance(got, RemoteProtocolError):
            return got
    return outcome(decoder.feed_eof)


@settings(deadline=None, max_examples=300)
@given(
    data=st.binary(max_size=200),
    cuts=st.lists(st.integers(0), max_size=6),
    keyring=st.sampled_from([None, KEYRING]),
    expect_label=st.booleans(),
)
@example(
    data=b"\x0a\x00\x00\x00\x02\x01\x02", cuts=[], keyring=KEYRING, expect_label=False
)
@example(data=b"\x0a\x00\x00\x00\x00", cuts=[], keyring=KEYRING, expect_label=False)
@example(
    data=b"\x09\x82\xa4Algo\x00\xa3Buf\xa3\x00\x03\x02",
    cuts=[1],
    keyring=None,
    expect_label=True,
)
@example(data=b"\xf4\x01a\x06\x80", cuts=[1, 2], keyring=None, expect_label=True)
@example(
    data=b"\x06\x81\xa5Nodes\x02\x80\xc1", cuts=[], keyring=None, expect_label=False
)
@example(data=b"\x08\x81\xaaUserMsgLen\xff", cuts=[], keyring=None, expect_label=False)
@example(data=b"\x0d\x81\xa5Error\xc3", cuts=[], keyring=None, expect_label=False)
def test_arbitrary_bytes_into_stream_decoder(
    *, data: bytes, cuts: list[int], keyring: Keyring | None, expect_label: bool
) -> None:
    result = _run_stream(
        split_at(data, cuts), keyring=keyring, expect_label=expect_label
    )
    assert isinstance(result, StreamFrame | RemoteProtocolError)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=300), st.integers(0, 5000))
@example(b"\x00\x03\x02", 0)
@example(b"\xff" * 40, 100)
@example(b"\x00\x01", 10)
def test_arbitrary_bytes_into_lzw(data: bytes, limit: int) -> None:
    out = outcome(lambda: lzw.decompress(data, max_size=limit))
    assert isinstance(out, RemoteProtocolError) or len(out) <= limit


@settings(deadline=None)
@given(st.binary(max_size=100), st.binary(max_size=8))
@example(b"\x01" + bytes(28), b"")
@example(b"\x00" + bytes(44), b"")
@example(b"\x02" + bytes(40), b"")
def test_arbitrary_bytes_into_keyring(data: bytes, aad: bytes) -> None:
    plain = outcome(lambda: KEYRING.decrypt(data, aad))
    assert isinstance(plain, bytes | RemoteProtocolError)


# ----------------------------------------------------------------------------
# Mutated real traffic


@settings(deadline=None, max_examples=300)
@given(
    pick=PICK,
    mutations=MUTATIONS,
    compress=st.booleans(),
    crc=st.booleans(),
    encrypt=st.booleans(),
)
def test_mutated_datagrams(
    *,
    seeds: Seeds,
    pick: int,
    mutations: list[tuple[str, int, int]],
    compress: bool,
    crc: bool,
    encrypt: bool,
) -> None:
    logical = mutate(seeds.frames[pick % len(seeds.frames)], mutations)
    if compress:
        logical = compress_frame(logical)
    keyring = KEYRING if encrypt else None
    wire = encode_packet(logical, crc=crc, keyring=keyring)
    packet = outcome(lambda: decode_packet(wire, keyring=keyring))
    if isinstance(packet, Packet):
        _check_stable(packet.frame)
    _every_packet_decoder(mutate(wire, mutations))


@settings(deadline=None, max_examples=250)
@given(
    pick=PICK,
    mutations=MUTATIONS,
    compress=st.booleans(),
    encrypt=st.booleans(),
    cuts=st.lists(st.integers(0), max_size=6),
)
def test_mutated_streams(
    *,
    seeds: Seeds,
    pick: int,
    mutations: list[tuple[str, int, int]],
    compress: bool,
    encrypt: bool,
    cuts: list[int],
) -> None:
    logical = mutate(seeds.streams[pick % len(seeds.streams)], mutations)
    wire = compress_frame(logical) if compress else logical
    keyring = KEYRING if encrypt else None
    if keyring:
        # Seal the bytes as they are: encode_stream would re-frame the message.
        sealed_len = 29 + len(wire)
        header = b"\x0a" + sealed_len.to_bytes(4, "big")
        wire = header + keyring.encrypt(wire, header)
    for data in (wire, mutate(wire, mutations)):
        chunks = split_at(data, cuts)
        for expect_label in (False, True):
            result = _run_stream(chunks, keyring=keyring, expect_label=expect_label)
            assert isinstance(result, StreamFrame | RemoteProtocolError)


@settings(deadline=None, max_examples=200)
@given(pick=PICK, mutations=MUTATIONS)
def test_mutated_bodies(
    *, seeds: Seeds, pick: int, mutations: list[tuple[str, int, int]]
) -> None:
    body = mutate(seeds.bodies[pick % len(seeds.bodies)], mutations)
    for cls in STRUCTS:
        message = outcome(functools.partial(cls.decode_body, body))
        if isinstance(message, RemoteProtocolError):
            continue
        if _sendable(message):
            assert cls.decode_body(message.encode_body()) == message
        else:
            with pytest.raises(LocalProtocolError, match="Vsn"):
                message.encode_body()


@settings(deadline=None, max_examples=200)
@given(pick=PICK, mutations=MUTATIONS, limit=st.integers(0, 1 << 16))
def test_mutated_lzw_streams(
    *, seeds: Seeds, pick: int, mutations: list[tuple[str, int, int]], limit: int
) -> None:
    packed = mutate(lzw.compress(seeds.frames[pick % len(seeds.frames)]), mutations)
    out = outcome(lambda: lzw.decompress(packed, max_size=limit))
    assert isinstance(out, RemoteProtocolError) or len(out) <= limit


@settings(deadline=None, max_examples=100)
@given(pick=PICK, mutations=MUTATIONS)
def test_mutated_ciphertexts(
    *, golden_dir: Path, seeds: Seeds, pick: int, mutations: list[tuple[str, int, int]]
) -> None:
    sealed = seeds.sealed[pick % len(seeds.sealed)]
    keyring = _capture_keyring(golden_dir)
    assert isinstance(keyring.decrypt(sealed), bytes)
    tampered = mutate(sealed, mutations)
    plain = outcome(lambda: keyring.decrypt(tampered))
    # GCM authenticates everything after the version byte, so only an edit that
    # leaves those bytes as they were can still open.
    assert isinstance(plain, RemoteProtocolError) or tampered[1:] == sealed[1:]

"""Hypothesis strategies and small tools shared by the wire-layer property tests.

The strategies draw every memberlist message with field values across their whole
Go ranges: strings and byte fields short, just over the fixstr limit (31) and over
255 bytes, Go strings holding invalid UTF-8, nil versus empty byte slices. The
msgpack tokenizer reads an encoded body into a tree that records the exact type
byte of every object, so tests can state facts about the encoder's choices
without searching raw bytes (which would also match inside string payloads).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from serfcast.wire.frames import Compound, Compressed, Frame, UserMsg
from serfcast.wire.gomsgpack import decode_str
from serfcast.wire.keyring import KEY_SIZES, NONCE_SIZE, Keyring
from serfcast.wire.messages import (
    PROTOCOL_VSN,
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
from serfcast.wire.stream import PushPull, StreamMessage

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
#: serfcast sends a Vsn only as exactly six bytes.
VSNS = st.just(PROTOCOL_VSN) | st.binary(min_size=6, max_size=6)
#: Lengths on both sides of each raw-string size class (fixstr, str16, str32).
BOUNDARY_LENGTHS = (31, 32, 255, 256, 300)


def _repeat_to(seed: bytes, size: int) -> bytes:
    return (seed * (size // len(seed) + 1))[:size]


def raw_bytes(*, long: bool = True) -> SearchStrategy[bytes]:
    """Byte strings: short random ones, plus (with ``long``) sizes at the raw
    string boundaries built from a repeated random seed."""
    short = st.binary(max_size=40)
    if not long:
        return short
    sized = st.builds(
        _repeat_to,
        st.binary(min_size=1, max_size=8),
        st.sampled_from(BOUNDARY_LENGTHS),
    )
    return st.one_of(short, sized)


def go_strings(*, long: bool = True) -> SearchStrategy[str]:
    """Go strings as serfcast holds them: any bytes, invalid UTF-8 included."""
    return st.one_of(st.text(max_size=40), raw_bytes(long=long).map(decode_str))


def nil_or_bytes(*, long: bool = True) -> SearchStrategy[bytes | None]:
    """A byte slice that may be nil (``None``), empty or hold data."""
    return st.one_of(st.none(), st.just(b""), raw_bytes(long=long))


def _ping(long: bool) -> SearchStrategy[Ping]:
    return st.builds(
        Ping,
        seq_no=U32,
        node=go_strings(long=long),
        source_addr=raw_bytes(long=long),
        source_port=U16,
        source_node=go_strings(long=long),
    )


def _indirect_ping(long: bool) -> SearchStrategy[IndirectPing]:
    return st.builds(
        IndirectPing,
        seq_no=U32,
        target=raw_bytes(long=long),
        port=U16,
        node=go_strings(long=long),
        nack=st.booleans(),
        source_addr=raw_bytes(long=long),
        source_port=U16,
        source_node=go_strings(long=long),
    )


def _alive(long: bool) -> SearchStrategy[Alive]:
    return st.builds(
        Alive,
        incarnation=U32,
        node=go_strings(long=long),
        addr=raw_bytes(long=long),
        port=U16,
        meta=nil_or_bytes(long=long),
        vsn=VSNS,
    )


def push_node_states(*, long: bool = True) -> SearchStrategy[PushNodeState]:
    """Node states, including states this library does not name."""
    return st.builds(
        PushNodeState,
        name=go_strings(long=long),
        addr=raw_bytes(long=long),
        port=U16,
        meta=nil_or_bytes(long=long),
        incarnation=U32,
        state=INT64,
        vsn=VSNS,
    )


def _udp_structs(long: bool) -> list[SearchStrategy[Frame]]:
    names = go_strings(long=long)
    return [
        _ping(long),
        _indirect_ping(long),
        st.builds(Ack, seq_no=U32, payload=nil_or_bytes(long=long)),
        st.builds(Nack, seq_no=U32),
        st.builds(Suspect, incarnation=U32, node=names, from_node=names),
        _alive(long),
        st.builds(Dead, incarnation=U32, node=names, from_node=names),
    ]


def udp_messages(*, long: bool = True) -> SearchStrategy[Frame]:
    """Every message that may travel alone in a UDP packet."""
    return st.one_of(*_udp_structs(long), st.builds(UserMsg, raw_bytes(long=long)))


def structs() -> SearchStrategy[Struct]:
    """Every msgpack-bodied message class, the stream-only ones included."""
    return st.one_of(
        *_udp_structs(True),
        st.builds(ErrResp, error=go_strings()),
        st.builds(
            PushPullHeader, nodes=INT64, user_state_len=INT64, join=st.booleans()
        ),
        st.builds(UserMsgHeader, user_msg_len=INT64),
        push_node_states(),
        st.builds(CompressHeader, algo=U8, buf=raw_bytes()),
    )


def frame_trees(depth: int = 3) -> SearchStrategy[Frame]:
    """Trees of compound and compress frames over short UDP messages.

    Leaves stay small so that no compound part reaches 64 KiB.
    """
    leaves = udp_messages(long=False)
    if depth == 0:
        return leaves
    sub = frame_trees(depth - 1)
    compounds = st.lists(sub, min_size=1, max_size=4).map(
        lambda parts: Compound(tuple(parts))
    )
    return st.one_of(leaves, compounds, sub.map(Compressed))


def stream_messages() -> SearchStrategy[StreamMessage]:
    """Every message a memberlist stream carries."""
    return st.one_of(
        st.builds(
            PushPull,
            join=st.booleans(),
            nodes=st.lists(push_node_states(long=False), max_size=4).map(tuple),
            user_state=raw_bytes(),
        ),
        st.builds(UserMsg, raw_bytes()),
        _ping(True),
        st.builds(Ack, seq_no=U32, payload=nil_or_bytes()),
        st.builds(ErrResp, error=go_strings()),
    )


def keys() -> SearchStrategy[bytes]:
    """AES-128, AES-192 and AES-256 gossip keys."""
    return st.sampled_from(KEY_SIZES).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    )


def keyrings() -> SearchStrategy[Keyring]:
    """Keyrings of one to three keys."""
    return st.lists(keys(), min_size=1, max_size=3, unique=True).map(Keyring)


NONCES = st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE)
LABELS = st.one_of(st.just(b""), st.binary(min_size=1, max_size=255))


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates ignored)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def byte_by_byte(data: bytes) -> list[bytes]:
    """Every byte as its own chunk."""
    return [data[i : i + 1] for i in range(len(data))]


# ----------------------------------------------------------------------------
# A tiny msgpack tokenizer that keeps each object's type byte.


@dataclass
class Token:
    """One msgpack object: its type byte, what it is, and its contents."""

    marker: int
    kind: str  # "int", "raw", "map", "array", "nil", "bool" or "other"
    value: object = None
    children: list[Token] = field(default_factory=list)


_FIXED_INTS = {
    0xCC: ">B",
    0xCD: ">H",
    0xCE: ">I",
    0xCF: ">Q",
    0xD0: ">b",
    0xD1: ">h",
    0xD2: ">i",
    0xD3: ">q",
}
_RAW_LENGTHS = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
_CONTAINERS = {0xDC: ("array", ">H"), 0xDD: ("array", ">I")}
_CONTAINERS |= {0xDE: ("map", ">H"), 0xDF: ("map", ">I")}


def tokenize(data: bytes) -> Token:
    """Read exactly one msgpack object that fills ``data`` completely."""
    token, end = _read(data, 0)
    assert end == len(data), f"{len(data) - end} bytes after the object"
    return token


def _read_fixed(data: bytes, pos: int, fmt: str) -> tuple[int, int]:
    size = struct.calcsize(fmt)
    return struct.unpack_from(fmt, data, pos)[0], pos + size


def _read(data: bytes, pos: int) -> tuple[Token, int]:
    marker = data[pos]
    pos += 1
    if marker <= 0x7F or marker >= 0xE0:
        return Token(marker, "int", marker if marker <= 0x7F else marker - 0x100), pos
    if marker in _FIXED_INTS:
        value, pos = _read_fixed(data, pos, _FIXED_INTS[marker])
        return Token(marker, "int", value), pos
    if 0xA0 <= marker <= 0xBF or marker in _RAW_LENGTHS:
        size = marker & 0x1F
        if marker in _RAW_LENGTHS:
            size, pos = _read_fixed(data, pos, _RAW_LENGTHS[marker])
        assert pos + size <= len(data), "raw string runs past the end"
        return Token(marker, "raw", data[pos : pos + size]), pos + size
    if marker in (0xC0, 0xC2, 0xC3):
        kind = "nil" if marker == 0xC0 else "bool"
        return Token(marker, kind, None if kind == "nil" else marker == 0xC3), pos
    return _read_container(data, pos, marker)


def _read_container(data: bytes, pos: int, marker: int) -> tuple[Token, int]:
    if 0x80 <= marker <= 0x9F:
        kind, count = ("map" if marker < 0x90 else "array"), marker & 0x0F
    elif marker in _CONTAINERS:
        kind, fmt = _CONTAINERS[marker]
        count, pos = _read_fixed(data, pos, fmt)
    else:
        raise AssertionError(f"type byte {marker:#04x} is not one Go's encoder uses")
    token = Token(marker, kind)
    for _ in range(count * (2 if kind == "map" else 1)):
        child, pos = _read(data, pos)
        token.children.append(child)
    return token, pos


def walk(token: Token) -> Iterator[Token]:
    """The token and everything inside it, depth first."""
    yield token
    for child in token.children:
        yield from walk(child)

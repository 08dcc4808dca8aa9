"""Round trips of every message and every UDP framing, and the encoder's profile.

Go's golden vectors pin a handful of exact encodings; these properties cover the
whole value space: whatever serfcast writes it reads back unchanged, through any
tree of compound and compress frames and any combination of CRC, encryption and
label. The encoder facts (no str8, no bin, sorted keys, smallest unsigned ints)
are checked on a tokenized body rather than by searching bytes.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from serfcast.errors import LocalProtocolError
from serfcast.wire.frames import (
    MAX_COMPOUND_PARTS,
    SAFE_COMPOUND_PARTS,
    Compound,
    Compressed,
    Frame,
    Message,
    UserMsg,
    decode_frame,
    encode_frame,
    iter_messages,
)
from serfcast.wire.gomsgpack import decode_str, encode_str
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import (
    PROTOCOL_VSN,
    Ack,
    Alive,
    CompressHeader,
    ErrResp,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    PushPullHeader,
    Struct,
    Suspect,
)
from serfcast.wire.packet import Packet, build_packet, decode_packet, encode_packet
from wire_helpers import (
    LABELS,
    NONCES,
    Token,
    frame_trees,
    keyrings,
    structs,
    tokenize,
    udp_messages,
    walk,
)

LOCAL = bytes([127, 0, 0, 1])
INVALID_UTF8 = decode_str(b"\xff\xfe node \xc3")


# ----------------------------------------------------------------------------
# Single messages


@settings(deadline=None, max_examples=300)
@given(structs())
@example(Ping(seq_no=0xFFFF_FFFF, node=INVALID_UTF8, source_port=0xFFFF))
@example(Ack(seq_no=1, payload=None))
@example(Ack(seq_no=1, payload=b""))
@example(Suspect(1, "n" * 31, "f" * 32))
@example(ErrResp("e" * 256))
@example(PushPullHeader(nodes=-(1 << 63), user_state_len=(1 << 63) - 1))
@example(PushNodeState("x" * 300, LOCAL, 7946, b"\x00" * 255, 1, -1, PROTOCOL_VSN))
def test_every_struct_round_trips(message: Struct) -> None:
    assert type(message).decode_body(message.encode_body()) == message


@settings(deadline=None)
@given(udp_messages())
def test_udp_message_round_trips_as_a_frame(message: Message) -> None:
    assert decode_frame(message.encode()) == message


@settings(deadline=None)
@given(st.binary())
def test_go_strings_keep_every_byte(raw: bytes) -> None:
    text = decode_str(raw)
    assert encode_str(text) == raw
    decoded = Suspect.decode_body(Suspect(node=text).encode_body())
    assert encode_str(decoded.node) == raw


def test_nil_and_empty_byte_slices_stay_apart() -> None:
    assert Ack(1, None).encode_body() != Ack(1, b"").encode_body()
    empty, nil = Alive(meta=b"", vsn=PROTOCOL_VSN), Alive(meta=None, vsn=PROTOCOL_VSN)
    assert empty.encode_body() != nil.encode_body()
    assert Alive.decode_body(empty.encode_body()).meta == b""
    assert Alive.decode_body(nil.encode_body()).meta is None


# ----------------------------------------------------------------------------
# The encoder's msgpack profile


def _smallest_int_marker(value: int) -> int:
    if 0 <= value <= 0x7F or -32 <= value < 0:
        return value & 0xFF
    if value >= 0:
        bounds = ((0xFF, 0xCC), (0xFFFF, 0xCD), (0xFFFF_FFFF, 0xCE))
        return next((m for top, m in bounds if value <= top), 0xCF)
    bounds = ((-(1 << 7), 0xD0), (-(1 << 15), 0xD1), (-(1 << 31), 0xD2))
    return next((m for low, m in bounds if value >= low), 0xD3)


def _smallest_raw_marker(size: int) -> int:
    if size < 32:
        return 0xA0 | size
    return 0xDA if size <= 0xFFFF else 0xDB


def _check_profile(token: Token) -> None:
    for item in walk(token):
        assert item.marker != 0xD9, "str8 is never written"
        assert not 0xC4 <= item.marker <= 0xC6, "bin is never written"
        if item.kind == "int":
            assert isinstance(item.value, int)
            assert item.marker == _smallest_int_marker(item.value)
        if item.kind == "raw":
            assert isinstance(item.value, bytes)
            assert item.marker == _smallest_raw_marker(len(item.value))
        if item.kind == "map":
            keys = [key.value for key in item.children[::2]]
            assert all(key.kind == "raw" for key in item.children[::2])
            assert keys == sorted(keys)  # type: ignore[type-var]
            assert len(set(keys)) == len(keys)


@settings(deadline=None, max_examples=300)
@given(structs())
@example(PushPullHeader(nodes=200, user_state_len=300))
@example(PushNodeState(port=0xFFFF, incarnation=0xFFFF, state=-129, vsn=PROTOCOL_VSN))
def test_encoder_profile(message: Struct) -> None:
    token = tokenize(message.encode_body())
    assert 0x80 <= token.marker <= 0x8F, "structs are fixmaps"
    go_names = [key.value for key in token.children[::2]]
    fields = [f.go_name.encode() for f in message.FIELDS]
    assert set(go_names) <= set(fields)
    assert [n for n in fields if n in go_names] == go_names
    _check_profile(token)


def test_profile_checker_catches_what_go_never_writes() -> None:
    # The checker itself must be able to fail, or the property above proves nothing.
    for wrong in (
        b"\x81\xa1a\xd9\x01x",
        b"\x81\xa1a\xc4\x01x",
        b"\x82\xa1b\x01\xa1a\x01",
    ):
        with pytest.raises(AssertionError):
            _check_profile(tokenize(wrong))
    for wrong_int in (b"\x81\xa1a\xcc\x05", b"\x81\xa1a\xd1\x00\xc8"):
        with pytest.raises(AssertionError):
            _check_profile(tokenize(wrong_int))


# ----------------------------------------------------------------------------
# Frames and packets


@settings(deadline=None, max_examples=150)
@given(frame_trees())
@example(Compound(tuple(Nack(i) for i in range(SAFE_COMPOUND_PARTS))))
@example(Compound((UserMsg(b"u" * 0xFFFE),)))
@example(Compressed(Compressed(Compound((Ping(1), Compressed(Ack(1, b"")))))))
def test_frame_tree_round_trips(frame: Frame) -> None:
    assert decode_frame(encode_frame(frame)) == frame


def test_compound_limits_are_the_senders_to_respect() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(Compound(tuple(Nack(i) for i in range(SAFE_COMPOUND_PARTS + 1))))
    with pytest.raises(LocalProtocolError):
        encode_frame(Compound((UserMsg(b"u" * 0xFFFF),)))
    with pytest.raises(LocalProtocolError):
        encode_frame(Compound(()))


@settings(deadline=None, max_examples=150)
@given(
    frame=frame_trees(depth=2),
    crc=st.booleans(),
    keyring=st.none() | keyrings(),
    version=st.sampled_from([0, 1]),
    label=LABELS,
    nonce=NONCES,
)
def test_packet_round_trips(
    *,
    frame: Frame,
    crc: bool,
    keyring: Keyring | None,
    version: int,
    label: bytes,
    nonce: bytes,
) -> None:
    wire = encode_packet(
        frame,
        crc=crc,
        keyring=keyring,
        label=label,
        encryption_version=version,
        nonce=nonce,
    )
    expected = Packet(
        frame,
        label,
        encrypted=keyring is not None,
        encryption_version=version if keyring else None,
        crc=zlib.crc32(encode_frame(frame)) if crc else None,
    )
    assert decode_packet(wire, keyring=keyring, label=label) == expected


@settings(deadline=None)
@given(frame=frame_trees(depth=1), keyring=keyrings(), nonce=NONCES)
def test_any_installed_key_opens_a_packet(
    frame: Frame, keyring: Keyring, nonce: bytes
) -> None:
    wire = encode_packet(frame, keyring=keyring, nonce=nonce)
    receiver = Keyring([b"\x55" * 32, *reversed(keyring.keys)])
    assert decode_packet(wire, keyring=receiver).frame == frame


def _compound_of(messages: list[Message]) -> Frame:
    return messages[0] if len(messages) == 1 else Compound(tuple(messages))


@settings(deadline=None, max_examples=150)
@given(st.lists(udp_messages(long=False), min_size=1, max_size=12))
@example([Ping(seq_no=100)])
@example([Alive(1, "node-a", LOCAL, 7946, None, PROTOCOL_VSN)] * 12)
def test_build_packet_compresses_only_when_strictly_shorter(
    messages: list[Message],
) -> None:
    plain = encode_frame(_compound_of(messages))
    packed = encode_frame(Compressed(_compound_of(messages)))
    wire = build_packet(messages)
    assert wire == (packed if len(packed) < len(plain) else plain)
    frame = decode_packet(wire).frame
    assert isinstance(frame, Compressed) == (len(packed) < len(plain))
    assert iter_messages(frame) == messages
    assert build_packet(messages, compress=False) == plain


def test_build_packet_refuses_what_cannot_be_one_packet() -> None:
    with pytest.raises(LocalProtocolError):
        build_packet([])
    with pytest.raises(LocalProtocolError):
        build_packet([Nack(i) for i in range(SAFE_COMPOUND_PARTS + 1)])


def test_full_compound_from_a_peer_decodes() -> None:
    # serfcast sends at most SAFE_COMPOUND_PARTS, but takes all a u8 count can say.
    parts = [Nack(i).encode() for i in range(MAX_COMPOUND_PARTS)]
    lengths = b"".join(len(part).to_bytes(2, "big") for part in parts)
    wire = bytes((7, MAX_COMPOUND_PARTS)) + lengths + b"".join(parts)
    assert decode_frame(wire) == Compound(tuple(map(Nack, range(MAX_COMPOUND_PARTS))))


_OUT_OF_RANGE = [
    Ping(seq_no=-1),
    Ping(seq_no=1 << 32),
    Ping(source_port=1 << 16),
    IndirectPing(port=-1),
    Nack(seq_no=True),
    PushNodeState(state=1 << 63, vsn=PROTOCOL_VSN),
    PushPullHeader(nodes=-(1 << 63) - 1),
    CompressHeader(algo=256),
    Alive(vsn=b""),
    Alive(vsn=PROTOCOL_VSN[:5]),
    PushNodeState(vsn=PROTOCOL_VSN + b"\x00"),
]


@pytest.mark.parametrize("message", _OUT_OF_RANGE, ids=repr)
def test_encoder_refuses_what_go_types_cannot_hold(message: Struct) -> None:
    with pytest.raises(LocalProtocolError):
        message.encode_body()

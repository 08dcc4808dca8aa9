"""The decoder accepts what Go's msgpack decoder accepts, and refuses what it refuses.

Go writes one narrow profile, but other senders (and other Go codec versions) may
use str8 or bin, wider integer forms, map16 headers, keys in any order and keys
Go does not know. A peer that is accepted by a Go node must be accepted here too;
what a Go node rejects must raise :class:`RemoteProtocolError`, never anything else.
Inputs are built with ``msgpack.packb(use_bin_type=True)`` and by hand.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from serfcast.errors import RemoteProtocolError
from serfcast.wire.gomsgpack import decode_str
from serfcast.wire.messages import (
    PROTOCOL_VSN,
    Ack,
    Alive,
    CompressHeader,
    Dead,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    PushPullHeader,
    Struct,
    Suspect,
    UserMsgHeader,
)
from wire_helpers import structs

# ----------------------------------------------------------------------------
# Hand-written msgpack


def raw_forms(data: bytes) -> list[bytes]:
    """Every str and bin encoding of ``data`` that msgpack allows."""
    size = len(data)
    forms = [
        b"\xda" + struct.pack(">H", size) + data,
        b"\xdb" + struct.pack(">I", size) + data,
        b"\xc5" + struct.pack(">H", size) + data,
        b"\xc6" + struct.pack(">I", size) + data,
    ]
    if size < 32:
        forms.append(bytes((0xA0 | size,)) + data)
    if size < 256:
        forms += [b"\xd9" + bytes((size,)) + data, b"\xc4" + bytes((size,)) + data]
    return forms


_INT_FORMS = (
    (0xCC, ">B", 0, 0xFF),
    (0xCD, ">H", 0, 0xFFFF),
    (0xCE, ">I", 0, 0xFFFF_FFFF),
    (0xCF, ">Q", 0, (1 << 64) - 1),
    (0xD0, ">b", -(1 << 7), (1 << 7) - 1),
    (0xD1, ">h", -(1 << 15), (1 << 15) - 1),
    (0xD2, ">i", -(1 << 31), (1 << 31) - 1),
    (0xD3, ">q", -(1 << 63), (1 << 63) - 1),
)


def int_forms(value: int) -> list[bytes]:
    """Every msgpack integer encoding that can hold ``value``."""
    forms = [
        bytes((marker,)) + struct.pack(fmt, value)
        for marker, fmt, low, high in _INT_FORMS
        if low <= value <= high
    ]
    if -32 <= value <= 0x7F:
        forms.append(bytes((value & 0xFF,)))
    return forms


def fixmap(*pairs: tuple[str, bytes]) -> bytes:
    """A fixmap from keys and already encoded values."""
    assert len(pairs) < 16
    body = b"".join(_key(key) + value for key, value in pairs)
    return bytes((0x80 | len(pairs),)) + body


def _key(name: str) -> bytes:
    return bytes((0xA0 | len(name),)) + name.encode()


NIL = b"\xc0"


# ----------------------------------------------------------------------------
# Strings and byte slices


_FORM_INDEX = st.integers(0, 6)


@settings(deadline=None)
@given(st.binary(max_size=300), _FORM_INDEX)
@example(b"", 0)
@example(b"\xff\xfe", 5)
@example(b"x" * 255, 4)
def test_any_raw_form_into_string_fields(raw: bytes, index: int) -> None:
    forms = raw_forms(raw)
    form = forms[index % len(forms)]
    body = fixmap(("From", form), ("Node", form))
    assert Suspect.decode_body(body) == Suspect(0, decode_str(raw), decode_str(raw))


@settings(deadline=None)
@given(st.binary(max_size=300), _FORM_INDEX)
@example(b"", 6)
def test_any_raw_form_into_byte_fields(raw: bytes, index: int) -> None:
    forms = raw_forms(raw)
    form = forms[index % len(forms)]
    assert Ack.decode_body(fixmap(("Payload", form))) == Ack(payload=raw)
    alive = Alive.decode_body(fixmap(("Addr", form), ("Meta", form)))
    assert alive == Alive(addr=raw, meta=raw)


@settings(deadline=None)
@given(st.binary(min_size=6, max_size=40), _FORM_INDEX)
def test_any_raw_form_into_vsn(vsn: bytes, index: int) -> None:
    # A Vsn of six bytes or more is taken; what follows the sixth is Go's business.
    forms = raw_forms(vsn)
    decoded = PushNodeState.decode_body(fixmap(("Vsn", forms[index % len(forms)])))
    assert decoded.vsn == vsn


@settings(deadline=None)
@given(structs(), st.booleans(), st.randoms(use_true_random=False))
def test_packb_output_in_any_key_order(
    message: Struct, bin_type: bool, rng: random.Random
) -> None:
    # use_bin_type=True writes every string and byte field as bin (or str8 keys).
    items = list(message.to_go().items())
    rng.shuffle(items)
    body = msgpack.packb(dict(items), use_bin_type=bin_type)
    assert type(message).decode_body(body) == message


# ----------------------------------------------------------------------------
# Integers and booleans

_INT_FIELDS = [
    (Ping, "SeqNo", "seq_no", 0, 0xFFFF_FFFF),
    (Ping, "SourcePort", "source_port", 0, 0xFFFF),
    (CompressHeader, "Algo", "algo", 0, 0xFF),
    (PushNodeState, "State", "state", -(1 << 63), (1 << 63) - 1),
    (PushPullHeader, "UserStateLen", "user_state_len", -(1 << 63), (1 << 63) - 1),
    (UserMsgHeader, "UserMsgLen", "user_msg_len", -(1 << 63), (1 << 63) - 1),
]


@st.composite
def _int_cases(draw: st.DrawFn) -> tuple[type[Struct], str, str, int, bytes]:
    cls, go_name, attr, low, high = draw(st.sampled_from(_INT_FIELDS))
    value = draw(st.integers(low, high) | st.sampled_from([low, high, 0, 127, 128]))
    form = draw(st.sampled_from(int_forms(value)))
    return cls, go_name, attr, value, form


@settings(deadline=None)
@given(_int_cases())
def test_any_integer_width_that_fits(case: tuple[Any, str, str, int, bytes]) -> None:
    cls, go_name, attr, value, form = case
    decoded = cls.decode_body(fixmap((go_name, form)))
    assert getattr(decoded, attr) == value


@pytest.mark.parametrize(("form", "expected"), [(b"\x00", False), (b"\x01", True)])
def test_fixint_zero_and_one_as_bool(form: bytes, expected: bool) -> None:
    assert IndirectPing.decode_body(fixmap(("Nack", form))).nack is expected
    assert PushPullHeader.decode_body(fixmap(("Join", form))).join is expected


# ----------------------------------------------------------------------------
# Maps: unknown keys, headers, nil values, trailing bytes

_ANY_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=300)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(deadline=None)
@given(
    value=_ANY_VALUE,
    name=st.one_of(
        st.text(min_size=1, max_size=40).filter(lambda n: n not in {"SeqNo", "Node"}),
        st.binary(max_size=40).filter(lambda n: n not in {b"SeqNo", b"Node"}),
        st.integers(-(1 << 63), (1 << 64) - 1),
        st.none(),
        st.booleans(),
    ),
    position=st.integers(0, 2),
)
@example(value=msgpack.ExtType(5, b"\x01\x02"), name="seqno", position=0)
@example(value=[1, {"a": None}], name=7, position=1)
@example(value=1.5, name=None, position=2)
@example(value="x", name=b"\xffbin", position=0)
def test_unknown_keys_with_any_value_are_skipped(
    value: object, name: object, position: int
) -> None:
    items: list[tuple[Any, Any]] = [("Node", "b"), ("SeqNo", 9)]
    items.insert(position, (name, value))
    body = msgpack.packb(dict(items), use_bin_type=True)
    assert Ping.decode_body(body) == Ping(seq_no=9, node="b")


def test_map16_and_map32_headers() -> None:
    pairs = _key("SeqNo") + b"\x05" + _key("Node") + b"\xa1n"
    assert Ping.decode_body(b"\xde\x00\x02" + pairs) == Ping(5, "n")
    assert Ping.decode_body(b"\xdf\x00\x00\x00\x02" + pairs) == Ping(5, "n")


def test_nil_gives_zero_values() -> None:
    names = ["Addr", "Incarnation", "Meta", "Node", "Port", "Vsn"]
    assert Alive.decode_body(fixmap(*((n, NIL) for n in names))) == Alive()
    ping = fixmap(*((n, NIL) for n in ["Node", "SeqNo", "SourceAddr", "SourcePort"]))
    assert Ping.decode_body(ping) == Ping()
    header = fixmap(("Join", NIL), ("Nodes", NIL), ("UserStateLen", NIL))
    assert PushPullHeader.decode_body(header) == PushPullHeader()
    assert Ack.decode_body(fixmap(("Payload", NIL), ("SeqNo", b"\x02"))) == Ack(2)


def test_empty_map_gives_zero_values() -> None:
    for cls in (Ping, IndirectPing, Ack, Nack, Suspect, Alive, Dead, PushNodeState):
        assert cls.decode_body(b"\x80") == cls()


def test_array_of_small_ints_into_a_byte_field() -> None:
    vsn = msgpack.packb(list(PROTOCOL_VSN))
    assert Alive.decode_body(fixmap(("Vsn", vsn))).vsn == PROTOCOL_VSN
    addr = b"\xdc\x00\x04" + b"".join(int_forms(255)[:1] * 4)  # array16 of uint8
    assert Alive.decode_body(fixmap(("Addr", addr))).addr == b"\xff" * 4
    assert Alive.decode_body(fixmap(("Meta", b"\x90"))).meta == b""


@settings(deadline=None)
@given(structs(), st.binary(max_size=50))
def test_trailing_bytes_after_the_body_are_ignored(
    message: Struct, trailer: bytes
) -> None:
    assert type(message).decode_body(message.encode_body() + trailer) == message


# ----------------------------------------------------------------------------
# What Go refuses

_REFUSED: dict[str, tuple[type[Struct], bytes]] = {
    "float32 into uint32": (Ping, fixmap(("SeqNo", b"\xca\x3f\x80\x00\x00"))),
    "float64 into int": (PushPullHeader, fixmap(("Nodes", b"\xcb" + bytes(8)))),
    "negative into uint32": (Ping, fixmap(("SeqNo", b"\xff"))),
    "negative into uint16": (Alive, fixmap(("Port", b"\xd1\xff\x00"))),
    "negative into uint8": (CompressHeader, fixmap(("Algo", b"\xd0\xff"))),
    "2**32 into uint32": (Ping, fixmap(("SeqNo", b"\xcf" + (1 << 32).to_bytes(8)))),
    "2**16 into uint16": (Ping, fixmap(("SourcePort", b"\xce\x00\x01\x00\x00"))),
    "256 into uint8": (CompressHeader, fixmap(("Algo", b"\xcd\x01\x00"))),
    "2**63 into int": (UserMsgHeader, fixmap(("UserMsgLen", b"\xcf\x80" + bytes(7)))),
    "bool into uint32": (Nack, fixmap(("SeqNo", b"\xc3"))),
    "bool into int": (PushNodeState, fixmap(("State", b"\xc2"))),
    "string into uint32": (Dead, fixmap(("Incarnation", b"\xa11"))),
    "ext into uint32": (Suspect, fixmap(("Incarnation", b"\xd4\x01\x00"))),
    "string into bool": (IndirectPing, fixmap(("Nack", b"\xa4true"))),
    "2 into bool": (IndirectPing, fixmap(("Nack", b"\x02"))),
    "-1 into bool": (PushPullHeader, fixmap(("Join", b"\xff"))),
    "float into bool": (PushPullHeader, fixmap(("Join", b"\xcb" + bytes(8)))),
    "bool into string": (Ping, fixmap(("Node", b"\xc3"))),
    "int into string": (Suspect, fixmap(("From", b"\x07"))),
    "map into string": (Dead, fixmap(("Node", b"\x80"))),
    "array into string": (Dead, fixmap(("Node", b"\x91\x01"))),
    "int into bytes": (Alive, fixmap(("Addr", b"\x7f"))),
    "array of 256 into bytes": (Alive, fixmap(("Addr", b"\x92\x01\xcd\x01\x00"))),
    "array of strings into bytes": (Alive, fixmap(("Addr", b"\x91\xa1a"))),
    # Go has no rule against it, but a short Vsn crashes Go nodes up to v0.6.0.
    "Vsn of five bytes": (Alive, fixmap(("Vsn", b"\xa5" + PROTOCOL_VSN[:5]))),
    "Vsn of one byte": (PushNodeState, fixmap(("Vsn", b"\x91\x01"))),
    "ext into bytes": (Ack, fixmap(("Payload", b"\xc7\x01\x05\x00"))),
    "int body": (Nack, b"\x05"),
    "string body": (Ping, b"\xa5SeqNo"),
    "nil body": (Ack, b"\xc0"),
    "bool body": (Alive, b"\xc3"),
    # Go would also take a struct as an array in field order; no Go sender writes
    # one, and serfcast refuses it.
    "array body": (Nack, b"\x91\x05"),
    "empty body": (Ping, b""),
    "truncated map": (Ping, b"\x82\xa5SeqNo\x01"),
    "truncated string": (Ping, b"\x81\xa4Node\xa5ab"),
    "reserved type byte": (Ping, b"\x81\xa4Node\xc1"),
}


@pytest.mark.parametrize("case", sorted(_REFUSED))
def test_go_refuses_and_so_does_serfcast(case: str) -> None:
    cls, body = _REFUSED[case]
    with pytest.raises(RemoteProtocolError):
        cls.decode_body(body)

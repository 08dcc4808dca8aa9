"""Every length, count and depth a peer announces is bounded before it is used.

A stream header that announces too much is refused as soon as the header is
complete, before any of the announced data arrives. Decompression is budgeted
across all nested compress frames of one packet or stream message. Frames nested
too deeply raise :class:`LimitExceededError` long before Python's recursion limit.
"""

from __future__ import annotations

import inspect
import struct

import pytest

from serfcast.errors import LimitExceededError, RemoteProtocolError
from serfcast.wire.frames import (
    MAX_DECOMPRESSED,
    MAX_NESTING,
    Compound,
    Compressed,
    Frame,
    UserMsg,
    decode_frame,
    encode_frame,
)
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import Nack, PushPullHeader, UserMsgHeader
from serfcast.wire.packet import decode_packet, encode_packet
from serfcast.wire.stream import (
    MAX_ENCRYPTED_LEN,
    MAX_PUSH_NODES,
    MAX_USER_MSG,
    MAX_USER_STATE,
    StreamDecoder,
    encode_stream,
)
from wire_helpers import byte_by_byte

KEYRING = Keyring([bytes(range(32))])

# ----------------------------------------------------------------------------
# Stream headers


def _push_pull(nodes: int = 0, user_state_len: int = 0) -> bytes:
    return PushPullHeader(nodes, user_state_len).encode()


def _user(length: int) -> bytes:
    return UserMsgHeader(length).encode()


def _encrypted(length: int) -> bytes:
    return b"\x0a" + length.to_bytes(4, "big")


OVER_THE_CAP = {
    "push/pull nodes": _push_pull(nodes=MAX_PUSH_NODES + 1),
    "push/pull user state": _push_pull(user_state_len=MAX_USER_STATE + 1),
    "stream user message": _user(MAX_USER_MSG + 1),
    "encrypted frame": _encrypted(MAX_ENCRYPTED_LEN + 1),
}
AT_THE_CAP = {
    "push/pull nodes": _push_pull(nodes=MAX_PUSH_NODES),
    "push/pull user state": _push_pull(user_state_len=MAX_USER_STATE),
    "stream user message": _user(MAX_USER_MSG),
    "encrypted frame": _encrypted(MAX_ENCRYPTED_LEN),
}


def _decoder(keyring: Keyring | None) -> StreamDecoder:
    return StreamDecoder(keyring=keyring, verify_incoming=False)


@pytest.mark.parametrize("keyring", [None, KEYRING], ids=["plain", "keyring"])
@pytest.mark.parametrize("case", sorted(OVER_THE_CAP))
def test_header_over_the_cap_fails_on_its_last_byte(
    case: str, keyring: Keyring | None
) -> None:
    *head, last = byte_by_byte(OVER_THE_CAP[case])
    decoder = _decoder(keyring)
    for piece in head:
        assert decoder.feed(piece) is None
    with pytest.raises(LimitExceededError):
        decoder.feed(last)


@pytest.mark.parametrize("case", sorted(AT_THE_CAP))
def test_header_at_the_cap_waits_for_its_data(case: str) -> None:
    decoder = _decoder(KEYRING)
    assert decoder.feed(AT_THE_CAP[case]) is None
    with pytest.raises(RemoteProtocolError):
        decoder.feed_eof()


def test_cap_applies_after_a_label_header() -> None:
    decoder = StreamDecoder(label=b"lbl")
    with pytest.raises(LimitExceededError):
        decoder.feed(b"\xf4\x03lbl" + OVER_THE_CAP["push/pull nodes"])


@pytest.mark.parametrize(
    "header",
    [_push_pull(nodes=-1), _push_pull(user_state_len=-5), _user(-(1 << 63))],
    ids=["nodes", "user state", "user message"],
)
def test_negative_lengths_are_refused(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        StreamDecoder().feed(header)
    assert not isinstance(caught.value, LimitExceededError)


# ----------------------------------------------------------------------------
# Decompression budget

BIG = UserMsg(bytes(100_000))
BIG_LEN = len(BIG.encode())


def test_decompression_budget_in_a_packet() -> None:
    wire = encode_packet(Compressed(BIG))
    assert decode_packet(wire, max_decompressed=BIG_LEN).frame == Compressed(BIG)
    with pytest.raises(LimitExceededError):
        decode_packet(wire, max_decompressed=BIG_LEN - 1)
    with pytest.raises(LimitExceededError):
        decode_frame(encode_frame(Compressed(BIG)), max_decompressed=1000)


def _layers(frame: Frame) -> list[int]:
    """Decompressed size of each compress frame, outermost first."""
    sizes = []
    while isinstance(frame, Compressed):
        frame = frame.inner
        sizes.append(len(encode_frame(frame)))
    return sizes


def test_budget_counts_every_nested_layer() -> None:
    nested = Compressed(Compressed(Compressed(UserMsg(bytes(5000)))))
    total = sum(_layers(nested))
    wire = encode_frame(nested)
    assert decode_frame(wire, max_decompressed=total) == nested
    with pytest.raises(LimitExceededError):
        decode_frame(wire, max_decompressed=total - 1)


def test_budget_is_shared_by_compound_parts() -> None:
    pair = Compound((Compressed(BIG), Compressed(BIG)))
    wire = encode_frame(pair)
    assert decode_frame(wire, max_decompressed=2 * BIG_LEN) == pair
    with pytest.raises(LimitExceededError):  # not a Malformed part
        decode_frame(wire, max_decompressed=2 * BIG_LEN - 1)


@pytest.mark.parametrize("keyring", [None, KEYRING], ids=["plain", "keyring"])
def test_decompression_budget_on_a_stream(keyring: Keyring | None) -> None:
    message = UserMsg(bytes(100_000))
    logical_len = len(_user(100_000)) + 100_000
    wire = encode_stream(message, keyring=keyring)
    fits = StreamDecoder(keyring=keyring, max_decompressed=logical_len)
    assert fits.feed(wire) is not None
    with pytest.raises(LimitExceededError):
        StreamDecoder(keyring=keyring, max_decompressed=logical_len - 1).feed(wire)


def test_default_budget_is_max_decompressed() -> None:
    for decoder in (decode_frame, decode_packet, StreamDecoder):
        default = inspect.signature(decoder).parameters["max_decompressed"].default
        assert default == MAX_DECOMPRESSED == 40 * 1024 * 1024


# ----------------------------------------------------------------------------
# Nesting


def _chain(depth: int, wrap: type[Compound] | type[Compressed]) -> Frame:
    frame: Frame = Nack(1)
    for _ in range(depth):
        frame = Compound((frame,)) if wrap is Compound else Compressed(frame)
    return frame


@pytest.mark.parametrize("wrap", [Compound, Compressed])
def test_nesting_up_to_the_limit(wrap: type[Compound] | type[Compressed]) -> None:
    frame = _chain(MAX_NESTING, wrap)
    assert decode_frame(encode_frame(frame)) == frame
    with pytest.raises(LimitExceededError):
        decode_frame(encode_frame(_chain(MAX_NESTING + 1, wrap)))


def test_mixed_nesting_over_the_limit_inside_a_compound() -> None:
    deep = _chain(MAX_NESTING // 2, Compressed)
    deep = _chain_onto(deep, MAX_NESTING // 2 + 1)
    with pytest.raises(LimitExceededError):  # not swallowed as a Malformed part
        decode_frame(encode_frame(Compound((Nack(2), deep))))


def _chain_onto(frame: Frame, depth: int) -> Frame:
    for _ in range(depth):
        frame = Compound((frame,))
    return frame


def test_thousands_of_levels_raise_the_limit_not_recursion_error() -> None:
    data = b"\x0b\x80"  # an empty nack
    for _ in range(5000):
        data = b"\x07\x01" + struct.pack(">H", len(data)) + data
    with pytest.raises(LimitExceededError):
        decode_frame(data)
    with pytest.raises(LimitExceededError):
        decode_packet(data)

"""Stream messages survive encoding and any way TCP may split them on arrival.

Every stream message is encoded with each combination of compression, keyring
and label, then fed to a :class:`StreamDecoder` in random pieces (byte by byte
too). The decoder must answer exactly when the last byte arrives, with the same
message and the framing it saw. Replies carry no label header but still bind
the label as associated data.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from serfcast.errors import DecryptionError, RemoteProtocolError
from serfcast.wire.frames import UserMsg
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import PROTOCOL_VSN, Ack, ErrResp, Ping, PushNodeState
from serfcast.wire.stream import (
    PushPull,
    StreamDecoder,
    StreamFrame,
    StreamMessage,
    encode_stream,
)
from wire_helpers import (
    LABELS,
    NONCES,
    byte_by_byte,
    keyrings,
    split_at,
    stream_messages,
)

KEY = bytes(range(32))
NODE = PushNodeState("node-a", bytes([127, 0, 0, 1]), 7946, None, 3, 0, PROTOCOL_VSN)


def _feed_all(decoder: StreamDecoder, chunks: list[bytes]) -> StreamFrame:
    """Feed every chunk; the message must appear with the last one, not before."""
    for chunk in chunks[:-1]:
        assert decoder.feed(chunk) is None
    frame = decoder.feed(chunks[-1])
    assert frame is not None
    assert decoder.feed_eof() == frame
    return frame


@settings(deadline=None, max_examples=200)
@given(
    message=stream_messages(),
    compress=st.booleans(),
    keyring=st.none() | keyrings(),
    label=LABELS,
    version=st.sampled_from([0, 1]),
    nonce=NONCES,
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
@example(
    message=PushPull(True, (NODE, NODE), b"state" * 100),
    compress=False,
    keyring=None,
    label=b"",
    version=1,
    nonce=bytes(12),
    cuts=[1, 2, 3, 40],
)
@example(
    message=UserMsg(b""),
    compress=True,
    keyring=Keyring([KEY]),
    label=b"L" * 255,
    version=0,
    nonce=bytes(12),
    cuts=[],
)
def test_dialled_stream_round_trips(
    *,
    message: StreamMessage,
    compress: bool,
    keyring: Keyring | None,
    label: bytes,
    version: int,
    nonce: bytes,
    cuts: list[int],
) -> None:
    wire = encode_stream(
        message,
        compress=compress,
        keyring=keyring,
        label=label,
        encryption_version=version,
        nonce=nonce,
    )
    decoder = StreamDecoder(keyring=keyring, label=label)
    frame = _feed_all(decoder, split_at(wire, cuts))
    assert frame == StreamFrame(message, label, keyring is not None, compress)


@settings(deadline=None, max_examples=60)
@given(
    message=stream_messages(),
    compress=st.booleans(),
    keyring=st.none() | keyrings(),
    label=LABELS,
)
@example(message=Ping(1, "node-b"), compress=True, keyring=Keyring([KEY]), label=b"lbl")
def test_byte_by_byte(
    *, message: StreamMessage, compress: bool, keyring: Keyring | None, label: bytes
) -> None:
    wire = encode_stream(message, compress=compress, keyring=keyring, label=label)
    frame = _feed_all(StreamDecoder(keyring=keyring, label=label), byte_by_byte(wire))
    assert frame.message == message


@settings(deadline=None, max_examples=100)
@given(
    message=stream_messages(),
    compress=st.booleans(),
    keyring=keyrings(),
    label=st.binary(min_size=1, max_size=255),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_reply_uses_the_label_only_as_associated_data(
    *,
    message: StreamMessage,
    compress: bool,
    keyring: Keyring,
    label: bytes,
    cuts: list[int],
) -> None:
    wire = encode_stream(
        message, compress=compress, keyring=keyring, label=label, dialer=False
    )
    assert not wire.startswith(b"\xf4")  # no label header on a reply
    reader = StreamDecoder(keyring=keyring, label=label, expect_label_header=False)
    frame = _feed_all(reader, split_at(wire, cuts))
    assert frame == StreamFrame(message, label, True, compress)

    # The label is bound into the ciphertext: a reader with another label fails.
    other = StreamDecoder(
        keyring=keyring, label=label + b"x", expect_label_header=False
    )
    with pytest.raises(DecryptionError):
        other.feed(wire)


@settings(deadline=None)
@given(message=stream_messages(), label=st.binary(min_size=1, max_size=255))
def test_unencrypted_reply_with_a_label(message: StreamMessage, label: bytes) -> None:
    wire = encode_stream(message, label=label, dialer=False)
    reader = StreamDecoder(label=label, expect_label_header=False)
    assert _feed_all(reader, [wire]).message == message


def test_label_mismatch_is_refused() -> None:
    wire = encode_stream(Ping(1), label=b"blue")
    with pytest.raises(RemoteProtocolError, match="label"):
        StreamDecoder(label=b"green").feed(wire)
    with pytest.raises(RemoteProtocolError, match="label"):
        StreamDecoder().feed(wire)
    with pytest.raises(RemoteProtocolError, match="label"):
        StreamDecoder(label=b"blue").feed(encode_stream(Ping(1)))


def test_encryption_settings_must_agree() -> None:
    plain = encode_stream(Ack(7))
    keyring = Keyring([KEY])
    with pytest.raises(RemoteProtocolError, match="not encrypted"):
        StreamDecoder(keyring=keyring).feed(plain)
    relaxed = StreamDecoder(keyring=keyring, verify_incoming=False)
    assert relaxed.feed(plain) == StreamFrame(Ack(7), compressed=True)
    with pytest.raises(RemoteProtocolError, match="no gossip key"):
        StreamDecoder().feed(encode_stream(Ack(7), keyring=keyring))


@pytest.mark.parametrize("message", [Ping(1), PushPull(nodes=(NODE,)), ErrResp("x")])
def test_stream_cut_short_is_refused_at_eof(message: StreamMessage) -> None:
    for compress in (False, True):
        wire = encode_stream(message, compress=compress)
        decoder = StreamDecoder()
        assert decoder.feed(wire[:-1]) is None
        with pytest.raises(RemoteProtocolError):
            decoder.feed_eof()


def test_bytes_after_the_message_are_ignored() -> None:
    wire = encode_stream(UserMsg(b"hello"), compress=False)
    frame = StreamDecoder().feed(wire + b"\x00junk")
    assert frame is not None and frame.message == UserMsg(b"hello")

"""TCP streams: push/pull, stream user messages, TCP pings and error replies.

A memberlist connection carries one message each way. The dialling side may open
with a label header ``[244][length][label]``; replies never carry one. The message
itself is ``[type][msgpack...]`` with no length prefix, optionally compressed as
``[9][msgpack compress{Algo, Buf}]`` (Go compresses every stream message) and
optionally encrypted as ``[10][u32 big-endian L][sealed L bytes]``, where the
associated data is those first five bytes followed by the label.

The logical messages:

* push/pull (6): a header ``{Join, Nodes, UserStateLen}``, then ``Nodes`` node-state
  maps, then ``UserStateLen`` raw bytes of application state;
* user message (8): a header ``{UserMsgLen}``, then that many raw bytes;
* ping (0) and ack (2): the fallback probe and its answer;
* err (13): the server could not read the request.

:class:`StreamDecoder` is fed bytes as they arrive and yields the message once it
is whole. Every announced count and length is checked against a cap before any
waiting or allocation happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError
from serfcast.wire import frames as fr
from serfcast.wire import gomsgpack as gm
from serfcast.wire import lzw
from serfcast.wire.frames import UserMsg
from serfcast.wire.keyring import Keyring, encryption_overhead
from serfcast.wire.messages import (
    Ack,
    CompressHeader,
    ErrResp,
    MessageType,
    Ping,
    PushNodeState,
    PushPullHeader,
    Struct,
    UserMsgHeader,
)
from serfcast.wire.packet import add_label

__all__ = [
    "MAX_ENCRYPTED_LEN",
    "MAX_PUSH_NODES",
    "MAX_STREAM_BUFFER",
    "MAX_USER_MSG",
    "MAX_USER_STATE",
    "PushPull",
    "StreamDecoder",
    "StreamFrame",
    "StreamMessage",
    "encode_stream",
]

MAX_PUSH_NODES: Final = 1 << 20
MAX_USER_STATE: Final = 20 * 1024 * 1024
MAX_USER_MSG: Final = 20 * 1024 * 1024
MAX_ENCRYPTED_LEN: Final = 20 * 1024 * 1024
#: Plaintext bytes buffered for one unencrypted, uncompressed stream message.
MAX_STREAM_BUFFER: Final = 64 * 1024 * 1024
_MAX_CONTAINER: Final = 4096


@dataclass(frozen=True, slots=True)
class PushPull:
    """A full state exchange: every node the sender knows, plus its user state."""

    join: bool = False
    nodes: tuple[PushNodeState, ...] = ()
    user_state: bytes = b""

    def encode(self) -> bytes:
        """``[6]``, the header, the node states and the raw user state."""
        header = PushPullHeader(len(self.nodes), len(self.user_state), self.join)
        states = b"".join(node.encode_body() for node in self.nodes)
        return header.encode() + states + self.user_state


StreamMessage = PushPull | UserMsg | Ping | Ack | ErrResp


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """A decoded stream message and how it was framed."""

    message: StreamMessage
    label: bytes = b""
    encrypted: bool = False
    compressed: bool = False


def _check_sendable(message: StreamMessage) -> None:
    if isinstance(message, PushPull):
        if len(message.nodes) > MAX_PUSH_NODES:
            raise LocalProtocolError(
                f"a push/pull holds at most {MAX_PUSH_NODES} nodes"
            )
        if len(message.user_state) > MAX_USER_STATE:
            raise LocalProtocolError("push/pull user state is over 20 MiB")
    elif isinstance(message, UserMsg) and len(message.payload) > MAX_USER_MSG:
        raise LocalProtocolError("a stream user message is at most 20 MiB")


def _logical_bytes(message: StreamMessage) -> bytes:
    _check_sendable(message)
    if isinstance(message, UserMsg):
        header = UserMsgHeader(len(message.payload)).encode()
        return header + message.payload
    return message.encode()


def encode_stream(
    message: StreamMessage,
    *,
    compress: bool = True,
    keyring: Keyring | None = None,
    label: bytes = b"",
    dialer: bool = True,
    encryption_version: int = 1,
    nonce: bytes | None = None,
) -> bytes:
    """The bytes to write for one stream message.

    ``dialer`` adds the label header, which only the side that opened the
    connection sends; the label is used as associated data either way.
    """
    data = _logical_bytes(message)
    if compress:
        data = fr.compress_frame(data)
    if keyring:
        data = _seal_stream(data, keyring, label, encryption_version, nonce)
    return add_label(data, label) if dialer else data


def _seal_stream(
    data: bytes, keyring: Keyring, label: bytes, version: int, nonce: bytes | None
) -> bytes:
    sealed_len = encryption_overhead(1) + len(data)
    if version == 0:
        sealed_len += 16 - len(data) % 16
    if sealed_len > MAX_ENCRYPTED_LEN:
        raise LocalProtocolError("stream message is too large to encrypt (20 MiB)")
    header = bytes((MessageType.ENCRYPT,)) + sealed_len.to_bytes(4, "big")
    sealed = keyring.encrypt(data, header + label, version=version, nonce=nonce)
    return header + sealed


# ----------------------------------------------------------------------------
# Decoding


class _Body:
    """Parses one logical message from bytes that may arrive in pieces."""

    def __init__(self, whole: bool) -> None:
        self.whole = whole
        self.unpacker = msgpack.Unpacker(
            raw=True,
            max_buffer_size=MAX_STREAM_BUFFER,
            max_array_len=_MAX_CONTAINER,
            max_map_len=_MAX_CONTAINER,
        )
        self.kind: int | None = None
        self.header: Any = None
        self.nodes: list[PushNodeState] = []
        self.tail = bytearray()
        self.tail_len = -1

    def feed(self, data: bytes) -> StreamMessage | None:
        try:
            self.unpacker.feed(data)
        except msgpack.BufferFull:
            raise LimitExceededError("stream message exceeds 64 MiB") from None
        result = self._advance()
        if result is None and self.whole:
            raise RemoteProtocolError("stream message is truncated")
        return result

    def _object(self, what: str) -> Any:
        try:
            return self.unpacker.unpack()
        except msgpack.OutOfData:
            return _MISSING
        except Exception as exc:
            raise RemoteProtocolError(
                f"{what}: invalid msgpack: {gm.describe(exc)}"
            ) from None

    def _advance(self) -> StreamMessage | None:
        if self.kind is None:
            first = self.unpacker.read_bytes(1)
            if not first:
                return None
            self.kind = first[0]
        if self.kind == MessageType.PUSH_PULL:
            return self._push_pull()
        if self.kind == MessageType.USER:
            return self._user()
        cls = _SIMPLE.get(self.kind)
        if cls is None:
            raise RemoteProtocolError(f"invalid stream message type {self.kind}")
        value = self._object(cls.__name__)
        return None if value is _MISSING else cls.from_go(value)  # type: ignore[return-value]

    def _read_header(self, cls: type[Struct]) -> Any:
        if self.header is None:
            value = self._object(cls.__name__)
            if value is _MISSING:
                return None
            self.header = cls.from_go(value)
        return self.header

    def _push_pull(self) -> PushPull | None:
        header = self._read_header(PushPullHeader)
        if header is None:
            return None
        if self.tail_len < 0:
            _check_range("push/pull node count", header.nodes, MAX_PUSH_NODES)
            _check_range("push/pull user state", header.user_state_len, MAX_USER_STATE)
            self.tail_len = header.user_state_len
        while len(self.nodes) < header.nodes:
            value = self._object("PushNodeState")
            if value is _MISSING:
                return None
            self.nodes.append(PushNodeState.from_go(value))
        if not self._read_tail():
            return None
        return PushPull(header.join, tuple(self.nodes), bytes(self.tail))

    def _user(self) -> UserMsg | None:
        header = self._read_header(UserMsgHeader)
        if header is None:
            return None
        if self.tail_len < 0:
            _check_range("user message", header.user_msg_len, MAX_USER_MSG)
            self.tail_len = header.user_msg_len
        return UserMsg(bytes(self.tail)) if self._read_tail() else None

    def _read_tail(self) -> bool:
        missing = self.tail_len - len(self.tail)
        if missing > 0:
            self.tail += self.unpacker.read_bytes(missing)
        return len(self.tail) == self.tail_len


_MISSING: Final = object()
_SIMPLE: Final[dict[int, type[Struct]]] = {
    MessageType.PING: Ping,
    MessageType.ACK: Ack,
    MessageType.ERR: ErrResp,
}


def _check_range(what: str, value: int, cap: int) -> None:
    if value < 0:
        raise RemoteProtocolError(f"{what} length is negative ({value})")
    if value > cap:
        raise LimitExceededError(f"{what} announces {value}, more than the cap {cap}")


@dataclass
class StreamDecoder:
    """Reassembles one incoming stream message from the bytes of a connection.

    ``expect_label_header`` is true on the accepting side, where the dialler may
    have sent a label header first. ``label`` is the label this node is
    configured with; traffic with another label is refused.
    """

    keyring: Keyring | None = None
    label: bytes = b""
    expect_label_header: bool = True
    verify_incoming: bool = True
    max_decompressed: int = fr.MAX_DECOMPRESSED
    _buf: bytearray = field(default_factory=bytearray)
    _label_done: bool = False
    _body: _Body | None = None
    _compress_reader: Any = None
    _result: StreamFrame | None = None
    _encrypted: bool = False

    def feed(self, data: bytes) -> StreamFrame | None:
        """Add received bytes; returns the message once it is complete."""
        if self._result is not None or not data:
            return self._result
        if self._body is not None:
            return self._finish(self._body.feed(data), compressed=False)
        self._buf += data
        return self._advance()

    def feed_eof(self) -> StreamFrame:
        """The peer closed its side; the message must be complete by now."""
        if self._result is None:
            raise RemoteProtocolError("stream ended before a whole message arrived")
        return self._result

    @property
    def result(self) -> StreamFrame | None:
        """The decoded message, once complete."""
        return self._result

    def _advance(self) -> StreamFrame | None:
        if not self._label_done and not self._take_label():
            return None
        if self._compress_reader is not None:
            return self._decompress_incremental()
        if not self._buf:
            return None
        first = self._buf[0]
        if first == MessageType.ENCRYPT:
            return self._decrypt()
        if self.keyring and self.verify_incoming:
            raise RemoteProtocolError(
                "encryption is configured but the remote stream is not encrypted"
            )
        if first == MessageType.COMPRESS:
            return self._decompress_incremental()
        self._body = _Body(whole=False)
        data, self._buf = bytes(self._buf), bytearray()
        return self._finish(self._body.feed(data), compressed=False)

    def _take_label(self) -> bool:
        buf = self._buf
        if not self.expect_label_header:  # replies carry no label header
            self._label_done = True
            return True
        if buf and buf[0] == MessageType.HAS_LABEL:
            if len(buf) < 2 or len(buf) < 2 + buf[1]:
                return False
            if buf[1] == 0:
                raise RemoteProtocolError("label header has length 0")
            got = bytes(buf[2 : 2 + buf[1]])
            del buf[: 2 + len(got)]
        elif not buf:
            return False
        else:
            got = b""
        if got != self.label:
            raise RemoteProtocolError(
                f"stream label {got!r} does not match the expected {self.label!r}"
            )
        self._label_done = True
        return True

    def _decrypt(self) -> StreamFrame | None:
        if len(self._buf) < 5:
            return None
        sealed_len = int.from_bytes(self._buf[1:5], "big")
        if sealed_len > MAX_ENCRYPTED_LEN:
            raise LimitExceededError(
                f"encrypted stream frame announces {sealed_len} bytes (cap 20 MiB)"
            )
        if len(self._buf) < 5 + sealed_len:
            return None
        if not self.keyring:
            raise RemoteProtocolError(
                "remote stream is encrypted but no gossip key is configured"
            )
        header, sealed = bytes(self._buf[:5]), bytes(self._buf[5 : 5 + sealed_len])
        plain = self.keyring.decrypt(sealed, header + self.label)
        self._encrypted = True
        return self._from_whole(plain)

    def _from_whole(self, plain: bytes) -> StreamFrame | None:
        compressed = bool(plain) and plain[0] == MessageType.COMPRESS
        if compressed:
            plain = fr.decompress_body(plain[1:], self.max_decompressed)
        if not plain:
            raise RemoteProtocolError("stream message is empty")
        return self._finish(_Body(whole=True).feed(plain), compressed=compressed)

    def _decompress_incremental(self) -> StreamFrame | None:
        reader = self._compress_reader
        if reader is None:
            reader = self._compress_reader = msgpack.Unpacker(
                raw=True,
                max_buffer_size=MAX_STREAM_BUFFER,
                max_array_len=_MAX_CONTAINER,
                max_map_len=_MAX_CONTAINER,
            )
            data = bytes(self._buf[1:])
        else:
            data = bytes(self._buf)
        self._buf = bytearray()
        try:
            reader.feed(data)
            value = reader.unpack()
        except msgpack.OutOfData:
            return None
        except msgpack.BufferFull:
            raise LimitExceededError(
                "compressed stream message exceeds 64 MiB"
            ) from None
        except Exception as exc:
            raise RemoteProtocolError(
                f"compress header: invalid msgpack: {gm.describe(exc)}"
            ) from None
        body = CompressHeader.from_go(value)
        if body.algo != 0:
            raise RemoteProtocolError(f"unknown compression algorithm {body.algo}")
        plain = lzw.decompress(body.buf, max_size=self.max_decompressed)
        if not plain:
            raise RemoteProtocolError("stream message is empty")
        return self._finish(_Body(whole=True).feed(plain), compressed=True)

    def _finish(
        self, message: StreamMessage | None, compressed: bool
    ) -> StreamFrame | None:
        if message is not None:
            self._result = StreamFrame(message, self.label, self._encrypted, compressed)
        return self._result

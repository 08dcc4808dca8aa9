"""memberlist's messages as immutable Python values.

Each message is a frozen dataclass whose fields are the Go struct's fields spelled
the Python way (``seq_no`` for ``SeqNo``). Its ``TYPE`` is the one-byte message type
that precedes the msgpack body on the wire. ``encode_body`` gives the msgpack body
exactly as Go writes it; ``decode_body`` reads one leniently.

Go's nil and empty byte slices are different bytes on the wire (``c0`` and ``a0``).
Fields where both occur in practice (an ack's payload, a node's meta) are typed
``bytes | None`` so that ``None`` is nil; other byte fields are plain ``bytes`` and
write an empty value as nil, which is what Go holds when it never set them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self

from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.wire import gomsgpack as gm
from serfcast.wire.fastdecode import build_decoder
from serfcast.wire.gomsgpack import Field

__all__ = [
    "PROTOCOL_VSN",
    "VSN_LEN",
    "Ack",
    "Alive",
    "CompressHeader",
    "Dead",
    "ErrResp",
    "IndirectPing",
    "MessageType",
    "Nack",
    "NodeState",
    "Ping",
    "PushNodeState",
    "PushPullHeader",
    "Struct",
    "Suspect",
    "UserMsgHeader",
]


class MessageType(IntEnum):
    """The first byte of every memberlist message."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeState(IntEnum):
    """A node's state as pushed in a push/pull exchange."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


#: The Vsn a Serf agent sends: memberlist protocol 1..5 speaking 2, Serf 2..5 at 5.
PROTOCOL_VSN = bytes([1, 5, 2, 2, 5, 5])
VSN_LEN = 6


def _write_vsn(value: bytes) -> bytes:
    # A missing Vsn makes Go peers refuse every later push/pull merge, and a short
    # one crashes memberlist up to v0.6.0, so only the full six bytes go out.
    if len(value) != VSN_LEN:
        raise LocalProtocolError(
            f"Vsn must be exactly {VSN_LEN} bytes (pmin, pmax, pcur, dmin, dmax, "
            f"dcur), not {len(value)}; use PROTOCOL_VSN"
        )
    return bytes(value)


def _read_vsn(value: Any, what: str) -> bytes:
    vsn: bytes = gm.BYTES.decode(value, what)
    if 0 < len(vsn) < VSN_LEN:
        raise RemoteProtocolError(f"{what}: {len(vsn)} bytes, a Vsn needs {VSN_LEN}")
    return vsn


#: Vsn: written only when complete, and refused when present but short.
VSN = gm.Kind("[]uint8", _write_vsn, _read_vsn, gm.BYTES.is_empty)


class Struct:
    """Shared encode/decode machinery; subclasses list their Go fields."""

    __slots__ = ()
    TYPE: ClassVar[int]
    FIELDS: ClassVar[tuple[Field, ...]]
    _decoder: ClassVar[Callable[[Any], Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = cls.__dict__.get("FIELDS")
        if fields is not None:
            names = [f.go_name for f in fields]
            assert names == sorted(names), f"{cls.__name__}: keep Go names sorted"

    def to_go(self) -> dict[str, Any]:
        """The map Go would write, keys in Go's order."""
        return gm.write_struct(self, self.FIELDS)

    def encode_body(self) -> bytes:
        """The msgpack body, without the message type byte."""
        return gm.pack(self.to_go())

    def encode(self) -> bytes:
        """The message type byte followed by the msgpack body."""
        return bytes((self.TYPE,)) + self.encode_body()

    @classmethod
    def from_go(cls, value: Any) -> Self:
        """Build the message from an already decoded msgpack map."""
        decoder = cls.__dict__.get("_decoder")
        if decoder is None:
            # Built on first use: the class must be a finished dataclass by then.
            decoder = build_decoder(cls, cls.FIELDS)
            cls._decoder = decoder
        return decoder(value)  # type: ignore[no-any-return]

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        """Decode a msgpack body (no type byte); trailing bytes are ignored."""
        return cls.from_go(gm.unpack_one(body, cls.__name__))


@dataclass(frozen=True, slots=True)
class Ping(Struct):
    """A probe. ``node`` names the intended target; empty means whoever listens."""

    TYPE = MessageType.PING
    FIELDS = (
        Field("node", "Node", gm.STR),
        Field("seq_no", "SeqNo", gm.U32),
        Field("source_addr", "SourceAddr", gm.BYTES, omitempty=True),
        Field("source_node", "SourceNode", gm.STR, omitempty=True),
        Field("source_port", "SourcePort", gm.U16, omitempty=True),
    )
    seq_no: int = 0
    node: str = ""
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class IndirectPing(Struct):
    """A request to probe ``target:port`` on the sender's behalf."""

    TYPE = MessageType.INDIRECT_PING
    FIELDS = (
        Field("nack", "Nack", gm.BOOL),
        Field("node", "Node", gm.STR),
        Field("port", "Port", gm.U16),
        Field("seq_no", "SeqNo", gm.U32),
        Field("source_addr", "SourceAddr", gm.BYTES, omitempty=True),
        Field("source_node", "SourceNode", gm.STR, omitempty=True),
        Field("source_port", "SourcePort", gm.U16, omitempty=True),
        Field("target", "Target", gm.BYTES),
    )
    seq_no: int = 0
    target: bytes = b""
    port: int = 0
    node: str = ""
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class Ack(Struct):
    """The answer to a ping; Serf puts its Vivaldi coordinate in ``payload``."""

    TYPE = MessageType.ACK
    FIELDS = (
        Field("payload", "Payload", gm.NIL_BYTES),
        Field("seq_no", "SeqNo", gm.U32),
    )
    seq_no: int = 0
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class Nack(Struct):
    """Sent by an indirect prober whose target did not answer in time."""

    TYPE = MessageType.NACK
    FIELDS = (Field("seq_no", "SeqNo", gm.U32),)
    seq_no: int = 0


@dataclass(frozen=True, slots=True)
class ErrResp(Struct):
    """A stream server's report that it could not read the request."""

    TYPE = MessageType.ERR
    FIELDS = (Field("error", "Error", gm.STR),)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Suspect(Struct):
    """``from_node`` suspects ``node`` at ``incarnation``."""

    TYPE = MessageType.SUSPECT
    FIELDS = (
        Field("from_node", "From", gm.STR),
        Field("incarnation", "Incarnation", gm.U32),
        Field("node", "Node", gm.STR),
    )
    incarnation: int = 0
    node: str = ""
    from_node: str = ""


@dataclass(frozen=True, slots=True)
class Alive(Struct):
    """A node announcing itself (or being announced) alive at ``incarnation``."""

    TYPE = MessageType.ALIVE
    FIELDS = (
        Field("addr", "Addr", gm.BYTES),
        Field("incarnation", "Incarnation", gm.U32),
        Field("meta", "Meta", gm.NIL_BYTES),
        Field("node", "Node", gm.STR),
        Field("port", "Port", gm.U16),
        Field("vsn", "Vsn", VSN),
    )
    incarnation: int = 0
    node: str = ""
    addr: bytes = b""
    port: int = 0
    meta: bytes | None = None
    vsn: bytes = b""


@dataclass(frozen=True, slots=True)
class Dead(Struct):
    """``node`` is dead; when ``from_node == node`` it left on purpose."""

    TYPE = MessageType.DEAD
    FIELDS = (
        Field("from_node", "From", gm.STR),
        Field("incarnation", "Incarnation", gm.U32),
        Field("node", "Node", gm.STR),
    )
    incarnation: int = 0
    node: str = ""
    from_node: str = ""


@dataclass(frozen=True, slots=True)
class PushPullHeader(Struct):
    """Start of a push/pull: how many node states and user-state bytes follow."""

    TYPE = MessageType.PUSH_PULL
    FIELDS = (
        Field("join", "Join", gm.BOOL),
        Field("nodes", "Nodes", gm.INT),
        Field("user_state_len", "UserStateLen", gm.INT),
    )
    nodes: int = 0
    user_state_len: int = 0
    join: bool = False


@dataclass(frozen=True, slots=True)
class PushNodeState(Struct):
    """One node as a push/pull describes it.

    ``state`` is a plain ``int`` because peers may send values this library does
    not know; compare it with :class:`NodeState`.
    """

    TYPE = MessageType.PUSH_PULL
    FIELDS = (
        Field("addr", "Addr", gm.BYTES),
        Field("incarnation", "Incarnation", gm.U32),
        Field("meta", "Meta", gm.NIL_BYTES),
        Field("name", "Name", gm.STR),
        Field("port", "Port", gm.U16),
        Field("state", "State", gm.INT),
        Field("vsn", "Vsn", VSN),
    )
    name: str = ""
    addr: bytes = b""
    port: int = 0
    meta: bytes | None = None
    incarnation: int = 0
    state: int = NodeState.ALIVE
    vsn: bytes = b""


@dataclass(frozen=True, slots=True)
class UserMsgHeader(Struct):
    """On a stream, the length of the user message bytes that follow."""

    TYPE = MessageType.USER
    FIELDS = (Field("user_msg_len", "UserMsgLen", gm.INT),)
    user_msg_len: int = 0


@dataclass(frozen=True, slots=True)
class CompressHeader(Struct):
    """The body of a compress message: the algorithm (0 is LZW) and its output."""

    TYPE = MessageType.COMPRESS
    FIELDS = (
        Field("algo", "Algo", gm.U8),
        Field("buf", "Buf", gm.BYTES),
    )
    algo: int = 0
    buf: bytes = b""

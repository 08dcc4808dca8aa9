"""Serf's messages, carried inside memberlist user messages.

Each Serf message is one type byte and one msgpack map in the same Go profile
memberlist uses (see :mod:`serfcast.wire.gomsgpack`). Join and leave intents, user
events and queries are gossiped; query responses and relays go straight to one
node by UDP; the push/pull state rides in memberlist's push/pull user state.

Some Serf structures only ever appear *inside* a query or response payload: the
key request and response of the keyring queries, the conflict response, and the
query filters. They are here too, with their own leading type byte.

Two inputs crash Go agents: a key query whose payload is empty and a filter list
holding an empty blob. The encoder refuses to build them and the decoder reports
them as malformed, so serfcast neither sends nor relays them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final, TypeVar

from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.wire import gomsgpack as gm
from serfcast.wire.gomsgpack import Field
from serfcast.wire.messages import Struct

__all__ = [
    "EVENT_BUFFER_SIZE",
    "QUERY_FLAG_ACK",
    "QUERY_FLAG_NO_BROADCAST",
    "ConflictResponse",
    "FilterType",
    "Join",
    "KeyRequest",
    "KeyResponse",
    "Leave",
    "MemberInfo",
    "NodeFilter",
    "PushPullState",
    "Query",
    "QueryResponse",
    "Relay",
    "SerfMessage",
    "SerfType",
    "TagFilter",
    "UserEvent",
    "UserEventRecord",
    "UserEvents",
    "decode_conflict_response",
    "decode_filter",
    "decode_key_request",
    "decode_key_response",
    "decode_push_pull_state",
    "decode_serf_message",
    "decode_user_message",
    "encode_serf_message",
]

EVENT_BUFFER_SIZE: Final = 512
QUERY_FLAG_ACK: Final = 1
QUERY_FLAG_NO_BROADCAST: Final = 2
KEY_QUERIES: Final = frozenset(
    {"_serf_install-key", "_serf_use-key", "_serf_remove-key"}
)


class SerfType(IntEnum):
    """The first byte of a Serf message (or of a payload-level structure)."""

    LEAVE = 0
    JOIN = 1
    PUSH_PULL = 2
    USER_EVENT = 3
    QUERY = 4
    QUERY_RESPONSE = 5
    CONFLICT_RESPONSE = 6
    KEY_REQUEST = 7
    KEY_RESPONSE = 8
    RELAY = 9


class FilterType(IntEnum):
    """The first byte of a query filter blob."""

    NODE = 0
    TAG = 1


@dataclass(frozen=True, slots=True)
class Leave(Struct):
    """``node`` is leaving (or is being forced out), at member time ``ltime``."""

    TYPE = SerfType.LEAVE
    FIELDS = (
        Field("ltime", "LTime", gm.U64),
        Field("node", "Node", gm.STR),
        Field("prune", "Prune", gm.BOOL),
    )
    ltime: int = 0
    node: str = ""
    prune: bool = False


@dataclass(frozen=True, slots=True)
class Join(Struct):
    """``node`` joined, at member time ``ltime``."""

    TYPE = SerfType.JOIN
    FIELDS = (
        Field("ltime", "LTime", gm.U64),
        Field("node", "Node", gm.STR),
    )
    ltime: int = 0
    node: str = ""


@dataclass(frozen=True, slots=True)
class UserEvent(Struct):
    """A user event; ``coalesce`` lets receivers merge same-named bursts."""

    TYPE = SerfType.USER_EVENT
    FIELDS = (
        Field("coalesce", "CC", gm.BOOL),
        Field("ltime", "LTime", gm.U64),
        Field("name", "Name", gm.STR),
        Field("payload", "Payload", gm.NIL_BYTES),
    )
    ltime: int = 0
    name: str = ""
    payload: bytes | None = None
    coalesce: bool = False


@dataclass(frozen=True, slots=True)
class UserEventRecord(Struct):
    """One event as the push/pull buffer keeps it (no coalesce flag)."""

    TYPE = SerfType.USER_EVENT
    FIELDS = (
        Field("name", "Name", gm.STR),
        Field("payload", "Payload", gm.NIL_BYTES),
    )
    name: str = ""
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class UserEvents(Struct):
    """Every event seen at one Lamport time: one slot of the event buffer."""

    TYPE = SerfType.PUSH_PULL
    FIELDS = (
        Field("events", "Events", gm.list_of(gm.nested(UserEventRecord))),
        Field("ltime", "LTime", gm.U64),
    )
    ltime: int = 0
    events: list[UserEventRecord] | None = None


@dataclass(frozen=True, slots=True)
class PushPullState(Struct):
    """Serf's half of a push/pull: clocks, members' status times, recent events.

    Serf sends its whole event ring, one slot per ``LTime % 512`` and ``None``
    for empty slots; ``EventLTime`` is the next time it would use.
    """

    TYPE = SerfType.PUSH_PULL
    FIELDS = (
        Field("event_ltime", "EventLTime", gm.U64),
        Field("events", "Events", gm.list_of(gm.optional(gm.nested(UserEvents)))),
        Field("ltime", "LTime", gm.U64),
        Field("left_members", "LeftMembers", gm.list_of(gm.STR)),
        Field("query_ltime", "QueryLTime", gm.U64),
        Field("status_ltimes", "StatusLTimes", gm.str_map(gm.U64)),
    )
    ltime: int = 0
    status_ltimes: dict[str, int] = field(default_factory=dict)
    left_members: list[str] | None = None
    event_ltime: int = 0
    events: list[UserEvents | None] | None = None
    query_ltime: int = 0


@dataclass(frozen=True, slots=True)
class Query(Struct):
    """A question to the pool; answers go by UDP to ``addr:port``.

    ``timeout`` is in nanoseconds, like Go's ``time.Duration``. ``filters`` holds
    encoded filter blobs (see :class:`NodeFilter` and :class:`TagFilter`).
    """

    TYPE = SerfType.QUERY
    FIELDS = (
        Field("addr", "Addr", gm.BYTES),
        Field("filters", "Filters", gm.list_of(gm.BYTES)),
        Field("flags", "Flags", gm.U32),
        Field("id", "ID", gm.U32),
        Field("ltime", "LTime", gm.U64),
        Field("name", "Name", gm.STR),
        Field("payload", "Payload", gm.NIL_BYTES),
        Field("port", "Port", gm.U16),
        Field("relay_factor", "RelayFactor", gm.U8),
        Field("source_node", "SourceNode", gm.STR),
        Field("timeout", "Timeout", gm.INT),
    )
    ltime: int = 0
    id: int = 0
    addr: bytes = b""
    port: int = 0
    source_node: str = ""
    filters: list[bytes] | None = None
    flags: int = 0
    relay_factor: int = 0
    timeout: int = 0
    name: str = ""
    payload: bytes | None = None

    @property
    def wants_ack(self) -> bool:
        """The asker wants an ack from every node that receives the query."""
        return bool(self.flags & QUERY_FLAG_ACK)

    @property
    def no_broadcast(self) -> bool:
        """Receivers answer but do not gossip the query further."""
        return bool(self.flags & QUERY_FLAG_NO_BROADCAST)


@dataclass(frozen=True, slots=True)
class QueryResponse(Struct):
    """An answer to a query, or (``flags`` 1) just an acknowledgement."""

    TYPE = SerfType.QUERY_RESPONSE
    FIELDS = (
        Field("flags", "Flags", gm.U32),
        Field("from_node", "From", gm.STR),
        Field("id", "ID", gm.U32),
        Field("ltime", "LTime", gm.U64),
        Field("payload", "Payload", gm.NIL_BYTES),
    )
    ltime: int = 0
    id: int = 0
    from_node: str = ""
    flags: int = 0
    payload: bytes | None = None

    @property
    def is_ack(self) -> bool:
        """An acknowledgement rather than a response."""
        return bool(self.flags & QUERY_FLAG_ACK)


@dataclass(frozen=True, slots=True)
class RelayAddr(Struct):
    """Go's ``net.UDPAddr`` as Serf's relay header writes it."""

    TYPE = SerfType.RELAY
    FIELDS = (
        Field("ip", "IP", gm.BYTES),
        Field("port", "Port", gm.INT),
        Field("zone", "Zone", gm.STR),
    )
    ip: bytes = b""
    port: int = 0
    zone: str = ""


@dataclass(frozen=True, slots=True)
class RelayHeader(Struct):
    """Where a relay node should forward the message that follows."""

    TYPE = SerfType.RELAY
    FIELDS = (
        Field("dest_addr", "DestAddr", gm.nested(RelayAddr)),
        Field("dest_name", "DestName", gm.STR),
    )
    dest_addr: RelayAddr = field(default_factory=RelayAddr)
    dest_name: str = ""


@dataclass(frozen=True, slots=True)
class Relay:
    """A message for a relay node: forward ``inner`` (type byte included) as is."""

    TYPE = SerfType.RELAY
    dest_addr: bytes
    dest_port: int
    dest_name: str
    inner: bytes

    def encode(self) -> bytes:
        """``[9]``, the relay header, then the inner message untouched."""
        header = RelayHeader(RelayAddr(self.dest_addr, self.dest_port), self.dest_name)
        return header.encode() + self.inner


@dataclass(frozen=True, slots=True)
class KeyRequest(Struct):
    """Payload of the key queries: the raw key (empty when listing keys)."""

    TYPE = SerfType.KEY_REQUEST
    FIELDS = (Field("key", "Key", gm.BYTES),)
    key: bytes = b""


@dataclass(frozen=True, slots=True)
class KeyResponse(Struct):
    """Payload of a key query's response."""

    TYPE = SerfType.KEY_RESPONSE
    FIELDS = (
        Field("keys", "Keys", gm.list_of(gm.STR)),
        Field("message", "Message", gm.STR),
        Field("primary_key", "PrimaryKey", gm.STR),
        Field("result", "Result", gm.BOOL),
    )
    result: bool = False
    message: str = ""
    keys: list[str] | None = None
    primary_key: str = ""


@dataclass(frozen=True, slots=True)
class MemberInfo(Struct):
    """A member as the conflict query's answer describes it."""

    TYPE = SerfType.CONFLICT_RESPONSE
    FIELDS = (
        Field("addr", "Addr", gm.BYTES),
        Field("delegate_cur", "DelegateCur", gm.U8),
        Field("delegate_max", "DelegateMax", gm.U8),
        Field("delegate_min", "DelegateMin", gm.U8),
        Field("name", "Name", gm.STR),
        Field("port", "Port", gm.U16),
        Field("protocol_cur", "ProtocolCur", gm.U8),
        Field("protocol_max", "ProtocolMax", gm.U8),
        Field("protocol_min", "ProtocolMin", gm.U8),
        Field("status", "Status", gm.INT),
        Field("tags", "Tags", gm.str_map(gm.STR)),
    )
    name: str = ""
    addr: bytes = b""
    port: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    status: int = 0
    protocol_min: int = 0
    protocol_max: int = 0
    protocol_cur: int = 0
    delegate_min: int = 0
    delegate_max: int = 0
    delegate_cur: int = 0


@dataclass(frozen=True, slots=True)
class ConflictResponse:
    """Payload of a ``_serf_conflict`` answer: the member, or ``None`` if unknown."""

    TYPE = SerfType.CONFLICT_RESPONSE
    member: MemberInfo | None = None

    def encode(self) -> bytes:
        """``[6]`` then the member map, or nil."""
        body = None if self.member is None else self.member.to_go()
        return bytes((self.TYPE,)) + gm.pack(body)


@dataclass(frozen=True, slots=True)
class NodeFilter:
    """Only the named nodes should answer."""

    TYPE = FilterType.NODE
    nodes: tuple[str, ...]

    def encode(self) -> bytes:
        """``[0]`` then an array of node names."""
        return bytes((self.TYPE,)) + gm.pack([gm.encode_str(n) for n in self.nodes])


@dataclass(frozen=True, slots=True)
class TagFilter(Struct):
    """Only nodes whose tag ``tag`` matches the regular expression ``expr``."""

    TYPE = FilterType.TAG
    FIELDS = (
        Field("expr", "Expr", gm.STR),
        Field("tag", "Tag", gm.STR),
    )
    tag: str = ""
    expr: str = ""


_S = TypeVar("_S", bound=Struct)

SerfMessage = Leave | Join | UserEvent | PushPullState | Query | QueryResponse | Relay
_SIMPLE: Final[dict[int, type[Struct]]] = {
    cls.TYPE: cls
    for cls in (Leave, Join, UserEvent, PushPullState, Query, QueryResponse)
}


def encode_serf_message(message: SerfMessage) -> bytes:
    """The bytes of a Serf message, ready to be a memberlist user message."""
    if isinstance(message, Query):
        _check_query(message)
    return message.encode()


def _check_query(query: Query) -> None:
    if query.name in KEY_QUERIES and not query.payload:
        raise LocalProtocolError(
            f"the {query.name} query needs the key as its payload; "
            "an empty payload crashes Go agents"
        )
    if query.filters and not all(query.filters):
        raise LocalProtocolError(
            "a query filter blob is empty; this crashes Go agents, so drop it"
        )


def decode_serf_message(data: bytes) -> SerfMessage:
    """Decode the content of a memberlist user message as a Serf message."""
    if not data:
        raise RemoteProtocolError("empty Serf message")
    kind = data[0]
    if kind == SerfType.RELAY:
        return _decode_relay(data)
    cls = _SIMPLE.get(kind)
    if cls is None:
        raise RemoteProtocolError(f"unknown Serf message type {kind}")
    message: Any = cls.decode_body(data[1:])
    if isinstance(message, Query):
        _reject_crashers(message)
    return message  # type: ignore[no-any-return]


def decode_user_message(data: bytes) -> SerfMessage:
    """Decode a Serf message that arrived as a memberlist user message.

    Push/pull state (type 2) only ever travels inside a memberlist push/pull;
    Go drops it as an unknown type anywhere else, and so does this.
    """
    if data[:1] == bytes((SerfType.PUSH_PULL,)):
        raise RemoteProtocolError("Serf push/pull state is not valid as a user message")
    return decode_serf_message(data)


def decode_push_pull_state(data: bytes) -> PushPullState:
    """Decode the user state of a memberlist push/pull (``[2]`` then the map)."""
    if data[:1] != bytes((SerfType.PUSH_PULL,)):
        raise RemoteProtocolError("push/pull user state does not start with type 2")
    return PushPullState.decode_body(data[1:])


def _reject_crashers(query: Query) -> None:
    if query.name in KEY_QUERIES and not query.payload:
        raise RemoteProtocolError(f"{query.name} query with an empty payload")
    if query.filters and not all(query.filters):
        raise RemoteProtocolError("query carries an empty filter blob")


def _decode_relay(data: bytes) -> Relay:
    value, used = gm.unpack_prefix(data[1:], "RelayHeader")
    header = RelayHeader.from_go(value)
    addr = header.dest_addr
    return Relay(addr.ip, addr.port, header.dest_name, data[1 + used :])


def decode_key_request(payload: bytes) -> KeyRequest:
    """Decode a key query's payload (``[7]`` then the key map)."""
    return _decode_tagged(KeyRequest, payload)


def decode_key_response(payload: bytes) -> KeyResponse:
    """Decode a key query response's payload (``[8]`` then the result map)."""
    return _decode_tagged(KeyResponse, payload)


def decode_conflict_response(payload: bytes) -> ConflictResponse:
    """Decode a ``_serf_conflict`` response payload (``[6]`` then a member or nil)."""
    if not payload or payload[0] != SerfType.CONFLICT_RESPONSE:
        raise RemoteProtocolError("conflict response does not start with type 6")
    value = gm.unpack_one(payload[1:], "ConflictResponse")
    return ConflictResponse(None if value is None else MemberInfo.from_go(value))


def _decode_tagged(cls: type[_S], payload: bytes) -> _S:
    if not payload or payload[0] != cls.TYPE:
        raise RemoteProtocolError(
            f"{cls.__name__} payload does not start with type {cls.TYPE}"
        )
    return cls.decode_body(payload[1:])


def decode_filter(blob: bytes) -> NodeFilter | TagFilter:
    """Decode one query filter blob."""
    if not blob:
        raise RemoteProtocolError("empty query filter")
    if blob[0] == FilterType.TAG:
        return TagFilter.decode_body(blob[1:])
    if blob[0] != FilterType.NODE:
        raise RemoteProtocolError(f"unknown query filter type {blob[0]}")
    names = gm.list_of(gm.STR).decode(gm.unpack_one(blob[1:], "NodeFilter"), "nodes")
    return NodeFilter(tuple(names or ()))

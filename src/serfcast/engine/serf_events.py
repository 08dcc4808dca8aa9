"""What a :class:`~serfcast.engine.serf.SerfNode` tells its application.

Events come out of ``SerfNode.pop_events()`` in the order they happened. Member
events carry a snapshot of the member at that moment; user events and queries
carry what arrived on the wire; acks and responses name the query they answer
by the id :meth:`SerfNode.query` returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from serfcast.engine.actions import Address
from serfcast.engine.memberlist import JoinFinished

__all__ = [
    "JoinFinished",
    "LeaveComplete",
    "Member",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberStatus",
    "MemberUpdated",
    "NameConflict",
    "NameConflictResolved",
    "QueryAck",
    "QueryFinished",
    "QueryReceived",
    "QueryResponse",
    "SerfEvent",
    "UserEventReceived",
]


class MemberStatus(IntEnum):
    """A member's Serf status; the numbers are Go's (sent in conflict answers)."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Member:
    """One member as ``serf members`` lists it.

    ``protocol_*`` are memberlist's versions and ``delegate_*`` Serf's; the
    "protocol" column of ``serf members`` shows the ``delegate_*`` ones.
    """

    name: str
    addr: str
    port: int
    tags: Mapping[str, str]
    status: MemberStatus
    protocol_min: int
    protocol_max: int
    protocol_cur: int
    delegate_min: int
    delegate_max: int
    delegate_cur: int

    @property
    def address(self) -> Address:
        """``(host, port)`` of the member's gossip socket."""
        return (self.addr, self.port)


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A member changed; the fields describe it after the change."""

    name: str
    addr: str
    port: int
    tags: Mapping[str, str]
    status: MemberStatus


@dataclass(frozen=True, slots=True)
class MemberJoined(MemberEvent):
    """A member became alive (new, or back after failing or leaving)."""


@dataclass(frozen=True, slots=True)
class MemberLeft(MemberEvent):
    """A member left gracefully, or a failed one was forced out."""


@dataclass(frozen=True, slots=True)
class MemberFailed(MemberEvent):
    """A member stopped answering without saying it would leave."""


@dataclass(frozen=True, slots=True)
class MemberUpdated(MemberEvent):
    """A member's tags (or address) changed."""


@dataclass(frozen=True, slots=True)
class MemberReaped(MemberEvent):
    """A failed or left member was forgotten for good."""


@dataclass(frozen=True, slots=True)
class UserEventReceived:
    """A user event, delivered once per node (the sender's own included)."""

    name: str
    payload: bytes
    ltime: int
    coalesce: bool


@dataclass(frozen=True, slots=True)
class QueryReceived:
    """A query for this node's application; answer it with ``SerfNode.respond``
    at most once, before ``deadline`` (the driver's clock)."""

    name: str
    payload: bytes
    ltime: int
    id: int
    source: str
    source_addr: Address
    deadline: float
    relay_factor: int


@dataclass(frozen=True, slots=True)
class QueryAck:
    """``from_node`` received our query ``query_id`` and passed its filters."""

    query_id: int
    from_node: str


@dataclass(frozen=True, slots=True)
class QueryResponse:
    """``from_node`` answered our query ``query_id``."""

    query_id: int
    from_node: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryFinished:
    """Our query's timeout passed; later acks and responses are ignored."""

    query_id: int


@dataclass(frozen=True, slots=True)
class LeaveComplete:
    """The graceful leave is over; the driver may stop the node now.

    The flags say which wait ended by ``broadcast_timeout`` rather than by the
    message going out (Go's Serf would log a warning for each).
    """

    intent_timed_out: bool = False
    memberlist_timed_out: bool = False


@dataclass(frozen=True, slots=True)
class NameConflict:
    """Two addresses claim the node ``name``; memberlist kept ``existing``."""

    name: str
    existing: Address
    other: Address


@dataclass(frozen=True, slots=True)
class NameConflictResolved:
    """The pool's vote on our own contested name (only with
    ``enable_name_conflict_resolution``): ``matching`` of ``responses`` answers
    named our address. Go's Serf shuts down when it is in the minority."""

    matching: int
    responses: int

    @property
    def majority(self) -> bool:
        """Whether we keep the name by Go's rule."""
        return self.matching >= self.responses // 2 + 1


SerfEvent = (
    MemberJoined
    | MemberLeft
    | MemberFailed
    | MemberUpdated
    | MemberReaped
    | UserEventReceived
    | QueryReceived
    | QueryAck
    | QueryResponse
    | QueryFinished
    | LeaveComplete
    | NameConflict
    | NameConflictResolved
    | JoinFinished
    | MemberEvent
)

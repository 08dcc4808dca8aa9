"""What the node API hands back: fired events, query results, and event types.

:class:`QueryResult` collects the acks and responses to one of our queries
until its timeout; :class:`FiredEvent` describes a user event we fired.
:data:`NodeEvent` names everything ``Node.events()`` can yield. Nothing here
imports an async library: waiting uses the signals of whichever one runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Self

from serfcast.drivers.channel import EventChannel, Signal
from serfcast.engine.serf_events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberUpdated,
    NameConflict,
    NameConflictResolved,
    QueryAck,
    QueryFinished,
    QueryReceived,
    QueryResponse,
    UserEventReceived,
)

__all__ = ["FiredEvent", "NodeEvent", "QueryReply", "QueryResult"]

#: Replies one result keeps for ``async for`` before it drops (and counts) them;
#: :attr:`QueryResult.acks` and :attr:`QueryResult.responses` keep every one.
QUERY_REPLY_QUEUE: Final = 4096

NodeEvent = (
    UserEventReceived
    | QueryReceived
    | MemberJoined
    | MemberLeft
    | MemberFailed
    | MemberUpdated
    | MemberReaped
    | NameConflict
    | NameConflictResolved
    | MemberEvent
)
"""What ``Node.events()`` yields: user events, queries to answer, member changes
(always one of the :class:`MemberEvent` subclasses) and name conflicts, in the
order they happened."""

QueryReply = QueryAck | QueryResponse
"""An ack or a response to one of our queries."""


@dataclass(frozen=True, slots=True)
class FiredEvent:
    """A user event this node fired.

    ``name`` is the name given; ``serf_name`` and ``payload`` are what went on
    the wire (for a Consul event, ``consul:event:<name>`` and Consul's encoded
    map). ``event_id`` is the Consul event's ID, None for a plain Serf event.
    """

    name: str
    serf_name: str
    payload: bytes
    ltime: int
    coalesce: bool
    event_id: str | None = None


class QueryResult:
    """The answers to one of our queries, collected until its timeout.

    :attr:`acks` and :attr:`responses` fill in as replies arrive (the first
    from each node counts). ``async for reply in result`` yields each
    :class:`QueryAck` and :class:`QueryResponse` as it arrives and ends at the
    timeout; ``await result.wait()`` just waits for the timeout.
    """

    def __init__(
        self, query_id: int, name: str, new_signal: Callable[[], Signal]
    ) -> None:
        #: The id the query went out with; its replies carry it.
        self.id = query_id
        self.name = name
        #: Names of the nodes that acknowledged the query, in arrival order.
        self.acks: list[str] = []
        #: Each responding node's payload, in arrival order.
        self.responses: dict[str, bytes] = {}
        #: Replies that came while the ``async for`` queue was full (they are
        #: still in :attr:`acks` and :attr:`responses`).
        self.dropped = 0
        self._replies = EventChannel[QueryReply](QUERY_REPLY_QUEUE, new_signal)
        self._done = new_signal()
        self._finished = False

    def __repr__(self) -> str:
        state = "finished" if self._finished else "open"
        return (
            f"<QueryResult {self.name!r} id={self.id} {state} "
            f"acks={len(self.acks)} responses={len(self.responses)}>"
        )

    @property
    def finished(self) -> bool:
        """Whether the timeout passed; no reply is taken after it."""
        return self._finished

    async def wait(self) -> Self:
        """Wait until the query's timeout has passed; return this result."""
        if not self._finished:
            await self._done.wait()
        return self

    def __aiter__(self) -> EventChannel[QueryReply]:
        return self._replies

    def _take(self, reply: QueryReply | QueryFinished) -> None:
        """Record one reply, or the end (the node calls this)."""
        if isinstance(reply, QueryFinished):
            self._finished = True
            self._replies.close()
            self._done.set()
            return
        if isinstance(reply, QueryAck):
            self.acks.append(reply.from_node)
        else:
            self.responses[reply.from_node] = reply.payload
        if not self._replies.offer(reply):
            self.dropped += 1

"""The recent-history rings that decide whether a user event or query is new.

Gossip delivers every message many times, so each node remembers what it has
seen in a ring of slots (512 by default), one slot per Lamport time modulo the
ring size. Each slot remembers a single Lamport time and the events (or query
IDs) seen at it. An incoming message is judged by these rules, in this order:

1. Its Lamport time is witnessed on the clock first, whatever happens next.
2. Below the ring's minimum time it is dropped without a word. The minimum is
   normally 0; joining a pool without replay raises it to the pool's event clock
   so that old history is not delivered, and a restored snapshot sets it too.
3. Once the clock has passed the ring size, anything more than a ring's length
   behind the clock is too old: it may already have been forgotten, so it
   cannot be told apart from a duplicate. Serf logs a warning for it, whose text
   the :class:`TooOld` verdict carries.
4. If its slot holds the same Lamport time and an identical message, it is a
   duplicate. Events are identical when name and payload bytes are equal (a nil
   payload equals an empty one); queries when their IDs are equal. A slot
   holding a different time is overwritten, and the history in it is lost.
5. Otherwise it is recorded, delivered, and (from gossip) gossiped on.

serfcast adds one rule of its own between 4 and 5: a Lamport time that already
holds :data:`MAX_PER_SLOT` different messages takes no more (:class:`SlotFull`).
Serf has no such bound, so a sender could otherwise grow one slot forever by
pinning a flood of distinct events to a single time.

Two nodes firing the same name and payload at the same Lamport time thus
collapse into one delivery; the same name with a different payload does not.

A node handles its own event or query by the same rules, right after stamping
it, so it is delivered locally as well.

A push/pull carries the whole event ring. Merging a peer's ring witnesses its
event clock (less one), raises the minimum to it when joining without replay,
and then runs every remembered event through the rules above, slot by slot.
What survives is delivered but not gossiped again, and without its coalesce
flag, which the push/pull form does not keep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from serfcast.errors import LocalProtocolError
from serfcast.serf.clock import LamportClock
from serfcast.serf.limits import DEFAULT_USER_EVENT_SIZE_LIMIT, check_user_event_size
from serfcast.serf.messages import (
    EVENT_BUFFER_SIZE,
    PushPullState,
    Query,
    UserEvent,
    UserEventRecord,
    UserEvents,
)

__all__ = [
    "MAX_PER_SLOT",
    "QUERY_BUFFER_SIZE",
    "Accepted",
    "BelowMinimum",
    "Duplicate",
    "EventBuffer",
    "FiredEvent",
    "QueryBuffer",
    "SlotFull",
    "TooOld",
    "Verdict",
]

QUERY_BUFFER_SIZE: Final = 512
#: How many different events (or query IDs) one Lamport time may hold. Serf has
#: no bound; this one is far above what concurrent senders produce and stops a
#: flood of distinct messages pinned to one time from growing memory forever.
MAX_PER_SLOT: Final = 1024


# ----------------------------------------------------------------------------
# Verdicts.


@dataclass(frozen=True, slots=True)
class Accepted:
    """New: deliver it, and gossip it on if ``rebroadcast``."""

    rebroadcast: bool = True


@dataclass(frozen=True, slots=True)
class TooOld:
    """Too far behind the clock to judge; ``message`` is Serf's warning text."""

    message: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Already seen at this Lamport time: drop it silently."""


@dataclass(frozen=True, slots=True)
class BelowMinimum:
    """Older than this node wants to hear about: drop it silently."""


@dataclass(frozen=True, slots=True)
class SlotFull:
    """New, but its Lamport time already holds :data:`MAX_PER_SLOT` messages.

    Serf would deliver it; serfcast drops it so memory stays bounded.
    """


Verdict = Accepted | TooOld | Duplicate | BelowMinimum | SlotFull


class _Ring:
    """What the event and query rings share: a clock, a size and a minimum time."""

    WHAT: str

    def __init__(self, clock: LamportClock | None, size: int, min_time: int) -> None:
        # Serf moves each clock on once at start, so the first stamp is 1.
        self.clock = LamportClock(1) if clock is None else clock
        if size < 1:
            raise LocalProtocolError(f"a ring needs at least one slot, not {size}")
        self.size = size
        self.min_time = min_time

    def raise_min_time(self, ltime: int) -> None:
        """Ignore messages below ``ltime`` from now on (never lowers the minimum)."""
        self.min_time = max(self.min_time, ltime)

    def _admit(self, name: str, ltime: int) -> TooOld | BelowMinimum | None:
        """Rules 1-3 of the module notes; ``None`` lets the message through."""
        self.clock.witness(ltime)
        if ltime < self.min_time:
            return BelowMinimum()
        current = self.clock.time()
        if current > self.size and ltime < current - self.size:
            where = f"from time {ltime} (current: {current})"
            return TooOld(f"received old {self.WHAT} {name} {where}")
        return None


# ----------------------------------------------------------------------------
# User events.


@dataclass(slots=True)
class _EventSlot:
    """The events seen at one Lamport time, keyed by (name, payload bytes)."""

    ltime: int
    records: dict[tuple[str, bytes], UserEventRecord] = field(default_factory=dict)

    def to_push_pull(self) -> UserEvents:
        return UserEvents(self.ltime, list(self.records.values()))


@dataclass(frozen=True, slots=True)
class FiredEvent:
    """A locally fired event: gossip ``encoded`` once, deliver per ``verdict``."""

    message: UserEvent
    encoded: bytes
    verdict: Verdict


class EventBuffer(_Ring):
    """Serf's user event ring with its event clock and minimum time."""

    WHAT = "event"

    def __init__(
        self,
        clock: LamportClock | None = None,
        *,
        size: int = EVENT_BUFFER_SIZE,
        min_time: int = 0,
    ) -> None:
        super().__init__(clock, size, min_time)
        self._slots: list[_EventSlot | None] = [None] * self.size

    @property
    def event_ltime(self) -> int:
        """The event clock as a push/pull reports it (the next time to be used)."""
        return self.clock.time()

    def accept(self, event: UserEvent) -> Verdict:
        """Judge an event received by gossip (see the module notes)."""
        return self._accept(event, rebroadcast=True)

    def fire(
        self,
        name: str,
        payload: bytes | None = None,
        coalesce: bool = False,
        *,
        limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
    ) -> FiredEvent:
        """Stamp, size-check and record a new event from this node.

        The event takes the clock's current time and the clock then moves on,
        but only once both of Serf's size checks have passed: a refused event
        raises :class:`~serfcast.errors.EventTooLargeError` and changes nothing.
        """
        ltime = self.clock.time()
        encoded = check_user_event_size(name, payload, ltime, coalesce, limit)
        self.clock.increment()
        message = UserEvent(ltime, name, payload, coalesce)
        return FiredEvent(message, encoded, self._accept(message, rebroadcast=True))

    def _accept(self, event: UserEvent, *, rebroadcast: bool) -> Verdict:
        refused = self._admit(event.name, event.ltime)
        if refused is not None:
            return refused
        slot = self._slot_at(event.ltime)
        key = (event.name, event.payload or b"")
        if key in slot.records:
            return Duplicate()
        if len(slot.records) >= MAX_PER_SLOT:
            return SlotFull()
        slot.records[key] = UserEventRecord(event.name, event.payload)
        return Accepted(rebroadcast)

    def _slot_at(self, ltime: int) -> _EventSlot:
        """The slot for ``ltime``, emptied first if it held another time."""
        index = ltime % self.size
        slot = self._slots[index]
        if slot is None or slot.ltime != ltime:
            slot = self._slots[index] = _EventSlot(ltime)
        return slot

    # ------------------------------------------------------------------
    # The push/pull form.

    def export_events(self) -> list[UserEvents | None]:
        """The ring as a push/pull carries it: one entry per slot, ``None`` if empty."""
        return [None if slot is None else slot.to_push_pull() for slot in self._slots]

    @classmethod
    def restore(
        cls,
        event_ltime: int,
        events: Iterable[UserEvents | None],
        *,
        size: int = EVENT_BUFFER_SIZE,
        min_time: int = 0,
    ) -> EventBuffer:
        """Rebuild a ring from this node's own :meth:`export_events` output.

        Nothing is delivered. A peer's ring must go through
        :meth:`merge_push_pull` instead, which applies the accept rules.
        """
        buffer = cls(LamportClock(event_ltime), size=size, min_time=min_time)
        for index, entry in enumerate(events):
            if entry is not None:
                buffer._restore_slot(index, entry)
        return buffer

    def _restore_slot(self, index: int, entry: UserEvents) -> None:
        if index >= self.size or entry.ltime % self.size != index:
            raise LocalProtocolError(
                f"slot {index} holds Lamport time {entry.ltime}, which belongs "
                "elsewhere; restore only what export_events produced"
            )
        slot = self._slots[index] = _EventSlot(entry.ltime)
        for record in entry.events or ():
            slot.records[(record.name, record.payload or b"")] = record

    def merge_push_pull(
        self, state: PushPullState, *, join: bool = False, ignore_old: bool = False
    ) -> list[tuple[UserEvent, Verdict]]:
        """Take in the event part of a peer's push/pull state.

        ``join`` says this push/pull is part of joining, and ``ignore_old`` that
        the join was asked not to replay history (the agent's default). Returns
        every replayed event with its verdict, in the order Serf judges them;
        deliver those :class:`Accepted` (they are never to be gossiped on).
        """
        self.clock.witness_peer_clock(state.event_ltime)
        if join and ignore_old:
            self.raise_min_time(state.event_ltime)
        replayed: list[tuple[UserEvent, Verdict]] = []
        for entry in state.events or ():
            if entry is None:
                continue
            for record in entry.events or ():
                event = UserEvent(entry.ltime, record.name, record.payload)
                replayed.append((event, self._accept(event, rebroadcast=False)))
        return replayed


# ----------------------------------------------------------------------------
# Queries.


@dataclass(slots=True)
class _QuerySlot:
    """The query IDs seen at one Lamport time."""

    ltime: int
    ids: set[int] = field(default_factory=set)


class QueryBuffer(_Ring):
    """Serf's query ring with its query clock and minimum time.

    A node's own query goes through :meth:`accept` too, right after being
    stamped with :meth:`LamportClock.time`; witnessing it moves the clock on.
    """

    WHAT = "query"

    def __init__(
        self,
        clock: LamportClock | None = None,
        *,
        size: int = QUERY_BUFFER_SIZE,
        min_time: int = 0,
    ) -> None:
        super().__init__(clock, size, min_time)
        self._slots: list[_QuerySlot | None] = [None] * self.size

    @property
    def query_ltime(self) -> int:
        """The query clock as a push/pull reports it."""
        return self.clock.time()

    def witness_push_pull(self, state: PushPullState) -> None:
        """Take in a peer's query clock (queries themselves are never pushed)."""
        self.clock.witness_peer_clock(state.query_ltime)

    def accept(self, query: Query) -> Verdict:
        """Judge a query; a new one is gossiped on unless it says not to."""
        refused = self._admit(query.name, query.ltime)
        if refused is not None:
            return refused
        slot = self._slot_at(query.ltime)
        if query.id in slot.ids:
            return Duplicate()
        if len(slot.ids) >= MAX_PER_SLOT:
            return SlotFull()
        slot.ids.add(query.id)
        return Accepted(rebroadcast=not query.no_broadcast)

    def _slot_at(self, ltime: int) -> _QuerySlot:
        index = ltime % self.size
        slot = self._slots[index]
        if slot is None or slot.ltime != ltime:
            slot = self._slots[index] = _QuerySlot(ltime)
        return slot

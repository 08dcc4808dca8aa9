"""Coalescing of user events: local delivery that skips superseded bursts.

A sender marks an event as coalescable (the ``CC`` flag). That flag changes
nothing on the wire, in the duplicate buffer or in rebroadcasting; it only lets
each *receiver* hold such events briefly and hand its application just the
latest of a burst.

The theory of operation, as Serf runs it:

* Non-coalescable events are delivered at once, even while others are held, so a
  coalescable event can reach the application after a later plain one.
* The first coalescable event opens a window. While it is open, every event
  with the same name is compared by Lamport time: a higher time replaces what is
  held for that name, an equal time joins it, a lower time is discarded.
* The window closes when ``quiescent_period`` passes without a new coalescable
  event, or ``coalesce_period`` after it opened, whichever comes first. Closing
  delivers everything held, name by name, and the next coalescable event opens a
  fresh window.
* Coalescing only runs when both periods are positive. The Serf library leaves
  it off; the ``serf`` agent uses 3 s and 1 s.

Events replayed from a push/pull carry no flag, so they are never coalesced.

This class does no I/O and reads no clock: the caller passes ``now`` in (any
monotonic seconds), asks :meth:`~UserEventCoalescer.next_deadline` when to come
back, and calls :meth:`~UserEventCoalescer.flush_due` then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from serfcast.errors import LocalProtocolError

__all__ = ["Coalescable", "UserEventCoalescer"]


class Coalescable(Protocol):
    """What the coalescer needs to know about an event."""

    @property
    def name(self) -> str: ...
    @property
    def ltime(self) -> int: ...
    @property
    def coalesce(self) -> bool: ...


E = TypeVar("E", bound=Coalescable)


@dataclass(slots=True)
class _Latest(Generic[E]):
    """The events held for one name: all of those at the highest time seen."""

    ltime: int
    events: list[E] = field(default_factory=list)


class UserEventCoalescer(Generic[E]):
    """Holds coalescable user events and releases the latest of each burst."""

    def __init__(
        self, coalesce_period: float = 0.0, quiescent_period: float = 0.0
    ) -> None:
        if coalesce_period < 0 or quiescent_period < 0:
            raise LocalProtocolError(
                "coalesce and quiescent periods must be zero (off) or positive seconds"
            )
        self.coalesce_period = coalesce_period
        self.quiescent_period = quiescent_period
        self._held: dict[str, _Latest[E]] = {}
        self._opened_at: float | None = None
        self._last_at = 0.0

    @property
    def enabled(self) -> bool:
        """Whether events are held at all (both periods positive, as in Serf)."""
        return self.coalesce_period > 0 and self.quiescent_period > 0

    def push(self, event: E, now: float) -> list[E]:
        """Take in one accepted event; return what should be delivered now.

        A window that was already due is flushed first, so its events come
        before anything this call lets through.
        """
        out = self.flush_due(now)
        if not (self.enabled and event.coalesce):
            out.append(event)
            return out
        if self._opened_at is None:
            self._opened_at = now
        self._last_at = now
        self._hold(event)
        return out

    def next_deadline(self) -> float | None:
        """When the open window closes if nothing else arrives, or ``None``."""
        if self._opened_at is None:
            return None
        return min(
            self._opened_at + self.coalesce_period,
            self._last_at + self.quiescent_period,
        )

    def flush_due(self, now: float) -> list[E]:
        """Deliver the held events if the window's deadline has been reached."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        return self.flush_all()

    def flush_all(self) -> list[E]:
        """Close the window now and deliver everything held (for shutdown)."""
        out = [event for latest in self._held.values() for event in latest.events]
        self._held.clear()
        self._opened_at = None
        return out

    def _hold(self, event: E) -> None:
        latest = self._held.get(event.name)
        if latest is None or latest.ltime < event.ltime:
            self._held[event.name] = _Latest(event.ltime, [event])
        elif latest.ltime == event.ltime:
            latest.events.append(event)

"""Lamport clocks, the only notion of time Serf's messages carry.

A Serf node keeps three independent counters, all 64-bit and all starting at 1
(Serf bumps each once when it is created):

* the **member clock** orders join and leave intents. A join intent carries the
  current value; a leave (or force-leave) intent carries the current value and
  then moves the clock on. A push/pull carries it as ``LTime``.
* the **event clock** orders user events. Firing an event stamps it with the
  current value and *then* increments, so the first event a fresh node fires has
  time 1 and the next has 2. A push/pull carries it as ``EventLTime``.
* the **query clock** orders queries. A query carries the current value without
  an explicit increment; the asker then handles its own query like any other,
  and witnessing its own stamp moves the clock past it. A push/pull carries it
  as ``QueryLTime``.

Every message received is *witnessed* on its clock, whether or not it is then
accepted: a value below the clock changes nothing, any other value puts the
clock one past it. Witnessing the current value therefore still moves it on.

The value a push/pull carries is the sender's *next* time, which no message has
used yet, so receivers witness one less than it (see
:meth:`LamportClock.witness_peer_clock`).

Go keeps the counter in a ``uint64`` and lets it wrap; so does this class, so a
peer that witnesses ``2**64 - 1`` ends at 0 exactly as a Go node would.
"""

from __future__ import annotations

from typing import Final

from serfcast.errors import LocalProtocolError

__all__ = ["MAX_LAMPORT_TIME", "LamportClock"]

#: The largest value a Lamport time can hold on the wire (Go's ``uint64``).
MAX_LAMPORT_TIME: Final = (1 << 64) - 1


class LamportClock:
    """One of Serf's Lamport clocks (see the module notes for which is which)."""

    __slots__ = ("_counter",)

    def __init__(self, start: int = 0) -> None:
        self._counter = _checked(start)

    def __repr__(self) -> str:
        return f"LamportClock({self._counter})"

    def time(self) -> int:
        """The current value: the stamp the next outgoing message would carry."""
        return self._counter

    def increment(self) -> int:
        """Move the clock on by one and return the new value."""
        self._counter = (self._counter + 1) & MAX_LAMPORT_TIME
        return self._counter

    def witness(self, value: int) -> None:
        """Take note of a time seen in a message: the clock ends past it."""
        if _checked(value) >= self._counter:
            self._counter = (value + 1) & MAX_LAMPORT_TIME

    def witness_peer_clock(self, value: int) -> None:
        """Take note of a peer's clock value as a push/pull reports it.

        That value has not been used by any message yet, so only the one before
        it is witnessed; a zero (a peer that never started its clock) is ignored.
        """
        if _checked(value) > 0:
            self.witness(value - 1)


def _checked(value: int) -> int:
    if not 0 <= value <= MAX_LAMPORT_TIME:
        raise LocalProtocolError(
            f"Lamport time {value} is outside 0..2**64-1; pass a decoded uint64"
        )
    return value

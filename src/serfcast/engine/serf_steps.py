"""Bookkeeping for the Serf node's multi-step operations.

Go's Serf runs joins, leaves and name-conflict votes as blocking calls on their
own goroutines. A sans-IO node cannot block, so each is a small record that the
node advances as memberlist reports progress or time passes:

* :class:`PendingJoins` pairs memberlist's :class:`JoinFinished` reports with
  the join that asked for them (an application join, or Serf's own reconnect
  attempt, which Go makes without announcing a join intent);
* :class:`LeaveSteps` walks the graceful leave: intent out, memberlist leave
  out, propagation delay, each wait bounded;
* :class:`ConflictVote` counts the answers to our ``_serf_conflict`` query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from serfcast.engine.actions import Address
from serfcast.engine.memberlist import JoinFinished
from serfcast.engine.serf_events import LeaveComplete, NameConflictResolved
from serfcast.errors import RemoteProtocolError
from serfcast.serf.messages import decode_conflict_response

__all__ = ["ConflictVote", "LeavePhase", "LeaveSteps", "PendingJoins"]


@dataclass(frozen=True, slots=True)
class PendingJoin:
    """A memberlist join in flight."""

    seeds: frozenset[Address]
    serf: bool
    ignore_old: bool


class PendingJoins:
    """Joins in flight, matched to their reports by the addresses tried."""

    def __init__(self) -> None:
        self._pending: list[PendingJoin] = []

    def add(self, seeds: Iterable[Address], *, serf: bool, ignore_old: bool) -> None:
        """Record a join just handed to memberlist."""
        self._pending.append(PendingJoin(frozenset(seeds), serf, ignore_old))

    def finish(self, report: JoinFinished) -> PendingJoin | None:
        """The join ``report`` is about (it is forgotten), or ``None``."""
        tried = frozenset(report.contacted) | {addr for addr, _ in report.errors}
        for join in self._pending:
            if join.seeds == tried:
                self._pending.remove(join)
                return join
        return None

    def ignore_old_active(self) -> bool:
        """Whether an application join that skips old events is running.

        Like Go's flag, it covers every join push/pull merged meanwhile.
        """
        return any(j.serf and j.ignore_old for j in self._pending)


class LeavePhase(Enum):
    """Where a graceful leave stands."""

    INTENT = 1
    MEMBERLIST = 2
    PROPAGATE = 3
    DONE = 4


@dataclass(slots=True)
class LeaveSteps:
    """A graceful leave in progress; ``deadline`` bounds the current wait."""

    deadline: float
    phase: LeavePhase = LeavePhase.INTENT
    intent_sent: bool = False
    memberlist_done: bool = False
    intent_timed_out: bool = False
    memberlist_timed_out: bool = False

    def intent_out(self) -> None:
        """The leave intent has been gossiped as often as it will be."""
        self.intent_sent = True

    def memberlist_out(self) -> None:
        """memberlist's own leave message is out."""
        self.memberlist_done = True

    def ready_for_memberlist(self, now: float) -> bool:
        """Time to do the memberlist leave (marks a timed-out intent)."""
        if self.phase is not LeavePhase.INTENT:
            return False
        if not (self.intent_sent or now >= self.deadline):
            return False
        self.intent_timed_out = not self.intent_sent
        return True

    def ready_to_propagate(self, now: float) -> bool:
        """memberlist's leave is out or overdue (marks the latter)."""
        if self.phase is not LeavePhase.MEMBERLIST:
            return False
        if not (self.memberlist_done or now >= self.deadline):
            return False
        self.memberlist_timed_out = not self.memberlist_done
        return True

    def enter(self, phase: LeavePhase, deadline: float) -> None:
        """Move on to ``phase``, whose wait ends at ``deadline``."""
        self.phase, self.deadline = phase, deadline

    def finished(self, now: float) -> LeaveComplete | None:
        """The completion event once the propagation delay has passed."""
        if self.phase is not LeavePhase.PROPAGATE or now < self.deadline:
            return None
        self.phase = LeavePhase.DONE
        return LeaveComplete(self.intent_timed_out, self.memberlist_timed_out)


class ConflictVote:
    """Counts the pool's answers about who owns our name (Go's rule)."""

    def __init__(self, addr: bytes, port: int) -> None:
        self.addr, self.port = addr, port
        self.matching = 0
        self.responses = 0
        self.unreadable = 0

    def take(self, node: str, payload: bytes) -> None:
        """One node's answer: the member it knows under our name, or nil."""
        try:
            member = decode_conflict_response(payload).member
        except RemoteProtocolError:
            self.unreadable += 1
            return
        self.responses += 1
        if member is not None and (member.addr, member.port) == (self.addr, self.port):
            self.matching += 1

    def result(self) -> NameConflictResolved:
        """The outcome once the query has closed."""
        return NameConflictResolved(self.matching, self.responses)

"""Serf's member table: memberlist's view combined with join and leave intents.

memberlist knows whether a node answers; Serf adds *why* it went away. Each
member has a status and a *status time*, the member-clock value of the last
join or leave intent applied to it:

* memberlist reports a node alive: it becomes ``alive`` (a new node first
  takes any intent buffered for it, so an early leave intent makes it
  ``leaving``);
* a leave intent newer than the status time turns ``alive`` into ``leaving``
  and ``failed`` into ``left`` (a forced leave); a join intent newer than it
  turns ``leaving`` back into ``alive``. The status time moves on even when
  the status does not, which is what stops two nodes from gossiping the same
  leave back and forth for ever;
* memberlist reports a node gone: a ``leaving`` member has ``left``, any other
  alive one has ``failed``;
* the reaper forgets failed members after ``reconnect_timeout`` and left ones
  after ``tombstone_timeout``.

An intent about a node we do not know yet is kept (the newest per node) for
``recent_intent_timeout``, since gossip can bring it before memberlist's alive
message does. A leave intent about ourselves while we are alive is refuted by
the caller with a fresh join intent (:data:`Outcome.REFUTE`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from serfcast.engine.nodes import Node, format_addr
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import (
    Member,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberStatus,
    MemberUpdated,
)
from serfcast.errors import RemoteProtocolError
from serfcast.serf.clock import LamportClock
from serfcast.serf.messages import Join, Leave, MemberInfo
from serfcast.serf.tags import decode_tags

__all__ = ["MemberState", "MemberTable", "Outcome"]

Emit = Callable[[MemberEvent], None]
Count = Callable[[str], None]


class Outcome(Enum):
    """What to do with an intent after applying it."""

    IGNORE = 0
    REBROADCAST = 1
    REFUTE = 2


@dataclass(slots=True)
class MemberState:
    """One member, as this node tracks it (mutable)."""

    name: str
    addr: bytes
    port: int
    tags: dict[str, str]
    vsn: bytes
    status: MemberStatus = MemberStatus.ALIVE
    status_ltime: int = 0
    leave_time: float = 0.0

    def snapshot(self) -> Member:
        """An immutable copy for the application."""
        v = self.vsn.ljust(6, b"\0")
        return Member(
            self.name,
            format_addr(self.addr),
            self.port,
            dict(self.tags),
            self.status,
            *v[:6],
        )

    def info(self) -> MemberInfo:
        """The member as a conflict answer describes it."""
        v = self.vsn.ljust(6, b"\0")
        return MemberInfo(
            self.name, self.addr, self.port, dict(self.tags), int(self.status), *v
        )

    def event(self, kind: type[MemberEvent]) -> MemberEvent:
        return kind(
            self.name, format_addr(self.addr), self.port, dict(self.tags), self.status
        )


@dataclass(frozen=True, slots=True)
class _Intent:
    leave: bool
    ltime: int
    seen_at: float


class MemberTable:
    """The members and the member clock, without any I/O."""

    def __init__(
        self, local_name: str, config: SerfConfig, emit: Emit, count: Count
    ) -> None:
        self.local_name = local_name
        self.config = config
        # Serf moves each clock on once at start, so the first stamp is 1.
        self.clock = LamportClock(1)
        self.members: dict[str, MemberState] = {}
        self._intents: dict[str, _Intent] = {}
        self._prunes: dict[str, float] = {}
        self._emit = emit
        self._count = count

    def __len__(self) -> int:
        return len(self.members)

    # ------------------------------------------------------------------
    # memberlist's reports

    def node_joined(self, node: Node, now: float) -> None:
        """memberlist saw ``node`` alive (new, or back from dead or left)."""
        member = self.members.get(node.name)
        if member is None:
            member = MemberState(
                node.name, node.addr, node.port, self._tags(node), node.vsn
            )
            self._apply_buffered_intent(member)
            self.members[node.name] = member
        else:
            member.status = MemberStatus.ALIVE
            member.leave_time = 0.0
            member.addr, member.port = node.addr, node.port
            member.tags = self._tags(node)
        member.vsn = node.vsn
        self._emit(member.event(MemberJoined))

    def _apply_buffered_intent(self, member: MemberState) -> None:
        intent = self._intents.get(member.name)
        if intent is None:
            return
        member.status_ltime = intent.ltime
        if intent.leave:
            member.status = MemberStatus.LEAVING

    def node_left(self, node: Node, now: float) -> None:
        """memberlist declared ``node`` dead or left."""
        member = self.members.get(node.name)
        if member is None:
            return
        kind: type[MemberEvent]
        if member.status == MemberStatus.LEAVING:
            member.status, kind = MemberStatus.LEFT, MemberLeft
        elif member.status == MemberStatus.ALIVE:
            member.status, kind = MemberStatus.FAILED, MemberFailed
        else:
            self._count("leave_in_bad_state")
            return
        member.leave_time = now
        self._emit(member.event(kind))

    def node_updated(self, node: Node, now: float) -> None:
        """An alive node announced new meta."""
        member = self.members.get(node.name)
        if member is None:
            return
        member.addr, member.port = node.addr, node.port
        member.tags = self._tags(node)
        member.vsn = node.vsn
        self._emit(member.event(MemberUpdated))

    def _tags(self, node: Node) -> dict[str, str]:
        try:
            return decode_tags(node.meta)
        except RemoteProtocolError:
            self._count("bad_tags")
            return {}

    # ------------------------------------------------------------------
    # Intents

    def join_intent(self, intent: Join, now: float) -> Outcome:
        """Apply a join intent; rebroadcast it if it told us something new."""
        self.clock.witness(intent.ltime)
        member = self.members.get(intent.node)
        if member is None:
            return self._buffer_intent(intent.node, False, intent.ltime, now)
        if intent.ltime <= member.status_ltime:
            return Outcome.IGNORE
        member.status_ltime = intent.ltime
        if member.status == MemberStatus.LEAVING:
            member.status = MemberStatus.ALIVE
        return Outcome.REBROADCAST

    def leave_intent(self, intent: Leave, now: float, local_alive: bool) -> Outcome:
        """Apply a leave intent (``local_alive``: we are not leaving ourselves)."""
        self.clock.witness(intent.ltime)
        member = self.members.get(intent.node)
        if member is None:
            return self._buffer_intent(intent.node, True, intent.ltime, now)
        if intent.ltime <= member.status_ltime:
            return Outcome.IGNORE
        if intent.node == self.local_name and local_alive:
            return Outcome.REFUTE
        member.status_ltime = intent.ltime
        if member.status == MemberStatus.ALIVE:
            member.status = MemberStatus.LEAVING
        elif member.status == MemberStatus.FAILED:
            member.status = MemberStatus.LEFT
            self._emit(member.event(MemberLeft))
        elif member.status not in (MemberStatus.LEAVING, MemberStatus.LEFT):
            return Outcome.IGNORE
        if intent.prune:
            self._prune(member, now)
        return Outcome.REBROADCAST

    def _buffer_intent(self, node: str, leave: bool, ltime: int, now: float) -> Outcome:
        known = self._intents.get(node)
        if known is not None and ltime <= known.ltime:
            return Outcome.IGNORE
        self._intents[node] = _Intent(leave, ltime, now)
        return Outcome.REBROADCAST

    def _prune(self, member: MemberState, now: float) -> None:
        """Forget a force-left member: at once, or after the time its own
        graceful leave would take if it is still leaving."""
        if member.status == MemberStatus.LEAVING:
            delay = self.config.broadcast_timeout + self.config.leave_propagate_delay
            self._prunes[member.name] = now + delay
        else:
            self._erase(member)

    # ------------------------------------------------------------------
    # Push/pull

    def status_ltimes(self) -> dict[str, int]:
        """Every member's status time, ourselves included."""
        return {name: m.status_ltime for name, m in self.members.items()}

    def left_names(self) -> list[str]:
        """The members kept as left tombstones."""
        return [m.name for m in self.members.values() if m.status == MemberStatus.LEFT]

    # ------------------------------------------------------------------
    # Time

    def reap(self, now: float) -> None:
        """Forget long-failed and long-left members and stale intents."""
        for member in list(self.members.values()):
            if member.status == MemberStatus.FAILED:
                timeout = self.config.reconnect_timeout
            elif member.status == MemberStatus.LEFT:
                timeout = self.config.tombstone_timeout
            else:
                continue
            if now - member.leave_time > timeout:
                self._erase(member)
        cutoff = now - self.config.recent_intent_timeout
        for name, intent in list(self._intents.items()):
            if intent.seen_at < cutoff:
                del self._intents[name]

    def run_prunes(self, now: float) -> None:
        """Erase the pruned members whose grace period is over."""
        for name, due in list(self._prunes.items()):
            if now >= due:
                del self._prunes[name]
                member = self.members.get(name)
                if member is not None:
                    self._erase(member)

    def next_prune(self) -> float | None:
        """When :meth:`run_prunes` has work, or ``None``."""
        return min(self._prunes.values(), default=None)

    def _erase(self, member: MemberState) -> None:
        self.members.pop(member.name, None)
        self._emit(member.event(MemberReaped))

    # ------------------------------------------------------------------
    # Queries about the table

    def others_alive(self) -> bool:
        """Whether any member but us is alive."""
        return any(
            m.status == MemberStatus.ALIVE and m.name != self.local_name
            for m in self.members.values()
        )

    def with_status(self, status: MemberStatus) -> list[MemberState]:
        """Members in ``status``, in table order."""
        return [m for m in self.members.values() if m.status == status]

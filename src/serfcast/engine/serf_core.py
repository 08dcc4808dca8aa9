"""The state of a Serf node and everything memberlist calls it for.

:class:`SerfCore` is the memberlist delegate half of
:class:`~serfcast.engine.serf.SerfNode`: it builds the node's parts (member
table, event ring, query engine, the three broadcast queues) and answers
memberlist's hooks. Received Serf messages are handled here; a message that
brought news is queued again as the very bytes that arrived. The public
surface lives in :mod:`serfcast.engine.serf`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from serfcast.engine.broadcast import TransmitLimitedQueue
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.memberlist import Memberlist
from serfcast.engine.nodes import Node, format_addr
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import NameConflict, SerfEvent, UserEventReceived
from serfcast.engine.serf_members import MemberTable, Outcome
from serfcast.engine.serf_queries import QueryEngine, refusal_label
from serfcast.engine.serf_steps import LeaveSteps, PendingJoins
from serfcast.errors import RemoteProtocolError
from serfcast.serf import messages as sm
from serfcast.serf.buffers import Accepted, EventBuffer
from serfcast.serf.clock import MAX_LAMPORT_TIME
from serfcast.serf.coalesce import UserEventCoalescer
from serfcast.serf.tags import encode_tags
from serfcast.wire.keyring import Keyring

__all__ = ["SerfCore", "SerfState"]


class SerfState(Enum):
    """Where the node is in its life."""

    ALIVE = "alive"
    LEAVING = "leaving"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class BroadcastQueues:
    """Serf's three queues, in the order packets are filled from them."""

    intents: TransmitLimitedQueue
    queries: TransmitLimitedQueue
    events: TransmitLimitedQueue

    def named(self) -> tuple[tuple[str, TransmitLimitedQueue], ...]:
        """``(label, queue)`` pairs in fill order."""
        return (
            ("intent", self.intents),
            ("query", self.queries),
            ("event", self.events),
        )


class SerfCore:
    """A Serf node's state and its memberlist delegate hooks."""

    def __init__(
        self,
        name: str,
        advertise: tuple[bytes, int],
        *,
        tags: Mapping[str, str] | None = None,
        memberlist_config: MemberlistConfig | None = None,
        keyring: Keyring | None = None,
        rng: random.Random | None = None,
        serf_config: SerfConfig | None = None,
    ) -> None:
        self.name = name
        self.serf_config = cfg = serf_config or SerfConfig()
        self._tags = dict(tags or {})
        self._meta = encode_tags(self._tags)
        self.memberlist = Memberlist(
            name,
            advertise,
            config=memberlist_config,
            delegate=self,
            keyring=keyring,
            rng=rng,
            vsn=cfg.vsn,
        )
        self.state = SerfState.ALIVE
        #: Counters of what was refused, dropped or could not be handled.
        self.stats: dict[str, int] = {}
        self._events: list[SerfEvent] = []
        self._members = MemberTable(name, cfg, self._emit, self._count)
        self._queries = QueryEngine(
            cfg,
            memberlist=self.memberlist,
            members=self._members,
            tags=self._own_tags,
            emit=self._emit,
            count=self._count,
        )
        self._event_buffer = EventBuffer(size=cfg.event_buffer_size)
        self._coalescer = UserEventCoalescer[UserEventReceived](
            cfg.user_coalesce_period, cfg.user_quiescent_period
        )
        # Serf sizes its retransmit limits by its own member count.
        mult = self.memberlist.config.retransmit_mult
        self._queues = BroadcastQueues(
            *(TransmitLimitedQueue(mult, self._members.__len__) for _ in range(3))
        )
        self._joins = PendingJoins()
        self._leave: LeaveSteps | None = None
        self._vote_due = False
        self._timers: dict[str, float] = {}

    def _emit(self, event: SerfEvent) -> None:
        self._events.append(event)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _own_tags(self) -> Mapping[str, str]:
        return self._tags

    # ------------------------------------------------------------------
    # memberlist delegate hooks

    def node_meta(self, limit: int) -> bytes:
        """Our tags as node meta (checked against 512 bytes when set)."""
        return self._meta

    def ack_payload(self) -> bytes | None:
        """Nothing: we send no network coordinate. Go peers skip coordinate
        updates for acks without one, which only leaves ``serf rtt`` blind."""
        return None

    def notify_join(self, node: Node, now: float) -> None:
        """memberlist saw ``node`` alive."""
        self._members.node_joined(node, now)

    def notify_leave(self, node: Node, now: float) -> None:
        """memberlist saw ``node`` die or leave."""
        self._members.node_left(node, now)

    def notify_update(self, node: Node, now: float) -> None:
        """``node`` announced new meta."""
        self._members.node_updated(node, now)

    def notify_conflict(self, existing: Node, other: Node, now: float) -> None:
        """Two addresses claim one name; we may hold a vote on our own."""
        self._emit(NameConflict(existing.name, existing.address, other.address))
        if (
            existing.name == self.name
            and self.serf_config.enable_name_conflict_resolution
        ):
            self._vote_due = True

    def has_broadcasts(self) -> bool:
        """Whether any of the three queues holds a message."""
        return any(len(queue) for _, queue in self._queues.named())

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        """Queued intents, then queries, then events, as many as fit."""
        picked: list[bytes] = []
        used = 0
        for _, queue in self._queues.named():
            messages = queue.get_broadcasts(overhead, limit - used)
            used += sum(len(m) + overhead for m in messages)
            picked.extend(messages)
        return picked

    def notify_msg(self, payload: bytes, now: float) -> None:
        """A Serf message arrived; bad input is counted and dropped."""
        try:
            message = sm.decode_user_message(payload)
        except RemoteProtocolError:
            self._count("bad_serf_messages")
            return
        queue = self._handle(message, now)
        if queue is not None:
            queue.queue(payload)

    def _handle(
        self, message: sm.SerfMessage, now: float
    ) -> TransmitLimitedQueue | None:
        """Act on one message; the queue to gossip it on again, if any."""
        if isinstance(message, sm.Leave):
            news = self._on_leave_intent(message, now)
            return self._queues.intents if news else None
        if isinstance(message, sm.Join):
            outcome = self._members.join_intent(message, now)
            return self._queues.intents if outcome is Outcome.REBROADCAST else None
        if isinstance(message, sm.UserEvent):
            return self._queues.events if self._on_user_event(message, now) else None
        if isinstance(message, sm.Query):
            return self._queues.queries if self._queries.receive(message, now) else None
        if isinstance(message, sm.QueryResponse):
            self._queries.on_reply(message, now)
        elif isinstance(message, sm.Relay):
            self._forward(message, now)
        else:
            self._count("unexpected_serf_messages")
        return None

    def _on_leave_intent(self, intent: sm.Leave, now: float) -> bool:
        alive = self.state is SerfState.ALIVE
        outcome = self._members.leave_intent(intent, now, local_alive=alive)
        if outcome is Outcome.REFUTE:
            self._count("leave_intents_refuted")
            self._broadcast_join(self._members.clock.time(), now)
        return outcome is Outcome.REBROADCAST

    def _broadcast_join(self, ltime: int, now: float) -> None:
        intent = sm.Join(ltime, self.name)
        self._members.clock.witness(ltime)
        self._members.join_intent(intent, now)
        self._queues.intents.queue(intent.encode())

    def _on_user_event(self, event: sm.UserEvent, now: float) -> bool:
        verdict = self._event_buffer.accept(event)
        if not isinstance(verdict, Accepted):
            self._count(f"events_{refusal_label(verdict)}")
            return False
        self._deliver(event, now)
        return verdict.rebroadcast

    def _deliver(self, event: sm.UserEvent, now: float) -> None:
        received = UserEventReceived(
            event.name, event.payload or b"", event.ltime, event.coalesce
        )
        for ready in self._coalescer.push(received, now):
            self._emit(ready)

    def _forward(self, relay: sm.Relay, now: float) -> None:
        """Pass a relayed reply on to the asker, untouched."""
        if len(relay.dest_addr) not in (4, 16) or not relay.inner:
            self._count("bad_relays")
            return
        dest = (format_addr(relay.dest_addr), relay.dest_port)
        self.memberlist.send_user_packet(dest, relay.inner, now)

    # ------------------------------------------------------------------
    # Push/pull

    def local_state(self, join: bool) -> bytes:
        """Serf's half of a push/pull: clocks, status times, the event ring."""
        state = sm.PushPullState(
            ltime=self._members.clock.time(),
            status_ltimes=self._members.status_ltimes(),
            left_members=self._members.left_names(),
            event_ltime=self._event_buffer.event_ltime,
            events=self._event_buffer.export_events(),
            query_ltime=self._queries.buffer.query_ltime,
        )
        return state.encode()

    def merge_remote_state(self, state: bytes, join: bool, now: float) -> None:
        """Take in a peer's push/pull state, as Serf's MergeRemoteState does."""
        try:
            remote = sm.decode_push_pull_state(state)
        except RemoteProtocolError:
            self._count("bad_push_pull_states")
            return
        self._members.clock.witness_peer_clock(remote.ltime)
        self._queries.buffer.witness_push_pull(remote)
        self._merge_intents(remote, now)
        ignore_old = self._joins.ignore_old_active()
        replayed = self._event_buffer.merge_push_pull(
            remote, join=join, ignore_old=ignore_old
        )
        for event, verdict in replayed:
            if isinstance(verdict, Accepted):
                self._deliver(event, now)

    def _merge_intents(self, remote: sm.PushPullState, now: float) -> None:
        # Left members first. Their leave time is not sent, but it must come
        # after their status time, so one past it is used (wrapping like Go).
        left = set(remote.left_members or ())
        for name in remote.left_members or ():
            ltime = (remote.status_ltimes.get(name, 0) + 1) & MAX_LAMPORT_TIME
            self._on_leave_intent(sm.Leave(ltime, name), now)
        for name, ltime in remote.status_ltimes.items():
            if name not in left:
                self._members.join_intent(sm.Join(ltime, name), now)

"""A sans-IO Serf node: Serf's membership, user events and queries on memberlist.

Theory of operation
-------------------
:class:`SerfNode` owns a :class:`~serfcast.engine.memberlist.Memberlist` and is
its delegate. The driver talks to it exactly as to the memberlist engine
(datagrams, stream bytes and time in; actions and the next deadline out) and
also collects Serf events with :meth:`SerfNode.pop_events`.

Serf puts its own messages inside memberlist user messages. Three broadcast
queues hold them, each retransmitted like memberlist's own gossip, and every
outgoing packet is topped up from them in Go's order: intents, then queries,
then user events. A received message that brings news is queued again as the
bytes that arrived, so it spreads unchanged.

* **Intents.** Joining broadcasts a join intent stamped with the member clock;
  leaving broadcasts a leave intent. They let every node tell a graceful leave
  (``left``) from a crash (``failed``); see :mod:`.serf_members`.
* **User events.** Stamped with the event clock and judged by the event ring
  (new, not too old, not a duplicate); delivered once per node, the sender
  included. Coalescing, when configured, holds bursts back locally.
* **Queries.** Gossiped out, answered point to point; see :mod:`.serf_queries`.
* **Push/pull.** memberlist's periodic TCP exchange carries Serf's clocks,
  every member's status time, the left members and the whole event ring; the
  receiver replays the ring through the usual rules (without gossiping it
  again), which repairs events lost over UDP. Joining with ``ignore_old``
  first raises the event floor to the peer's clock, so history is not replayed.

A graceful :meth:`~SerfNode.leave` is a small state machine: leave intent out
(or ``broadcast_timeout``), memberlist's leave out (or ``broadcast_timeout``),
then ``leave_propagate_delay`` while the node still answers probes, then
:class:`~serfcast.engine.serf_events.LeaveComplete`, after which the driver
stops the node.

memberlist calls the delegate hooks (:mod:`.serf_core`) in the middle of its
own work, so they only record what happened; anything that drives memberlist
again (the leave steps, a name-conflict vote) runs once memberlist has
returned, in :meth:`SerfNode._after`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from serfcast.engine.actions import Action, Address
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.memberlist import JoinFinished, LeaveFinished
from serfcast.engine.nodes import format_addr
from serfcast.engine.serf_core import SerfCore, SerfState
from serfcast.engine.serf_events import (
    Member,
    MemberStatus,
    QueryReceived,
    SerfEvent,
)
from serfcast.engine.serf_steps import ConflictVote, LeavePhase, LeaveSteps
from serfcast.errors import LocalProtocolError
from serfcast.serf import messages as sm
from serfcast.serf.buffers import Accepted
from serfcast.serf.tags import encode_tags
from serfcast.wire import gomsgpack as gm

__all__ = ["SerfNode", "SerfState"]


class SerfNode(SerfCore):
    """One Serf member, without any I/O of its own.

    Build it with ``SerfNode(name, (ip_bytes, port), tags=..., keyring=...,
    memberlist_config=..., serf_config=..., rng=...)``, then :meth:`start` it.
    """

    # ------------------------------------------------------------------
    # Driver surface

    @property
    def config(self) -> MemberlistConfig:
        """memberlist's settings (drivers read ``tcp_timeout`` here)."""
        return self.memberlist.config

    def start(self, now: float) -> None:
        """Announce ourselves and start the periodic duties."""
        self.memberlist.start(now)
        cfg = self.serf_config
        self._timers = {
            "reap": now + cfg.reap_interval,
            "reconnect": now + cfg.reconnect_interval,
            "queue_check": now + cfg.queue_check_interval,
        }
        self._after(now)

    def receive_packet(self, data: bytes, source: Address, now: float) -> None:
        """One UDP datagram arrived from ``source``."""
        self.memberlist.receive_packet(data, source, now)
        self._after(now)

    def stream_accepted(self, stream_id: int, peer: Address, now: float) -> None:
        """A peer connected to our TCP listener."""
        self.memberlist.stream_accepted(stream_id, peer, now)
        self._after(now)

    def stream_data(self, stream_id: int, data: bytes, now: float) -> None:
        """Bytes arrived on a stream."""
        self.memberlist.stream_data(stream_id, data, now)
        self._after(now)

    def stream_closed(self, stream_id: int, now: float) -> None:
        """The peer closed a stream."""
        self.memberlist.stream_closed(stream_id, now)
        self._after(now)

    def stream_failed(self, stream_id: int, reason: str, now: float) -> None:
        """Dialling, reading or writing a stream failed, or it timed out."""
        self.memberlist.stream_failed(stream_id, reason, now)
        self._after(now)

    def handle_timeout(self, now: float) -> None:
        """Run whatever is due at ``now``."""
        self.memberlist.handle_timeout(now)
        self._run_timers(now)
        self._members.run_prunes(now)
        self._queries.expire(now)
        for event in self._coalescer.flush_due(now):
            self._emit(event)
        self._after(now)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` should be called next."""
        times = [
            self.memberlist.next_deadline(),
            self._queries.next_deadline(),
            self._members.next_prune(),
            self._coalescer.next_deadline(),
            *self._timers.values(),
        ]
        if self._leave is not None and self._leave.phase is not LeavePhase.DONE:
            times.append(self._leave.deadline)
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def pop_actions(self) -> list[Action]:
        """Everything the driver must do now, in order."""
        return self.memberlist.pop_actions()

    def pop_events(self) -> list[SerfEvent]:
        """Serf events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------
    # Application surface

    def join(
        self, seeds: Sequence[Address], now: float, ignore_old: bool | None = None
    ) -> None:
        """Join the pool through ``seeds``; :class:`JoinFinished` reports back.

        Once at least one seed answered, a join intent is broadcast. With
        ``ignore_old`` (default ``serf_config.join_ignore_old``, true) the
        pool's recent user events are not replayed to us.
        """
        if not self.memberlist.started:
            raise LocalProtocolError("call start() before join()")
        if self.state is not SerfState.ALIVE:
            raise LocalProtocolError("Serf can't Join after Leave or Shutdown")
        if ignore_old is None:
            ignore_old = self.serf_config.join_ignore_old
        self._joins.add(seeds, serf=True, ignore_old=ignore_old)
        self.memberlist.join(list(seeds), now)
        self._after(now)

    def leave(self, now: float) -> None:
        """Leave gracefully; :class:`LeaveComplete` says when to stop."""
        if self.state is SerfState.LEFT:
            return
        if self.state is SerfState.LEAVING:
            raise LocalProtocolError("Leave already in progress")
        if not self.memberlist.started:
            raise LocalProtocolError("call start() before leave()")
        self.state = SerfState.LEAVING
        intent = sm.Leave(self._members.clock.time(), self.name)
        self._members.clock.increment()
        self._on_leave_intent(intent, now)
        self._leave = steps = LeaveSteps(now + self.serf_config.broadcast_timeout)
        if self._members.others_alive():
            self._queues.intents.queue(intent.encode(), on_finished=steps.intent_out)
        else:
            steps.intent_out()  # nobody to tell, as in Serf
        self._after(now)

    def fire_event(
        self, name: str, payload: bytes, coalesce: bool, now: float
    ) -> sm.UserEvent:
        """Send a user event to the pool and deliver it here too, as Serf does.

        Raises :class:`~serfcast.errors.EventTooLargeError` with Serf's words
        when it is over ``user_event_size_limit``; nothing is sent then.
        """
        limit = self.serf_config.user_event_size_limit
        fired = self._event_buffer.fire(name, payload or None, coalesce, limit=limit)
        if isinstance(fired.verdict, Accepted):
            self._deliver(fired.message, now)
        self._queues.events.queue(fired.encoded)
        return fired.message

    def query(
        self,
        name: str,
        payload: bytes = b"",
        *,
        filters: Sequence[sm.NodeFilter | sm.TagFilter] = (),
        request_ack: bool = False,
        timeout: float | None = None,
        relay_factor: int = 0,
        now: float,
    ) -> int:
        """Ask the pool; return the query id.

        Acks and responses arrive as events carrying that id, then
        :class:`QueryFinished` once ``timeout`` seconds (default: Go's, which
        grows with the pool) have passed. Tag filter expressions must be valid
        Go regular expressions.
        """
        query_id, raw = self._queries.ask(
            name,
            payload,
            filters=filters,
            request_ack=request_ack,
            timeout=timeout,
            relay_factor=relay_factor,
            now=now,
        )
        self._queues.queries.queue(raw)
        return query_id

    def respond(self, query: QueryReceived, payload: bytes, now: float) -> None:
        """Answer a received query once, before its deadline, by direct UDP."""
        self._queries.respond(query, payload, now)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Replace our tags and announce them (refused over 512 bytes encoded)."""
        meta = encode_tags(tags)
        self._tags, self._meta = dict(tags), meta
        self.memberlist.update_meta(now)
        self._after(now)

    @property
    def tags(self) -> Mapping[str, str]:
        """Our own tags."""
        return dict(self._tags)

    def members(self) -> list[Member]:
        """Every member we know, left and failed ones included, by name."""
        snapshots = (m.snapshot() for m in self._members.members.values())
        return sorted(snapshots, key=lambda m: m.name)

    @property
    def member_time(self) -> int:
        """The member clock (``serf info`` calls it member_time)."""
        return self._members.clock.time()

    @property
    def event_time(self) -> int:
        """The event clock: the Lamport time of the next event we fire."""
        return self._event_buffer.event_ltime

    @property
    def query_time(self) -> int:
        """The query clock."""
        return self._queries.buffer.query_ltime

    def queue_depths(self) -> dict[str, int]:
        """How many messages wait in each Serf broadcast queue."""
        return {label: len(queue) for label, queue in self._queues.named()}

    # ------------------------------------------------------------------
    # After memberlist has returned

    def _after(self, now: float) -> None:
        self._drain_memberlist(now)
        self._advance_leave(now)
        if self._vote_due:
            self._vote_due = False
            self._start_vote(now)

    def _drain_memberlist(self, now: float) -> None:
        for event in self.memberlist.pop_events():
            if isinstance(event, LeaveFinished):
                if self._leave is not None:
                    self._leave.memberlist_out()
            else:
                self._join_finished(event, now)

    def _join_finished(self, report: JoinFinished, now: float) -> None:
        join = self._joins.finish(report)
        if join is not None and not join.serf:
            return  # our own reconnect attempt: Go announces nothing
        if report.contacted and self.state is SerfState.ALIVE:
            self._broadcast_join(self._members.clock.time(), now)
        self._emit(report)

    def _advance_leave(self, now: float) -> None:
        steps = self._leave
        if steps is None:
            return
        cfg = self.serf_config
        if steps.ready_for_memberlist(now):
            steps.enter(LeavePhase.MEMBERLIST, now + cfg.broadcast_timeout)
            self.memberlist.leave(now)
            self._drain_memberlist(now)
        if steps.ready_to_propagate(now):
            steps.enter(LeavePhase.PROPAGATE, now + cfg.leave_propagate_delay)
        done = steps.finished(now)
        if done is not None:
            self.state = SerfState.LEFT
            self._emit(done)

    def _start_vote(self, now: float) -> None:
        ml = self.memberlist
        vote = ConflictVote(ml.advertise_addr, ml.advertise_port)
        _, raw = self._queries.ask(
            "_serf_conflict",
            gm.encode_str(self.name),
            filters=(),
            request_ack=False,
            timeout=None,
            relay_factor=0,
            now=now,
            on_response=vote.take,
            on_finished=lambda: self._emit(vote.result()),
        )
        self._queues.queries.queue(raw)

    # ------------------------------------------------------------------
    # Periodic duties

    def _run_timers(self, now: float) -> None:
        cfg = self.serf_config
        timers = self._timers
        if "reap" in timers and now >= timers["reap"]:
            timers["reap"] = now + cfg.reap_interval
            self._members.reap(now)
        if "reconnect" in timers and now >= timers["reconnect"]:
            timers["reconnect"] = now + cfg.reconnect_interval
            self._reconnect(now)
        if "queue_check" in timers and now >= timers["queue_check"]:
            timers["queue_check"] = now + cfg.queue_check_interval
            self._check_queues()

    def _reconnect(self, now: float) -> None:
        """Maybe try to reach one failed member again, as Serf does.

        The chance is failed / alive members, so the pool as a whole tries
        each failed member about once per interval.
        """
        if self.state is not SerfState.ALIVE:
            return
        failed = self._members.with_status(MemberStatus.FAILED)
        if not failed:
            return
        left = len(self._members.with_status(MemberStatus.LEFT))
        alive = max(1, len(self._members) - len(failed) - left)
        rng = self.memberlist.rng
        if rng.random() > len(failed) / alive:
            return
        member = rng.choice(failed)
        addr = (format_addr(member.addr), member.port)
        self._joins.add([addr], serf=False, ignore_old=False)
        self.memberlist.join([addr], now)

    def _check_queues(self) -> None:
        cfg = self.serf_config
        for label, queue in self._queues.named():
            depth = len(queue)
            if depth >= cfg.queue_depth_warning:
                self._count(f"{label}_queue_depth_warnings")
            if depth > cfg.max_queue_depth:
                queue.prune(cfg.max_queue_depth)
                pruned = depth - len(queue)
                key = f"{label}_queue_pruned"
                self.stats[key] = self.stats.get(key, 0) + pruned

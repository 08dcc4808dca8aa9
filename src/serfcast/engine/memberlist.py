"""A sans-IO memberlist node: SWIM failure detection, gossip and push/pull.

Theory of operation
-------------------
The engine holds one node's view of the pool. It is driven from outside: the
driver feeds it datagrams (:meth:`Memberlist.receive_packet`), stream bytes
(``stream_*``) and the passage of time (:meth:`Memberlist.handle_timeout`), each
with ``now`` in seconds. In return it queues actions (:meth:`pop_actions`) and
names the next moment it wants to be woken (:meth:`next_deadline`).

Three periodic duties run, as in Go's memberlist:

* **Probing.** Every probe interval one member is pinged, round robin over a
  shuffled list. Without an ack within the probe timeout, up to
  ``indirect_checks`` other members are asked to ping it for us (and, if it speaks
  protocol 3, a TCP ping is tried). If nothing answers before the probe interval
  (scaled by our health score) runs out, the member is *suspected*. A suspicion
  turns into *dead* when its timer runs out unless the member refutes it with a
  higher incarnation; independent confirmations shorten the timer.
* **Gossip.** Every gossip interval a few random members get a packet holding the
  queued broadcasts (alive, suspect and dead messages, and the application's user
  messages), each retransmitted about ``retransmit_mult * log10(n + 1)`` times.
  Broadcasts also ride along on every ping and ack.
* **Push/pull.** Now and then the full member list is exchanged with one random
  member over TCP; joining is a push/pull with the seed.

The alive/suspect/dead rules are Go's: alive needs a strictly higher incarnation,
suspect and dead are accepted at an equal one, a node refutes accusations about
itself with ``max(own, accused) + 1``, and a dead message whose sender is the dead
node itself means it left. Go hands alive, suspect, dead and user messages to a
bounded queue processed by another goroutine; here they are handled at once, so
there is no such queue to overflow.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from serfcast.engine.actions import (
    Action,
    Address,
    CloseStream,
    OpenStream,
    SendPacket,
    StreamWrite,
)
from serfcast.engine.awareness import Awareness
from serfcast.engine.broadcast import TransmitLimitedQueue
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.delegate import Delegate, NullDelegate
from serfcast.engine.nodes import Node, NodeState, format_addr
from serfcast.engine.suspicion import Suspicion, suspicion_k, suspicion_timeout
from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.wire.frames import (
    SAFE_COMPOUND_PARTS,
    Compound,
    Compressed,
    Frame,
    Malformed,
    Message,
    UserMsg,
    compress_frame,
    encode_compound,
)
from serfcast.wire.keyring import Keyring, encryption_overhead
from serfcast.wire.messages import (
    PROTOCOL_VSN,
    Ack,
    Alive,
    Dead,
    ErrResp,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    Suspect,
)
from serfcast.wire.packet import decode_packet, encode_packet
from serfcast.wire.stream import PushPull, StreamDecoder, encode_stream

__all__ = ["JoinFinished", "LeaveFinished", "Memberlist", "MemberlistEvent"]

META_MAX_SIZE: Final = 512
_COMPOUND_OVERHEAD: Final = 2
_PUSH_PULL_SCALE_THRESHOLD: Final = 32


@dataclass(frozen=True, slots=True)
class JoinFinished:
    """A join attempt ended: which seeds answered, and why the others did not."""

    contacted: tuple[Address, ...]
    errors: tuple[tuple[Address, str], ...]


@dataclass(frozen=True, slots=True)
class LeaveFinished:
    """Our leave message has been gossiped as often as it will be."""


MemberlistEvent = JoinFinished | LeaveFinished


@dataclass(slots=True)
class _Probe:
    seq_no: int
    target: str
    start: float
    indirect_at: float
    expires: float
    acked: bool = False
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _AckWaiter:
    """Someone waiting for an ack with this sequence number."""

    expires: float
    on_ack: Callable[[float], None]
    on_timeout: Callable[[float], None] | None = None
    on_nack: Callable[[], None] | None = None


@dataclass(slots=True)
class _Stream:
    purpose: str  # "push_pull", "tcp_ping", "serve", "send"
    decoder: StreamDecoder
    deadline: float
    join: bool = False
    peer: Address = ("", 0)
    on_done: Callable[[bool, str], None] | None = None
    seq_no: int = 0


@dataclass(slots=True)
class _JoinAttempt:
    pending: set[int] = field(default_factory=set)
    contacted: list[Address] = field(default_factory=list)
    errors: list[tuple[Address, str]] = field(default_factory=list)


class Memberlist:
    """One memberlist node, without any I/O of its own."""

    def __init__(
        self,
        name: str,
        advertise: tuple[bytes, int],
        *,
        config: MemberlistConfig | None = None,
        delegate: Delegate | None = None,
        keyring: Keyring | None = None,
        rng: random.Random | None = None,
        vsn: bytes = PROTOCOL_VSN,
    ) -> None:
        self.name = name
        self.config = config or MemberlistConfig()
        self.delegate: Delegate = delegate or NullDelegate()
        self.keyring = keyring
        self.rng = rng or random.Random()
        self.advertise_addr, self.advertise_port = advertise
        self.vsn = vsn
        self.incarnation = 0
        self.nodes: dict[str, Node] = {}
        self._order: list[str] = []
        self._probe_index = 0
        self._seq_no = 0
        self._stream_id = 0
        self.awareness = Awareness(self.config.awareness_max_multiplier)
        self.broadcasts = TransmitLimitedQueue(
            self.config.retransmit_mult, self.num_nodes
        )
        self._suspicions: dict[str, Suspicion] = {}
        self._ack_waiters: dict[int, _AckWaiter] = {}
        self._probe: _Probe | None = None
        self._streams: dict[int, _Stream] = {}
        self._joins: dict[int, _JoinAttempt] = {}
        self._actions: list[Action] = []
        self._events: list[MemberlistEvent] = []
        self._next_probe: float | None = None
        self._next_gossip: float | None = None
        self._next_push_pull: float | None = None
        self.leaving = False
        self.started = False
        #: Counters of what was refused or could not be handled (for drivers' logs).
        self.stats: dict[str, int] = {}

    # ------------------------------------------------------------------------
    # Public surface

    def start(self, now: float) -> None:
        """Announce ourselves alive and start the periodic duties."""
        if self.started:
            raise LocalProtocolError("this memberlist node is already started")
        self.started = True
        meta = self.delegate.node_meta(META_MAX_SIZE)
        if len(meta) > META_MAX_SIZE:
            raise LocalProtocolError(
                f"node meta is {len(meta)} bytes; the limit is {META_MAX_SIZE}"
            )
        self.incarnation = 1
        self._alive_node(self._own_alive(meta), now, bootstrap=True)
        self._next_probe = now + self.config.probe_interval
        self._next_gossip = now + self.config.gossip_interval
        self._next_push_pull = now + self._push_pull_interval()

    def join(self, seeds: list[Address], now: float) -> None:
        """Push/pull with every seed; a :class:`JoinFinished` event reports back."""
        attempt = _JoinAttempt()
        for addr in seeds:
            sid = self._open_push_pull(addr, now, join=True)
            attempt.pending.add(sid)
            self._joins[sid] = attempt
        if not seeds:
            self._events.append(JoinFinished((), ()))

    def leave(self, now: float) -> None:
        """Tell the pool we leave; :class:`LeaveFinished` follows once it is out."""
        if self.leaving:
            return
        self.leaving = True
        me = self.nodes.get(self.name)
        if me is None:
            self._events.append(LeaveFinished())
            return
        self._dead_node(Dead(self.incarnation, self.name, self.name), now)
        if not self._others_alive():
            self._finish_leave()

    def update_meta(self, now: float) -> None:
        """Re-read our meta from the delegate and announce it with a new incarnation."""
        meta = self.delegate.node_meta(META_MAX_SIZE)
        self.incarnation += 1
        alive = self._own_alive(meta)
        self._alive_node(alive, now, bootstrap=True)

    def _own_alive(self, meta: bytes) -> Alive:
        return Alive(
            self.incarnation,
            self.name,
            self.advertise_addr,
            self.advertise_port,
            meta,
            self.vsn,
        )

    def num_nodes(self) -> int:
        """Every node in the list, dead and left ones not yet reaped included."""
        return len(self.nodes)

    def alive_members(self) -> list[Node]:
        """Nodes currently alive or suspect (as Go's ``Members`` reports them)."""
        return [
            n
            for n in self.nodes.values()
            if n.state in (NodeState.ALIVE, NodeState.SUSPECT)
        ]

    def pop_actions(self) -> list[Action]:
        """Everything the driver must do now, in order."""
        actions, self._actions = self._actions, []
        return actions

    def pop_events(self) -> list[MemberlistEvent]:
        """Join and leave completions since the last call."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` should be called next."""
        gossip = self._next_gossip if self._has_broadcasts() else None
        times = [self._next_probe, gossip, self._next_push_pull]
        if self._probe is not None:
            probe = self._probe
            times.append(probe.expires if probe.indirect_sent else probe.indirect_at)
        times.extend(w.expires for w in self._ack_waiters.values())
        times.extend(s.deadline for s in self._suspicions.values())
        times.extend(s.deadline for s in self._streams.values())
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def send_user_packet(self, addr: Address, payload: bytes, now: float) -> None:
        """Send a user message by UDP to ``addr`` (Go's ``SendToAddress``)."""
        node = self._node_at(addr)
        self._send_raw(addr, node, UserMsg(payload).encode())

    def send_user_stream(self, addr: Address, payload: bytes, now: float) -> None:
        """Send a user message over a TCP stream (Go's ``SendReliable``)."""
        message = UserMsg(payload)
        self._open_stream(addr, message, now, purpose="send", expect_reply=False)

    # ------------------------------------------------------------------------
    # Time

    def handle_timeout(self, now: float) -> None:
        """Run whatever is due at ``now``."""
        self._expire_streams(now)
        self._expire_ack_waiters(now)
        self._advance_probe(now)
        self._expire_suspicions(now)
        if (
            self._next_probe is not None
            and now >= self._next_probe
            and self._probe is None
        ):
            self._start_probe(now)
        if self._next_gossip is not None and now >= self._next_gossip:
            self._next_gossip = self._next_tick(self._next_gossip, now)
            if self._has_broadcasts():
                self._gossip(now)
        if self._next_push_pull is not None and now >= self._next_push_pull:
            self._next_push_pull = now + self._push_pull_interval()
            self._periodic_push_pull(now)

    def _has_broadcasts(self) -> bool:
        # A gossip tick with nothing to send is skipped entirely, so an idle node
        # is not woken five times a second for nothing. Ticks stay on Go's grid.
        has_user = getattr(self.delegate, "has_broadcasts", None)
        return bool(self.broadcasts) or has_user is None or bool(has_user())

    def _next_tick(self, due: float, now: float) -> float:
        interval = self.config.gossip_interval
        missed = math.floor((now - due) / interval) + 1
        return due + missed * interval

    def _push_pull_interval(self) -> float:
        n = len(self.nodes)
        interval = self.config.push_pull_interval
        if n <= _PUSH_PULL_SCALE_THRESHOLD:
            return interval
        return interval * (
            math.ceil(math.log2(n) - math.log2(_PUSH_PULL_SCALE_THRESHOLD)) + 1
        )

    # ------------------------------------------------------------------------
    # Sending

    def _next_seq(self) -> int:
        self._seq_no = (self._seq_no + 1) & 0xFFFF_FFFF
        return self._seq_no

    def _packet_budget(self, verify_outgoing: bool) -> int:
        budget = self.config.udp_buffer_size - _COMPOUND_OVERHEAD
        if self.config.label:
            budget -= 2 + len(self.config.label)
        if self.keyring and verify_outgoing:
            budget -= encryption_overhead(self._encryption_version())
        return budget

    def _encryption_version(self) -> int:
        return 0 if self.config.protocol_version < 2 else 1

    def _collect_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        messages = self.broadcasts.get_broadcasts(overhead, limit)
        used = sum(len(m) + overhead for m in messages)
        remaining = limit - used
        if remaining > 3:  # room for at least one framed user message
            user = self.delegate.get_broadcasts(overhead + 1, remaining)
            messages.extend(b"\x08" + m for m in user)
        return messages

    def _send_msg(self, addr: Address, node: Node | None, message: bytes) -> None:
        """Send one message with as many piggybacked broadcasts as fit."""
        budget = self._packet_budget(self.config.gossip_verify_outgoing) - len(message)
        extras = self._collect_broadcasts(2, budget) if budget > 0 else []
        if not extras:
            self._send_raw(addr, node, message)
            return
        parts = [message, *extras][:SAFE_COMPOUND_PARTS]
        self._send_raw(addr, node, encode_compound(parts))

    def _send_raw(self, addr: Address, node: Node | None, data: bytes) -> None:
        if self.config.enable_compression:
            packed = compress_frame(data)
            data = packed if len(packed) < len(data) else data
        crc = node is not None and node.pmax >= 5
        keyring = self.keyring if self.config.gossip_verify_outgoing else None
        packet = encode_packet(data, crc=crc, keyring=keyring, label=self.config.label)
        self._actions.append(SendPacket(addr, packet))

    def _node_at(self, addr: Address) -> Node | None:
        for node in self.nodes.values():
            if node.address == addr:
                return node
        return None

    # ------------------------------------------------------------------------
    # Receiving datagrams

    def receive_packet(self, data: bytes, source: Address, now: float) -> None:
        """Handle one datagram; bad input is counted and dropped, never raised."""
        try:
            packet = decode_packet(
                data,
                keyring=self.keyring,
                label=self.config.label,
                verify_incoming=self.config.gossip_verify_incoming,
            )
        except RemoteProtocolError:
            self._count("bad_packets")
            return
        self._handle_frame(packet.frame, source, now)

    def _handle_frame(self, frame: Frame, source: Address, now: float) -> None:
        if isinstance(frame, Compound):
            for part in frame.parts:
                self._handle_frame(part, source, now)
        elif isinstance(frame, Compressed):
            self._handle_frame(frame.inner, source, now)
        elif isinstance(frame, Malformed):
            self._count("bad_messages")
        else:
            self._handle_message(frame, source, now)

    def _handle_message(self, message: Message, source: Address, now: float) -> None:
        if isinstance(message, Ping):
            self._on_ping(message, source, now)
        elif isinstance(message, IndirectPing):
            self._on_indirect_ping(message, source, now)
        elif isinstance(message, Ack):
            self._on_ack(message, now)
        elif isinstance(message, Nack):
            self._on_nack(message)
        elif isinstance(message, Alive):
            self._alive_node(message, now)
        elif isinstance(message, Suspect):
            self._suspect_node(message, now)
        elif isinstance(message, Dead):
            self._dead_node(message, now)
        elif isinstance(message, UserMsg):
            if message.payload:
                self.delegate.notify_msg(message.payload, now)
        else:
            self._count("unexpected_messages")

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _reply_address(self, addr: bytes, port: int, source: Address) -> Address:
        if addr and port:
            return (format_addr(addr), port)
        return source

    def _on_ping(self, ping: Ping, source: Address, now: float) -> None:
        if ping.node and ping.node != self.name:
            self._count("pings_for_others")
            return
        ack = Ack(ping.seq_no, self.delegate.ack_payload())
        dest = self._reply_address(ping.source_addr, ping.source_port, source)
        self._send_msg(dest, self.nodes.get(ping.source_node), ack.encode())

    def _on_indirect_ping(self, req: IndirectPing, source: Address, now: float) -> None:
        seq = self._next_seq()
        target = (format_addr(req.target), req.port or self.advertise_port)
        requester = self._reply_address(req.source_addr, req.source_port, source)
        ping = Ping(seq, req.node, self.advertise_addr, self.advertise_port, self.name)

        def forward_ack(_: float) -> None:
            self._send_msg(requester, None, Ack(req.seq_no).encode())

        def send_nack(_: float) -> None:
            if req.nack:
                self._send_msg(requester, None, Nack(req.seq_no).encode())

        self._ack_waiters[seq] = _AckWaiter(
            now + self.config.probe_timeout, forward_ack, send_nack
        )
        self._send_msg(target, self.nodes.get(req.node), ping.encode())

    def _on_ack(self, ack: Ack, now: float) -> None:
        waiter = self._ack_waiters.pop(ack.seq_no, None)
        if waiter is not None:
            waiter.on_ack(now)

    def _on_nack(self, nack: Nack) -> None:
        waiter = self._ack_waiters.get(nack.seq_no)
        if waiter is not None and waiter.on_nack is not None:
            waiter.on_nack()

    def _expire_ack_waiters(self, now: float) -> None:
        for seq, waiter in list(self._ack_waiters.items()):
            if now >= waiter.expires:
                del self._ack_waiters[seq]
                if waiter.on_timeout is not None:
                    waiter.on_timeout(now)

    # ------------------------------------------------------------------------
    # Probing

    def _probe_candidates(self) -> list[str]:
        return [
            name
            for name in self._order
            if name != self.name
            and self.nodes[name].state in (NodeState.ALIVE, NodeState.SUSPECT)
        ]

    def _pick_probe_target(self, now: float) -> Node | None:
        checked = 0
        while checked < len(self._order):
            if self._probe_index >= len(self._order):
                self._reset_probe_order(now)
                checked += 1
                continue
            name = self._order[self._probe_index]
            self._probe_index += 1
            checked += 1
            node = self.nodes.get(name)
            if node is None or name == self.name:
                continue
            if node.state in (NodeState.DEAD, NodeState.LEFT):
                continue
            return node
        return None

    def _reset_probe_order(self, now: float) -> None:
        """On wrap-around: reap long-dead nodes and reshuffle, as Go does."""
        cutoff = now - self.config.gossip_to_the_dead_time
        for name in list(self._order):
            node = self.nodes[name]
            if (
                name != self.name
                and node.state in (NodeState.DEAD, NodeState.LEFT)
                and node.state_change < cutoff
            ):
                del self.nodes[name]
        self._order = [n for n in self._order if n in self.nodes]
        self.rng.shuffle(self._order)
        self._probe_index = 0

    def _start_probe(self, now: float) -> None:
        interval = self.config.probe_interval
        self._next_probe = now + interval
        node = self._pick_probe_target(now)
        if node is None:
            return
        seq = self._next_seq()
        scaled = self.awareness.scale_timeout(interval)
        probe = _Probe(
            seq, node.name, now, now + self.config.probe_timeout, now + scaled
        )
        self._probe = probe
        self._next_probe = now + max(interval, scaled)

        def acked(_: float) -> None:
            self._probe_succeeded(probe)

        def nacked() -> None:
            probe.nacks += 1

        self._ack_waiters[seq] = _AckWaiter(probe.expires, acked, None, nacked)
        ping = Ping(seq, node.name, self.advertise_addr, self.advertise_port, self.name)
        if node.state == NodeState.ALIVE:
            self._send_msg(node.address, node, ping.encode())
        else:
            suspect = Suspect(node.incarnation, node.name, self.name)
            self._send_raw(
                node.address, node, encode_compound([ping.encode(), suspect.encode()])
            )

    def _probe_succeeded(self, probe: _Probe) -> None:
        if probe.acked or self._probe is not probe:
            return
        probe.acked = True
        self._probe = None
        self._ack_waiters.pop(probe.seq_no, None)
        self.awareness.apply_delta(-1)

    def _advance_probe(self, now: float) -> None:
        probe = self._probe
        if probe is None:
            return
        if not probe.indirect_sent and now >= probe.indirect_at:
            self._send_indirect_probes(probe, now)
        if now >= probe.expires:
            self._probe = None
            self._ack_waiters.pop(probe.seq_no, None)
            self._probe_failed(probe, now)

    def _send_indirect_probes(self, probe: _Probe, now: float) -> None:
        probe.indirect_sent = True
        target = self.nodes.get(probe.target)
        if target is None:
            return
        helpers = [
            n
            for n in self.nodes.values()
            if n.name not in (self.name, probe.target) and n.state == NodeState.ALIVE
        ]
        self.rng.shuffle(helpers)
        for helper in helpers[: self.config.indirect_checks]:
            wants_nack = helper.pmax >= 4
            probe.expected_nacks += wants_nack
            req = IndirectPing(
                probe.seq_no,
                target.addr,
                target.port,
                target.name,
                wants_nack,
                self.advertise_addr,
                self.advertise_port,
                self.name,
            )
            self._send_msg(helper.address, helper, req.encode())
        if target.pmax >= 3 and not self.config.disable_tcp_pings:
            self._tcp_ping(probe, target, now)

    def _tcp_ping(self, probe: _Probe, target: Node, now: float) -> None:
        ping = Ping(
            probe.seq_no,
            target.name,
            self.advertise_addr,
            self.advertise_port,
            self.name,
        )

        def done(ok: bool, _: str) -> None:
            if ok:
                self._probe_succeeded(probe)

        sid = self._open_stream(
            target.address,
            ping,
            now,
            purpose="tcp_ping",
            expect_reply=True,
            timeout=max(probe.expires - now, 0.001),
            on_done=done,
        )
        self._streams[sid].seq_no = probe.seq_no

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        if probe.expected_nacks > 0:
            self.awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self.awareness.apply_delta(1)
        node = self.nodes.get(probe.target)
        if node is not None:
            # Also when the node is already suspect: our own failed probe is an
            # independent confirmation that shortens the suspicion, as in Go.
            self._suspect_node(Suspect(node.incarnation, node.name, self.name), now)

    # ------------------------------------------------------------------------
    # Gossip

    def _gossip_targets(self, now: float) -> list[Node]:
        cutoff = now - self.config.gossip_to_the_dead_time
        eligible = [
            n
            for n in self.nodes.values()
            if n.name != self.name
            and (
                n.state in (NodeState.ALIVE, NodeState.SUSPECT)
                or (n.state == NodeState.DEAD and n.state_change >= cutoff)
            )
        ]
        return self.rng.sample(eligible, min(self.config.gossip_nodes, len(eligible)))

    def _gossip(self, now: float) -> None:
        for node in self._gossip_targets(now):
            budget = self._packet_budget(verify_outgoing=True)
            messages = self._collect_broadcasts(2, budget)
            if not messages:
                return
            for start in range(0, len(messages), SAFE_COMPOUND_PARTS):
                chunk = messages[start : start + SAFE_COMPOUND_PARTS]
                data = chunk[0] if len(chunk) == 1 else encode_compound(chunk)
                self._send_raw(node.address, node, data)

    def _broadcast(
        self, key: str, message: bytes, on_finished: Callable[[], None] | None = None
    ) -> None:
        self.broadcasts.queue(message, name=key, on_finished=on_finished)

    # ------------------------------------------------------------------------
    # alive / suspect / dead

    def _alive_node(self, alive: Alive, now: float, bootstrap: bool = False) -> None:
        if self.leaving and alive.node == self.name:
            return
        if len(alive.vsn) >= 3 and (
            alive.vsn[0] == 0 or alive.vsn[1] == 0 or alive.vsn[0] > alive.vsn[1]
        ):
            self._count("bad_vsn")
            return
        node = self.nodes.get(alive.node)
        updated_address = False
        if node is None:
            node = Node(
                alive.node,
                alive.addr,
                alive.port,
                alive.meta,
                0,
                NodeState.DEAD,
                alive.vsn,
                now,
            )
            self.nodes[alive.node] = node
            self._order.insert(self.rng.randint(0, len(self._order)), alive.node)
        elif node.addr != alive.addr or node.port != alive.port:
            if not self._may_take_over(node, now):
                other = Node(
                    alive.node,
                    alive.addr,
                    alive.port,
                    alive.meta,
                    alive.incarnation,
                    NodeState.ALIVE,
                    alive.vsn,
                    now,
                )
                self.delegate.notify_conflict(node, other, now)
                self._count("address_conflicts")
                return
            updated_address = True
        is_local = alive.node == self.name
        if is_local and alive.incarnation < node.incarnation:
            return
        if (
            not is_local
            and alive.incarnation <= node.incarnation
            and not updated_address
        ):
            return
        if is_local and not bootstrap:
            if (
                alive.incarnation == node.incarnation
                and (alive.meta or b"") == (node.meta or b"")
                and alive.vsn == self.vsn
            ):
                return
            self._refute(node, alive.incarnation, now)
            return
        self._broadcast(alive.node, alive.encode())
        old_state, old_meta = node.state, node.meta
        if len(alive.vsn) >= 6:
            node.vsn = alive.vsn
        node.incarnation = alive.incarnation
        node.meta = alive.meta
        node.addr, node.port = alive.addr, alive.port
        if node.state != NodeState.ALIVE:
            node.state = NodeState.ALIVE
            node.state_change = now
        self._suspicions.pop(node.name, None)
        if old_state in (NodeState.DEAD, NodeState.LEFT):
            self.delegate.notify_join(node, now)
        elif (old_meta or b"") != (alive.meta or b""):
            self.delegate.notify_update(node, now)

    def _may_take_over(self, node: Node, now: float) -> bool:
        if node.state == NodeState.LEFT:
            return True
        reclaim = self.config.dead_node_reclaim_time
        return (
            node.state == NodeState.DEAD
            and reclaim > 0
            and now - node.state_change > reclaim
        )

    def _refute(self, me: Node, accused: int, now: float) -> None:
        self.incarnation = max(self.incarnation, accused) + 1
        me.incarnation = self.incarnation
        self.awareness.apply_delta(1)
        meta = self.delegate.node_meta(META_MAX_SIZE)
        me.meta = meta
        alive = self._own_alive(meta)
        # Go keys this broadcast by address, not by name, so it does not replace
        # queued suspect or dead messages about us (see protocol-notes.md).
        self._broadcast(
            f"{format_addr(self.advertise_addr)}:{self.advertise_port}", alive.encode()
        )

    def _suspect_node(self, suspect: Suspect, now: float) -> None:
        node = self.nodes.get(suspect.node)
        if node is None or suspect.incarnation < node.incarnation:
            return
        timer = self._suspicions.get(node.name)
        if timer is not None:
            if timer.confirm(suspect.from_node, now):
                self._broadcast(node.name, suspect.encode())
            return
        if node.state != NodeState.ALIVE:
            return
        if node.name == self.name:
            self._refute(node, suspect.incarnation, now)
            return
        self._broadcast(node.name, suspect.encode())
        node.incarnation = suspect.incarnation
        node.state = NodeState.SUSPECT
        node.state_change = now
        n = len(self.nodes)
        k = suspicion_k(self.config.suspicion_mult, n)
        low = suspicion_timeout(
            self.config.suspicion_mult, n, self.config.probe_interval
        )
        high = self.config.suspicion_max_timeout_mult * low
        self._suspicions[node.name] = Suspicion(suspect.from_node, k, low, high, now)

    def _expire_suspicions(self, now: float) -> None:
        for name, timer in list(self._suspicions.items()):
            if now < timer.deadline:
                continue
            del self._suspicions[name]
            node = self.nodes.get(name)
            if node is not None and node.state == NodeState.SUSPECT:
                self._dead_node(Dead(node.incarnation, name, self.name), now)

    def _dead_node(self, dead: Dead, now: float) -> None:
        node = self.nodes.get(dead.node)
        if node is None or dead.incarnation < node.incarnation:
            return
        self._suspicions.pop(node.name, None)
        if node.state in (NodeState.DEAD, NodeState.LEFT):
            return
        if node.name == self.name:
            if not self.leaving:
                self._refute(node, dead.incarnation, now)
                return
            self._broadcast(node.name, dead.encode(), self._finish_leave)
        else:
            self._broadcast(node.name, dead.encode())
        node.incarnation = dead.incarnation
        node.state = NodeState.LEFT if dead.node == dead.from_node else NodeState.DEAD
        node.state_change = now
        self.delegate.notify_leave(node, now)

    def _finish_leave(self) -> None:
        self._events.append(LeaveFinished())

    def _others_alive(self) -> bool:
        return any(
            n.state == NodeState.ALIVE
            for n in self.nodes.values()
            if n.name != self.name
        )

    # ------------------------------------------------------------------------
    # Push/pull

    def _local_push_pull(self, join: bool) -> PushPull:
        states = tuple(
            PushNodeState(n.name, n.addr, n.port, n.meta, n.incarnation, n.state, n.vsn)
            for n in self.nodes.values()
        )
        return PushPull(join, states, self.delegate.local_state(join))

    def _periodic_push_pull(self, now: float) -> None:
        candidates = [
            n
            for n in self.nodes.values()
            if n.name != self.name and n.state == NodeState.ALIVE
        ]
        if candidates:
            node = self.rng.choice(candidates)
            self._open_push_pull(node.address, now, join=False)

    def _open_push_pull(self, addr: Address, now: float, join: bool) -> int:
        sid = self._open_stream(
            addr,
            self._local_push_pull(join),
            now,
            purpose="push_pull",
            expect_reply=True,
        )
        self._streams[sid].join = join
        return sid

    def _merge_remote(self, remote: PushPull, now: float) -> None:
        if not _versions_compatible(remote.nodes, self.alive_members()):
            self._count("incompatible_push_pulls")
            return
        for state in remote.nodes:
            self._merge_state(state, now)
        self.delegate.merge_remote_state(remote.user_state, remote.join, now)

    def _merge_state(self, state: PushNodeState, now: float) -> None:
        if state.state == NodeState.ALIVE:
            alive = Alive(
                state.incarnation,
                state.name,
                state.addr,
                state.port,
                state.meta,
                state.vsn,
            )
            self._alive_node(alive, now)
        elif state.state == NodeState.LEFT:
            self._dead_node(Dead(state.incarnation, state.name, state.name), now)
        elif state.state in (NodeState.DEAD, NodeState.SUSPECT):
            self._suspect_node(Suspect(state.incarnation, state.name, self.name), now)

    # ------------------------------------------------------------------------
    # Streams

    def _new_decoder(self, accepting: bool) -> StreamDecoder:
        return StreamDecoder(
            keyring=self.keyring,
            label=self.config.label,
            expect_label_header=accepting,
            verify_incoming=self.config.gossip_verify_incoming,
        )

    def _stream_bytes(
        self, message: PushPull | Ping | Ack | UserMsg | ErrResp, dialer: bool
    ) -> bytes:
        keyring = self.keyring if self.config.gossip_verify_outgoing else None
        return encode_stream(
            message,
            compress=self.config.enable_compression,
            keyring=keyring,
            label=self.config.label,
            dialer=dialer,
            encryption_version=self._encryption_version(),
        )

    def _open_stream(
        self,
        addr: Address,
        message: PushPull | Ping | UserMsg,
        now: float,
        *,
        purpose: str,
        expect_reply: bool,
        timeout: float | None = None,
        on_done: Callable[[bool, str], None] | None = None,
    ) -> int:
        self._stream_id += 1
        sid = self._stream_id
        limit = self.config.tcp_timeout if timeout is None else timeout
        data = self._stream_bytes(message, dialer=True)
        self._actions.append(OpenStream(sid, addr, data, limit, expect_reply))
        if expect_reply:
            self._streams[sid] = _Stream(
                purpose,
                self._new_decoder(False),
                now + limit,
                peer=addr,
                on_done=on_done,
            )
        return sid

    def stream_accepted(self, stream_id: int, peer: Address, now: float) -> None:
        """A peer connected to our TCP listener."""
        self._streams[stream_id] = _Stream(
            "serve", self._new_decoder(True), now + self.config.tcp_timeout, peer=peer
        )

    def stream_data(self, stream_id: int, data: bytes, now: float) -> None:
        """Bytes arrived on a stream."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        try:
            frame = stream.decoder.feed(data)
        except RemoteProtocolError as exc:
            self._stream_error(stream_id, stream, str(exc), now)
            return
        if frame is not None:
            self._stream_complete(stream_id, stream, frame.message, now)

    def stream_closed(self, stream_id: int, now: float) -> None:
        """The peer closed the stream (or the driver finished writing)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(
                stream_id, stream, "connection closed early", now, reply=False
            )

    def stream_failed(self, stream_id: int, reason: str, now: float) -> None:
        """Dialling, writing or reading failed, or the timeout passed."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(stream_id, stream, reason, now, reply=False)

    def _expire_streams(self, now: float) -> None:
        for sid, stream in list(self._streams.items()):
            if now >= stream.deadline:
                self._stream_error(sid, stream, "timed out", now, reply=False)

    def _stream_error(
        self, sid: int, stream: _Stream, reason: str, now: float, reply: bool = True
    ) -> None:
        del self._streams[sid]
        if stream.purpose == "serve" and reply:
            self._actions.append(
                StreamWrite(sid, self._stream_bytes(ErrResp(reason), dialer=False))
            )
        self._actions.append(CloseStream(sid))
        self._count(f"stream_errors_{stream.purpose}")
        self._stream_finished(sid, stream, False, reason)

    def _stream_finished(
        self, sid: int, stream: _Stream, ok: bool, reason: str
    ) -> None:
        if stream.on_done is not None:
            stream.on_done(ok, reason)
        attempt = self._joins.pop(sid, None)
        if attempt is None:
            return
        attempt.pending.discard(sid)
        if ok:
            attempt.contacted.append(stream.peer)
        else:
            attempt.errors.append((stream.peer, reason))
        if not attempt.pending:
            self._events.append(
                JoinFinished(tuple(attempt.contacted), tuple(attempt.errors))
            )

    def _stream_complete(
        self,
        sid: int,
        stream: _Stream,
        message: PushPull | Ping | Ack | UserMsg | ErrResp,
        now: float,
    ) -> None:
        del self._streams[sid]
        if stream.purpose == "serve":
            self._serve(sid, message, now)
            self._actions.append(CloseStream(sid))
            return
        self._actions.append(CloseStream(sid))
        if isinstance(message, ErrResp):
            self._stream_finished(sid, stream, False, f"remote error: {message.error}")
        elif stream.purpose == "push_pull" and isinstance(message, PushPull):
            self._stream_finished(sid, stream, True, "")
            self._merge_remote(message, now)
        elif stream.purpose == "tcp_ping" and isinstance(message, Ack):
            self._stream_finished(sid, stream, message.seq_no == stream.seq_no, "")
        else:
            self._stream_finished(sid, stream, False, "unexpected reply")

    def _serve(
        self, sid: int, message: PushPull | Ping | Ack | UserMsg | ErrResp, now: float
    ) -> None:
        if isinstance(message, PushPull):
            reply = self._local_push_pull(message.join)
            self._actions.append(
                StreamWrite(sid, self._stream_bytes(reply, dialer=False))
            )
            self._merge_remote(message, now)
        elif isinstance(message, UserMsg):
            if message.payload:
                self.delegate.notify_msg(message.payload, now)
        elif isinstance(message, Ping):
            if not message.node or message.node == self.name:
                ack = Ack(message.seq_no)
                self._actions.append(
                    StreamWrite(sid, self._stream_bytes(ack, dialer=False))
                )
        else:
            self._count("unexpected_stream_messages")


def _versions_compatible(remote: tuple[PushNodeState, ...], local: list[Node]) -> bool:
    """Go's push/pull version check: every pushed node's current versions must lie
    within the range all alive nodes (local and pushed) understand."""
    vsns = [n.vsn for n in local] + [
        s.vsn for s in remote if s.state == NodeState.ALIVE and len(s.vsn) >= 5
    ]
    vsns = [v for v in vsns if len(v) >= 5]
    if not vsns:
        return True
    max_pmin = max(v[0] for v in vsns)
    min_pmax = min(v[1] for v in vsns)
    max_dmin = max(v[3] for v in vsns)
    min_dmax = min(v[4] for v in vsns)
    for state in remote:
        pcur = state.vsn[2] if len(state.vsn) >= 6 else 0
        dcur = state.vsn[5] if len(state.vsn) >= 6 else 0
        if not (max_pmin <= pcur <= min_pmax and max_dmin <= dcur <= min_dmax):
            return False
    return True

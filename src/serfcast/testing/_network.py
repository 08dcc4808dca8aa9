"""The simulated network: many engines, one virtual clock, one seeded RNG.

Theory of operation
-------------------
Everything that will happen is an entry in one heap ordered by virtual time and
then by the order it was scheduled: a datagram arriving, a stream segment
arriving, a dialler's timeout, a call the test scheduled, or an engine's own
deadline. Running the network pops entries in that order, moves the clock to
each entry's time and runs it. Nothing else advances the clock, so a run takes
as long as the work in it, not as long as the virtual time it covers.

After any call into an engine the network *settles* it: it performs the actions
the engine queued (a datagram is sampled for loss, duplication and delay and
scheduled; a stream is opened, written or closed), collects its events, and
re-reads its next deadline. A changed deadline pushes a new wake-up entry; the
old one stays in the heap but carries a stale token and is skipped. Engines
are settled only when touched, so a test that calls an engine directly should
do it through :meth:`SimNetwork.invoke` (every run call also settles all nodes
first, to catch direct calls made between runs).

All randomness comes from the seed: the network's own choices from one
``random.Random``, and every engine gets its own generator derived from the
seed and its name, so adding a node does not change what others draw. Entries
at equal times run in the order they were scheduled, dictionaries keep
insertion order, and nothing reads the wall clock: the same seed and the same
calls give the same run.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Final, Protocol, runtime_checkable

from serfcast.drivers.base import advertise_address
from serfcast.engine.actions import (
    Action,
    Address,
    CloseStream,
    OpenStream,
    SendPacket,
    StreamWrite,
)
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.delegate import Delegate, NullDelegate
from serfcast.engine.memberlist import Memberlist
from serfcast.engine.nodes import Node, NodeState
from serfcast.errors import LocalProtocolError
from serfcast.testing._links import LinkConfig, Partitions, sample_datagram
from serfcast.testing._node import EngineProtocol, MembersView, SimNode
from serfcast.testing._observe import (
    MembershipChange,
    MembershipRecorder,
    ObservingDelegate,
    UserMessageHook,
)
from serfcast.testing._scheduler import (
    DEFAULT_MAX_STEPS,
    Scheduler,
    SimulationLimitExceeded,
)
from serfcast.testing._streams import StreamTable
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import PROTOCOL_VSN

__all__ = ["DEFAULT_PORT", "SimNetwork"]

#: An engine woken this many times at one instant is not moving its deadline on.
MAX_WAKES_PER_INSTANT: Final = 1000
#: memberlist's default port; every simulated host has its own address.
DEFAULT_PORT: Final = 7946
_FIRST_HOST = int(ipaddress.IPv4Address("10.0.0.0"))
_MAX_HOSTS = 2**24 - 2

#: Called for every delivered datagram: time, sender, receiver, bytes.
PacketHook = Callable[[float, str, str, bytes], None]


@runtime_checkable
class _Joinable(Protocol):
    def join(self, seeds: list[Address], now: float) -> None: ...


class SimNetwork:
    """A seeded in-memory network of engines under virtual time.

    ``loss``, ``duplicate``, ``delay`` and ``reorder`` set the default
    :class:`~serfcast.testing.LinkConfig` of every link; :meth:`set_link`
    overrides single links and :meth:`partition` cuts groups apart.
    """

    def __init__(
        self,
        seed: int | str,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.005),
        reorder: float = 0.0,
        start_time: float = 0.0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(_derive(seed, "network"))
        self.default_link = LinkConfig(loss, duplicate, delay, reorder)
        #: Every node ever added, by name, killed ones included.
        self.nodes: dict[str, SimNode] = {}
        self._by_address: dict[Address, SimNode] = {}
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._partitions = Partitions()
        self._clock = Scheduler(start_time)
        self._streams = StreamTable(self)
        self._user_hooks: list[UserMessageHook] = []
        self._packet_hooks: list[PacketHook] = []
        self._recorder: MembershipRecorder | None = None
        self._hosts = 0

    @property
    def now(self) -> float:
        """The virtual time, in seconds."""
        return self._clock.now

    @property
    def _now(self) -> float:
        return self._clock.now

    # ------------------------------------------------------------------------
    # Nodes

    def new_address(self, port: int = DEFAULT_PORT) -> Address:
        """A fresh fake host address: ``10.0.0.1``, ``10.0.0.2``, ... (IPv4)."""
        if self._hosts >= _MAX_HOSTS:
            raise LocalProtocolError("the simulated 10.0.0.0/8 network is full")
        self._hosts += 1
        return (str(ipaddress.IPv4Address(_FIRST_HOST + self._hosts)), port)

    def engine_rng(self, name: str) -> random.Random:
        """The random generator for the engine called ``name``, from the seed."""
        return random.Random(_derive(self.seed, f"engine:{name}"))

    def add_node(
        self,
        name: str,
        engine: EngineProtocol,
        address: Address,
        *,
        members: MembersView | None = None,
    ) -> SimNode:
        """Put ``engine`` on the network at ``address``.

        ``members`` returns the engine's member table; :meth:`converged`,
        :meth:`views_of` and :meth:`record_membership` need it.
        """
        if name in self.nodes:
            raise LocalProtocolError(f"a node named {name!r} is already on the network")
        if address in self._by_address:
            raise LocalProtocolError(f"address {address} is already taken")
        node = SimNode(name, engine, address, members)
        self.nodes[name] = node
        self._by_address[address] = node
        if self._recorder is not None and members is not None:
            self._recorder.baseline(name, members())
        return node

    def add_memberlist_node(
        self,
        name: str,
        config: MemberlistConfig | None = None,
        *,
        delegate: Delegate | None = None,
        keyring: Keyring | None = None,
        vsn: bytes = PROTOCOL_VSN,
        rng: random.Random | None = None,
        address: Address | None = None,
    ) -> Memberlist:
        """Create a :class:`~serfcast.engine.memberlist.Memberlist` on a fresh
        fake address (port 7946) and add it; it is not started yet.

        The delegate is wrapped so that user messages also reach the hooks of
        :meth:`on_user_message`; the engine's RNG comes from the seed.
        """
        address = address or self.new_address()
        observing = ObservingDelegate(
            delegate or NullDelegate(), partial(self._user_message, name)
        )
        engine = Memberlist(
            name,
            advertise_address(address),
            config=config,
            delegate=observing,
            keyring=keyring,
            rng=rng or self.engine_rng(name),
            vsn=vsn,
        )
        self.add_node(name, engine, address, members=lambda: engine.nodes)
        return engine

    def node(self, name: str) -> SimNode:
        """The node called ``name``."""
        try:
            return self.nodes[name]
        except KeyError:
            raise LocalProtocolError(f"no node named {name!r}; add it first") from None

    def memberlist(self, name: str) -> Memberlist:
        """The :class:`Memberlist` engine of node ``name``."""
        engine = self.node(name).engine
        if not isinstance(engine, Memberlist):
            raise LocalProtocolError(f"node {name!r} does not run a Memberlist")
        return engine

    def node_at(self, address: Address) -> SimNode | None:
        """The node listening at ``address``, if any (killed ones included)."""
        return self._by_address.get(address)

    def live_nodes(self) -> list[SimNode]:
        """Nodes not killed, in the order they were added."""
        return [n for n in self.nodes.values() if n.alive]

    def kill(self, name: str) -> None:
        """Crash a node: it is no longer driven, and nothing reaches it or
        leaves it (datagrams and stream segments already on the way are lost)."""
        node = self.node(name)
        node.alive = False
        node.wake_token += 1
        node.wake_at = None

    # ------------------------------------------------------------------------
    # Links and partitions

    def link(self, source: str, destination: str) -> LinkConfig:
        """How traffic from ``source`` to ``destination`` is treated."""
        return self._links.get((source, destination), self.default_link)

    def set_link(
        self,
        a: str,
        b: str,
        *,
        one_way: bool = False,
        loss: float | None = None,
        duplicate: float | None = None,
        delay: tuple[float, float] | None = None,
        reorder: float | None = None,
    ) -> None:
        """Change some settings of the link from ``a`` to ``b`` (and from ``b``
        to ``a`` unless ``one_way``); settings not given keep their value."""
        given: dict[str, object] = {
            "loss": loss,
            "duplicate": duplicate,
            "delay": delay,
            "reorder": reorder,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        for pair in self._pairs(a, b, one_way):
            self._links[pair] = self.link(*pair).replace(**changes)

    def reset_link(self, a: str, b: str, *, one_way: bool = False) -> None:
        """Give the link from ``a`` to ``b`` (and back) the default settings."""
        for pair in self._pairs(a, b, one_way):
            self._links.pop(pair, None)

    def _pairs(self, a: str, b: str, one_way: bool) -> list[tuple[str, str]]:
        self.node(a)
        self.node(b)
        return [(a, b)] if one_way else [(a, b), (b, a)]

    def partition(self, group_a: Collection[str], group_b: Collection[str]) -> None:
        """Cut every link between a node of ``group_a`` and one of ``group_b``,
        both ways, until :meth:`heal`."""
        for name in [*group_a, *group_b]:
            self.node(name)
        self._partitions.cut(group_a, group_b)

    def heal(self) -> None:
        """Remove every partition (link settings stay as they are)."""
        self._partitions.heal()

    def reachable(self, a: SimNode, b: SimNode) -> bool:
        """Whether traffic can pass between ``a`` and ``b`` right now."""
        if not (a.alive and b.alive):
            return False
        return not (self._partitions and self._partitions.blocked(a.name, b.name))

    # ------------------------------------------------------------------------
    # Scheduling and calling into engines

    def at(self, when: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` at virtual time ``when`` (now, if that has passed)."""
        self._clock.at(when, callback)

    def call_at(self, when: float, name: str, fn: Callable[[float], object]) -> None:
        """At ``when``, call ``fn(now)`` for node ``name`` (skipped if it is
        dead by then) and settle the node afterwards."""
        node = self.node(name)

        def call() -> None:
            if node.alive:
                self.invoke(name, fn)

        self.at(when, call)

    def invoke(self, name: str, fn: Callable[[float], object]) -> None:
        """Call ``fn(now)`` now -- typically a lambda calling an engine method
        -- and then perform what the engine asked for."""
        node = self.node(name)
        if not node.alive:
            raise LocalProtocolError(f"node {name!r} was killed; it cannot be called")
        fn(self._now)
        self.settle(node)

    def settle(self, node: SimNode) -> None:
        """Perform ``node``'s queued actions, keep its events, and schedule its
        next wake-up. Killed nodes are left alone."""
        if not node.alive:
            return
        engine = node.engine
        for action in engine.pop_actions():
            self._perform(node, action)
        events = engine.pop_events()
        if events:
            node.events.extend(events)
        self._reschedule(node)
        if self._recorder is not None and node.members is not None:
            self._recorder.observe(node.name, node.members(), self._now)

    def _perform(self, node: SimNode, action: Action) -> None:
        if isinstance(action, SendPacket):
            self._send_packet(node, action)
        elif isinstance(action, OpenStream):
            self._streams.open(node, action)
        elif isinstance(action, StreamWrite):
            self._streams.write(node, action)
        elif isinstance(action, CloseStream):
            self._streams.close(node, action)
        else:
            raise LocalProtocolError(f"{node.name} asked for unknown action {action!r}")

    def _send_packet(self, source: SimNode, packet: SendPacket) -> None:
        source.stats.packets_sent += 1
        source.stats.bytes_sent += len(packet.data)
        target = self._by_address.get(packet.addr)
        if target is None or not self.reachable(source, target):
            source.stats.packets_dropped += 1
            return
        delays = sample_datagram(self.rng, self.link(source.name, target.name))
        if not delays:
            source.stats.packets_dropped += 1
        elif len(delays) > 1:
            source.stats.packets_duplicated += 1
        for delay in delays:
            deliver = partial(self._deliver, source, target, packet.data)
            self.at(self._now + delay, deliver)

    def _deliver(self, source: SimNode, target: SimNode, data: bytes) -> None:
        if not self.reachable(source, target):
            source.stats.packets_dropped += 1
            return
        target.stats.packets_received += 1
        target.stats.bytes_received += len(data)
        for hook in self._packet_hooks:
            hook(self._now, source.name, target.name, data)
        target.engine.receive_packet(data, source.address, self._now)
        self.settle(target)

    def _reschedule(self, node: SimNode) -> None:
        deadline = node.engine.next_deadline()
        if deadline == node.wake_at:
            return
        node.wake_token += 1
        node.wake_at = deadline
        if deadline is not None:
            wake = partial(self._wake, node)
            self._clock.at(deadline, wake, node, node.wake_token)

    def _wake(self, node: SimNode) -> None:
        node.wake_at = None
        if node.last_wake == self._now:
            node.wakes_at_instant += 1
            if node.wakes_at_instant > MAX_WAKES_PER_INSTANT:
                raise SimulationLimitExceeded(
                    f"{node.name} asked to be woken at t={self._now} "
                    f"{MAX_WAKES_PER_INSTANT} times without moving its deadline on"
                )
        else:
            node.last_wake, node.wakes_at_instant = self._now, 1
        node.stats.timeouts += 1
        node.engine.handle_timeout(self._now)
        self.settle(node)

    # ------------------------------------------------------------------------
    # Memberlist-style helpers

    def start_all(self, *, stagger: float = 0.0) -> None:
        """Start every live node not started yet, each at a random moment
        within ``stagger`` seconds from now.

        Engines time their periodic duties from their start, so nodes started
        at one instant gossip and probe in lockstep; a stagger of one interval
        gives them the unrelated phases of hosts started at different times.
        """
        for node in self.live_nodes():
            if not node.started:
                node.started = True
                when = self._now + (self.rng.uniform(0.0, stagger) if stagger else 0.0)
                self.call_at(when, node.name, node.engine.start)

    def join_all(self, seed_name: str, *, spacing: float = 0.0) -> None:
        """Have every other live node join ``seed_name``; the i-th join is made
        ``i * spacing`` seconds from now. Engines need ``join(seeds, now)``.

        Joins are scheduled after any starts already scheduled for the same
        moment; with a start stagger, run past it before joining.
        """
        seed = self.node(seed_name)
        others = [n for n in self.live_nodes() if n is not seed]
        for index, node in enumerate(others):
            join = partial(_join, node, seed.address)
            self.call_at(self._now + index * spacing, node.name, join)

    def members_of(self, name: str) -> Mapping[str, Node]:
        """Node ``name``'s member table."""
        node = self.node(name)
        if node.members is None:
            raise LocalProtocolError(
                f"node {name!r} was added without a members view; pass members="
            )
        return node.members()

    def views_of(self, subject: str) -> dict[str, NodeState | None]:
        """How every other live node sees ``subject`` (``None``: not listed)."""
        views: dict[str, NodeState | None] = {}
        for node in self.live_nodes():
            if node.name != subject:
                member = self.members_of(node.name).get(subject)
                views[node.name] = None if member is None else member.state
        return views

    def converged(self) -> bool:
        """Whether every live node sees every live node (itself too) alive."""
        live = self.live_nodes()
        for node in live:
            view = self.members_of(node.name)
            for other in live:
                member = view.get(other.name)
                if member is None or member.state is not NodeState.ALIVE:
                    return False
        return True

    # ------------------------------------------------------------------------
    # Observation

    def on_user_message(self, hook: UserMessageHook) -> None:
        """Call ``hook(node_name, payload, now)`` for every user message a node
        added by :meth:`add_memberlist_node` receives."""
        self._user_hooks.append(hook)

    def on_packet(self, hook: PacketHook) -> None:
        """Call ``hook(now, sender, receiver, data)`` for every delivered datagram."""
        self._packet_hooks.append(hook)

    def record_membership(self) -> list[MembershipChange]:
        """Start recording every member state change each node makes (compared
        after every call into it); returns the list that fills up.

        This costs a scan of the member table per call, so it suits tens of
        nodes rather than thousands.
        """
        if self._recorder is None:
            self._recorder = MembershipRecorder()
            for node in self.nodes.values():
                if node.members is not None:
                    self._recorder.baseline(node.name, node.members())
        return self._recorder.changes

    def _user_message(self, name: str, payload: bytes, now: float) -> None:
        self.nodes[name].stats.user_messages += 1
        for hook in self._user_hooks:
            hook(name, payload, now)

    # ------------------------------------------------------------------------
    # Running

    def step(self) -> bool:
        """Run the next event; False if nothing at all is scheduled."""
        self._settle_all()
        return self._clock.step()

    def run_until(self, time: float, *, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Run every event up to virtual time ``time``, then set the clock to it.

        Returns the number of events run; raises :class:`SimulationLimitExceeded`
        if that would pass ``max_steps``.
        """
        if time < self._now:
            raise LocalProtocolError(f"cannot run back to t={time}; it is {self._now}")
        steps = self._run(time, max_steps)
        self._clock.now = time
        return steps

    def run_for(self, duration: float, *, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Run for ``duration`` virtual seconds (see :meth:`run_until`)."""
        return self.run_until(self._now + duration, max_steps=max_steps)

    def run_until_idle(
        self, max_time: float, *, max_steps: int = DEFAULT_MAX_STEPS
    ) -> float:
        """Run until nothing is scheduled, within ``max_time`` virtual seconds;
        returns the time of the last event.

        Engines with periodic duties (a started Memberlist) are never idle:
        use :meth:`run_until_true` or :meth:`run_for` for them.
        """
        limit = self._now + max_time
        self._run(limit, max_steps)
        if not self._clock.idle():
            raise SimulationLimitExceeded(
                f"still busy after {max_time} virtual seconds (t={self._now})"
            )
        return self._now

    def run_until_true(
        self,
        predicate: Callable[[], bool],
        *,
        max_time: float,
        poll: float = 0.1,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> float:
        """Run until ``predicate()`` holds, checking it every ``poll`` virtual
        seconds; returns the time it was first seen true.

        Raises :class:`SimulationLimitExceeded` after ``max_time`` virtual
        seconds or ``max_steps`` events.
        """
        if poll <= 0:
            raise LocalProtocolError(f"poll must be positive, got {poll}")
        limit = self._now + max_time
        budget = max_steps
        while not predicate():
            if self._now >= limit:
                raise SimulationLimitExceeded(
                    f"condition still false after {max_time} virtual seconds"
                    f" (t={self._now})"
                )
            target = min(self._now + poll, limit)
            budget -= self._run(target, budget)
            self._clock.now = target
        return self._now

    def _run(self, until: float, max_steps: int) -> int:
        self._settle_all()
        return self._clock.run(until, max_steps)

    def _settle_all(self) -> None:
        for node in self.nodes.values():
            self.settle(node)


def _join(node: SimNode, seed: Address, now: float) -> None:
    if not isinstance(node.engine, _Joinable):
        raise LocalProtocolError(f"node {node.name!r} has no join(seeds, now) method")
    node.engine.join([seed], now)


def _derive(seed: int | str, label: str) -> str:
    # random.Random hashes a str seed with SHA-512: stable across processes,
    # unlike hash(), so derived generators repeat from run to run.
    return f"serfcast.testing/{seed!r}/{label}"

"""The demo's serfcast members: each a :class:`SerfNode` on its own trio driver.

A member's whole life is one task in the demo's nursery: it enters its driver
(which starts the node on real sockets), notes the moment the demo's event
arrives, and ends when its graceful leave is complete, which closes its
sockets. Everything else talks to the node through ``driver.call``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from serfcast.demo.ports import HOST, PortDraw
from serfcast.drivers import advertise_address
from serfcast.drivers.sockets import BoundSockets
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import (
    JoinFinished,
    LeaveComplete,
    MemberEvent,
    MemberStatus,
    SerfEvent,
    UserEventReceived,
)
from serfcast.errors import LocalProtocolError, TransportError

__all__ = ["Member", "bind_members", "lagging"]


@dataclass(eq=False)
class Member:
    """One serfcast member of the demo pool, and when it got the event."""

    name: str
    node: SerfNode
    sockets: BoundSockets
    event: tuple[str, bytes]
    #: The driver's clock when the demo's event arrived.
    arrival: float | None = None
    #: The driver's clock at the last join.
    joined_at: float = 0.0
    #: How the last join ended, once it has.
    join_report: JoinFinished | None = None
    #: Set when the last join has reported back (and before any join).
    join_done: trio.Event = field(default_factory=lambda: _set(trio.Event()))
    #: The members this node sees alive, itself included, kept from its events.
    alive: set[str] = field(default_factory=set)
    driver: TrioDriver[SerfEvent] | None = None
    #: Set once the member's task is over and its sockets are closed.
    closed: trio.Event = field(default_factory=trio.Event)

    @property
    def port(self) -> int:
        """The gossip port (UDP and TCP)."""
        return self.sockets.address[1]

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Run the node until its leave is complete (or the task is cancelled)."""
        try:
            async with TrioDriver(self.node, sockets=self.sockets) as driver:
                self.driver = driver
                task_status.started()
                async for event in driver.events():
                    if isinstance(event, LeaveComplete):
                        break
                    self._note(event, driver.now())
        finally:
            self.sockets.close()
            self.closed.set()

    def _note(self, event: SerfEvent, now: float) -> None:
        if isinstance(event, MemberEvent):
            if event.status is MemberStatus.ALIVE:
                self.alive.add(event.name)
            else:
                self.alive.discard(event.name)
        elif isinstance(event, JoinFinished):
            self.join_report = event
            self.join_done.set()
        elif isinstance(event, UserEventReceived) and self._is_ours(event):
            self.arrival = now

    def _is_ours(self, event: UserEventReceived) -> bool:
        """The demo's event, arriving for the first time."""
        return self.arrival is None and (event.name, event.payload) == self.event

    def call_driver(self) -> TrioDriver[SerfEvent]:
        """The running driver."""
        if self.driver is None:
            raise LocalProtocolError(f"member {self.name} is not running")
        return self.driver

    def join(self, port: int, *, ignore_old: bool = True) -> None:
        """Join (or push/pull again) with the member on ``port``.

        Without ``ignore_old`` the exchange also hands over the events either
        side has and the other lacks, as the periodic push/pull does.
        """
        driver = self.call_driver()
        join = functools.partial(self.node.join, [(HOST, port)], ignore_old=ignore_old)
        self.join_report, self.join_done = None, trio.Event()
        driver.call(join)
        self.joined_at = driver.now()

    @property
    def joining(self) -> bool:
        """Whether the last join has not reported back yet."""
        return not self.join_done.is_set()

    def gossiping(self) -> bool:
        """Whether this node still has user events left to gossip."""
        return self.node.queue_depths().get("event", 0) > 0

    def fire(self) -> None:
        """Fire the demo's event from here (delivered here at once)."""
        name, payload = self.event
        fire = functools.partial(self.node.fire_event, name, payload, False)
        self.call_driver().call(fire)

    def leave(self) -> None:
        """Start the graceful leave; the task ends when it is complete."""
        if self.driver is not None and not self.closed.is_set():
            self.driver.call(self.node.leave)


def _set(event: trio.Event) -> trio.Event:
    event.set()
    return event


def bind_members(
    names: Sequence[str],
    config: MemberlistConfig,
    event: tuple[str, bytes],
    ports: PortDraw,
    rng: random.Random,
) -> list[Member]:
    """Bind every member's sockets and build its node (nothing runs yet)."""
    members: list[Member] = []
    try:
        for name in names:
            sockets = _bind(ports)
            node = SerfNode(
                name,
                advertise_address(sockets.address),
                memberlist_config=config,
                rng=random.Random(rng.getrandbits(64)),
            )
            members.append(Member(name, node, sockets, event, alive={name}))
    except BaseException:
        for member in members:
            member.sockets.close()
        raise
    return members


def _bind(ports: PortDraw) -> BoundSockets:
    for port in ports.candidates():
        try:
            sockets = TrioDriver.bind((HOST, port))
        except TransportError:
            continue
        ports.take(port)
        return sockets
    raise TransportError(f"no free port for a member on {HOST}")


def lagging(members: Sequence[Member], names: set[str]) -> list[tuple[Member, int]]:
    """The members that do not yet see all of ``names`` alive, and how many they do."""
    late = []
    for member in members:
        seen = len(member.alive & names)
        if seen < len(names):
            late.append((member, seen))
    return late

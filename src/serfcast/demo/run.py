"""Running the demo: start a pool, wait for it, fire, watch the spread, leave.

Theory of operation
-------------------
Everything runs in one trio process under one nursery: a task per serfcast
member (see :mod:`.pool`), a task that turns SIGINT or SIGTERM into a
cancellation, and the demo's own steps:

1. bind every member's sockets, start the members and have each join the
   first; with ``-with-serf``, start the serf agents, joining it too;
2. wait until every serfcast member sees every member alive (bounded);
3. fire one event from one member and watch it arrive: serfcast members note
   the driver's clock when the event comes out of their node, serf agents'
   handlers write the wall-clock time they ran; both are measured from the
   moment of firing. On a terminal the timeline is redrawn in place about 30
   times a second; otherwise it is printed once, when it is complete;
4. leave: every member starts its graceful leave and every agent gets SIGINT,
   then the demo waits (bounded) until the members' sockets are closed and
   the agents have exited.

Each step has its own bound and the whole run a deadline of 30 seconds. Any
way out, a failure, Ctrl-C or the deadline, cancels the nursery, which closes
every socket, and then kills whatever agent is still running, by its PID.
"""

from __future__ import annotations

import random
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final, TextIO

import trio

from serfcast.demo.agents import Agent, write_handler
from serfcast.demo.options import EVENT_NAME, SERF_AGENTS, DemoOptions
from serfcast.demo.pool import Member, bind_members, lagging
from serfcast.demo.ports import PortDraw
from serfcast.demo.screen import Screen
from serfcast.demo.spread import Spread
from serfcast.demo.timeline import format_ms
from serfcast.engine.config import profile
from serfcast.errors import SerfcastError

__all__ = ["DEADLINE", "run_demo"]

DEADLINE: Final = 30.0
CONVERGE_TIMEOUT: Final = 10.0
#: The gossip's time, and a push/pull's for whoever it missed.
SPREAD_TIMEOUT: Final = 8.0
LEAVE_TIMEOUT: Final = 8.0
#: Added to the TCP timeout to bound a join.
JOIN_SLACK: Final = 1.0
#: Gossip intervals a member may miss someone before it joins again.
REJOIN_AFTER: Final = 5
#: How often the timeline is redrawn on a terminal, and the pool polled.
FRAME: Final = 1 / 30
EXIT_INTERRUPTED: Final = 130


class DemoFailed(SerfcastError):
    """A step of the demo did not finish in time."""


def run_demo(options: DemoOptions, out: TextIO) -> int:
    """Run the demo, writing to ``out``; the exit status."""
    try:
        return trio.run(_main, options, out)
    except BaseExceptionGroup as group:
        raise _sole(group) from None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside nested groups (or the group, when there are more)."""
    leaves = list(_leaves(group))
    return leaves[0] if len(leaves) == 1 else group


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


async def _main(options: DemoOptions, out: TextIO) -> int:
    demo = Demo(options, out)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(demo.on_signals, signals, nursery.cancel_scope)
                with trio.move_on_after(DEADLINE) as deadline:
                    await demo.run(nursery)
                if deadline.cancelled_caught:
                    demo.fail(f"the demo ran out of its {DEADLINE:g} s")
                nursery.cancel_scope.cancel()
        finally:
            demo.tear_down()
    return demo.status


class Demo:
    """One run of the demo: its members, agents, screen and outcome."""

    def __init__(self, options: DemoOptions, out: TextIO) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.config = profile(options.profile)
        self.screen = Screen(out)
        self.status = 0
        self.members: list[Member] = []
        self.agents: list[Agent] = []
        self.folder: Path | None = None
        self.sender_index = 0
        self._ports = PortDraw(self.rng)

    # ------------------------------------------------------------------
    # The steps

    async def run(self, nursery: trio.Nursery) -> None:
        """All the steps; a step that fails skips to the leave."""
        self.screen.say(self._header())
        try:
            await self._start(nursery)
            await self._converge()
            await self._spread()
        except DemoFailed as exc:
            self.fail(str(exc))
        await self._leave()

    async def _start(self, nursery: trio.Nursery) -> None:
        names, self.sender_index = self._names()
        payload = self.options.payload
        if payload is None:
            payload = f"hello from {names[self.sender_index]}".encode()
        event = (EVENT_NAME, payload)
        self.members = bind_members(names, self.config, event, self._ports, self.rng)
        for member in self.members:
            await nursery.start(member.run)
        seed = self.members[0].port
        for member in self.members[1:]:
            await self._join(member, seed)
        self._start_agents(seed)

    async def _join(self, member: Member, seed: int) -> None:
        """Join through the first member and wait for the answer.

        One at a time, so that the first member, which answers every join
        with all it knows, has already met everyone before.
        """
        member.join(seed)
        with trio.move_on_after(self.config.tcp_timeout + JOIN_SLACK):
            await member.join_done.wait()
        report = member.join_report
        if report is None or not report.contacted:
            why = "no answer" if report is None else report.errors
            raise DemoFailed(f"{member.name} could not join the pool: {why}")

    def _names(self) -> tuple[list[str], int]:
        """The members' names and which one fires (drawn from the seed)."""
        digits = len(str(self.options.nodes))
        names = [f"n{i:0{max(2, digits)}d}" for i in range(1, self.options.nodes + 1)]
        return names, self.rng.randrange(len(names))

    def _start_agents(self, seed: int) -> None:
        binaries = self.options.serf
        if not binaries:
            return
        self.folder = Path(tempfile.mkdtemp(prefix="serfcast-demo-"))
        handler = write_handler(self.folder)
        for index in range(SERF_AGENTS):
            binary = binaries[index % len(binaries)]
            ports = self._ports.free_port(), self._ports.free_port()
            agent = Agent(f"s{index + 1:02d}", binary, *ports, self.folder)
            self.agents.append(agent)
            agent.start(agent.command(seed, self.options.profile, EVENT_NAME, handler))

    async def _converge(self) -> None:
        began = trio.current_time()
        names = {m.name for m in self.members} | {a.name for a in self.agents}
        with trio.move_on_after(CONVERGE_TIMEOUT):
            # A join still under way would keep its member from taking old
            # events from any push/pull, the one that may repair the demo's
            # event included; so those must be over too.
            while (late := lagging(self.members, names)) or self._joining():
                self._check_agents()
                self._rejoin([member for member, _ in late])
                await trio.sleep(FRAME)
            took = format_ms(trio.current_time() - began)
            self.screen.say(
                f"converged in {took}: every member sees {len(names)} alive"
            )
            return
        if not late:
            raise DemoFailed(f"joins still under way after {CONVERGE_TIMEOUT:g} s")
        member, seen = late[0]
        raise DemoFailed(
            f"the pool did not converge in {CONVERGE_TIMEOUT:g} s: "
            f"{member.name} sees {seen} of {len(names)} members alive"
        )

    def _joining(self) -> bool:
        return any(member.joining for member in self.members)

    def _rejoin(self, late: list[Member]) -> None:
        """Have members that still miss someone push/pull with the first again.

        A member that joined early learns of later ones from gossip, which
        memberlist passes on only a few times, so it can miss one; memberlist's
        periodic push/pull repairs that, but only every 15 s or more. The
        first member has met everyone, so one more exchange with it does the
        same repair now.
        """
        now = trio.current_time()
        wait = REJOIN_AFTER * self.config.gossip_interval
        for member in late:
            if member.joining or member is self.members[0]:
                continue
            if now - member.joined_at > wait:
                member.join(self.members[0].port)

    def _check_agents(self) -> None:
        for agent in self.agents:
            why = agent.exited_early()
            if why is not None:
                raise DemoFailed(why)

    async def _spread(self) -> None:
        sender = self.members[self.sender_index]
        name, payload = sender.event
        self.screen.say(
            f"{sender.name} fires user event {name!r} with payload "
            f"{payload.decode(errors='replace')!r} ({len(payload)} bytes)\n"
        )
        spread = Spread(self.members, self.agents, sender, self.config)
        spread.fire()
        await spread.watch(self.screen, SPREAD_TIMEOUT)
        self.screen.say("")
        for line in spread.summary(self.options.profile):
            self.screen.say(line)
        if self.agents:
            self.screen.say("(a serf agent's time is when its event handler ran)")
        if not spread.complete():
            self.status = 1

    async def _leave(self) -> None:
        """Everyone leaves gracefully; the first member last.

        Were all to leave at once, the last one to send memberlist's leave
        would find nobody alive to gossip it to and wait out Serf's whole
        broadcast timeout (5 s), as Go's Serf would. The first member staying
        until the rest are gone gives them all someone to tell; alone at the
        end, it has nobody to wait for.
        """
        began = trio.current_time()
        first, rest = self.members[:1], self.members[1:]
        with trio.move_on_after(LEAVE_TIMEOUT):
            await self._leave_group(rest, self.agents)
            await self._leave_group(first, [])
        late = [m.name for m in self.members if not m.closed.is_set()]
        late += [a.name for a in self.agents if a.running]
        took = format_ms(trio.current_time() - began)
        if late:
            self.fail(f"{', '.join(late)} did not leave in {LEAVE_TIMEOUT:g} s")
        else:
            gone = "every socket is closed"
            if self.agents:
                gone += " and every serf agent has exited"
            self.screen.say(f"left gracefully in {took}; {gone}")

    async def _leave_group(self, members: list[Member], agents: list[Agent]) -> None:
        for member in members:
            member.leave()
        for agent in agents:
            agent.signal(signal.SIGINT)
        for member in members:
            await member.closed.wait()
        while any(agent.running for agent in agents):
            await trio.sleep(FRAME)

    # ------------------------------------------------------------------
    # Ways out

    async def on_signals(
        self, signals: AsyncIterator[int], scope: trio.CancelScope
    ) -> None:
        """Turn Ctrl-C (or SIGTERM) into stopping everything at once."""
        async for _ in signals:
            self.status = EXIT_INTERRUPTED
            self.screen.error("serfcast: interrupted; stopping the pool")
            scope.cancel()
            return

    def fail(self, message: str) -> None:
        """Report a failed step; the exit status becomes 1."""
        self.screen.error(f"serfcast: {message}")
        if self.status == 0:
            self.status = 1

    def tear_down(self) -> None:
        """Close what is left, whatever happened: sockets, agents, the folder."""
        for member in self.members:
            member.sockets.close()
        for agent in self.agents:
            agent.kill()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.screen.restore()

    # ------------------------------------------------------------------

    def _header(self) -> str:
        nodes = f"{self.options.nodes} serfcast members"
        if self.options.serf:
            nodes += f" and {SERF_AGENTS} serf agents"
        cfg = self.config
        return (
            f"serfcast demo: {nodes} on 127.0.0.1 (seed {self.options.seed})\n"
            f"profile {self.options.profile}: gossip to {cfg.gossip_nodes} members "
            f"every {format_ms(cfg.gossip_interval)}"
        )

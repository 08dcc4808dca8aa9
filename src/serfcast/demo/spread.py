"""Watching the demo's event spread, and drawing it as it goes.

Gossip alone does not promise that everyone hears an event: each member
passes it on a limited number of times (``retransmit_mult`` times the number
of digits of the pool size; only twice each in a small pool with the
``local`` profile), so now and then a member is never picked. Serf repairs
that with memberlist's periodic push/pull, which carries the recent events,
but only every 15 to 60 seconds. The demo does not wait for it: once no
serfcast member has the event left to gossip and nobody new got it for a few
gossip intervals, the gossip is over, and each member that missed it does
one push/pull now (with the sender, which has it). Its row says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import trio

from serfcast.demo.agents import Agent
from serfcast.demo.pool import Member
from serfcast.demo.screen import Screen
from serfcast.demo.timeline import Row, render, summary
from serfcast.engine.config import MemberlistConfig

__all__ = ["Spread"]

#: Gossip intervals of quiet after which the gossip is taken to be over.
QUIET_INTERVALS: Final = 3
#: How often the timeline is redrawn on a terminal, and arrivals looked for.
FRAME: Final = 1 / 30


class Spread:
    """One event on its way through the pool: who has it, since when, and how."""

    def __init__(
        self,
        members: Sequence[Member],
        agents: Sequence[Agent],
        sender: Member,
        config: MemberlistConfig,
    ) -> None:
        self.members = members
        self.agents = agents
        self.sender = sender
        self.interval = config.gossip_interval
        self.fired = 0.0
        self._fired_wall = 0.0
        self._agent_times: dict[str, float] = {}
        self._repaired: set[str] = set()
        self._repaired_at = 0.0
        self._quiet_since = 0.0
        self._arrived = 0

    def fire(self) -> None:
        """Fire the event from the sender, and start the clock."""
        self.fired, self._fired_wall = trio.current_time(), time.time()
        self._quiet_since = self.fired
        self.sender.fire()

    def rows(self) -> list[Row]:
        """Every member's row, serfcast members first."""
        rows = [self._member_row(m) for m in self.members]
        rows += [
            Row(a.name, a.binary.label, a.port, self._agent_time(a))
            for a in self.agents
        ]
        return [self._mark_repaired(row) for row in rows]

    def _member_row(self, member: Member) -> Row:
        arrival = None if member.arrival is None else member.arrival - self.fired
        sender = member is self.sender
        return Row(member.name, "serfcast", member.port, arrival, sender=sender)

    def _agent_time(self, agent: Agent) -> float | None:
        if agent.name not in self._agent_times:
            wall = agent.arrival(self.sender.event[1])
            if wall is None:
                return None
            self._agent_times[agent.name] = max(0.0, wall - self._fired_wall)
        return self._agent_times[agent.name]

    def _mark_repaired(self, row: Row) -> Row:
        if row.name not in self._repaired or row.arrival is None:
            return row
        if row.arrival < self._repaired_at:
            return row  # the gossip was quicker after all
        return Row(row.name, row.kind, row.port, row.arrival, repaired=True)

    def complete(self) -> bool:
        """Whether every member has the event."""
        return all(row.arrival is not None for row in self.rows())

    def summary(self, profile: str) -> list[str]:
        """The outcome, in a line or two."""
        return summary(self.rows(), self.interval, profile)

    # ------------------------------------------------------------------

    async def watch(self, screen: Screen, timeout: float) -> None:
        """Follow the event until everyone has it or ``timeout`` has passed,
        redrawing on a terminal; then draw the final picture."""
        deadline = self.fired + timeout
        live = screen.can_animate(len(self.rows()) + 2)
        while not self.complete() and trio.current_time() < deadline:
            if not self._repaired and self._gossip_over():
                self._repair()
            if live:
                self._draw(screen, final=False)
            await trio.sleep(FRAME)
        self._draw(screen, final=True)

    def _gossip_over(self) -> bool:
        now = trio.current_time()
        arrived = sum(row.arrival is not None for row in self.rows())
        if arrived != self._arrived or any(m.gossiping() for m in self.members):
            self._arrived = arrived
            self._quiet_since = now
        return now - self._quiet_since >= QUIET_INTERVALS * self.interval

    def _repair(self) -> None:
        """A push/pull for each member that missed the event."""
        self._repaired_at = trio.current_time() - self.fired
        port = self.sender.port
        for member in self.members:
            if member.arrival is None:
                self._repaired.add(member.name)
                member.join(port, ignore_old=False)
        for agent in self.agents:
            if self._agent_time(agent) is None:
                self._repaired.add(agent.name)
                self.sender.join(agent.port, ignore_old=False)

    def _draw(self, screen: Screen, *, final: bool) -> None:
        rows = self.rows()
        elapsed = trio.current_time() - self.fired
        lines = render(rows, elapsed, self.interval, screen.style(rows), final=final)
        screen.draw(lines)

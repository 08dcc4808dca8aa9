"""A serfcast memberlist node under the trio driver in a pool of real serf agents.

The node speaks memberlist only, dressed as a Serf member just enough for agents
to list it: Serf's tag meta and a minimal Serf push/pull state. It joins a serf
0.10.1 and a serf 0.9.4 agent over loopback, must be listed alive by both and
stay so through some seconds of probing, and its graceful leave (Serf's leave
intent, then memberlist's) must show as left. The agents' logs must hold no error
or warning from the time it was there.
"""

from __future__ import annotations

import functools
import re

import pytest
import trio

from serf_agents import SerfAgent, SerfPoolFactory
from serfcast.drivers import advertise_address
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.delegate import NullDelegate
from serfcast.engine.memberlist import (
    JoinFinished,
    LeaveFinished,
    Memberlist,
    MemberlistEvent,
)
from serfcast.engine.nodes import NodeState
from serfcast.serf.messages import Leave, PushPullState, encode_serf_message
from serfcast.serf.tags import encode_tags

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
NAME = "serfcast-py"
TAGS = {"role": "serfcast", "lang": "python"}
#: How long the node must stay alive while the agents probe it.
PROBE_PERIOD = 15.0
#: Bound on each step that waits for the pool to notice something.
STEP_BOUND = 20.0
#: Agent log lines that signal trouble.
_TROUBLE = re.compile(r"\[(ERR|WARN)\]")


class SerfLookalike(NullDelegate):
    """Just enough Serf for agents: tag meta, an empty Serf push/pull state, and
    the leave intent without which agents call a leaving node failed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outbox: list[bytes] = []

    def announce_leave(self, transmits: int = 4) -> None:
        """Gossip Serf's leave intent for ourselves (member time 1, the first)."""
        intent = encode_serf_message(Leave(ltime=1, node=self.name))
        self.outbox = [intent] * transmits

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        if not self.outbox or len(self.outbox[0]) + overhead > limit:
            return []
        return [self.outbox.pop()]

    def node_meta(self, limit: int) -> bytes:
        return encode_tags(TAGS)

    def local_state(self, join: bool) -> bytes:
        # Clocks at 1 (the next values a fresh node would use), ourselves at status
        # time 0, nobody left and no events: what a new Serf member sends.
        state = PushPullState(
            ltime=1,
            status_ltimes={self.name: 0},
            left_members=[],
            event_ltime=1,
            events=[],
            query_ltime=1,
        )
        return encode_serf_message(state)


async def agent_status(agent: SerfAgent) -> dict[str, str]:
    """The agent's member statuses, asked for in a thread so gossip keeps flowing."""
    return await trio.to_thread.run_sync(agent.statuses)


async def wait_for_status(agents: list[SerfAgent], status: str) -> None:
    """Poll until every agent lists our node with ``status``."""
    with trio.fail_after(STEP_BOUND):
        while True:
            seen = [(await agent_status(agent)).get(NAME) for agent in agents]
            if seen == [status] * len(agents):
                return
            await trio.sleep(0.2)


async def hold_alive(
    agents: list[SerfAgent], engine: Memberlist, period: float
) -> None:
    """For ``period`` seconds, every look shows everyone alive on both sides."""
    names = {agent.name for agent in agents} | {NAME}
    deadline = trio.current_time() + period
    while trio.current_time() < deadline:
        for agent in agents:
            statuses = await agent_status(agent)
            assert statuses.get(NAME) == "alive", (agent, statuses)
        ours = {n.name: n.state for n in engine.nodes.values()}
        assert ours == dict.fromkeys(names, NodeState.ALIVE)
        await trio.sleep(1.0)


def trouble(agent: SerfAgent) -> list[str]:
    return [line for line in agent.log_text().splitlines() if _TROUBLE.search(line)]


async def test_memberlist_node_lives_in_a_mixed_serf_pool(
    serf_pool_factory: SerfPoolFactory,
) -> None:
    pool = await trio.to_thread.run_sync(
        functools.partial(serf_pool_factory, ["0.10.1", "0.9.4"])
    )
    agents = pool.agents
    noise_before = {agent.name: set(trouble(agent)) for agent in agents}

    sockets = TrioDriver.bind((HOST, 0))
    delegate = SerfLookalike(NAME)
    engine = Memberlist(NAME, advertise_address(sockets.address), delegate=delegate)
    driver: TrioDriver[MemberlistEvent] = TrioDriver(engine, sockets=sockets)
    async with driver:
        seeds = [(HOST, agent.bind_port) for agent in agents]
        driver.call(functools.partial(engine.join, seeds))
        with trio.fail_after(STEP_BOUND):
            joined = await driver.events().receive()
        assert isinstance(joined, JoinFinished)
        assert sorted(joined.contacted) == sorted(seeds), joined.errors

        await wait_for_status(agents, "alive")
        for agent in agents:
            members = await trio.to_thread.run_sync(agent.members)
            [member] = [m for m in members if m["name"] == NAME]
            assert member["tags"] == TAGS
            assert member["port"] == driver.bound_port
        await hold_alive(agents, engine, PROBE_PERIOD)

        delegate.announce_leave()
        with trio.fail_after(STEP_BOUND):
            while delegate.outbox:
                await trio.sleep(0.05)
        await wait_for_status(agents, "leaving")
        driver.call(engine.leave)
        with trio.fail_after(STEP_BOUND):
            assert isinstance(await driver.events().receive(), LeaveFinished)
        await wait_for_status(agents, "left")
    # Every datagram and stream the agents sent was understood and expected.
    refused = {k for k in engine.stats if k.startswith(("bad_", "unexpected_"))}
    assert refused == set(), engine.stats
    assert "udp_send_errors" not in driver.stats

    for agent in agents:
        new = [line for line in trouble(agent) if line not in noise_before[agent.name]]
        assert new == [], (agent, new)

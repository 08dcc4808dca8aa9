"""serfcast.open_node under asyncio, as a member of a pool of real serf agents.

A two-agent serf 0.10.1 pool; the node joins through the first agent and must
be listed alive by both, receive an event fired with ``serf event``, fire one
that both agents' handlers run exactly once with the exact name and payload,
and, on leaving its ``async with`` block, be listed ``left`` by both. The
agents log no error or warning meanwhile. The serf CLI blocks, so every agent
call runs in a worker thread while the node keeps gossiping.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from typing import TypeVar

import pytest

from serf_agents import SerfAgent, SerfPool, SerfPoolFactory
from serfcast import Node, UserEventReceived, open_node

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

NAME = "serfcast-node"
#: Bound on each step that waits for the pool (or the node) to notice something.
STEP_BOUND = 20.0
#: The whole scenario's bound, inside the test's own timeout.
SCENARIO_BOUND = 90.0
#: After the expected handler runs, how long to watch for an unwanted extra one.
DUPLICATE_WINDOW = 1.0
TROUBLE = re.compile(r"\[(ERR|WARN)\]")
T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def poll(predicate: Callable[[], bool], what: str) -> None:
    """Poll a blocking ``predicate`` in a thread until it holds (bounded)."""
    try:
        async with asyncio.timeout(STEP_BOUND):
            while not await in_thread(predicate):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(
            f"timed out after {STEP_BOUND} s waiting for {what}"
        ) from None


def listed_as(pool: SerfPool, status: str) -> Callable[[], bool]:
    return lambda: all(a.statuses().get(NAME) == status for a in pool.agents)


def trouble(agent: SerfAgent) -> set[str]:
    return {line for line in agent.log_text().splitlines() if TROUBLE.search(line)}


async def next_user_event(node: Node, name: str) -> UserEventReceived:
    async with asyncio.timeout(STEP_BOUND):
        async for event in node.events():
            if isinstance(event, UserEventReceived) and event.name == name:
                return event
    raise AssertionError(f"the node closed before user event {name!r} came")


async def scenario(pool: SerfPool) -> None:
    first, second = pool.agents
    async with open_node(name=NAME, bind="127.0.0.1:0", join=[first.bind_addr]) as node:
        await poll(listed_as(pool, "alive"), f"both agents to list {NAME} alive")
        assert {m.name for m in node.members()} == {NAME, first.name, second.name}

        await in_thread(lambda: second.fire_event("from-serf", b"agent payload"))
        received = await next_user_event(node, "from-serf")
        assert received.payload == b"agent payload"

        fired = await node.fire("from-node", b"node payload")
        await poll(
            lambda: all(a.user_events("from-node") for a in pool.agents),
            "both handlers to run for from-node",
        )
        await asyncio.sleep(DUPLICATE_WINDOW)
        for agent in pool.agents:
            [run] = await in_thread(functools.partial(agent.user_events, "from-node"))
            assert run.payload_as_sent == b"node payload"
            assert run.user_ltime == fired.ltime
    assert node.left
    await poll(listed_as(pool, "left"), f"both agents to list {NAME} left")


def test_open_node_under_asyncio_in_a_serf_pool(
    serf_pool_factory: SerfPoolFactory,
) -> None:
    pool = serf_pool_factory(["0.10.1", "0.10.1"])
    noise_before = {agent.name: trouble(agent) for agent in pool.agents}

    async def bounded() -> None:
        async with asyncio.timeout(SCENARIO_BOUND):
            await scenario(pool)

    asyncio.run(bounded())
    for agent in pool.agents:
        assert trouble(agent) - noise_before[agent.name] == set(), agent

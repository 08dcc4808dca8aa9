"""serfcast.open_node: pools of nodes on loopback, under trio and under asyncio.

Every scenario is written once against :class:`~async_backends.Backend` and run
twice: as a pytest-trio test, and as a plain test that calls ``asyncio.run``.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import pytest
import trio

import serfcast
from async_backends import ASYNCIO, TRIO, Backend, wait_until
from serfcast import Node, NodeEvent, NoSeedError, WrongKeyError, open_node
from serfcast.consul import ConsulEvent
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import (
    MemberJoined,
    MemberLeft,
    MemberStatus,
    QueryAck,
    QueryReceived,
    QueryResponse,
    UserEventReceived,
)
from serfcast.errors import EventTooLargeError, LocalProtocolError, TransportError
from serfcast.serf.messages import UserEvent
from serfcast.wire.keyring import generate_key

#: Every scenario's overall bound: generous, since gossip runs on real time.
BOUND = 30.0
HOST = "127.0.0.1"
#: Long enough for every node to see a query and answer it one after another.
QUERY_TIMEOUT = 2.0
#: Serf waits a second after a leave for it to spread; loopback needs less.
QUICK_LEAVE = SerfConfig(leave_propagate_delay=0.3)

Scenario = Callable[[Backend], Awaitable[None]]
E = TypeVar("E")


def both(
    scenario: Scenario,
) -> tuple[Callable[[], Awaitable[None]], Callable[[], None]]:
    """The scenario as a pytest-trio test and as an asyncio test."""

    async def under_trio() -> None:
        with trio.fail_after(BOUND):
            await scenario(TRIO)

    def under_asyncio() -> None:
        ASYNCIO.run(functools.partial(scenario, ASYNCIO), BOUND)

    return under_trio, under_asyncio


def seed_of(node: Node) -> str:
    host, port = node.address
    return f"{host}:{port}"


def statuses(node: Node) -> dict[str, MemberStatus]:
    return {member.name: member.status for member in node.members()}


@asynccontextmanager
async def pool(size: int, **options: Any) -> AsyncIterator[list[Node]]:
    """``size`` nodes with local timings, joined through the first."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(node_named("n0", **options))
        nodes = [first]
        for i in range(1, size):
            join = seed_of(first)
            nodes.append(
                await stack.enter_async_context(
                    node_named(f"n{i}", join=join, **options)
                )
            )
        yield nodes


def node_named(name: str, **options: Any) -> Any:
    """A node on a free loopback port, with local timings and a short leave."""
    return open_node(
        name=name,
        bind=f"{HOST}:0",
        profile="local",
        serf_config=QUICK_LEAVE,
        **options,
    )


def everyone_alive(nodes: list[Node]) -> bool:
    names = {node.name for node in nodes}
    return all(statuses(n) == dict.fromkeys(names, MemberStatus.ALIVE) for n in nodes)


async def next_of(node: Node, kind: type[E], **fields: object) -> E:
    """The next event of type ``kind`` with the given field values."""
    async for event in node.events():
        if isinstance(event, kind) and all(
            getattr(event, key) == value for key, value in fields.items()
        ):
            return event
    raise AssertionError(f"{node.name}'s events ended before a {kind.__name__}")


# ----------------------------------------------------------------------------
# A pool forms, events spread, queries get answers, leaving shows as left


async def three_nodes_form_a_pool(backend: Backend) -> None:
    async with pool(3) as nodes:
        await wait_until(backend, lambda: everyone_alive(nodes))
        for node in nodes[1:]:
            joined = await next_of(nodes[0], MemberJoined, name=node.name)
            assert joined.port == node.address[1]


test_pool_trio, test_pool_asyncio = both(three_nodes_form_a_pool)


async def an_event_reaches_every_node(backend: Backend) -> None:
    async with pool(3) as nodes:
        sender = nodes[1]
        fired = await sender.fire("deploy", b"v42 \x00\xff")
        assert (fired.serf_name, fired.payload, fired.event_id) == (
            "deploy",
            b"v42 \x00\xff",
            None,
        )
        for node in nodes:  # the sender included, as in Serf
            event = await next_of(node, UserEventReceived, name="deploy")
            assert (event.payload, event.ltime) == (b"v42 \x00\xff", fired.ltime)
            assert event.coalesce is False


test_event_trio, test_event_asyncio = both(an_event_reaches_every_node)


async def a_consul_event_carries_consuls_map(backend: Backend) -> None:
    async with pool(2) as (first, second):
        fired = await first.fire(
            "restart", "now", consul=True, node_filter="^web", tag_filter=""
        )
        assert fired.serf_name == "consul:event:restart"
        event = await next_of(second, UserEventReceived, name="consul:event:restart")
        wire = UserEvent(event.ltime, event.name, event.payload, event.coalesce)
        consul = ConsulEvent.from_serf(wire)
        assert consul is not None
        assert (consul.id, consul.name, consul.payload) == (
            fired.event_id,
            "restart",
            b"now",
        )
        assert consul.node_filter == "^web"


test_consul_trio, test_consul_asyncio = both(a_consul_event_carries_consuls_map)


async def answer_next_query(node: Node, name: str) -> QueryReceived:
    query = await next_of(node, QueryReceived, name=name)
    await node.respond(query, f"hi from {node.name}")
    return query


async def a_query_gets_acks_and_responses(backend: Backend) -> None:
    async with pool(3) as nodes:
        await wait_until(backend, lambda: everyone_alive(nodes))
        asker = nodes[0]
        result = await asker.query("who", b"?", timeout=QUERY_TIMEOUT)
        for node in nodes[1:]:
            query = await answer_next_query(node, "who")
            assert (query.payload, query.source) == (b"?", asker.name)
        replies = [reply async for reply in result]
        assert result.finished
        names = {node.name for node in nodes}
        assert sorted(result.acks) == sorted(names)
        assert result.responses == {n: f"hi from {n}".encode() for n in names - {"n0"}}
        assert {r.from_node for r in replies if isinstance(r, QueryAck)} == names
        assert {r.from_node for r in replies if isinstance(r, QueryResponse)} == {
            "n1",
            "n2",
        }


test_query_trio, test_query_asyncio = both(a_query_gets_acks_and_responses)


async def query_filters_choose_who_answers(backend: Backend) -> None:
    async with AsyncExitStack() as stack:
        asker = await stack.enter_async_context(node_named("asker"))
        for name, role in (("web1", "web"), ("db1", "db")):
            await stack.enter_async_context(
                node_named(name, join=seed_of(asker), tags={"role": role})
            )
        await wait_until(backend, lambda: len(asker.members()) == 3)
        by_tag = await asker.query("t", filter_tags={"role": "^w"}, timeout=1.0)
        by_name = await asker.query("n", filter_nodes=["db1"], timeout=1.0)
        await by_tag.wait()
        await by_name.wait()
        assert by_tag.acks == ["web1"]
        assert by_name.acks == ["db1"]


test_filters_trio, test_filters_asyncio = both(query_filters_choose_who_answers)


async def leaving_shows_as_left(backend: Backend) -> None:
    async with pool(3) as (first, second, third):
        await wait_until(backend, lambda: everyone_alive([first, second, third]))
        await third.leave()
        assert third.left
        await third.leave()  # a second call has nothing left to do
        for node in (first, second):
            left = await next_of(node, MemberLeft, name="n2")
            assert left.status is MemberStatus.LEFT
            assert statuses(node)["n2"] is MemberStatus.LEFT
        with pytest.raises(LocalProtocolError, match="left"):
            await third.fire("late")


test_leave_trio, test_leave_asyncio = both(leaving_shows_as_left)


async def closing_the_block_leaves_gracefully(backend: Backend) -> None:
    async with node_named("stays") as stays:
        async with node_named("goes", join=seed_of(stays)) as goes:
            await wait_until(backend, lambda: len(stays.members()) == 2)
        assert goes.left
        assert statuses(stays)["goes"] is MemberStatus.LEFT
        # The closed node's undrained events are still there, then they end...
        left_behind = [event async for event in goes.events()]
        assert MemberJoined(
            "stays", HOST, stays.address[1], {}, MemberStatus.ALIVE
        ) in (left_behind)
        # ...and it refuses to act.
        with pytest.raises(LocalProtocolError, match="closed"):
            await goes.respond(
                QueryReceived("q", b"", 1, 1, "x", (HOST, 1), 0.0, 0), b""
            )


test_close_trio, test_close_asyncio = both(closing_the_block_leaves_gracefully)


# ----------------------------------------------------------------------------
# Errors


async def an_error_in_the_block_still_leaves(backend: Backend) -> None:
    async with node_named("stays") as stays:
        with pytest.raises(KeyError, match="boom"):
            async with node_named("fails", join=seed_of(stays)):
                await wait_until(backend, lambda: len(stays.members()) == 2)
                raise KeyError("boom")
        assert statuses(stays)["fails"] is MemberStatus.LEFT


test_error_leaves_trio, test_error_leaves_asyncio = both(
    an_error_in_the_block_still_leaves
)


async def an_unreachable_seed_is_refused(backend: Backend) -> None:
    async with node_named("gone") as gone:
        dead_seed = seed_of(gone)
    with pytest.raises(NoSeedError) as caught:
        async with node_named("lonely", join=dead_seed):
            raise AssertionError("the block must not run without a pool")
    [failure] = caught.value.failures
    assert failure.seed == dead_seed
    assert "refused" in failure.reason.lower()


test_unreachable_trio, test_unreachable_asyncio = both(an_unreachable_seed_is_refused)


async def a_wrong_key_is_named(backend: Backend) -> None:
    async with node_named("keeper", encrypt=generate_key()) as keeper:
        with pytest.raises(WrongKeyError):
            async with node_named(
                "stranger", join=seed_of(keeper), encrypt=generate_key()
            ):
                raise AssertionError("the block must not run without a pool")
        assert [m.name for m in keeper.members()] == ["keeper"]


test_wrong_key_trio, test_wrong_key_asyncio = both(a_wrong_key_is_named)


async def an_encrypted_pool_works(backend: Backend) -> None:
    key = generate_key()
    async with pool(2, encrypt=key) as (first, second):
        await first.fire("secret", b"s")
        event = await next_of(second, UserEventReceived, name="secret")
        assert event.payload == b"s"


test_encrypted_trio, test_encrypted_asyncio = both(an_encrypted_pool_works)


async def misuse_is_refused_before_sending(backend: Backend) -> None:
    async with node_named("careful") as node:
        with pytest.raises(TransportError):
            async with open_node(name="twin", bind=seed_of(node)):
                raise AssertionError("two nodes cannot share a port")
        with pytest.raises(EventTooLargeError, match="at most"):
            await node.fire("big", bytes(600))
        with pytest.raises(LocalProtocolError, match="coalesc"):
            await node.fire("restart", consul=True, coalesce=True)
        with pytest.raises(LocalProtocolError, match="Consul"):
            await node.fire("consul:new-leader")
        with pytest.raises(LocalProtocolError, match="seed"):
            await node.join([])
        result = await node.query("mine", timeout=1.0)
        query = await next_of(node, QueryReceived, name="mine")
        await node.respond(query, b"once")
        with pytest.raises(LocalProtocolError, match="already"):
            await node.respond(query, b"twice")
        assert (await result.wait()).responses == {"careful": b"once"}
        assert node.stats.get("udp_send_errors", 0) == 0


test_misuse_trio, test_misuse_asyncio = both(misuse_is_refused_before_sending)


async def undrained_events_are_dropped_and_counted(backend: Backend) -> None:
    async with node_named("busy", event_buffer=2) as node:
        await next_of(node, MemberJoined, name="busy")
        for i in range(5):
            await node.fire(f"e{i}")
        assert node.stats["events_dropped"] == 3
        kept: list[NodeEvent] = [await node.events().receive() for _ in range(2)]
        assert [e.name for e in kept if isinstance(e, UserEventReceived)] == [
            "e0",
            "e1",
        ]


test_dropped_trio, test_dropped_asyncio = both(undrained_events_are_dropped_and_counted)


# ----------------------------------------------------------------------------
# Imports


def run_python(code: str) -> int:
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    return done.returncode


def test_importing_serfcast_and_its_node_api_does_not_import_trio() -> None:
    code = (
        "import sys, serfcast; serfcast.open_node; serfcast.Node; "
        "serfcast.UserEventReceived; sys.exit('trio' in sys.modules)"
    )
    assert run_python(code) == 0


def test_a_node_under_asyncio_never_imports_trio() -> None:
    code = """
import asyncio, sys, serfcast
async def main():
    async with serfcast.open_node(name="solo", bind="127.0.0.1:0") as node:
        await node.fire("x")
        async for event in node.events():
            if isinstance(event, serfcast.UserEventReceived):
                return
asyncio.run(asyncio.wait_for(main(), 20))
sys.exit('trio' in sys.modules)
"""
    assert run_python(code) == 0


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(LocalProtocolError, match="event_buffer"):
        open_node(event_buffer=0)
    with pytest.raises(LocalProtocolError, match="port"):
        open_node(bind="127.0.0.1:http")
    with pytest.raises(LocalProtocolError, match="profile"):
        open_node(profile="moon")


def test_the_public_names_are_exported() -> None:
    for name in ("open_node", "Node", "QueryResult", "FiredEvent", "MemberLeft"):
        assert name in serfcast.__all__
        assert getattr(serfcast, name) is not None
    assert serfcast.open_node is open_node
    with pytest.raises(AttributeError):
        _ = serfcast.no_such_name

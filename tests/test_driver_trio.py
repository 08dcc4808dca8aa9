"""The trio driver running memberlist engines on real loopback UDP and TCP."""

from __future__ import annotations

import errno
import functools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from serfcast.drivers import advertise_address
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.config import profile
from serfcast.engine.delegate import NullDelegate
from serfcast.engine.memberlist import (
    JoinFinished,
    LeaveFinished,
    Memberlist,
    MemberlistEvent,
)
from serfcast.engine.nodes import NodeState
from serfcast.errors import LocalProtocolError, TransportError
from serfcast.wire.messages import ErrResp
from serfcast.wire.stream import StreamDecoder

HOST = "127.0.0.1"
#: Every test's overall bound: generous, since probes and gossip run on real time.
TEST_BOUND = 20.0
Driver = TrioDriver[MemberlistEvent]


class MessageDelegate(NullDelegate):
    """Gossips queued user messages a few times each and records what arrives."""

    def __init__(self) -> None:
        self.outbox: dict[bytes, int] = {}
        self.received: list[bytes] = []

    def queue(self, message: bytes, transmits: int = 4) -> None:
        self.outbox[message] = transmits

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        chosen: list[bytes] = []
        for message, left in list(self.outbox.items()):
            if len(message) + overhead > limit:
                continue
            limit -= len(message) + overhead
            chosen.append(message)
            if left <= 1:
                del self.outbox[message]
            else:
                self.outbox[message] = left - 1
        return chosen

    def notify_msg(self, payload: bytes, now: float) -> None:
        self.received.append(payload)


def make_node(name: str, **config: object) -> tuple[Driver, MessageDelegate]:
    """A driver on a fresh loopback port around a memberlist with local timings."""
    sockets = TrioDriver.bind((HOST, 0))
    delegate = MessageDelegate()
    engine = Memberlist(
        name,
        advertise_address(sockets.address),
        config=profile("local").replace(**config),
        delegate=delegate,
    )
    return TrioDriver(engine, sockets=sockets), delegate


async def wait_until(predicate: Callable[[], object], step: float = 0.05) -> None:
    """Poll ``predicate``; the caller bounds the wait with ``trio.fail_after``."""
    while not predicate():
        await trio.sleep(step)


async def next_event(driver: Driver) -> MemberlistEvent:
    return await driver.events().receive()


def states(driver: Driver) -> dict[str, NodeState]:
    engine = driver.engine
    assert isinstance(engine, Memberlist)
    return {name: node.state for name, node in engine.nodes.items()}


def all_alive(drivers: list[Driver]) -> bool:
    names = {d.engine.name for d in drivers if isinstance(d.engine, Memberlist)}
    expected = dict.fromkeys(names, NodeState.ALIVE)
    return all(states(d) == expected for d in drivers)


async def join(driver: Driver, seed: Driver) -> JoinFinished:
    engine = driver.engine
    assert isinstance(engine, Memberlist)
    driver.call(functools.partial(engine.join, [seed.address]))
    event = await next_event(driver)
    assert isinstance(event, JoinFinished)
    return event


@asynccontextmanager
async def cluster(size: int) -> AsyncIterator[list[tuple[Driver, MessageDelegate]]]:
    """``size`` running nodes, all joined to the first and seeing each other alive."""
    nodes = [make_node(f"node{i}") for i in range(size)]
    async with AsyncExitStack() as stack:
        for driver, _ in nodes:
            await stack.enter_async_context(driver)
        seed = nodes[0][0]
        for driver, _ in nodes[1:]:
            finished = await join(driver, seed)
            assert finished.contacted == (seed.address,)
            assert finished.errors == ()
        drivers = [driver for driver, _ in nodes]
        await wait_until(lambda: all_alive(drivers))
        yield nodes


async def test_three_nodes_join_and_converge() -> None:
    with trio.fail_after(TEST_BOUND):
        async with cluster(3) as nodes:
            drivers = [driver for driver, _ in nodes]
            assert all_alive(drivers)
            # Some probes go round on real sockets and nobody becomes suspect.
            await trio.sleep(1.5)
            assert all_alive(drivers)
            assert all(d.stats.get("udp_send_errors", 0) == 0 for d in drivers)


async def test_gossiped_user_message_reaches_every_other_node() -> None:
    with trio.fail_after(TEST_BOUND):
        async with cluster(3) as nodes:
            (_, sender), (_, second), (_, third) = nodes
            sender.queue(b"hello pool")
            await wait_until(
                lambda: (
                    b"hello pool" in second.received and b"hello pool" in third.received
                )
            )
            assert b"hello pool" not in sender.received


async def test_direct_user_packet_and_stream_are_delivered() -> None:
    with trio.fail_after(TEST_BOUND):
        async with cluster(2) as nodes:
            (driver, _), (other, delegate) = nodes
            engine = driver.engine
            assert isinstance(engine, Memberlist)
            send_packet = functools.partial(engine.send_user_packet, other.address)
            driver.call(functools.partial(send_packet, b"by udp"))
            send_stream = functools.partial(engine.send_user_stream, other.address)
            driver.call(functools.partial(send_stream, b"by tcp" * 1000))
            await wait_until(
                lambda: (
                    b"by udp" in delegate.received
                    and b"by tcp" * 1000 in delegate.received
                )
            )


async def test_leave_shows_as_left_on_the_others() -> None:
    with trio.fail_after(TEST_BOUND):
        async with cluster(3) as nodes:
            drivers = [driver for driver, _ in nodes]
            leaver = drivers[2]
            engine = leaver.engine
            assert isinstance(engine, Memberlist)
            leaver.call(engine.leave)
            assert isinstance(await next_event(leaver), LeaveFinished)
            await wait_until(
                lambda: all(states(d)["node2"] == NodeState.LEFT for d in drivers[:2])
            )
            assert states(drivers[0])["node1"] == NodeState.ALIVE


async def test_join_reports_a_refused_seed() -> None:
    with trio.fail_after(TEST_BOUND):
        driver, _ = make_node("lonely")
        closed = TrioDriver.bind((HOST, 0))
        port = closed.address[1]
        closed.close()
        async with driver:
            engine = driver.engine
            assert isinstance(engine, Memberlist)
            driver.call(functools.partial(engine.join, [(HOST, port)]))
            event = await next_event(driver)
        assert isinstance(event, JoinFinished)
        assert event.contacted == ()
        [(address, reason)] = event.errors
        assert address == (HOST, port)
        assert "refused" in reason.lower()


async def test_join_times_out_on_a_silent_seed() -> None:
    with trio.fail_after(TEST_BOUND):
        driver, _ = make_node("patient", tcp_timeout=0.3)
        # A listener that accepts (the kernel completes the handshake) but never
        # answers the push/pull.
        silent = socket.create_server((HOST, 0))
        with silent:
            async with driver:
                engine = driver.engine
                assert isinstance(engine, Memberlist)
                seed = silent.getsockname()[:2]
                driver.call(functools.partial(engine.join, [seed]))
                event = await next_event(driver)
        assert isinstance(event, JoinFinished)
        assert event.contacted == ()
        assert [reason for _, reason in event.errors] == ["timed out"]


async def test_garbage_on_the_listener_gets_an_error_reply_and_eof() -> None:
    with trio.fail_after(TEST_BOUND):
        driver, _ = make_node("server")
        async with driver:
            stream = await trio.open_tcp_stream(*driver.address)
            async with stream:
                await stream.send_all(b"\xfe garbage")
                reply = b""
                while chunk := await stream.receive_some(4096):
                    reply += chunk
        # The reply is one error response naming the problem...
        frame = StreamDecoder(expect_label_header=False).feed(reply)
        assert frame is not None
        assert isinstance(frame.message, ErrResp)
        assert frame.message.error
        # ...and the engine counted the failed stream it served.
        engine = driver.engine
        assert isinstance(engine, Memberlist)
        assert engine.stats.get("stream_errors_serve") == 1


async def test_a_silent_client_is_disconnected_after_the_tcp_timeout() -> None:
    with trio.fail_after(TEST_BOUND):
        driver, _ = make_node("strict", tcp_timeout=0.3)
        async with driver:
            stream = await trio.open_tcp_stream(*driver.address)
            async with stream:
                # No request ever comes, so the server gives up and closes.
                reply = await stream.receive_some(4096)
        assert reply == b""


async def test_streams_over_the_limit_are_refused() -> None:
    with trio.fail_after(TEST_BOUND):
        sockets = TrioDriver.bind((HOST, 0))
        engine = Memberlist("full", advertise_address(sockets.address))
        driver = TrioDriver(engine, sockets=sockets, max_streams=0)
        async with driver:
            driver.call(functools.partial(engine.join, [(HOST, 9)]))
            event = await next_event(driver)
            assert isinstance(event, JoinFinished)
            assert event.errors == (((HOST, 9), "too many open streams"),)
            stream = await trio.open_tcp_stream(*driver.address)
            async with stream:
                assert await stream.receive_some(4096) == b""
            assert driver.stats["streams_refused"] == 2


class OversizedMeta(NullDelegate):
    def node_meta(self, limit: int) -> bytes:
        return bytes(limit + 1)


async def test_an_engine_that_cannot_start_leaves_the_port_free() -> None:
    sockets = TrioDriver.bind((HOST, 0))
    address = sockets.address
    engine = Memberlist("big", advertise_address(address), delegate=OversizedMeta())
    with pytest.raises(LocalProtocolError, match="meta"):
        async with TrioDriver(engine, sockets=sockets):
            pass
    TrioDriver.bind(address).close()


async def test_undrained_events_are_dropped_and_counted() -> None:
    sockets = TrioDriver.bind((HOST, 0))
    engine = Memberlist("busy", advertise_address(sockets.address))
    driver = TrioDriver(engine, sockets=sockets, event_queue=1)
    with trio.fail_after(TEST_BOUND):
        async with driver:
            # A join without seeds finishes at once, with one event each time.
            for _ in range(3):
                driver.call(functools.partial(engine.join, []))
            assert driver.stats["events_dropped"] == 2
            assert isinstance(await next_event(driver), JoinFinished)
        # Closing ends iteration for whoever reads the events.
        assert [event async for event in driver.events()] == []


async def test_port_zero_binds_udp_and_tcp_to_one_port() -> None:
    sockets = TrioDriver.bind((HOST, 0))
    try:
        udp_port = sockets.udp.getsockname()[1]
        assert udp_port != 0
        assert sockets.tcp.getsockname()[1] == udp_port
        assert sockets.address == (HOST, udp_port)
    finally:
        sockets.close()


async def test_a_taken_port_is_a_transport_error() -> None:
    taken = TrioDriver.bind((HOST, 0))
    try:
        with pytest.raises(TransportError) as caught:
            TrioDriver.bind(taken.address)
        assert caught.value.errno == errno.EADDRINUSE
    finally:
        taken.close()


async def test_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        TrioDriver.bind(("localhost", 0))
    with pytest.raises(LocalProtocolError):
        advertise_address(("0.0.0.0", 7946))
    engine = Memberlist("x", (b"\x7f\x00\x00\x01", 1))
    with pytest.raises(LocalProtocolError):
        TrioDriver(engine)
    with pytest.raises(LocalProtocolError):
        TrioDriver(engine, bind=(HOST, 0)).call(engine.start)


async def test_an_error_in_the_body_propagates_unwrapped_and_closes() -> None:
    driver, _ = make_node("fragile")
    with pytest.raises(KeyError):
        async with driver:
            address = driver.address
            raise KeyError("boom")
    # The port is free again: both sockets were closed.
    TrioDriver.bind(address).close()
    await driver.aclose()  # closing twice is harmless


def test_importing_the_package_does_not_import_trio() -> None:
    code = (
        "import sys, serfcast, serfcast.cli, serfcast.drivers, "
        "serfcast.drivers.sockets, serfcast.engine.memberlist; "
        "sys.exit('trio' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert done.returncode == 0

"""Both drivers, trio and asyncio, running memberlist engines on loopback.

Every test runs once per driver: the drivers must behave the same, since the
engine and the node API above them do not know which one runs them.
"""

from __future__ import annotations

import errno
import functools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from async_backends import BACKENDS, AnyDriver, Backend, exchange, wait_until
from serfcast.drivers import advertise_address
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

pytestmark = pytest.mark.parametrize("backend", BACKENDS)

HOST = "127.0.0.1"
#: Every test's overall bound: generous, since probes and gossip run on real time.
TEST_BOUND = 20.0
#: Bound on a blocking client socket of the test itself.
CLIENT_TIMEOUT = 5.0


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


Node = tuple[AnyDriver, MessageDelegate]


def make_node(backend: Backend, name: str, **config: object) -> Node:
    """A driver on a fresh loopback port around a memberlist with local timings."""
    sockets = backend.driver.bind((HOST, 0))
    delegate = MessageDelegate()
    engine = Memberlist(
        name,
        advertise_address(sockets.address),
        config=profile("local").replace(**config),
        delegate=delegate,
    )
    return backend.driver(engine, sockets=sockets), delegate


def memberlist(driver: AnyDriver) -> Memberlist:
    engine = driver.engine
    assert isinstance(engine, Memberlist)
    return engine


def states(driver: AnyDriver) -> dict[str, NodeState]:
    return {name: node.state for name, node in memberlist(driver).nodes.items()}


def all_alive(drivers: list[AnyDriver]) -> bool:
    expected = dict.fromkeys((memberlist(d).name for d in drivers), NodeState.ALIVE)
    return all(states(d) == expected for d in drivers)


async def next_event(driver: AnyDriver) -> MemberlistEvent:
    event: MemberlistEvent = await driver.events().receive()
    return event


async def join(driver: AnyDriver, seed: AnyDriver) -> JoinFinished:
    driver.call(functools.partial(memberlist(driver).join, [seed.address]))
    event = await next_event(driver)
    assert isinstance(event, JoinFinished)
    return event


@asynccontextmanager
async def cluster(backend: Backend, size: int) -> AsyncIterator[list[Node]]:
    """``size`` running nodes, all joined to the first and seeing each other alive."""
    nodes = [make_node(backend, f"node{i}") for i in range(size)]
    async with AsyncExitStack() as stack:
        for driver, _ in nodes:
            await stack.enter_async_context(driver)
        seed = nodes[0][0]
        for driver, _ in nodes[1:]:
            finished = await join(driver, seed)
            assert finished.contacted == (seed.address,)
            assert finished.errors == ()
        drivers = [driver for driver, _ in nodes]
        await wait_until(backend, lambda: all_alive(drivers))
        yield nodes


def test_three_nodes_join_and_converge(backend: Backend) -> None:
    async def main() -> None:
        async with cluster(backend, 3) as nodes:
            drivers = [driver for driver, _ in nodes]
            # Some probes go round on real sockets and nobody becomes suspect.
            await backend.sleep(1.5)
            assert all_alive(drivers)
            assert all(d.stats.get("udp_send_errors", 0) == 0 for d in drivers)

    backend.run(main, TEST_BOUND)


def test_gossiped_user_message_reaches_every_other_node(backend: Backend) -> None:
    async def main() -> None:
        async with cluster(backend, 3) as nodes:
            (_, sender), (_, second), (_, third) = nodes
            sender.queue(b"hello pool")
            await wait_until(
                backend,
                lambda: (
                    b"hello pool" in second.received and b"hello pool" in third.received
                ),
            )
            assert b"hello pool" not in sender.received

    backend.run(main, TEST_BOUND)


def test_direct_user_packet_and_stream_are_delivered(backend: Backend) -> None:
    async def main() -> None:
        async with cluster(backend, 2) as nodes:
            (driver, _), (other, delegate) = nodes
            engine = memberlist(driver)
            send_packet = functools.partial(engine.send_user_packet, other.address)
            driver.call(functools.partial(send_packet, b"by udp"))
            send_stream = functools.partial(engine.send_user_stream, other.address)
            driver.call(functools.partial(send_stream, b"by tcp" * 1000))
            await wait_until(
                backend,
                lambda: (
                    b"by udp" in delegate.received
                    and b"by tcp" * 1000 in delegate.received
                ),
            )

    backend.run(main, TEST_BOUND)


def test_leave_shows_as_left_on_the_others(backend: Backend) -> None:
    async def main() -> None:
        async with cluster(backend, 3) as nodes:
            drivers = [driver for driver, _ in nodes]
            leaver = drivers[2]
            leaver.call(memberlist(leaver).leave)
            assert isinstance(await next_event(leaver), LeaveFinished)
            await wait_until(
                backend,
                lambda: all(states(d)["node2"] == NodeState.LEFT for d in drivers[:2]),
            )
            assert states(drivers[0])["node1"] == NodeState.ALIVE

    backend.run(main, TEST_BOUND)


def test_join_reports_a_refused_seed(backend: Backend) -> None:
    closed = backend.driver.bind((HOST, 0))
    port = closed.address[1]
    closed.close()
    events: list[MemberlistEvent] = []

    async def main() -> None:
        driver, _ = make_node(backend, "lonely")
        async with driver:
            driver.call(functools.partial(memberlist(driver).join, [(HOST, port)]))
            events.append(await next_event(driver))

    backend.run(main, TEST_BOUND)
    [event] = events
    assert isinstance(event, JoinFinished)
    assert event.contacted == ()
    [(address, reason)] = event.errors
    assert address == (HOST, port)
    assert "refused" in reason.lower()


def test_join_times_out_on_a_silent_seed(backend: Backend) -> None:
    events: list[MemberlistEvent] = []

    async def main() -> None:
        driver, _ = make_node(backend, "patient", tcp_timeout=0.3)
        # A listener that accepts (the kernel completes the handshake) but never
        # answers the push/pull.
        with socket.create_server((HOST, 0)) as silent:
            async with driver:
                seed = silent.getsockname()[:2]
                driver.call(functools.partial(memberlist(driver).join, [seed]))
                events.append(await next_event(driver))

    backend.run(main, TEST_BOUND)
    [event] = events
    assert isinstance(event, JoinFinished)
    assert event.contacted == ()
    assert [reason for _, reason in event.errors] == ["timed out"]


def test_garbage_on_the_listener_gets_an_error_reply_and_eof(
    backend: Backend,
) -> None:
    driver, _ = make_node(backend, "server")
    replies: list[bytes] = []

    async def main() -> None:
        async with driver:
            send = functools.partial(
                exchange, driver.address, b"\xfe garbage", CLIENT_TIMEOUT
            )
            replies.append(await backend.in_thread(send))

    backend.run(main, TEST_BOUND)
    # The reply is one error response naming the problem...
    frame = StreamDecoder(expect_label_header=False).feed(replies[0])
    assert frame is not None
    assert isinstance(frame.message, ErrResp)
    assert frame.message.error
    # ...and the engine counted the failed stream it served.
    assert memberlist(driver).stats.get("stream_errors_serve") == 1


def test_a_silent_client_is_disconnected_after_the_tcp_timeout(
    backend: Backend,
) -> None:
    replies: list[bytes] = []

    async def main() -> None:
        driver, _ = make_node(backend, "strict", tcp_timeout=0.3)
        async with driver:
            # No request ever comes, so the server gives up and closes.
            silent = functools.partial(exchange, driver.address, b"", CLIENT_TIMEOUT)
            replies.append(await backend.in_thread(silent))

    backend.run(main, TEST_BOUND)
    assert replies == [b""]


def test_streams_over_the_limit_are_refused(backend: Backend) -> None:
    sockets = backend.driver.bind((HOST, 0))
    engine = Memberlist("full", advertise_address(sockets.address))
    driver = backend.driver(engine, sockets=sockets, max_streams=0)

    async def main() -> None:
        async with driver:
            driver.call(functools.partial(engine.join, [(HOST, 9)]))
            event = await next_event(driver)
            assert isinstance(event, JoinFinished)
            assert event.errors == (((HOST, 9), "too many open streams"),)
            refused = functools.partial(exchange, driver.address, b"", CLIENT_TIMEOUT)
            assert await backend.in_thread(refused) == b""

    backend.run(main, TEST_BOUND)
    assert driver.stats["streams_refused"] == 2


class OversizedMeta(NullDelegate):
    def node_meta(self, limit: int) -> bytes:
        return bytes(limit + 1)


def test_an_engine_that_cannot_start_leaves_the_port_free(backend: Backend) -> None:
    sockets = backend.driver.bind((HOST, 0))
    address = sockets.address
    engine = Memberlist("big", advertise_address(address), delegate=OversizedMeta())

    async def main() -> None:
        with pytest.raises(LocalProtocolError, match="meta"):
            async with backend.driver(engine, sockets=sockets):
                pass

    backend.run(main, TEST_BOUND)
    backend.driver.bind(address).close()


def test_undrained_events_are_dropped_and_counted(backend: Backend) -> None:
    sockets = backend.driver.bind((HOST, 0))
    engine = Memberlist("busy", advertise_address(sockets.address))
    driver = backend.driver(engine, sockets=sockets, event_queue=1)

    async def main() -> None:
        async with driver:
            # A join without seeds finishes at once, with one event each time.
            for _ in range(3):
                driver.call(functools.partial(engine.join, []))
            assert driver.stats["events_dropped"] == 2
            assert isinstance(await next_event(driver), JoinFinished)
        # Closing ends iteration for whoever reads the events.
        assert [event async for event in driver.events()] == []

    backend.run(main, TEST_BOUND)


def test_an_event_sink_takes_the_events_instead(backend: Backend) -> None:
    sockets = backend.driver.bind((HOST, 0))
    engine = Memberlist("routed", advertise_address(sockets.address))
    taken: list[MemberlistEvent] = []

    def sink(event: MemberlistEvent) -> bool:
        taken.append(event)
        return len(taken) < 2

    driver = backend.driver(engine, sockets=sockets, event_sink=sink)

    async def main() -> None:
        async with driver:
            for _ in range(2):
                driver.call(functools.partial(engine.join, []))
        assert [event async for event in driver.events()] == []

    backend.run(main, TEST_BOUND)
    assert taken == [JoinFinished((), ())] * 2
    assert driver.stats["events_dropped"] == 1


def test_an_error_in_the_body_propagates_unwrapped_and_closes(
    backend: Backend,
) -> None:
    driver, _ = make_node(backend, "fragile")

    async def main() -> None:
        with pytest.raises(KeyError):
            async with driver:
                raise KeyError("boom")
        await driver.aclose()  # closing twice is harmless

    backend.run(main, TEST_BOUND)
    # The port is free again: both sockets were closed.
    backend.driver.bind(driver.address).close()


class BrokenEngine(Memberlist):
    """An engine with a bug: any datagram makes it raise."""

    def receive_packet(self, data: bytes, source: Any, now: float) -> None:
        raise RuntimeError(f"engine bug on {data!r}")


def test_an_engine_crash_ends_the_body_and_comes_out(backend: Backend) -> None:
    sockets = backend.driver.bind((HOST, 0))
    engine = BrokenEngine("buggy", advertise_address(sockets.address))
    driver = backend.driver(engine, sockets=sockets)
    reached_end: list[bool] = []

    async def main() -> None:
        with pytest.raises(BaseExceptionGroup) as caught:
            async with driver:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.sendto(b"poke", driver.address)
                await backend.sleep(TEST_BOUND)
                reached_end.append(True)
        assert caught.group_contains(RuntimeError, match="engine bug")

    backend.run(main, TEST_BOUND / 2)
    assert reached_end == []


def test_port_zero_binds_udp_and_tcp_to_one_port(backend: Backend) -> None:
    sockets = backend.driver.bind((HOST, 0))
    try:
        udp_port = sockets.udp.getsockname()[1]
        assert udp_port != 0
        assert sockets.tcp.getsockname()[1] == udp_port
        assert sockets.address == (HOST, udp_port)
    finally:
        sockets.close()


def test_a_taken_port_is_a_transport_error(backend: Backend) -> None:
    taken = backend.driver.bind((HOST, 0))
    try:
        with pytest.raises(TransportError) as caught:
            backend.driver.bind(taken.address)
        assert caught.value.errno == errno.EADDRINUSE
    finally:
        taken.close()


def test_misuse_is_a_local_error(backend: Backend) -> None:
    with pytest.raises(LocalProtocolError):
        backend.driver.bind(("localhost", 0))
    engine = Memberlist("x", (b"\x7f\x00\x00\x01", 1))
    with pytest.raises(LocalProtocolError):
        backend.driver(engine)
    with pytest.raises(LocalProtocolError):
        backend.driver(engine, bind=(HOST, 0)).call(engine.start)


def test_only_the_trio_driver_imports_trio(backend: Backend) -> None:
    # The package, the command line's entry module and the engines never do.
    modules = (
        "serfcast, serfcast.cli, serfcast.drivers, serfcast.drivers.sockets, "
        f"serfcast.engine.memberlist, serfcast.drivers.{backend.name}"
    )
    code = f"import sys, {modules}; sys.exit('trio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    # Only the trio driver may (and must) bring trio in.
    assert done.returncode == (1 if backend.name == "trio" else 0)

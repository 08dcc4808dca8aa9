"""The serfcast member that ``benchmarks/member.py`` measures, in its own process.

``python benchmarks/member_child.py SEED_PORT [--key KEY] [--driver trio|asyncio]
[--no-compression] [--profile]`` runs a :class:`~serfcast.engine.serf.SerfNode`
under the trio driver (or the asyncio one) on 127.0.0.1, joins the pool through
the agent at ``SEED_PORT``, prints ``joined <seconds>`` once the join finished,
answers every query it receives, and stays until its standard input closes; then
it leaves gracefully (bounded) and exits. With ``--profile`` it runs under
cProfile and writes the hot spots to standard error at exit.

It imports little beyond what a member needs, and only the async library it
runs on, so that its memory is the member's own: no benchmark or test machinery
comes along.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import AsyncIterable, Callable
from typing import Final, Protocol, TypeVar

from serfcast.drivers import advertise_address
from serfcast.drivers.sockets import BoundSockets
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.memberlist import JoinFinished
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import LeaveComplete, QueryReceived, SerfEvent
from serfcast.wire.keyring import Keyring

T = TypeVar("T")

HOST: Final = "127.0.0.1"
NAME: Final = "serfcast-bench"
LEAVE_TIMEOUT: Final = 15.0
PROFILE_LINES: Final = 25


class Driver(Protocol):
    """What this program needs of either driver."""

    def now(self) -> float: ...
    def call(self, method: Callable[[float], T]) -> T: ...
    def events(self) -> AsyncIterable[SerfEvent]: ...


def new_node(sockets: BoundSockets, key: str | None, compression: bool) -> SerfNode:
    return SerfNode(
        NAME,
        advertise_address(sockets.address),
        tags={"role": "bench"},
        keyring=Keyring.from_base64(key) if key else None,
        memberlist_config=MemberlistConfig(enable_compression=compression),
    )


async def follow_events(
    node: SerfNode, driver: Driver, left: Callable[[], None], start: float
) -> None:
    """Report the join (and how long it took since ``start``), answer queries as
    a live member would, see the leave end."""
    async for event in driver.events():
        if isinstance(event, JoinFinished):
            took = driver.now() - start
            report = f"joined {took:.3f}" if event.contacted else f"failed {event}"
            print(report, flush=True)
        elif isinstance(event, LeaveComplete):
            left()
        elif isinstance(event, QueryReceived):
            driver.call(functools.partial(node.respond, event, b"bench-answer"))


async def run_trio(seed: int, key: str | None, compression: bool) -> None:
    """Join through ``seed``, say "joined", stay until stdin closes, then leave."""
    import trio

    from serfcast.drivers.trio import TrioDriver

    sockets = TrioDriver.bind((HOST, 0))
    node = new_node(sockets, key, compression)
    left = trio.Event()
    async with TrioDriver(node, sockets=sockets) as driver:
        driver.call(functools.partial(node.join, [(HOST, seed)]))
        async with trio.open_nursery() as nursery:
            start = driver.now()
            nursery.start_soon(follow_events, node, driver, left.set, start)
            await trio_stdin_closed()
            driver.call(node.leave)
            with trio.move_on_after(LEAVE_TIMEOUT):
                await left.wait()
            nursery.cancel_scope.cancel()


async def trio_stdin_closed() -> None:
    import trio

    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        while await stdin.receive_some(1024):
            pass


async def run_asyncio(seed: int, key: str | None, compression: bool) -> None:
    """The same as :func:`run_trio`, on asyncio."""
    import asyncio

    from serfcast.drivers.asyncio import AsyncioDriver

    sockets = AsyncioDriver.bind((HOST, 0))
    node = new_node(sockets, key, compression)
    left = asyncio.Event()
    async with AsyncioDriver(node, sockets=sockets) as driver:
        driver.call(functools.partial(node.join, [(HOST, seed)]))
        start = driver.now()
        follower = asyncio.create_task(follow_events(node, driver, left.set, start))
        await asyncio_stdin_closed()
        driver.call(node.leave)
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await left.wait()
        except TimeoutError:
            pass
        follower.cancel()


async def asyncio_stdin_closed() -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 1024) and not closed.done():
            closed.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await closed
    finally:
        loop.remove_reader(fd)


def run(driver: str, seed: int, key: str | None, compression: bool) -> None:
    if driver == "trio":
        import trio

        trio.run(run_trio, seed, key, compression)
    else:
        import asyncio

        asyncio.run(run_asyncio(seed, key, compression))


def run_profiled(driver: str, seed: int, key: str | None, compression: bool) -> None:
    """Run under cProfile; print the hot spots on stderr."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run, driver, seed, key, compression)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)
    # Then serfcast's own functions by the time spent in them and below.
    stats.sort_stats("cumulative").print_stats("serfcast", PROFILE_LINES)
    print(out.getvalue(), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed_port", type=int)
    parser.add_argument("--key", help="the pool's gossip key, base64")
    parser.add_argument("--driver", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    compression = not args.no_compression
    if args.profile:
        run_profiled(args.driver, args.seed_port, args.key, compression)
    else:
        run(args.driver, args.seed_port, args.key, compression)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running a Serf member for the command line, on trio.

Building the :class:`~serfcast.engine.serf.SerfNode` and its driver from the
checked flags, joining with a bounded wait, running a handler in a worker
thread that a cancellation kills, ``trio.run`` that reports a lone error as
itself, and log lines shaped like the serf agent's
(``    2024/01/02 15:04:05 [INFO] agent: ...``).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final, TextIO, TypeVar

import trio

from serfcast.cli_node import Address, MemberOptions, show_address
from serfcast.drivers import advertise_address
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.config import profile
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import JoinFinished, SerfEvent
from serfcast.handlers import HandlerResult, HandlerRun

__all__ = [
    "build_node",
    "join_failure",
    "join_pool",
    "run_handler",
    "run_trio",
    "serf_logging",
]

T = TypeVar("T")

#: Added to the TCP timeout to bound a join's wait.
JOIN_SLACK: Final = 2.0
#: serf's -log-level words, as Python levels.
LOG_LEVELS: Final = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "err": logging.ERROR,
}


def build_node(options: MemberOptions) -> tuple[SerfNode, TrioDriver[SerfEvent]]:
    """Bind the gossip port and make the node and its driver (not started)."""
    sockets = TrioDriver.bind(options.bind)
    port = options.advertise[1] or sockets.address[1]
    config = profile(options.profile).replace(label=options.label)
    node = SerfNode(
        options.name,
        advertise_address((options.advertise[0], port)),
        tags=options.tags,
        keyring=options.keyring,
        memberlist_config=config,
        rng=random.Random(),
    )
    return node, TrioDriver(node, sockets=sockets)


async def join_pool(
    driver: TrioDriver[SerfEvent],
    node: SerfNode,
    seeds: Sequence[Address],
    *,
    ignore_old: bool = True,
) -> tuple[JoinFinished, list[SerfEvent]]:
    """Join through ``seeds``; the report and the events that came meanwhile.

    The wait is bounded by the TCP timeout; a join nobody answered comes back
    with an empty ``contacted``.
    """
    driver.call(functools.partial(node.join, list(seeds), ignore_old=ignore_old))
    early: list[SerfEvent] = []
    with trio.move_on_after(driver.tcp_timeout + JOIN_SLACK):
        async for event in driver.events():
            if isinstance(event, JoinFinished):
                return event, early
            early.append(event)
    errors = tuple((seed, "no answer in time") for seed in seeds)
    return JoinFinished((), errors), early


def join_failure(report: JoinFinished) -> str:
    """Why a join reached nobody, seed by seed."""
    reasons = "; ".join(f"{show_address(addr)}: {why}" for addr, why in report.errors)
    return f"no member could be joined: {reasons or 'no seed given'}"


async def run_handler(run: HandlerRun) -> HandlerResult:
    """Run a handler in a worker thread; cancelling kills it at once."""
    try:
        return await trio.to_thread.run_sync(run.run, abandon_on_cancel=True)
    except trio.Cancelled:
        run.stop()
        raise


def run_trio(main: Callable[..., Awaitable[T]], *args: object) -> T:
    """``trio.run``, with a lone error out of a nursery raised as itself.

    trio wraps whatever a nursery's body raises in an exception group; the
    command line reports a single error (a bad state file, an unreachable
    seed) in one line instead.
    """
    try:
        return trio.run(main, *args)
    except BaseExceptionGroup as group:
        raise _sole(group) from None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group


# ----------------------------------------------------------------------------
# Logging


class _SerfFormatter(logging.Formatter):
    """``    2024/01/02 15:04:05 [INFO] agent: message``, as serf logs."""

    _LEVELS: Final = {"WARNING": "WARN", "ERROR": "ERR", "CRITICAL": "ERR"}

    def __init__(self) -> None:
        super().__init__(datefmt="%Y/%m/%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        level = self._LEVELS.get(record.levelname, record.levelname)
        source = record.name.removeprefix("serfcast.")
        when = self.formatTime(record, self.datefmt)
        return f"    {when} [{level}] {source}: {record.getMessage()}"


class _FlushingHandler(logging.StreamHandler[TextIO]):
    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


@contextmanager
def serf_logging(stream: TextIO, level: str) -> Iterator[None]:
    """Send the ``serfcast`` loggers to ``stream`` in serf's shape meanwhile."""
    logger = logging.getLogger("serfcast")
    handler = _FlushingHandler(stream)
    handler.setFormatter(_SerfFormatter())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(LOG_LEVELS[level])
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

"""Run the same async test code under trio and under asyncio.

A :class:`Backend` knows how to run a coroutine function to completion within a
time bound, how to sleep, how to run blocking code in a thread, and which
serfcast driver belongs to its library. Tests written against it are
parametrized over :data:`BACKENDS`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import trio

from serfcast.drivers.asyncio import AsyncioDriver
from serfcast.drivers.trio import TrioDriver

T = TypeVar("T")
Main = Callable[[], Awaitable[None]]
#: Either driver; tests use only what both offer.
AnyDriver = TrioDriver[Any] | AsyncioDriver[Any]


@dataclass(frozen=True)
class Backend:
    """One async library, as the tests need it."""

    name: str
    driver: type[TrioDriver[Any]] | type[AsyncioDriver[Any]]
    run_bounded: Callable[[Main, float], None]
    sleep: Callable[[float], Awaitable[None]]
    run_in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]

    def run(self, main: Main, bound: float) -> None:
        """Run ``main`` to completion; fail if it takes longer than ``bound``."""
        self.run_bounded(main, bound)

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` in a worker thread, so the loops keep running."""
        result: T = await self.run_in_thread(fn)
        return result


def _run_trio(main: Main, bound: float) -> None:
    async def bounded() -> None:
        with trio.fail_after(bound):
            await main()

    trio.run(bounded)


def _run_asyncio(main: Main, bound: float) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(bound):
            await main()

    asyncio.run(bounded())


async def _trio_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def _asyncio_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


TRIO = Backend("trio", TrioDriver, _run_trio, trio.sleep, _trio_thread)
ASYNCIO = Backend(
    "asyncio", AsyncioDriver, _run_asyncio, asyncio.sleep, _asyncio_thread
)
BACKENDS = [pytest.param(TRIO, id="trio"), pytest.param(ASYNCIO, id="asyncio")]


async def wait_until(
    backend: Backend, predicate: Callable[[], object], step: float = 0.05
) -> None:
    """Poll ``predicate``; the caller's run bound limits the wait."""
    while not predicate():
        await backend.sleep(step)


def exchange(address: tuple[str, int], data: bytes, timeout: float) -> bytes:
    """Blocking: connect, send ``data``, read until the server closes."""
    with socket.create_connection(address, timeout) as sock:
        if data:
            sock.sendall(data)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply

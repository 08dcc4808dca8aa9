"""The async library that is running, as code above the drivers needs it.

Code that must work under trio and asyncio alike (the node API) asks
:func:`running_library` for the three things it needs: the matching driver
class, a one-shot signal, and a checkpoint that lets other tasks run. The
library's modules are imported only here, and only the running one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from serfcast.drivers.base import current_async_library
from serfcast.drivers.channel import Signal

__all__ = ["AsyncLibrary", "RunningDriver", "running_library"]

T = TypeVar("T")


class RunningDriver(Protocol):
    """What both drivers offer to code that only calls the engine through them."""

    stats: dict[str, int]

    def call(self, method: Callable[[float], T]) -> T:
        """Call the engine with the driver's clock, then act on the result."""
        ...

    async def __aenter__(self) -> Any:
        """Start the driver's loops."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop them and close the sockets."""
        ...


@dataclass(frozen=True, slots=True)
class AsyncLibrary:
    """One async library's driver, wake-up signal and checkpoint."""

    name: Literal["trio", "asyncio"]
    #: ``driver(engine, sockets=..., event_sink=...)`` as for either driver.
    driver: Callable[..., RunningDriver]
    new_signal: Callable[[], Signal]
    checkpoint: Callable[[], Awaitable[None]]


def running_library() -> AsyncLibrary:
    """The pieces of the library running the caller (trio or asyncio)."""
    if current_async_library() == "trio":
        import trio

        from serfcast.drivers.trio import TrioDriver

        return AsyncLibrary("trio", TrioDriver, trio.Event, trio.lowlevel.checkpoint)
    import asyncio

    from serfcast.drivers.asyncio import AsyncioDriver

    checkpoint = functools.partial(asyncio.sleep, 0)
    return AsyncLibrary("asyncio", AsyncioDriver, asyncio.Event, checkpoint)

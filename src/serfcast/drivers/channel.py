"""A bounded, closable queue of events that any async library can wait on.

Events are put in synchronously, from inside a driver's engine call, and never
block: a full channel refuses the event and the caller counts it as dropped.
Readers await :meth:`EventChannel.receive` or iterate with ``async for``, which
ends once the channel is closed and drained.

Waiting needs one primitive from the running library, a one-shot *signal* with
``set()`` and ``await wait()`` (``trio.Event`` and ``asyncio.Event`` both fit).
A fresh signal is made for each wait, so neither library's needs to be reset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["EventChannel", "Signal"]

T = TypeVar("T")


class Signal(Protocol):
    """A one-shot wake-up: ``trio.Event`` or ``asyncio.Event``."""

    def set(self) -> None:
        """Wake every waiter."""
        ...

    def wait(self) -> Awaitable[object]:
        """Wait until :meth:`set` was called."""
        ...


class EventChannel(Generic[T]):
    """At most ``size`` items, oldest first; ``new_signal`` makes wake-ups."""

    def __init__(self, size: int, new_signal: Callable[[], Signal]) -> None:
        self.size = size
        self._items: deque[T] = deque()
        self._new_signal = new_signal
        self._signal: Signal | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (items may still be waiting)."""
        return self._closed

    def offer(self, item: T) -> bool:
        """Add ``item`` without waiting; False when full or closed."""
        if self._closed or len(self._items) >= self.size:
            return False
        self._items.append(item)
        self._wake()
        return True

    def close(self) -> None:
        """Accept nothing more; readers get what is left, then the end."""
        self._closed = True
        self._wake()

    async def receive(self) -> T:
        """The oldest item, waiting for one; raises :class:`EOFError` at the end."""
        while not self._items:
            if self._closed:
                raise EOFError("no more events: the channel was closed")
            if self._signal is None:
                self._signal = self._new_signal()
            await self._signal.wait()
        return self._items.popleft()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EOFError:
            raise StopAsyncIteration from None

    def _wake(self) -> None:
        if self._signal is not None:
            self._signal.set()
            self._signal = None

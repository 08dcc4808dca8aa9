"""A serfcast Serf member on real sockets, run in a thread of its own.

Interop tests drive real agents with blocking CLI calls and want one member to
live across several tests. :class:`MemberThread` gives them that: it runs a
:class:`~serfcast.engine.serf.SerfNode` under the trio driver inside
``trio.run`` on a daemon thread, records every event the node emits, answers
the queries the application sees, and lets synchronous code call into the
engine (``member.call(fn)`` runs ``fn(now)`` on the trio thread and executes
what it queued, exactly like ``TrioDriver.call``).

Every wait is bounded; a crash of the trio thread is re-raised in the caller.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import trio

from serfcast.drivers import BoundSockets
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import QueryReceived, SerfEvent

__all__ = ["CountingSerfNode", "MemberThread"]

T = TypeVar("T")
Answer = Callable[[QueryReceived], bytes | None]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class CountingSerfNode(SerfNode):
    """A SerfNode that counts its push/pulls, to tell a soak really had some."""

    push_pulls_merged = 0
    streams_accepted = 0

    def merge_remote_state(self, state: bytes, join: bool, now: float) -> None:
        """Count every push/pull merged, ours or a peer's, then merge it."""
        self.push_pulls_merged += 1
        super().merge_remote_state(state, join, now)

    def stream_accepted(
        self, stream_id: int, peer: tuple[str, int], now: float
    ) -> None:
        """Count connections peers opened to us (their push/pulls)."""
        self.streams_accepted += 1
        super().stream_accepted(stream_id, peer, now)


class MemberThread:
    """``node`` on ``sockets`` under a trio driver, in a background thread.

    ``answer`` decides the response to each query the application receives
    (``None``: do not respond).
    """

    def __init__(
        self, node: SerfNode, sockets: BoundSockets, answer: Answer | None = None
    ) -> None:
        self.node = node
        self.address = sockets.address
        self._sockets = sockets
        self._answer = answer
        self._events: list[tuple[float, SerfEvent]] = []
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"serfcast-{node.name}", daemon=True
        )
        self._token: trio.lowlevel.TrioToken | None = None
        self._driver: TrioDriver[SerfEvent] | None = None
        self._scope: trio.CancelScope | None = None
        self.crash: BaseException | None = None
        #: Responses that the node refused to send (with its reason).
        self.answer_failures: list[str] = []

    # ------------------------------------------------------------------
    # Lifecycle

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the thread and wait until the driver runs."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"member thread not running after {timeout} s")
        self._raise_crash()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the driver (no leave: call ``node.leave`` first for that)."""
        if self._thread.is_alive() and self._token is not None:
            # The run may end on its own meanwhile; then there is nothing to cancel.
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._cancel, trio_token=self._token)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"member thread still running after {timeout} s")
        self._raise_crash()

    @property
    def running(self) -> bool:
        """Whether the trio thread is still up."""
        return self._thread.is_alive()

    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.crash = exc
        finally:
            self._ready.set()
            with self._changed:
                self._changed.notify_all()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with TrioDriver(self.node, sockets=self._sockets) as driver:
                self._driver = driver
                self._ready.set()
                async for event in driver.events():
                    self._record(driver, event)

    def _record(self, driver: TrioDriver[SerfEvent], event: SerfEvent) -> None:
        with self._changed:
            self._events.append((time.monotonic(), event))
            self._changed.notify_all()
        if isinstance(event, QueryReceived) and self._answer is not None:
            payload = self._answer(event)
            if payload is not None:
                self._respond(driver, event, payload)

    def _respond(
        self, driver: TrioDriver[SerfEvent], event: QueryReceived, payload: bytes
    ) -> None:
        try:
            driver.call(functools.partial(self.node.respond, event, payload))
        except Exception as exc:  # recorded for the test to assert on
            self.answer_failures.append(f"{event.name}: {exc}")

    def _raise_crash(self) -> None:
        if self.crash is not None:
            raise AssertionError("the member's trio thread crashed") from self.crash

    # ------------------------------------------------------------------
    # Talking to the node

    def call(self, method: Callable[[float], T]) -> T:
        """Run ``method(now)`` on the trio thread and execute what it queued."""
        self._raise_crash()
        if self._driver is None or self._token is None:
            raise AssertionError("the member thread was not started")
        return trio.from_thread.run_sync(
            self._driver.call, method, trio_token=self._token
        )

    @property
    def driver_stats(self) -> dict[str, int]:
        """The driver's counters of what it dropped or failed at."""
        return {} if self._driver is None else dict(self._driver.stats)

    def events(self) -> list[SerfEvent]:
        """Every event so far, oldest first."""
        with self._changed:
            return [event for _, event in self._events]

    def timed_events(self) -> list[tuple[float, SerfEvent]]:
        """Every event so far with its ``time.monotonic()`` arrival."""
        with self._changed:
            return list(self._events)

    def wait_for(
        self,
        predicate: Callable[[list[SerfEvent]], T],
        timeout: float,
        what: str = "an event",
    ) -> T:
        """Wait until ``predicate(events)`` is truthy and return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate([event for _, event in self._events])
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.crash is not None:
                    break
                self._changed.wait(remaining)
        self._raise_crash()
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

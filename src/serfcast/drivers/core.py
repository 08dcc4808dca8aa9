"""The half of a driver that never awaits, shared by the trio and asyncio drivers.

Theory of operation
-------------------
After *every* engine call, whoever made it (a receive loop, the timer, a
stream task, or the application through :meth:`DriverCore.call`) performs at
once, without awaiting, the actions the engine queued, then hands on the
events it produced, then wakes the timer if the engine's next deadline moved
earlier. Performing an action never blocks:

* a :class:`SendPacket` is a non-blocking ``sendto`` on the gossip socket; a
  full send buffer drops the datagram and counts it, as the network would;
* an :class:`OpenStream` registers a stream handle and starts a stream task;
* a :class:`StreamWrite` or :class:`CloseStream` goes into that stream's small
  command queue, which its task works through.

:class:`DriverCore` holds all of that, the bookkeeping of open streams and the
counters. A driver built on it supplies the I/O half: its clock, its event
queue, how it wakes its timer, how it starts a dial, and a stream handle type
that can queue commands and give up on its connection. Logs go to
``serfcast.transport`` (sockets) and ``serfcast.gossip`` (engine events), at
DEBUG only. This module imports no I/O library.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

from serfcast.drivers.base import DriverEngine, engine_tcp_timeout
from serfcast.engine.actions import (
    Action,
    Address,
    CloseStream,
    OpenStream,
    SendPacket,
    StreamWrite,
)
from serfcast.errors import LocalProtocolError, TransportError

__all__ = [
    "STREAM_CHUNK",
    "STREAM_COMMAND_QUEUE",
    "TIMER_FLOOR",
    "UDP_RECEIVE_SIZE",
    "DriverCore",
    "EventSink",
    "StreamCommand",
    "StreamHandle",
    "failure_reason",
    "format_stats",
]

transport_log = logging.getLogger("serfcast.transport")
gossip_log = logging.getLogger("serfcast.gossip")

UDP_RECEIVE_SIZE: Final = 65536
STREAM_CHUNK: Final = 65536
#: Commands one stream may have waiting; an engine sends a write and a close.
STREAM_COMMAND_QUEUE: Final = 16
#: The least time between two timer runs, so an engine whose deadline does not
#: move after ``handle_timeout`` cannot make the timer loop spin.
TIMER_FLOOR: Final = 0.001
#: Receive errors that concern one earlier datagram, not the socket itself.
_TRANSIENT_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EINTR,
        errno.ENOBUFS,
        errno.ENOMEM,
    }
)

EventT = TypeVar("EventT")
T = TypeVar("T")
#: What a stream task is told: write, close, or (None) that its reader ended.
StreamCommand = StreamWrite | CloseStream | None
#: Takes one event; returns False when it had no room (the event is dropped).
EventSink = Callable[[EventT], bool]


class StreamHandle(Protocol):
    """The driver's side of one TCP connection, as the shared half sees it."""

    @property
    def stream_id(self) -> int:
        """The engine's id for the stream (negative for accepted ones)."""
        ...

    def offer(self, command: StreamCommand) -> bool:
        """Queue a command for the stream task; False when its queue is full."""
        ...

    def fail(self, reason: str) -> None:
        """Give up on the connection; the first reason given is reported."""
        ...


HandleT = TypeVar("HandleT", bound=StreamHandle)


class DriverCore(ABC, Generic[EventT, HandleT]):
    """Performs an engine's actions and hands on its events, without awaiting.

    ``event_sink``, when given, receives every event instead of the driver's
    own queue; it returns False to have the event dropped and counted.
    """

    def __init__(
        self,
        engine: DriverEngine[EventT],
        *,
        tcp_timeout: float | None,
        max_streams: int,
        event_sink: EventSink[EventT] | None,
    ) -> None:
        self.engine = engine
        self.tcp_timeout = tcp_timeout or engine_tcp_timeout(engine)
        self.max_streams = max_streams
        #: Counters of what the driver dropped or failed at (never reset).
        self.stats: dict[str, int] = {}
        self._event_sink = event_sink
        self._handles: dict[int, HandleT] = {}
        self._last_accepted_id = 0
        #: When the timer loop will next wake on its own (inf: not before told).
        self._sleeping_until = math.inf
        self._closed = False

    # ------------------------------------------------------------------------
    # What a driver supplies

    @abstractmethod
    def now(self) -> float:
        """The driver's clock, in monotonic seconds; the engine sees only this."""

    @abstractmethod
    def _is_running(self) -> bool:
        """Whether the loops run, so the engine may be called."""

    @abstractmethod
    def _gossip_socket(self) -> socket.socket:
        """The non-blocking UDP socket bound to the gossip port."""

    @abstractmethod
    def _queue_event(self, event: EventT) -> bool:
        """Put ``event`` in the driver's own queue; False when it is full."""

    @abstractmethod
    def _wake_timer(self) -> None:
        """Make the timer loop look at the engine's deadline again now."""

    @abstractmethod
    def _make_handle(self, stream_id: int, timeout: float) -> HandleT:
        """A new stream handle whose connection ends ``timeout`` seconds from now."""

    @abstractmethod
    def _start_dial(self, handle: HandleT, action: OpenStream) -> None:
        """Start the task that dials ``action.addr`` and carries the stream."""

    # ------------------------------------------------------------------------
    # Calling the engine

    def call(self, method: Callable[[float], T]) -> T:
        """Call ``method(now)`` on the engine, then act on what it queued.

        ``driver.call(engine.start)`` or
        ``driver.call(functools.partial(engine.join, seeds))``.
        """
        if not self._is_running():
            raise LocalProtocolError("the driver is not running; use 'async with'")
        try:
            return method(self.now())
        finally:
            self._flush()

    def _flush(self) -> None:
        for action in self.engine.pop_actions():
            self._perform(action)
        for event in self.engine.pop_events():
            self._deliver(event)
        deadline = self.engine.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wake_timer()

    def _perform(self, action: Action) -> None:
        if isinstance(action, SendPacket):
            self._send_packet(action)
        elif isinstance(action, OpenStream):
            self._open_stream(action)
        else:
            self._command_stream(action)

    def _deliver(self, event: EventT) -> None:
        gossip_log.debug("event type=%s detail=%r", type(event).__name__, event)
        sink = self._event_sink or self._queue_event
        if not sink(event):
            self._count("events_dropped")
            gossip_log.debug("event dropped type=%s", type(event).__name__)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    # ------------------------------------------------------------------------
    # Actions

    def _send_packet(self, action: SendPacket) -> None:
        try:
            # The socket is non-blocking: a full buffer raises instead of
            # waiting, and a lost datagram is something gossip already survives.
            self._gossip_socket().sendto(action.data, action.addr)
        except BlockingIOError:
            self._count("udp_send_dropped")
            transport_log.debug("udp send dropped addr=%s:%d", *action.addr)
        except OSError as exc:
            self._count("udp_send_errors")
            transport_log.debug(
                "udp send failed addr=%s:%d error=%s",
                *action.addr,
                failure_reason(exc),
            )

    def _open_stream(self, action: OpenStream) -> None:
        handle = self._register_stream(action.stream_id, action.timeout)
        if handle is None:
            reason = "too many open streams"
            self.call(
                functools.partial(self.engine.stream_failed, action.stream_id, reason)
            )
            return
        self._start_dial(handle, action)

    def _command_stream(self, action: StreamWrite | CloseStream) -> None:
        handle = self._handles.get(action.stream_id)
        if handle is None:
            # The connection already ended (and the engine was told so).
            self._count("stream_commands_unknown")
            return
        if not handle.offer(action):
            self._count("stream_commands_dropped")
            handle.fail("stream command queue full")

    # ------------------------------------------------------------------------
    # Stream bookkeeping

    def _register_stream(self, stream_id: int, timeout: float) -> HandleT | None:
        """A handle for a new stream, or None when too many are open."""
        if len(self._handles) >= self.max_streams:
            self._count("streams_refused")
            transport_log.debug(
                "stream refused id=%d open=%d", stream_id, self.max_streams
            )
            return None
        handle = self._make_handle(stream_id, timeout)
        self._handles[stream_id] = handle
        return handle

    def _register_accepted(self) -> HandleT | None:
        """A handle for a connection the listener just accepted, or None."""
        self._last_accepted_id -= 1
        return self._register_stream(self._last_accepted_id, self.tcp_timeout)

    def _accepted(self, handle: HandleT, peer: Address) -> None:
        """Tell the engine about an accepted connection."""
        sid = handle.stream_id
        transport_log.debug("stream accepted id=%d peer=%s:%d", sid, *peer)
        self.call(functools.partial(self.engine.stream_accepted, sid, peer))

    def _stream_data(self, stream_id: int, data: bytes) -> None:
        self.call(functools.partial(self.engine.stream_data, stream_id, data))

    def _stream_closed(self, stream_id: int) -> None:
        self.call(functools.partial(self.engine.stream_closed, stream_id))

    def _stream_ended(self, handle: HandleT, failure: str | None) -> None:
        """A stream task is over; report its failure, if any, to the engine."""
        self._handles.pop(handle.stream_id, None)
        if failure is None or self._closed:
            return  # shutting down: the engine is no longer being driven
        self._count("streams_failed")
        transport_log.debug("stream failed id=%d reason=%s", handle.stream_id, failure)
        self.call(
            functools.partial(self.engine.stream_failed, handle.stream_id, failure)
        )

    # ------------------------------------------------------------------------
    # Receiving and the timer

    def _received(self, data: bytes, source: Address) -> None:
        # A datagram read just as the driver closes is dropped, not an error.
        if not self._is_running():
            self._count("udp_dropped_closing")
            return
        self.call(functools.partial(self.engine.receive_packet, data, source[:2]))

    def _receive_failed(self, exc: OSError) -> None:
        """Count an error about one earlier datagram; raise one about the socket."""
        if exc.errno not in _TRANSIENT_ERRNOS:
            raise TransportError(
                f"UDP receive failed: {failure_reason(exc)}", exc.errno
            ) from exc
        self._count("udp_receive_errors")
        transport_log.debug("udp receive failed error=%s", failure_reason(exc))

    def _timer_wake_time(self, last_run: float) -> float:
        """When the timer loop should next run ``handle_timeout`` (inf: never)."""
        deadline = self.engine.next_deadline()
        wake = math.inf if deadline is None else max(deadline, last_run + TIMER_FLOOR)
        self._sleeping_until = wake
        return wake

    def _timer_fired(self) -> None:
        self.call(self.engine.handle_timeout)


def failure_reason(exc: BaseException) -> str:
    """A short human reason for a socket failure.

    trio wraps the OS error: a broken stream carries it as ``__cause__``, and a
    failed dial raises a summary caused by a group of every attempt's error.
    asyncio raises the OS error itself, sometimes with its own wording.
    """
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        cause = cause.exceptions[0]
    for candidate in (cause, exc):
        if isinstance(candidate, OSError) and (text := _os_text(candidate)):
            return text
    return str(exc) or type(exc).__name__


def _os_text(exc: OSError) -> str | None:
    # asyncio words a failed connect its own way ("Connect call failed ...")
    # but keeps the errno, whose standard text says what happened.
    if exc.errno is not None and not isinstance(exc, socket.gaierror | socket.herror):
        return os.strerror(exc.errno)
    return exc.strerror


def format_stats(stats: dict[str, int]) -> str:
    """Counters as ``name:value,...`` for one log line."""
    return ",".join(f"{k}:{v}" for k, v in sorted(stats.items())) or "none"

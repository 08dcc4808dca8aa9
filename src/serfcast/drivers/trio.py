"""The trio driver: a few short loops that run a sans-IO engine on real sockets.

Theory of operation
-------------------
The engine does all the thinking; the driver only moves bytes and time. Three
loops run in one nursery:

* the **UDP loop** receives datagrams on the gossip port and hands each to
  ``engine.receive_packet``;
* the **timer loop** sleeps until ``engine.next_deadline()`` and then calls
  ``engine.handle_timeout``; any engine call that brings the deadline forward
  wakes it early through a :class:`trio.Event`;
* the **accept loop** takes TCP connections and gives each a stream task.

After *every* engine call, whoever made it (a loop, a stream task or the user
through :meth:`TrioDriver.call`) immediately performs the actions the engine
queued and forwards its events, without awaiting in between. That keeps the
actions of one call in order and makes the executor synchronous: datagrams are
sent with a non-blocking ``sendto`` on the gossip socket (a full send buffer
drops the datagram and counts it, as the network would), a dial starts a new
stream task, and a write or close for a stream goes into that stream's small
command queue.

Each stream task owns one TCP connection, accepted or dialled. It writes the
engine's first bytes (for a dial), then runs a reader, which feeds chunks to
``engine.stream_data`` and reports EOF with ``engine.stream_closed``, beside a
writer, which performs the stream's queued :class:`StreamWrite` commands until a
:class:`CloseStream` (or the reader's end). The whole connection is bounded by
the dial's timeout, or the engine's ``tcp_timeout`` for accepted ones; a dial
error, an I/O error or that deadline ends in ``engine.stream_failed``.

Events go to a bounded channel; when nobody drains it, new events are dropped
and counted in :attr:`TrioDriver.stats`. Logs go to ``serfcast.transport``
(sockets) and ``serfcast.gossip`` (engine events), at DEBUG only.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

import trio

from serfcast.drivers.base import DriverEngine, engine_tcp_timeout
from serfcast.drivers.sockets import BoundSockets, bind_sockets
from serfcast.engine.actions import (
    Action,
    Address,
    CloseStream,
    OpenStream,
    SendPacket,
    StreamWrite,
)
from serfcast.errors import LocalProtocolError, TransportError

__all__ = ["BoundSockets", "TrioDriver"]

transport_log = logging.getLogger("serfcast.transport")
gossip_log = logging.getLogger("serfcast.gossip")

UDP_RECEIVE_SIZE: Final = 65536
STREAM_CHUNK: Final = 65536
#: Commands one stream may have waiting; an engine sends a write and a close.
STREAM_COMMAND_QUEUE: Final = 16
#: Pause after a failed accept (say, out of file descriptors) before the next.
ACCEPT_BACKOFF: Final = 0.1
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
_Command = StreamWrite | CloseStream | None


@dataclass(eq=False, slots=True)
class _StreamHandle:
    """The driver's side of one stream: its command queue, deadline and fate."""

    stream_id: int
    commands: trio.MemorySendChannel[_Command]
    inbox: trio.MemoryReceiveChannel[_Command]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    failure: str | None = None

    def fail(self, reason: str) -> None:
        """Give up on the stream: the first reason given is reported."""
        if self.failure is None:
            self.failure = reason
        self.scope.cancel()

    def finish(self) -> None:
        """Tell the writer that the reader is done."""
        try:
            self.commands.send_nowait(None)
        except trio.WouldBlock:
            self.fail("stream command queue full")


class TrioDriver(Generic[EventT]):
    """Runs ``engine`` on a UDP socket and a TCP listener sharing one port.

    Use it as ``async with TrioDriver(engine, bind=("127.0.0.1", 7946)) as d``.
    The engine's advertised address must be the bound one; to bind port 0, bind
    first with :meth:`bind`, build the engine from ``sockets.address`` and pass
    ``sockets=``. Entering starts the engine (unless ``start=False``) and the
    loops; leaving cancels them and closes the sockets. Talk to the engine only
    through :meth:`call`, so that what it wants done gets done.
    """

    def __init__(
        self,
        engine: DriverEngine[EventT],
        *,
        bind: Address | None = None,
        sockets: BoundSockets | None = None,
        start: bool = True,
        tcp_timeout: float | None = None,
        event_queue: int = 1024,
        max_streams: int = 256,
    ) -> None:
        if (bind is None) == (sockets is None):
            raise LocalProtocolError(
                "give exactly one of bind=(host, port) or sockets=TrioDriver.bind(...)"
            )
        self.engine = engine
        self.tcp_timeout = tcp_timeout or engine_tcp_timeout(engine)
        self.max_streams = max_streams
        #: Counters of what the driver dropped or failed at (never reset).
        self.stats: dict[str, int] = {}
        self._bind = bind
        self._sockets = sockets
        self._start = start
        self._events_in, self._events_out = trio.open_memory_channel[EventT](
            event_queue
        )
        self._handles: dict[int, _StreamHandle] = {}
        self._last_accepted_id = 0
        self._wakeup = trio.Event()
        self._sleeping_until = math.inf
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._udp: trio.socket.SocketType | None = None
        self._listener: trio.SocketListener | None = None
        self._closed = False

    @staticmethod
    def bind(address: Address) -> BoundSockets:
        """Bind the gossip port now, so the engine can be told the real port."""
        return bind_sockets(address)

    # ------------------------------------------------------------------------
    # Lifecycle

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise LocalProtocolError("this driver was already started; make a new one")
        sockets = self._sockets or bind_sockets(self._require_bind())
        self._sockets = sockets
        self._stack = AsyncExitStack()
        self._stack.callback(self._close_sockets)
        self._udp = trio.socket.from_stdlib_socket(sockets.udp)
        tcp = trio.socket.from_stdlib_socket(sockets.tcp)
        self._listener = trio.SocketListener(tcp)
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        transport_log.debug("driver open addr=%s:%d", *sockets.address)
        try:
            if self._start:
                self.call(self.engine.start)
        except BaseException:
            # Entering failed, so no __aexit__ will come to close what was opened.
            await self.aclose()
            raise
        self._nursery.start_soon(self._udp_loop)
        self._nursery.start_soon(self._timer_loop)
        self._nursery.start_soon(self._accept_loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every loop and stream task and close the sockets (idempotent)."""
        stack, nursery = self._stack, self._nursery
        if stack is None or nursery is None or self._closed:
            return
        self._closed = True
        nursery.cancel_scope.cancel()
        # The nursery is told nothing went wrong: an exception from the ``async
        # with`` body then propagates as itself, not wrapped in an ExceptionGroup,
        # and only a crashed loop raises from here.
        await stack.aclose()
        self._events_in.close()
        transport_log.debug("driver closed stats=%s", _format_stats(self.stats))

    def _require_bind(self) -> Address:
        assert self._bind is not None  # checked in __init__
        return self._bind

    def _close_sockets(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._listener is not None:
            self._listener.socket.close()
        if self._sockets is not None:
            self._sockets.close()

    # ------------------------------------------------------------------------
    # Public surface

    @property
    def address(self) -> Address:
        """The ``(host, port)`` the gossip sockets are bound to."""
        if self._sockets is None:
            raise LocalProtocolError("the driver is not bound yet; enter it first")
        return self._sockets.address

    @property
    def bound_port(self) -> int:
        """The gossip port (the real one when port 0 was asked for)."""
        return self.address[1]

    def now(self) -> float:
        """The driver's clock, in monotonic seconds; the engine sees only this."""
        return trio.current_time()

    def events(self) -> trio.MemoryReceiveChannel[EventT]:
        """The engine's events, oldest first; iteration ends when the driver closes."""
        return self._events_out

    def call(self, method: Callable[[float], T]) -> T:
        """Call ``method(now)`` on the engine, then act on what it queued.

        ``driver.call(engine.start)`` or
        ``driver.call(functools.partial(engine.join, seeds))``.
        """
        if self._nursery is None or self._closed:
            raise LocalProtocolError("the driver is not running; use 'async with'")
        try:
            return method(self.now())
        finally:
            self._flush()

    # ------------------------------------------------------------------------
    # After every engine call

    def _flush(self) -> None:
        for action in self.engine.pop_actions():
            self._perform(action)
        for event in self.engine.pop_events():
            self._deliver(event)
        deadline = self.engine.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wakeup.set()

    def _perform(self, action: Action) -> None:
        if isinstance(action, SendPacket):
            self._send_packet(action)
        elif isinstance(action, OpenStream):
            self._open_stream(action)
        else:
            self._command_stream(action)

    def _deliver(self, event: EventT) -> None:
        gossip_log.debug("event type=%s detail=%r", type(event).__name__, event)
        try:
            self._events_in.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self._count("events_dropped")
            gossip_log.debug("event dropped type=%s", type(event).__name__)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _send_packet(self, action: SendPacket) -> None:
        assert self._sockets is not None
        try:
            # The raw socket is non-blocking: a full buffer raises instead of
            # waiting, and a lost datagram is something gossip already survives.
            self._sockets.udp.sendto(action.data, action.addr)
        except BlockingIOError:
            self._count("udp_send_dropped")
            transport_log.debug("udp send dropped addr=%s:%d", *action.addr)
        except OSError as exc:
            self._count("udp_send_errors")
            transport_log.debug(
                "udp send failed addr=%s:%d error=%s", *action.addr, _reason(exc)
            )

    def _open_stream(self, action: OpenStream) -> None:
        handle = self._new_handle(action.stream_id, action.timeout)
        if handle is None:
            reason = "too many open streams"
            self.call(
                functools.partial(self.engine.stream_failed, action.stream_id, reason)
            )
            return
        assert self._nursery is not None
        self._nursery.start_soon(
            self._run_stream, handle, action.addr, action.data, action.expect_reply
        )

    def _command_stream(self, action: StreamWrite | CloseStream) -> None:
        handle = self._handles.get(action.stream_id)
        if handle is None:
            # The connection already ended (and the engine was told so).
            self._count("stream_commands_unknown")
            return
        try:
            handle.commands.send_nowait(action)
        except trio.WouldBlock:
            self._count("stream_commands_dropped")
            handle.fail("stream command queue full")

    def _new_handle(self, stream_id: int, timeout: float) -> _StreamHandle | None:
        if len(self._handles) >= self.max_streams:
            self._count("streams_refused")
            transport_log.debug(
                "stream refused id=%d open=%d", stream_id, self.max_streams
            )
            return None
        commands, inbox = trio.open_memory_channel[_Command](STREAM_COMMAND_QUEUE)
        handle = _StreamHandle(stream_id, commands, inbox)
        handle.scope.deadline = self.now() + timeout
        self._handles[stream_id] = handle
        return handle

    # ------------------------------------------------------------------------
    # Loops

    async def _udp_loop(self) -> None:
        assert self._udp is not None
        while True:
            try:
                data, source = await self._udp.recvfrom(UDP_RECEIVE_SIZE)
            except OSError as exc:
                self._receive_failed(exc)
                continue
            self.call(functools.partial(self.engine.receive_packet, data, source[:2]))

    def _receive_failed(self, exc: OSError) -> None:
        if exc.errno not in _TRANSIENT_ERRNOS:
            raise TransportError(
                f"UDP receive failed: {_reason(exc)}", exc.errno
            ) from exc
        self._count("udp_receive_errors")
        transport_log.debug("udp receive failed error=%s", _reason(exc))

    async def _timer_loop(self) -> None:
        last_run = -math.inf
        while True:
            deadline = self.engine.next_deadline()
            wake = (
                math.inf if deadline is None else max(deadline, last_run + TIMER_FLOOR)
            )
            self._sleeping_until = wake
            self._wakeup = trio.Event()
            with trio.move_on_at(wake):
                await self._wakeup.wait()
                continue
            last_run = self.now()
            self.call(self.engine.handle_timeout)

    async def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                stream = await self._listener.accept()
            except OSError as exc:
                self._count("accept_errors")
                transport_log.debug("accept failed error=%s", _reason(exc))
                await trio.sleep(ACCEPT_BACKOFF)
                continue
            self._accepted(stream)

    def _accepted(self, stream: trio.SocketStream) -> None:
        self._last_accepted_id -= 1
        stream_id = self._last_accepted_id
        peer = _peer_address(stream)
        handle = self._new_handle(stream_id, self.tcp_timeout)
        assert self._nursery is not None
        if handle is None:
            self._nursery.start_soon(trio.aclose_forcefully, stream)
            return
        transport_log.debug("stream accepted id=%d peer=%s:%d", stream_id, *peer)
        self.call(functools.partial(self.engine.stream_accepted, stream_id, peer))
        self._nursery.start_soon(self._run_stream, handle, stream, b"", True)

    # ------------------------------------------------------------------------
    # One stream

    async def _run_stream(
        self,
        handle: _StreamHandle,
        target: trio.SocketStream | Address,
        first: bytes,
        expect_reply: bool,
    ) -> None:
        with handle.scope:
            stream = await self._connect(handle, target)
            if stream is not None:
                async with stream:
                    await self._converse(handle, stream, first, expect_reply)
        self._handles.pop(handle.stream_id, None)
        if handle.scope.cancelled_caught and handle.failure is None:
            handle.failure = "timed out"
        if handle.failure is not None:
            self._stream_failed(handle.stream_id, handle.failure)

    async def _connect(
        self, handle: _StreamHandle, target: trio.SocketStream | Address
    ) -> trio.SocketStream | None:
        if not isinstance(target, tuple):
            return target
        try:
            return await trio.open_tcp_stream(*target)
        except OSError as exc:
            handle.failure = f"dial {target[0]}:{target[1]} failed: {_reason(exc)}"
            return None

    async def _converse(
        self,
        handle: _StreamHandle,
        stream: trio.SocketStream,
        first: bytes,
        expect_reply: bool,
    ) -> None:
        if first and not await self._write(handle, stream, first):
            return
        if not expect_reply:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_stream, handle, stream)
            await self._obey(handle, stream)
            nursery.cancel_scope.cancel()

    async def _obey(self, handle: _StreamHandle, stream: trio.SocketStream) -> None:
        """Perform the stream's commands until it is closed or the reader ends."""
        async for command in handle.inbox:
            if not isinstance(command, StreamWrite):
                return
            if not await self._write(handle, stream, command.data):
                return

    async def _write(
        self, handle: _StreamHandle, stream: trio.SocketStream, data: bytes
    ) -> bool:
        try:
            await stream.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            handle.failure = f"write failed: {_reason(exc)}"
            return False
        return True

    async def _read_stream(
        self, handle: _StreamHandle, stream: trio.SocketStream
    ) -> None:
        sid = handle.stream_id
        try:
            while data := await stream.receive_some(STREAM_CHUNK):
                self.call(functools.partial(self.engine.stream_data, sid, data))
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            handle.failure = f"read failed: {_reason(exc)}"
        else:
            self.call(functools.partial(self.engine.stream_closed, sid))
        handle.finish()

    def _stream_failed(self, stream_id: int, reason: str) -> None:
        if self._closed:
            return  # shutting down: the engine is no longer being driven
        self._count("streams_failed")
        transport_log.debug("stream failed id=%d reason=%s", stream_id, reason)
        self.call(functools.partial(self.engine.stream_failed, stream_id, reason))


def _peer_address(stream: trio.SocketStream) -> Address:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        # The peer already went away; the stream's first read will say so.
        return ("", 0)
    return (peer[0], peer[1])


def _reason(exc: BaseException) -> str:
    """A short human reason for a socket failure.

    trio wraps the OS error: a broken stream carries it as ``__cause__``, and a
    failed dial raises a summary caused by a group of every attempt's error.
    """
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        cause = cause.exceptions[0]
    for candidate in (cause, exc):
        if isinstance(candidate, OSError) and candidate.strerror:
            return candidate.strerror
    return str(exc) or type(exc).__name__


def _format_stats(stats: dict[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(stats.items())) or "none"

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

After every engine call the actions it queued are performed at once and its
events forwarded, without awaiting in between; that synchronous half is shared
with the asyncio driver and described in :mod:`serfcast.drivers.core`.

Each stream task owns one TCP connection, accepted or dialled. It writes the
engine's first bytes (for a dial), then runs a reader, which feeds chunks to
``engine.stream_data`` and reports EOF with ``engine.stream_closed``, beside a
writer, which performs the stream's queued :class:`StreamWrite` commands until a
:class:`CloseStream` (or the reader's end). The whole connection is bounded by
the dial's timeout, or the engine's ``tcp_timeout`` for accepted ones; a dial
error, an I/O error or that deadline ends in ``engine.stream_failed``.

Events go to a bounded channel; when nobody drains it, new events are dropped
and counted in :attr:`TrioDriver.stats`.
"""

from __future__ import annotations

import logging
import math
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self, TypeVar

import trio

from serfcast.drivers.base import DriverEngine
from serfcast.drivers.core import (
    STREAM_CHUNK,
    STREAM_COMMAND_QUEUE,
    UDP_RECEIVE_SIZE,
    DriverCore,
    EventSink,
    StreamCommand,
    failure_reason,
    format_stats,
)
from serfcast.drivers.sockets import BoundSockets, bind_sockets
from serfcast.engine.actions import Address, OpenStream, StreamWrite
from serfcast.errors import LocalProtocolError

__all__ = ["BoundSockets", "TrioDriver"]

transport_log = logging.getLogger("serfcast.transport")

#: Pause after a failed accept (say, out of file descriptors) before the next.
ACCEPT_BACKOFF: Final = 0.1

EventT = TypeVar("EventT")


@dataclass(eq=False, slots=True)
class _StreamHandle:
    """The driver's side of one stream: its command queue, deadline and fate."""

    stream_id: int
    commands: trio.MemorySendChannel[StreamCommand]
    inbox: trio.MemoryReceiveChannel[StreamCommand]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    failure: str | None = None

    def offer(self, command: StreamCommand) -> bool:
        """Queue a command for the stream task; False when its queue is full."""
        try:
            self.commands.send_nowait(command)
        except trio.WouldBlock:
            return False
        return True

    def fail(self, reason: str) -> None:
        """Give up on the stream: the first reason given is reported."""
        if self.failure is None:
            self.failure = reason
        self.scope.cancel()

    def finish(self) -> None:
        """Tell the writer that the reader is done."""
        if not self.offer(None):
            self.fail("stream command queue full")


class TrioDriver(DriverCore[EventT, _StreamHandle]):
    """Runs ``engine`` on a UDP socket and a TCP listener sharing one port.

    Use it as ``async with TrioDriver(engine, bind=("127.0.0.1", 7946)) as d``.
    The engine's advertised address must be the bound one; to bind port 0, bind
    first with :meth:`bind`, build the engine from ``sockets.address`` and pass
    ``sockets=``. Entering starts the engine (unless ``start=False``) and the
    loops; leaving cancels them and closes the sockets. Talk to the engine only
    through :meth:`call`, so that what it wants done gets done. Events go to
    :meth:`events`, or to ``event_sink`` when one is given.
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
        event_sink: EventSink[EventT] | None = None,
    ) -> None:
        if (bind is None) == (sockets is None):
            raise LocalProtocolError(
                "give exactly one of bind=(host, port) or sockets=TrioDriver.bind(...)"
            )
        super().__init__(
            engine,
            tcp_timeout=tcp_timeout,
            max_streams=max_streams,
            event_sink=event_sink,
        )
        self._bind = bind
        self._sockets = sockets
        self._start = start
        self._events_in, self._events_out = trio.open_memory_channel[EventT](
            event_queue
        )
        self._wakeup = trio.Event()
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._udp: trio.socket.SocketType | None = None
        self._listener: trio.SocketListener | None = None

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
        transport_log.debug("driver closed stats=%s", format_stats(self.stats))

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

    # ------------------------------------------------------------------------
    # The I/O half of the shared core

    def _is_running(self) -> bool:
        return self._nursery is not None and not self._closed

    def _gossip_socket(self) -> socket.socket:
        assert self._sockets is not None
        return self._sockets.udp

    def _queue_event(self, event: EventT) -> bool:
        try:
            self._events_in.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    def _wake_timer(self) -> None:
        self._wakeup.set()

    def _make_handle(self, stream_id: int, timeout: float) -> _StreamHandle:
        commands, inbox = trio.open_memory_channel[StreamCommand](STREAM_COMMAND_QUEUE)
        handle = _StreamHandle(stream_id, commands, inbox)
        handle.scope.deadline = self.now() + timeout
        return handle

    def _start_dial(self, handle: _StreamHandle, action: OpenStream) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(
            self._run_stream, handle, action.addr, action.data, action.expect_reply
        )

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
            self._received(data, source)

    async def _timer_loop(self) -> None:
        last_run = -math.inf
        while True:
            wake = self._timer_wake_time(last_run)
            self._wakeup = trio.Event()
            with trio.move_on_at(wake):
                await self._wakeup.wait()
                continue
            last_run = self.now()
            self._timer_fired()

    async def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                stream = await self._listener.accept()
            except OSError as exc:
                self._count("accept_errors")
                transport_log.debug("accept failed error=%s", failure_reason(exc))
                await trio.sleep(ACCEPT_BACKOFF)
                continue
            self._take_connection(stream)

    def _take_connection(self, stream: trio.SocketStream) -> None:
        handle = self._register_accepted()
        assert self._nursery is not None
        if handle is None:
            self._nursery.start_soon(trio.aclose_forcefully, stream)
            return
        self._accepted(handle, _peer_address(stream))
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
        if handle.scope.cancelled_caught and handle.failure is None:
            handle.failure = "timed out"
        self._stream_ended(handle, handle.failure)

    async def _connect(
        self, handle: _StreamHandle, target: trio.SocketStream | Address
    ) -> trio.SocketStream | None:
        if not isinstance(target, tuple):
            return target
        try:
            return await trio.open_tcp_stream(*target)
        except OSError as exc:
            reason = failure_reason(exc)
            handle.failure = f"dial {target[0]}:{target[1]} failed: {reason}"
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
            handle.failure = f"write failed: {failure_reason(exc)}"
            return False
        return True

    async def _read_stream(
        self, handle: _StreamHandle, stream: trio.SocketStream
    ) -> None:
        sid = handle.stream_id
        try:
            while data := await stream.receive_some(STREAM_CHUNK):
                self._stream_data(sid, data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            handle.failure = f"read failed: {failure_reason(exc)}"
        else:
            self._stream_closed(sid)
        handle.finish()


def _peer_address(stream: trio.SocketStream) -> Address:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        # The peer already went away; the stream's first read will say so.
        return ("", 0)
    return (peer[0], peer[1])

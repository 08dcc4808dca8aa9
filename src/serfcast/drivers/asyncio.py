"""The asyncio driver: the trio driver's loops, written for asyncio programs.

Theory of operation
-------------------
It behaves exactly like :class:`~serfcast.drivers.trio.TrioDriver`, and shares
its synchronous half (:mod:`serfcast.drivers.core`): after every engine call
the queued actions are performed and the events forwarded without awaiting.
The I/O half runs in one :class:`asyncio.TaskGroup`:

* the **UDP task** waits on the non-blocking gossip socket with
  ``loop.sock_recvfrom`` and hands each datagram to ``engine.receive_packet``;
  datagrams go out with a plain non-blocking ``sendto`` on the same socket;
* the **timer task** sleeps until ``engine.next_deadline()`` under
  :func:`asyncio.timeout_at`, and an :class:`asyncio.Event` wakes it early
  when an engine call brings the deadline forward;
* the **TCP listener** is :func:`asyncio.start_server` on the bound socket;
  each connection it accepts, and each dial (``asyncio.open_connection``),
  becomes a stream task in the group.

A stream task runs its whole connection inside ``asyncio.timeout_at(deadline)``
(the dial's timeout, or the engine's ``tcp_timeout`` for accepted ones); giving
up on a stream early moves that deadline to now. A reader task feeds chunks to
``engine.stream_data`` while the stream task writes the queued commands, as in
the trio driver.

A crash in any task (an engine bug, say) cancels the body of the ``async with``
and comes out of it in an :class:`ExceptionGroup`, as a trio nursery would
have it; an exception from the body itself propagates unwrapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from serfcast.drivers.base import DriverEngine
from serfcast.drivers.channel import EventChannel
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
from serfcast.errors import LocalProtocolError, TransportError

__all__ = ["AsyncioDriver", "BoundSockets"]

transport_log = logging.getLogger("serfcast.transport")

EventT = TypeVar("EventT")


@dataclass(frozen=True, slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass(eq=False, slots=True)
class _StreamHandle:
    """The driver's side of one stream: its command queue, deadline and fate."""

    stream_id: int
    commands: asyncio.Queue[StreamCommand]
    #: Loop time at which the connection is given up.
    deadline: float
    #: The running task's timeout, while the task is inside it.
    timeout: asyncio.Timeout | None = None
    failure: str | None = None

    def offer(self, command: StreamCommand) -> bool:
        """Queue a command for the stream task; False when its queue is full."""
        try:
            self.commands.put_nowait(command)
        except asyncio.QueueFull:
            return False
        return True

    def fail(self, reason: str) -> None:
        """Give up on the stream: the first reason given is reported."""
        if self.failure is None:
            self.failure = reason
        self.deadline = -math.inf
        if self.timeout is not None and not self.timeout.expired():
            self.timeout.reschedule(self.deadline)

    def finish(self) -> None:
        """Tell the writer that the reader is done."""
        if not self.offer(None):
            self.fail("stream command queue full")


class AsyncioDriver(DriverCore[EventT, _StreamHandle]):
    """Runs ``engine`` on a UDP socket and a TCP listener sharing one port.

    Use it as ``async with AsyncioDriver(engine, bind=("127.0.0.1", 7946)) as
    d``, or bind first with :meth:`bind` (port 0), build the engine from
    ``sockets.address`` and pass ``sockets=``. Entering starts the engine
    (unless ``start=False``) and the tasks; leaving cancels them and closes the
    sockets. Talk to the engine only through :meth:`call`. Events go to
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
                "give exactly one of bind=(host, port) or "
                "sockets=AsyncioDriver.bind(...)"
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
        self._events = EventChannel[EventT](event_queue, asyncio.Event)
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group: asyncio.TaskGroup | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def bind(address: Address) -> BoundSockets:
        """Bind the gossip port now, so the engine can be told the real port."""
        return bind_sockets(address)

    # ------------------------------------------------------------------------
    # Lifecycle

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise LocalProtocolError("this driver was already started; make a new one")
        sockets = self._sockets or bind_sockets(self._require_bind())
        self._sockets = sockets
        self._loop = asyncio.get_running_loop()
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        transport_log.debug("driver open addr=%s:%d", *sockets.address)
        try:
            self._server = await self._listen(sockets.tcp)
            if self._start:
                self.call(self.engine.start)
        except BaseException:
            # Entering failed, so no __aexit__ will come to close what was opened.
            await self.aclose()
            raise
        self._spawn(self._udp_loop())
        self._spawn(self._timer_loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The task group learns of a cancellation, so that it can tell its own
        # (after a task crashed) from the caller's; any other exception from
        # the body propagates as itself, not wrapped in an ExceptionGroup.
        cancelled = exc if isinstance(exc, asyncio.CancelledError) else None
        await self.aclose(cancelled)

    async def aclose(self, cancelled: asyncio.CancelledError | None = None) -> None:
        """Stop every task and close the sockets (idempotent)."""
        group = self._group
        if group is None or self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        try:
            if cancelled is None:
                await group.__aexit__(None, None, None)
            else:
                await group.__aexit__(type(cancelled), cancelled, None)
        finally:
            self._close_sockets()
            self._events.close()
            transport_log.debug("driver closed stats=%s", format_stats(self.stats))

    async def _listen(self, tcp: socket.socket) -> asyncio.Server:
        try:
            return await asyncio.start_server(self._take_connection, sock=tcp)
        except OSError as exc:
            reason = failure_reason(exc)
            raise TransportError(f"cannot listen on TCP: {reason}", exc.errno) from exc

    def _require_bind(self) -> Address:
        assert self._bind is not None  # checked in __init__
        return self._bind

    def _close_sockets(self) -> None:
        if self._sockets is not None:
            self._sockets.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._group is not None
        try:
            task = self._group.create_task(work)
        except RuntimeError:
            # The group is shutting down after a crash; nothing new may start.
            work.close()
            self._count("tasks_refused")
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        """The event loop's clock, in seconds; the engine sees only this."""
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def events(self) -> EventChannel[EventT]:
        """The engine's events, oldest first; iteration ends when the driver closes."""
        return self._events

    # ------------------------------------------------------------------------
    # The I/O half of the shared core

    def _is_running(self) -> bool:
        return self._group is not None and not self._closed

    def _gossip_socket(self) -> socket.socket:
        assert self._sockets is not None
        return self._sockets.udp

    def _queue_event(self, event: EventT) -> bool:
        return self._events.offer(event)

    def _wake_timer(self) -> None:
        self._wakeup.set()

    def _make_handle(self, stream_id: int, timeout: float) -> _StreamHandle:
        commands = asyncio.Queue[StreamCommand](STREAM_COMMAND_QUEUE)
        return _StreamHandle(stream_id, commands, self.now() + timeout)

    def _start_dial(self, handle: _StreamHandle, action: OpenStream) -> None:
        self._spawn(
            self._run_stream(handle, action.addr, action.data, action.expect_reply)
        )

    # ------------------------------------------------------------------------
    # Tasks

    async def _udp_loop(self) -> None:
        loop = asyncio.get_running_loop()
        udp = self._gossip_socket()
        while True:
            try:
                data, source = await loop.sock_recvfrom(udp, UDP_RECEIVE_SIZE)
            except OSError as exc:
                self._receive_failed(exc)
                continue
            self._received(data, source)

    async def _timer_loop(self) -> None:
        last_run = -math.inf
        while True:
            wake = self._timer_wake_time(last_run)
            self._wakeup = asyncio.Event()
            if await self._woken_before(wake):
                continue
            last_run = self.now()
            self._timer_fired()

    async def _woken_before(self, wake: float) -> bool:
        """Wait for the wake-up event until ``wake``; whether it came first."""
        try:
            async with asyncio.timeout_at(None if math.isinf(wake) else wake):
                await self._wakeup.wait()
        except TimeoutError:
            return False
        return True

    def _take_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The listener's callback: the connection gets a task of our group."""
        if self._closed:
            writer.transport.abort()
            return
        self._spawn(self._serve(_Connection(reader, writer)))

    async def _serve(self, connection: _Connection) -> None:
        handle = self._register_accepted()
        if handle is None:
            connection.writer.transport.abort()
            return
        self._accepted(handle, _peer_address(connection.writer))
        await self._run_stream(handle, connection, b"", True)

    # ------------------------------------------------------------------------
    # One stream

    async def _run_stream(
        self,
        handle: _StreamHandle,
        target: _Connection | Address,
        first: bytes,
        expect_reply: bool,
    ) -> None:
        try:
            async with asyncio.timeout_at(handle.deadline) as timeout:
                handle.timeout = timeout
                connection = await self._connect(handle, target)
                if connection is not None:
                    await self._carry(handle, connection, first, expect_reply)
        except TimeoutError:
            if handle.failure is None:
                handle.failure = "timed out"
        finally:
            handle.timeout = None
        self._stream_ended(handle, handle.failure)

    async def _connect(
        self, handle: _StreamHandle, target: _Connection | Address
    ) -> _Connection | None:
        if isinstance(target, _Connection):
            return target
        try:
            reader, writer = await asyncio.open_connection(*target)
        except OSError as exc:
            reason = failure_reason(exc)
            handle.failure = f"dial {target[0]}:{target[1]} failed: {reason}"
            return None
        return _Connection(reader, writer)

    async def _carry(
        self,
        handle: _StreamHandle,
        connection: _Connection,
        first: bytes,
        expect_reply: bool,
    ) -> None:
        """Converse, then close; a connection left early is aborted."""
        writer = connection.writer
        try:
            await self._converse(handle, connection, first, expect_reply)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        finally:
            # Does nothing once closed; otherwise drops unsent bytes at once.
            writer.transport.abort()

    async def _converse(
        self,
        handle: _StreamHandle,
        connection: _Connection,
        first: bytes,
        expect_reply: bool,
    ) -> None:
        if first and not await self._write(handle, connection.writer, first):
            return
        if not expect_reply:
            return
        async with asyncio.TaskGroup() as group:
            reading = group.create_task(self._read_stream(handle, connection.reader))
            await self._obey(handle, connection.writer)
            reading.cancel()

    async def _obey(self, handle: _StreamHandle, writer: asyncio.StreamWriter) -> None:
        """Perform the stream's commands until it is closed or the reader ends."""
        while True:
            command = await handle.commands.get()
            if not isinstance(command, StreamWrite):
                return
            if not await self._write(handle, writer, command.data):
                return

    async def _write(
        self, handle: _StreamHandle, writer: asyncio.StreamWriter, data: bytes
    ) -> bool:
        try:
            writer.write(data)
            await writer.drain()
        except OSError as exc:
            handle.failure = f"write failed: {failure_reason(exc)}"
            return False
        return True

    async def _read_stream(
        self, handle: _StreamHandle, reader: asyncio.StreamReader
    ) -> None:
        sid = handle.stream_id
        try:
            while data := await reader.read(STREAM_CHUNK):
                self._stream_data(sid, data)
        except OSError as exc:
            handle.failure = f"read failed: {failure_reason(exc)}"
        else:
            self._stream_closed(sid)
        handle.finish()


def _peer_address(writer: asyncio.StreamWriter) -> Address:
    peer = writer.get_extra_info("peername")
    if not isinstance(peer, tuple) or len(peer) < 2:
        # The peer already went away; the stream's first read will say so.
        return ("", 0)
    return (str(peer[0]), int(peer[1]))

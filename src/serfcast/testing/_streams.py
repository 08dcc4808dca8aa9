"""Simulated TCP streams between engines.

A stream has two ends: the dialler's (the engine's own positive id) and the
acceptor's (a negative id the network picks). Everything written on one end
reaches the other in order, after the link's delay plus TCP-like waits for
retransmissions on a lossy link. Nothing is delivered across a partition or
to or from a killed node; the dialler then learns of the failure only when
its ``timeout`` runs out, as with a real unreachable host. Dialling an address
where no live node listens fails at once with ``connection refused``.

Closing one end (``CloseStream``, the dialler's timeout, or a dialler that
expects no reply and is done writing) reaches the other end, after any data
still on its way, as ``stream_closed``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from serfcast.engine.actions import Address, CloseStream, OpenStream, StreamWrite
from serfcast.testing._links import LinkConfig, sample_segment
from serfcast.testing._node import SimNode

__all__ = ["Fabric", "StreamTable"]

_FIRST_EPHEMERAL_PORT = 49152
_STUCK = float("inf")


class Fabric(Protocol):
    """What the stream table needs from the network around it."""

    @property
    def now(self) -> float: ...

    rng: random.Random

    def at(self, when: float, callback: Callable[[], object]) -> None: ...

    def node_at(self, address: Address) -> SimNode | None: ...

    def reachable(self, a: SimNode, b: SimNode) -> bool: ...

    def link(self, source: str, destination: str) -> LinkConfig: ...

    def settle(self, node: SimNode) -> None: ...


@dataclass(eq=False, slots=True)
class _End:
    node: SimNode
    stream_id: int
    is_open: bool = False
    # When the last thing sent towards this end arrives: later sends queue
    # behind it, which keeps each direction in order.
    arrives_at: float = 0.0
    # A segment towards this end was lost for good: nothing after it arrives.
    broken: bool = False


@dataclass(eq=False, slots=True)
class _Stream:
    dialler: _End
    acceptor: _End

    def other(self, end: _End) -> _End:
        return self.acceptor if end is self.dialler else self.dialler


class StreamTable:
    """Every open stream end, keyed by node name and that node's stream id."""

    def __init__(self, fabric: Fabric) -> None:
        self._net = fabric
        self._ends: dict[tuple[str, int], tuple[_Stream, _End]] = {}
        self._next_accept_id = -1
        self._next_port = _FIRST_EPHEMERAL_PORT

    def open(self, node: SimNode, action: OpenStream) -> None:
        """The dialler's ``OpenStream``: connect, write, maybe wait for a reply."""
        net = self._net
        node.stats.streams_opened += 1
        target = net.node_at(action.addr)
        if target is None or not target.alive:
            sid = action.stream_id
            net.at(net.now, lambda: self._fail(node, sid, "connection refused"))
            return
        stream = _Stream(
            _End(node, action.stream_id, is_open=True),
            _End(target, self._accept_id()),
        )
        self._ends[(node.name, action.stream_id)] = (stream, stream.dialler)
        peer = (node.address[0], self._ephemeral_port())
        self._send(stream, stream.acceptor, lambda: self._accept(stream, peer))
        if action.data:
            data = action.data
            self._send(
                stream, stream.acceptor, lambda: self._data(stream.acceptor, data)
            )
        if action.expect_reply:
            deadline = net.now + action.timeout
            net.at(deadline, lambda: self._time_out(stream))
        else:
            self._close_end(stream, stream.dialler)

    def write(self, node: SimNode, action: StreamWrite) -> None:
        """``StreamWrite`` from either end: deliver to the other end, in order."""
        found = self._ends.get((node.name, action.stream_id))
        if found is None or not action.data:
            return
        stream, end = found
        target, data = stream.other(end), action.data
        self._send(stream, target, lambda: self._data(target, data))

    def close(self, node: SimNode, action: CloseStream) -> None:
        """``CloseStream`` from either end."""
        found = self._ends.get((node.name, action.stream_id))
        if found is not None:
            self._close_end(*found)

    # ------------------------------------------------------------------------

    def _accept_id(self) -> int:
        self._next_accept_id -= 1
        return self._next_accept_id + 1

    def _ephemeral_port(self) -> int:
        port = self._next_port
        self._next_port = port + 1 if port < 65535 else _FIRST_EPHEMERAL_PORT
        return port

    def _send(
        self, stream: _Stream, towards: _End, deliver: Callable[[], None]
    ) -> None:
        """Schedule ``deliver`` after a segment's delay, behind earlier sends.

        A segment TCP gives up on is never delivered, and nothing sent after it
        on the same direction is either: the connection is stuck.
        """
        net = self._net
        sender = stream.other(towards).node
        delay = sample_segment(net.rng, net.link(sender.name, towards.node.name))
        if delay is None or towards.arrives_at == _STUCK:
            towards.arrives_at = _STUCK
            return
        when = max(net.now + delay, towards.arrives_at)
        towards.arrives_at = when
        net.at(when, lambda: self._arrive(stream, towards, deliver))

    def _arrive(
        self, stream: _Stream, towards: _End, deliver: Callable[[], None]
    ) -> None:
        """Deliver a segment if both hosts are up and can reach each other;
        otherwise the connection is stuck in this direction for good."""
        if towards.broken:
            return
        if self._net.reachable(stream.other(towards).node, towards.node):
            deliver()
        else:
            towards.broken = True
            towards.arrives_at = _STUCK

    def _accept(self, stream: _Stream, peer: Address) -> None:
        end = stream.acceptor
        end.is_open = True
        self._ends[(end.node.name, end.stream_id)] = (stream, end)
        end.node.stats.streams_accepted += 1
        end.node.engine.stream_accepted(end.stream_id, peer, self._net.now)
        self._net.settle(end.node)

    def _data(self, end: _End, data: bytes) -> None:
        if end.is_open:
            end.node.engine.stream_data(end.stream_id, data, self._net.now)
            self._net.settle(end.node)

    def _closed(self, end: _End) -> None:
        if end.is_open:
            self._forget(end)
            end.node.engine.stream_closed(end.stream_id, self._net.now)
            self._net.settle(end.node)

    def _close_end(self, stream: _Stream, end: _End) -> None:
        """This end is done: forget it and let the other end hear of it."""
        self._forget(end)
        other = stream.other(end)
        self._send(stream, other, lambda: self._closed(other))

    def _forget(self, end: _End) -> None:
        end.is_open = False
        self._ends.pop((end.node.name, end.stream_id), None)

    def _time_out(self, stream: _Stream) -> None:
        """The dialler's timeout: it gives up, and its side of the stream closes."""
        end = stream.dialler
        if end.is_open and end.node.alive:
            self._close_end(stream, end)
            self._fail(end.node, end.stream_id, "i/o timeout")

    def _fail(self, node: SimNode, stream_id: int, reason: str) -> None:
        if node.alive:
            node.stats.streams_failed += 1
            node.engine.stream_failed(stream_id, reason, self._net.now)
            self._net.settle(node)

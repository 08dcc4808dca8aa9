"""What an engine asks its driver to do, and the stream contract between them.

An engine never touches the network. It hands out *actions*; the driver performs
them and reports back through the engine's methods:

* :class:`SendPacket` -- send one UDP datagram from the gossip port.
* :class:`OpenStream` -- dial ``addr`` over TCP, write ``data``; if ``expect_reply``
  keep reading and pass every chunk to ``engine.stream_data(stream_id, chunk, now)``
  until the engine emits :class:`CloseStream`, the peer closes
  (``engine.stream_closed``) or ``timeout`` seconds pass or dialling fails
  (``engine.stream_failed``). Without ``expect_reply`` close after writing.
* :class:`StreamWrite` -- write bytes on an open stream (accepted or dialled).
* :class:`CloseStream` -- close a stream; the engine has no further interest.

Incoming TCP connections are announced with ``engine.stream_accepted(stream_id,
peer, now)``; the driver picks ``stream_id`` values for accepted streams from the
negative integers so they never clash with the engine's positive dial ids.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Action",
    "Address",
    "CloseStream",
    "OpenStream",
    "SendPacket",
    "StreamWrite",
]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send ``data`` as one UDP datagram to ``addr``."""

    addr: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Dial ``addr``, write ``data``, and read the reply if one is expected."""

    stream_id: int
    addr: Address
    data: bytes
    timeout: float
    expect_reply: bool


@dataclass(frozen=True, slots=True)
class StreamWrite:
    """Write ``data`` on stream ``stream_id``."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Close stream ``stream_id``."""

    stream_id: int


Action = SendPacket | OpenStream | StreamWrite | CloseStream

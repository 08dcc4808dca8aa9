"""What every driver needs from an engine, and small helpers drivers share.

An engine (``Memberlist``, ``SerfNode``) is sans-IO: a driver feeds it datagrams,
stream bytes and the passage of time, each with ``now`` in monotonic seconds, and
after every call collects the actions to perform and the events to hand on.
:class:`DriverEngine` names exactly that surface, so the trio driver and any
other driver can run any engine that has it. This module imports no I/O library.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal, Protocol, TypeVar

from serfcast.engine.actions import Action, Address
from serfcast.errors import LocalProtocolError

__all__ = [
    "DriverEngine",
    "EventT_co",
    "advertise_address",
    "current_async_library",
    "engine_tcp_timeout",
]

EventT_co = TypeVar("EventT_co", covariant=True)

#: Go's LAN ``TCPTimeout``, used when an engine does not say its own.
DEFAULT_TCP_TIMEOUT = 10.0


class DriverEngine(Protocol[EventT_co]):
    """The engine methods a driver calls; ``now`` is always the driver's clock."""

    def start(self, now: float) -> None:
        """Begin the engine's periodic duties."""
        ...

    def receive_packet(self, data: bytes, source: Address, now: float) -> None:
        """One UDP datagram arrived from ``source``."""
        ...

    def handle_timeout(self, now: float) -> None:
        """Time has reached (or passed) :meth:`next_deadline`."""
        ...

    def next_deadline(self) -> float | None:
        """When the engine next wants :meth:`handle_timeout`, or ``None``."""
        ...

    def pop_actions(self) -> list[Action]:
        """The actions queued by the calls so far, oldest first."""
        ...

    def pop_events(self) -> Sequence[EventT_co]:
        """The events produced by the calls so far, oldest first."""
        ...

    def stream_accepted(self, stream_id: int, peer: Address, now: float) -> None:
        """A peer connected to the TCP listener (``stream_id`` is negative)."""
        ...

    def stream_data(self, stream_id: int, data: bytes, now: float) -> None:
        """Bytes arrived on a stream."""
        ...

    def stream_closed(self, stream_id: int, now: float) -> None:
        """The peer closed a stream."""
        ...

    def stream_failed(self, stream_id: int, reason: str, now: float) -> None:
        """Dialling, reading or writing a stream failed, or it timed out."""
        ...


def advertise_address(address: Address) -> tuple[bytes, int]:
    """``(host, port)`` as an engine's ``advertise`` wants it: raw address bytes.

    A bound wildcard address (``0.0.0.0``, ``::``) cannot be advertised: peers
    would dial it. Bind a concrete address instead.
    """
    host, port = address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LocalProtocolError(
            f"{host!r} is not an IP address; bind to a literal address to advertise it"
        ) from None
    if ip.is_unspecified:
        raise LocalProtocolError(
            f"cannot advertise the wildcard address {host}; bind a concrete address"
        )
    return ip.packed, port


def engine_tcp_timeout(engine: object) -> float:
    """The engine's ``config.tcp_timeout`` when it has one, else Go's LAN default."""
    config = getattr(engine, "config", None)
    value = getattr(config, "tcp_timeout", None)
    if isinstance(value, int | float) and value > 0:
        return float(value)
    return DEFAULT_TCP_TIMEOUT


def current_async_library() -> Literal["trio", "asyncio"]:
    """Which async library runs the caller: ``"trio"`` or ``"asyncio"``.

    sniffio answers when it is installed (trio depends on it); without it, a
    running asyncio loop means asyncio and anything else is taken for trio.
    Neither library is imported here.
    """
    try:
        import sniffio
    except ImportError:  # pragma: no cover - trio brings sniffio along
        return "asyncio" if _asyncio_running() else "trio"
    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise LocalProtocolError(
            "no async library is running; call this from trio or asyncio code"
        ) from None
    if name not in ("trio", "asyncio"):
        raise LocalProtocolError(f"serfcast runs under trio or asyncio, not {name}")
    return "trio" if name == "trio" else "asyncio"


def _asyncio_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

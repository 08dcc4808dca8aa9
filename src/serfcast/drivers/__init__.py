"""Layer 4: drivers that run a sans-IO engine on real sockets.

``serfcast.drivers.trio`` holds the trio driver and ``serfcast.drivers.asyncio``
the asyncio one; both are built on :mod:`serfcast.drivers.core`. Nothing here
imports an I/O library, so code that only needs the engine or the codec
(one-shot CLI commands) never pays for importing trio.
"""

from serfcast.drivers.base import (
    DriverEngine,
    advertise_address,
    current_async_library,
)
from serfcast.drivers.channel import EventChannel
from serfcast.drivers.sockets import BoundSockets, bind_sockets

__all__ = [
    "BoundSockets",
    "DriverEngine",
    "EventChannel",
    "advertise_address",
    "bind_sockets",
    "current_async_library",
]

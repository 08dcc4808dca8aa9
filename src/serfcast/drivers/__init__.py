"""Layer 4: drivers that run a sans-IO engine on real sockets.

``serfcast.drivers.trio`` holds the trio driver. Nothing here imports an I/O
library, so code that only needs the engine or the codec (one-shot CLI commands)
never pays for importing trio.
"""

from serfcast.drivers.base import DriverEngine, advertise_address
from serfcast.drivers.sockets import BoundSockets, bind_sockets

__all__ = ["BoundSockets", "DriverEngine", "advertise_address", "bind_sockets"]

"""Ports for the demo's members, drawn from a seeded random sequence.

The same ``-seed`` gives the same ports on an otherwise idle machine, so a run
can be repeated. The range lies below Linux's ephemeral ports, so the demo
does not compete with the ports the kernel hands out for port 0, and a busy
port is simply skipped.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Final

from serfcast.errors import TransportError

__all__ = ["DEMO_PORTS", "HOST", "PortDraw"]

HOST: Final = "127.0.0.1"
DEMO_PORTS: Final = range(10000, 20000)
#: Ports tried for one member before giving up.
PORT_TRIES: Final = 200


class PortDraw:
    """Hands out ports from a seeded sequence, each at most once per run."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._taken: set[int] = set()

    def candidates(self) -> Iterator[int]:
        """Ports not handed out yet, in the seeded order; take one with
        :meth:`take` once it proved free."""
        for _ in range(PORT_TRIES):
            port = self._rng.choice(DEMO_PORTS)
            if port not in self._taken:
                yield port

    def take(self, port: int) -> int:
        """Mark ``port`` as used by this run."""
        self._taken.add(port)
        return port

    def free_port(self) -> int:
        """A port free for UDP and TCP now (for a process that binds it later)."""
        for port in self.candidates():
            if _is_free(port):
                return self.take(port)
        raise TransportError(f"no free port on {HOST} after {PORT_TRIES} tries")


def _is_free(port: int) -> bool:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        # As a listener would bind it: connections in TIME_WAIT do not count.
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((HOST, port))
            udp.bind((HOST, port))
        except OSError:
            return False
    return True

"""Binding the gossip port: one UDP socket and one TCP listener on one address.

memberlist sends every datagram from the socket bound to its gossip port, and
peers reply to the address a datagram came from, so a driver must send from the
port it advertises. When asked for port 0 the UDP socket picks the port and the
TCP listener must get the same one; if TCP finds it taken, both are closed and
the pair is tried again, as Go does. Only the standard library is used here, so
any driver can share it.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Final

from serfcast.engine.actions import Address
from serfcast.errors import LocalProtocolError, TransportError

__all__ = ["BoundSockets", "bind_sockets"]

transport_log = logging.getLogger("serfcast.transport")

#: How often to retry a port-0 bind whose UDP port is taken for TCP.
BIND_ATTEMPTS: Final = 10
LISTEN_BACKLOG: Final = 128
#: Go asks for a 2 MB UDP receive buffer so bursts of gossip are not lost.
UDP_RECEIVE_BUFFER: Final = 2 * 1024 * 1024


@dataclass(slots=True)
class BoundSockets:
    """A UDP socket and a listening TCP socket bound to the same address."""

    udp: socket.socket
    tcp: socket.socket
    #: The ``(host, port)`` both sockets are bound to (still known once closed).
    address: Address

    def close(self) -> None:
        """Close both sockets (closing twice is harmless)."""
        self.udp.close()
        self.tcp.close()


def bind_sockets(address: Address) -> BoundSockets:
    """Bind UDP and TCP to ``address`` (port 0: any free port both can have).

    ``host`` must be a literal IP address, since it is also what peers are told
    to dial. Raises :class:`~serfcast.errors.TransportError` when the port cannot
    be had.
    """
    host, port = address
    family = _family(host)
    attempts = BIND_ATTEMPTS if port == 0 else 1
    failure: OSError | None = None
    for _ in range(attempts):
        try:
            return _bind_pair(family, host, port)
        except OSError as exc:
            failure = exc
            if exc.errno != errno.EADDRINUSE:
                break
    assert failure is not None
    reason = failure.strerror or str(failure)
    raise TransportError(
        f"cannot bind UDP and TCP on {host}:{port}: {reason}", failure.errno
    ) from failure


def _family(host: str) -> socket.AddressFamily:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LocalProtocolError(
            f"bind address {host!r} is not an IP address; give a literal one"
        ) from None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _bind_pair(family: socket.AddressFamily, host: str, port: int) -> BoundSockets:
    udp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        _grow_receive_buffer(udp)
        udp.bind((host, port))
        tcp = _listen(family, host, udp.getsockname()[1])
    except BaseException:
        udp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    bound_host, bound_port = udp.getsockname()[:2]
    return BoundSockets(udp, tcp, (bound_host, bound_port))


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted node take its port back while old connections linger
        # in TIME_WAIT; it never lets two listeners share the port on Linux.
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, port))
        tcp.listen(LISTEN_BACKLOG)
    except BaseException:
        tcp.close()
        raise
    return tcp


def _grow_receive_buffer(udp: socket.socket) -> None:
    try:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    except OSError as exc:
        # The kernel's own default still works, only with less room for bursts.
        transport_log.debug("udp receive buffer not grown error=%s", exc)

"""Sending the planned event: datagrams from one UDP socket, then TCP streams."""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from typing import Final

from serfcast.errors import LocalProtocolError
from serfcast.fire import Address, EventSpec, FirePlan, check_event, plan_fire
from serfcast.oneshot.results import FireResult
from serfcast.oneshot.seeds import debug, learn_pool, os_reason, show_address
from serfcast.wire.keyring import Keyring

__all__ = ["deliver", "fire"]

#: Each TCP stream carrying the event gets at most this long.
STREAM_TIMEOUT: Final = 1.0


class _Datagrams:
    """One UDP socket per address family, bound to ``bind`` when given."""

    def __init__(self, bind: Address | None) -> None:
        self.bind = bind
        self.sockets: dict[int, socket.socket] = {}

    def send(self, address: Address, data: bytes, warnings: list[str]) -> bool:
        try:
            self._socket(address).sendto(data, address)
        except OSError as exc:
            warnings.append(f"UDP to {show_address(address)} failed: {os_reason(exc)}")
            return False
        return True

    def _socket(self, address: Address) -> socket.socket:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = self.sockets.get(family)
        if sock is None:
            sock = self.sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
            if self.bind is not None:
                sock.bind(self.bind)
        return sock

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def _send_stream(address: Address, data: bytes, bind: Address | None) -> None:
    source = None if bind is None else (bind[0], 0)
    with socket.create_connection(address, STREAM_TIMEOUT, source_address=source) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)


def deliver(
    plan: FirePlan, bind: Address | None = None
) -> tuple[list[str], list[str], list[str]]:
    """Send the planned datagrams, then the streams; names reached by TCP and UDP.

    A member whose stream fails gets a datagram instead. The third list holds
    warnings about what failed.
    """
    delivery, warnings = plan.delivery, list(plan.warnings)
    datagrams = _Datagrams(bind)
    try:
        udp = [
            member.name
            for member in delivery.udp
            if datagrams.send(member.address, delivery.datagram_for(member), warnings)
        ]
        tcp = []
        for member in delivery.tcp:
            try:
                _send_stream(member.address, delivery.stream, bind)
                tcp.append(member.name)
            except OSError as exc:
                warnings.append(
                    f"TCP to {member.name} failed ({os_reason(exc)}); "
                    "sent it a datagram instead"
                )
                data = delivery.datagram_for(member)
                if datagrams.send(member.address, data, warnings):
                    udp.append(member.name)
    finally:
        datagrams.close()
    return tcp, udp, warnings


def fire(
    spec: EventSpec,
    seeds: Sequence[Address],
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    timeout: float = 5.0,
    bind: Address | None = None,
    rng: random.Random | None = None,
) -> FireResult:
    """Check, learn the pool from a seed, build the event, and send it."""
    if not seeds:
        raise LocalProtocolError("give at least one seed address to ask")
    check_event(spec)
    seed, pool = learn_pool(
        seeds, keyring=keyring, label=label, timeout=timeout, bind=bind
    )
    plan = plan_fire(
        spec, pool, rng or random.Random(), seed=seed, keyring=keyring, label=label
    )
    tcp, udp, warnings = deliver(plan, bind)
    message = plan.event.message
    debug(
        "fired name=%r ltime=%d tcp=%d udp=%d",
        message.name,
        message.ltime,
        len(tcp),
        len(udp),
    )
    return FireResult(
        plan.event.event_id,
        spec.name,
        message.name,
        message.ltime,
        show_address(seed),
        len(pool.alive),
        tuple(tcp),
        tuple(udp),
        tuple(warnings),
    )

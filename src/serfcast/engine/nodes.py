"""What a memberlist node knows about each member."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from serfcast.wire.messages import PROTOCOL_VSN, NodeState

__all__ = ["Node", "NodeState", "format_addr"]


@dataclass(slots=True)
class Node:
    """One member as the local node sees it (mutable: the engine updates it).

    ``addr`` holds the raw 4- or 16-byte address exactly as the member announced
    it, because Go compares those bytes, not parsed addresses.
    """

    name: str
    addr: bytes
    port: int
    meta: bytes | None = None
    incarnation: int = 0
    state: NodeState = NodeState.DEAD
    vsn: bytes = PROTOCOL_VSN
    state_change: float = 0.0

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for sockets."""
        return (format_addr(self.addr), self.port)

    @property
    def pmax(self) -> int:
        """The highest memberlist protocol version the member understands."""
        return self.vsn[1] if len(self.vsn) >= 2 else 0


def format_addr(raw: bytes) -> str:
    """Dotted IPv4 for 4-byte and IPv4-mapped 16-byte addresses, else IPv6 text."""
    if len(raw) == 4:
        return ".".join(str(b) for b in raw)
    if len(raw) == 16 and raw[:12] == bytes(10) + b"\xff\xff":
        return ".".join(str(b) for b in raw[12:])
    if len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    return "?" + raw.hex()

"""memberlist's tunables, with Go's lan, wan and local profiles.

Every duration is in seconds (floats). The profiles match Go's
``DefaultLANConfig``, ``DefaultWANConfig`` and ``DefaultLocalConfig``; change any
knob with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from serfcast.errors import LocalProtocolError

__all__ = ["MemberlistConfig", "profile"]


@dataclass(frozen=True, slots=True)
class MemberlistConfig:
    """Failure-detector and gossip settings (defaults are Go's LAN profile)."""

    tcp_timeout: float = 10.0
    indirect_checks: int = 3
    retransmit_mult: int = 4
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    push_pull_interval: float = 30.0
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    disable_tcp_pings: bool = False
    awareness_max_multiplier: int = 8
    gossip_nodes: int = 3
    gossip_interval: float = 0.2
    gossip_to_the_dead_time: float = 30.0
    gossip_verify_incoming: bool = True
    gossip_verify_outgoing: bool = True
    enable_compression: bool = True
    udp_buffer_size: int = 1400
    handoff_queue_depth: int = 1024
    dead_node_reclaim_time: float = 0.0
    protocol_version: int = 2
    label: bytes = b""

    def replace(self, **changes: object) -> MemberlistConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_WAN = {
    "tcp_timeout": 30.0,
    "suspicion_mult": 6,
    "push_pull_interval": 60.0,
    "probe_timeout": 3.0,
    "probe_interval": 5.0,
    "gossip_nodes": 4,
    "gossip_interval": 0.5,
    "gossip_to_the_dead_time": 60.0,
}
_LOCAL = {
    "tcp_timeout": 1.0,
    "indirect_checks": 1,
    "retransmit_mult": 2,
    "suspicion_mult": 3,
    "push_pull_interval": 15.0,
    "probe_timeout": 0.2,
    "gossip_interval": 0.1,
    "gossip_to_the_dead_time": 15.0,
}


def profile(name: str) -> MemberlistConfig:
    """Go's ``lan``, ``wan`` or ``local`` defaults."""
    if name == "lan":
        return MemberlistConfig()
    if name == "wan":
        return MemberlistConfig().replace(**_WAN)
    if name == "local":
        return MemberlistConfig().replace(**_LOCAL)
    raise LocalProtocolError(f"unknown profile {name!r}; use lan, wan or local")

"""One simulated host: an engine, its fake address, and what it did."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from serfcast.drivers.base import DriverEngine
from serfcast.engine.actions import Address
from serfcast.engine.nodes import Node

__all__ = ["EngineProtocol", "MembersView", "NodeStats", "SimNode"]

#: Returns an engine's member table (name to :class:`~serfcast.engine.nodes.Node`).
MembersView = Callable[[], Mapping[str, Node]]


#: The methods :class:`~serfcast.testing.SimNetwork` drives an engine through:
#: exactly what a real driver needs (``start``, ``receive_packet``,
#: ``handle_timeout``, ``next_deadline``, ``pop_actions``, ``pop_events`` and the
#: ``stream_*`` callbacks), so ``Memberlist``, ``SerfNode`` and any engine a
#: driver can run will run here too.
EngineProtocol: TypeAlias = DriverEngine[object]


@dataclass(slots=True)
class NodeStats:
    """What one simulated node sent and received.

    ``packets_dropped`` counts datagrams this node sent that never arrived:
    lost, blocked by a partition, addressed to nobody, or to a dead node.
    """

    packets_sent: int = 0
    packets_received: int = 0
    packets_dropped: int = 0
    packets_duplicated: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    streams_opened: int = 0
    streams_accepted: int = 0
    streams_failed: int = 0
    timeouts: int = 0
    user_messages: int = 0


@dataclass(eq=False, slots=True)
class SimNode:
    """One engine on the simulated network.

    ``events`` collects everything the engine's ``pop_events`` returned;
    ``alive`` turns false when the node is killed.
    """

    name: str
    engine: EngineProtocol
    address: Address
    members: MembersView | None = None
    alive: bool = True
    started: bool = False
    stats: NodeStats = field(default_factory=NodeStats)
    events: list[object] = field(default_factory=list)
    # The deadline a wake-up is scheduled for, and the token that tells the
    # current wake-up from superseded ones still sitting in the heap.
    wake_at: float | None = None
    wake_token: int = 0
    # How many wake-ups in a row happened at the same instant (a stuck engine).
    last_wake: float = -1.0
    wakes_at_instant: int = 0

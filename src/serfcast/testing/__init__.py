"""A seeded, in-memory network for testing code built on serfcast's engines.

:class:`SimNetwork` runs any number of sans-IO engines (``Memberlist``, or
anything with the same driver-facing methods, see :class:`EngineProtocol`) on
fake addresses under a virtual clock. Datagrams can be lost, duplicated,
delayed and reordered; streams are delivered reliably and in order unless a
partition or a crash is in the way. One seed decides every random choice, so a
failing run can be replayed exactly::

    sim = SimNetwork(seed=7, loss=0.05)
    for i in range(10):
        sim.add_memberlist_node(f"node{i}", profile("lan"))
    sim.start_all()
    sim.join_all("node0")
    sim.run_until_true(sim.converged, max_time=30.0)
    sim.kill("node3")
    sim.run_for(60.0)

Every run call is bounded by virtual time and by a number of events and raises
:class:`SimulationLimitExceeded` when it hits either.
"""

from serfcast.testing._links import LinkConfig
from serfcast.testing._network import DEFAULT_PORT, SimNetwork
from serfcast.testing._node import EngineProtocol, MembersView, NodeStats, SimNode
from serfcast.testing._observe import MembershipChange
from serfcast.testing._scheduler import SimulationLimitExceeded

__all__ = [
    "DEFAULT_PORT",
    "EngineProtocol",
    "LinkConfig",
    "MembersView",
    "MembershipChange",
    "NodeStats",
    "SimNetwork",
    "SimNode",
    "SimulationLimitExceeded",
]

"""Who gets the event, and how: TCP to a few alive members, UDP to many more.

A few TCP streams make sure the event enters the pool even if datagrams are
lost; datagrams to many more members make the epidemic start from all of them
at once. In a large pool a share of the members is enough, sized by a simple
model of gossip (see :func:`direct_fanout`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from serfcast.fire.event import BuiltEvent, EventSpec, build_event
from serfcast.fire.pool import Address, PoolMember, PoolView, choose_ltime
from serfcast.serf.limits import gossip_warning
from serfcast.wire.frames import UserMsg
from serfcast.wire.keyring import Keyring
from serfcast.wire.packet import build_packet
from serfcast.wire.stream import encode_stream

__all__ = [
    "GOSSIP_FANOUT",
    "MISSED_FRACTION",
    "SMALL_POOL",
    "TARGET_ROUNDS",
    "TCP_TARGETS",
    "Delivery",
    "FirePlan",
    "direct_fanout",
    "plan_delivery",
    "plan_fire",
]

#: How many members get the event over a TCP stream.
TCP_TARGETS: Final = 3
#: Up to this many alive members, every one of them gets a datagram.
SMALL_POOL: Final = 64
#: memberlist's gossip fanout (GossipNodes) in the lan and wan profiles.
GOSSIP_FANOUT: Final = 3
#: Gossip rounds after which at most MISSED_FRACTION of members should wait.
TARGET_ROUNDS: Final = 3
MISSED_FRACTION: Final = 0.01


def direct_fanout(
    members: int,
    *,
    rounds: int = TARGET_ROUNDS,
    fanout: int = GOSSIP_FANOUT,
    missed: float = MISSED_FRACTION,
) -> int:
    """How many members to send to directly in a large pool.

    Model: every member that has the event sends it to ``fanout`` random members
    each gossip round. If a fraction ``u`` of members still lacks it, a given one
    escapes all ``fanout * (1 - u) * N`` sends with probability about
    ``exp(-fanout * (1 - u))``, so after a round ``u`` becomes
    ``u * exp(-fanout * (1 - u))``. The answer is the smallest number of direct
    recipients after which at most ``missed`` of the pool still waits ``rounds``
    rounds later. The fraction does not depend on the pool's size: with the
    defaults it is about 15% of the members, against 1/N when one node fires.
    The last stragglers are reached by members' remaining retransmissions.
    """
    if members <= 0:
        return 0

    def waiting(direct: int) -> float:
        unreached = 1 - direct / members
        for _ in range(rounds):
            unreached *= math.exp(-fanout * (1 - unreached))
        return unreached

    low, high = 0, members  # waiting(high) == 0 <= missed
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if waiting(middle) <= missed else (middle, high)
    return high


@dataclass(frozen=True, slots=True)
class Delivery:
    """Who gets the event how, and the bytes to send them."""

    tcp: tuple[PoolMember, ...]
    udp: tuple[PoolMember, ...]
    stream: bytes
    datagram: bytes
    datagram_crc: bytes

    def datagram_for(self, member: PoolMember) -> bytes:
        """The datagram for ``member``: with a CRC when it speaks protocol 5."""
        return self.datagram_crc if member.wants_crc else self.datagram


@dataclass(frozen=True, slots=True)
class FirePlan:
    """Everything to send for one event, decided before anything is sent."""

    event: BuiltEvent
    delivery: Delivery
    warnings: tuple[str, ...] = ()


def plan_delivery(
    pool: PoolView,
    encoded: bytes,
    rng: random.Random,
    *,
    seed: Address | None = None,
    keyring: Keyring | None = None,
    label: bytes = b"",
    everyone: bool = False,
) -> Delivery:
    """Pick the TCP and UDP recipients among alive members and frame the event.

    The seed (known to answer) comes first among the TCP recipients. Every other
    alive member gets a datagram when the pool is small or ``everyone`` is set;
    otherwise a random subset, sized by :func:`direct_fanout` but never smaller
    than a small pool, receives the event directly.
    """
    alive = list(pool.alive)
    rng.shuffle(alive)
    alive.sort(key=lambda member: member.address != seed)  # stable: seed first
    tcp, rest = alive[:TCP_TARGETS], alive[TCP_TARGETS:]
    if not everyone and len(alive) > SMALL_POOL:
        direct = max(SMALL_POOL, direct_fanout(len(alive)))
        rest = rest[: direct - len(tcp)]
    message = UserMsg(encoded)
    return Delivery(
        tuple(tcp),
        tuple(rest),
        encode_stream(message, compress=False, keyring=keyring, label=label),
        build_packet([message], keyring=keyring, label=label),
        build_packet([message], crc=True, keyring=keyring, label=label),
    )


def plan_fire(
    spec: EventSpec,
    pool: PoolView,
    rng: random.Random,
    *,
    seed: Address | None = None,
    keyring: Keyring | None = None,
    label: bytes = b"",
    event_id: str | None = None,
) -> FirePlan:
    """Build the event at the pool's time, check it, and plan its delivery.

    ``rng`` picks the recipients; a Consul event gets ``event_id`` or, when it
    is None, a fresh ID from the operating system's secure source.
    """
    event = build_event(spec, choose_ltime(pool), event_id)
    warnings = []
    too_big = gossip_warning(len(event.encoded), bool(keyring), label)
    if too_big is not None:
        # Members would not pass it on, so reach as many as possible directly.
        warnings.append(too_big)
    delivery = plan_delivery(
        pool,
        event.encoded,
        rng,
        seed=seed,
        keyring=keyring,
        label=label,
        everyone=too_big is not None,
    )
    if not delivery.tcp:
        warnings.append("the seed reported no alive member; nothing to send to")
    return FirePlan(event, delivery, tuple(warnings))

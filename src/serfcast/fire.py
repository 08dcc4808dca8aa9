"""Firing one user event into a pool without joining it: the sans-IO planner.

Theory of operation. A sender that never becomes a member needs two things from
the pool before it can fire: the event Lamport clock, so that every member
accepts the event, and the members' addresses, so that it can hand the event to
many of them at once. It gets both from one TCP push/pull with a seed, sent with
``Join`` false, no node states and an empty Serf state (every clock 0, no events,
no members). A Serf agent answers such a request with its full state and merges
nothing from it: the clocks it would witness are all 0, there is no member to
add, and without ``Join`` no join logic runs. So no agent logs anything and the
member list stays as it was.

The reply lists every member with its address, state, protocol versions and tags,
and carries the seed's Serf state, whose ``EventLTime`` is the next event time
the seed would use. The event is then built at that time (see
:func:`choose_ltime`), checked against Serf's size limits exactly as a Go sender
checks it, and handed to the pool from many points at once: a TCP stream to a few
alive members (reliable, so the event certainly enters the pool) and a UDP
datagram to many more. Every member that receives it gossips it on, as members do
with any user event they accept, so the epidemic starts from all of them instead
of from one node.

This module makes the bytes and the choices; :mod:`serfcast.oneshot` owns the
sockets. Nothing here reads the clock, and randomness comes from the caller's
``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from serfcast.errors import EventTooLargeError, LocalProtocolError, RemoteProtocolError
from serfcast.serf.limits import (
    DEFAULT_USER_EVENT_SIZE_LIMIT,
    check_user_event_size,
    gossip_warning,
    user_event_budget,
)
from serfcast.serf.messages import PushPullState, UserEvent, decode_serf_message
from serfcast.serf.tags import decode_tags
from serfcast.wire.frames import UserMsg
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import ErrResp, NodeState, PushNodeState
from serfcast.wire.packet import build_packet
from serfcast.wire.stream import PushPull, StreamDecoder, StreamFrame, encode_stream

__all__ = [
    "DEFAULT_PORT",
    "AgentErrorReply",
    "BuiltEvent",
    "Delivery",
    "EventSpec",
    "FirePlan",
    "PayloadTooLargeError",
    "PoolMember",
    "PoolView",
    "build_event",
    "check_event",
    "choose_ltime",
    "direct_fanout",
    "parse_address",
    "plan_delivery",
    "plan_fire",
    "pull_request",
    "read_pool",
    "reply_decoder",
]

#: Consul's LAN gossip port; serf agents listen on 7946 unless told otherwise.
DEFAULT_PORT: Final = 8301
#: How many members get the event over a TCP stream.
TCP_TARGETS: Final = 3
#: Up to this many alive members, every one of them gets a datagram.
SMALL_POOL: Final = 64
#: memberlist's gossip fanout (GossipNodes) in the lan and wan profiles.
GOSSIP_FANOUT: Final = 3
#: Gossip rounds after which at most MISSED_FRACTION of members should wait.
TARGET_ROUNDS: Final = 3
MISSED_FRACTION: Final = 0.01

#: Any well-formed ID encodes to the same size, so checks can use this one.
_SAMPLE_ID: Final = "00000000-0000-4000-8000-000000000000"

Address = tuple[str, int]


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> Address:
    """Split ``host[:port]`` (``[v6]:port`` for IPv6) into a host and a port."""
    host, port_text = text.strip(), ""
    if host.startswith("["):
        inside, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise LocalProtocolError(f"address {text!r}: write IPv6 as [addr]:port")
        host, port_text = inside, rest[1:]
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    if not host:
        raise LocalProtocolError(f"address {text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 0xFFFF:
        raise LocalProtocolError(f"address {text!r}: {port_text!r} is not a port")
    return host, int(port_text)


# ----------------------------------------------------------------------------
# The event


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What to fire: a Consul event (the default) or a plain Serf event.

    A Consul event travels as the Serf event ``consul:event:<name>`` whose
    payload is Consul's encoded map (a fresh ID, the filters, the payload); a
    plain Serf event carries ``name`` and ``payload`` as they are. The filters
    are Go regular expressions that receiving Consul agents apply; coalescing
    exists only for plain Serf events (Consul fires with it off).
    ``size_limit`` is the pool's user event size limit (Serf's default 512).
    """

    name: str
    payload: bytes = b""
    consul: bool = True
    node_filter: str = ""
    service_filter: str = ""
    tag_filter: str = ""
    coalesce: bool = False
    allow_reserved: bool = False
    size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT


@dataclass(frozen=True, slots=True)
class BuiltEvent:
    """The Serf user event to send, its encoding and the Consul ID (if any)."""

    message: UserEvent
    encoded: bytes
    event_id: str | None = None


class PayloadTooLargeError(EventTooLargeError):
    """Serf's size check refused the event; ``budget`` says what would fit.

    ``budget`` is the longest payload that passes with this name (and filters)
    at the Lamport time checked, -1 when not even an empty payload does.
    """

    def __init__(
        self, cause: EventTooLargeError, budget: int, payload_size: int
    ) -> None:
        super().__init__(cause.limit, cause.size, cause.stage)
        self.budget = budget
        self.payload_size = payload_size
        if budget < 0:
            hint = "the name (and filters) alone leave no room for any payload"
        else:
            hint = f"the payload is {payload_size} bytes, at most {budget} fit"
        self.args = (f"{self.args[0]}: {hint}",)

    def __reduce__(  # type: ignore[override]
        self,
    ) -> tuple[type[PayloadTooLargeError], tuple[EventTooLargeError, int, int]]:
        cause = EventTooLargeError(self.limit, self.size, self.stage)
        return type(self), (cause, self.budget, self.payload_size)


def check_event(spec: EventSpec) -> None:
    """Every check that needs no network: names, filters, flags and size.

    The size is checked at Lamport time 1, the smallest encoding, so an event
    refused here is refused at any time; :func:`build_event` checks again at
    the pool's real time.
    """
    if not spec.name:
        raise LocalProtocolError("an event needs a name")
    if spec.consul and spec.coalesce:
        raise LocalProtocolError(
            "Consul fires its events with coalescing off; coalescing is only for "
            "plain Serf events"
        )
    if not spec.consul and (spec.node_filter or spec.service_filter or spec.tag_filter):
        raise LocalProtocolError(
            "node, service and tag filters belong to Consul events; a plain Serf "
            "event has none"
        )
    build_event(spec, 1, _SAMPLE_ID)


def build_event(spec: EventSpec, ltime: int, event_id: str | None = None) -> BuiltEvent:
    """The Serf user event at ``ltime``, after Consul's and Serf's checks.

    A Consul event gets ``event_id``, or a fresh random one when it is None.
    """
    if not spec.consul:
        _check_serf_name(spec)
        message = UserEvent(ltime, spec.name, spec.payload, spec.coalesce)
        return BuiltEvent(message, _checked_size(spec, message))
    # Imported here: the Consul rules (and their regular expression checker)
    # are a good part of what a plain Serf fire would otherwise load at start.
    from serfcast.consul import ConsulEvent, new_event_id

    consul = ConsulEvent(
        event_id or new_event_id(),
        spec.name,
        spec.payload,
        spec.node_filter,
        spec.service_filter,
        spec.tag_filter,
    )
    message = consul.to_serf(ltime, allow_reserved=spec.allow_reserved)
    return BuiltEvent(message, _checked_size(spec, message), consul.id)


def _check_serf_name(spec: EventSpec) -> None:
    # Only names starting with "consul:" mean something to Consul agents, so
    # only those need the Consul rules.
    if spec.name.startswith("consul:"):
        from serfcast.consul.names import check_serf_event_name

        check_serf_event_name(spec.name, allow_reserved=spec.allow_reserved)


def _checked_size(spec: EventSpec, message: UserEvent) -> bytes:
    try:
        return check_user_event_size(
            message.name,
            message.payload,
            message.ltime,
            message.coalesce,
            spec.size_limit,
        )
    except EventTooLargeError as exc:
        raise PayloadTooLargeError(
            exc, _payload_budget(spec, message.ltime), len(spec.payload)
        ) from None


def _payload_budget(spec: EventSpec, ltime: int) -> int:
    if not spec.consul:
        return user_event_budget(spec.name, ltime, spec.size_limit, spec.coalesce)
    from serfcast.consul import consul_event_budget

    return consul_event_budget(
        spec.name,
        node_filter=spec.node_filter,
        service_filter=spec.service_filter,
        tag_filter=spec.tag_filter,
        ltime=ltime,
        limit=spec.size_limit,
    )


# ----------------------------------------------------------------------------
# Learning the pool


@dataclass(frozen=True, slots=True)
class PoolMember:
    """A member as the seed's push/pull describes it."""

    name: str
    address: Address
    state: int
    protocol_max: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """Whether the seed believes the member alive."""
        return self.state == NodeState.ALIVE

    @property
    def wants_crc(self) -> bool:
        """Go adds a CRC to every datagram for a node speaking protocol 5."""
        return self.protocol_max >= 5


@dataclass(frozen=True, slots=True)
class PoolView:
    """What a seed told us: its members and its Serf clocks."""

    members: tuple[PoolMember, ...]
    event_ltime: int
    ltime: int = 0
    query_ltime: int = 0

    @property
    def alive(self) -> tuple[PoolMember, ...]:
        """The members the seed believes alive."""
        return tuple(member for member in self.members if member.alive)


class AgentErrorReply(RemoteProtocolError):
    """The seed answered with memberlist's error message instead of its state."""

    def __init__(self, text: str) -> None:
        super().__init__(f"the agent answered with an error: {text}")
        self.text = text


def pull_request(keyring: Keyring | None = None, label: bytes = b"") -> bytes:
    """The bytes of a push/pull that asks for the pool's state and adds nothing."""
    state = PushPullState().encode()  # every clock 0: the seed witnesses nothing
    request = PushPull(join=False, nodes=(), user_state=state)
    # Go would compress, but LZW only grows a request this small.
    return encode_stream(request, compress=False, keyring=keyring, label=label)


def reply_decoder(keyring: Keyring | None = None, label: bytes = b"") -> StreamDecoder:
    """A decoder for the seed's reply (replies never carry a label header)."""
    return StreamDecoder(keyring=keyring, label=label, expect_label_header=False)


def read_pool(frame: StreamFrame) -> PoolView:
    """The members and clocks in a seed's reply to :func:`pull_request`."""
    message = frame.message
    if isinstance(message, ErrResp):
        raise AgentErrorReply(" ".join(message.error.split()))
    if not isinstance(message, PushPull):
        raise RemoteProtocolError(
            f"expected a push/pull reply, got {type(message).__name__}"
        )
    if not message.user_state:
        raise RemoteProtocolError(
            "the seed sent no Serf state, so it is not a Serf or Consul agent"
        )
    state = decode_serf_message(message.user_state)
    if not isinstance(state, PushPullState):
        raise RemoteProtocolError("the seed's user state is not Serf's push/pull state")
    members = tuple(filter(None, map(_member, message.nodes)))
    return PoolView(members, state.event_ltime, state.ltime, state.query_ltime)


def _member(node: PushNodeState) -> PoolMember | None:
    host = _host(node.addr)
    if host is None:
        return None  # an address we cannot send to; the others still can be
    try:
        tags = decode_tags(node.meta)
    except RemoteProtocolError:
        tags = {}  # tags are only shown, never needed to deliver
    pmax = node.vsn[1] if len(node.vsn) >= 2 else 0
    return PoolMember(node.name, (host, node.port), node.state, pmax, tags)


_V4_MAPPED: Final = bytes(10) + b"\xff\xff"


def _host(addr: bytes) -> str | None:
    # Formatted by hand: the ipaddress module costs a one-shot command 5 ms.
    if len(addr) == 16 and addr.startswith(_V4_MAPPED):
        addr = addr[len(_V4_MAPPED) :]
    if len(addr) == 4:
        return ".".join(map(str, addr))
    if len(addr) == 16:  # the long form is as valid a literal as the short one
        return ":".join(addr[i : i + 2].hex() for i in range(0, 16, 2))
    return None


def choose_ltime(pool: PoolView) -> int:
    """The Lamport time to fire at: the seed's ``EventLTime``.

    That is the time the seed itself would give its next event, and the only
    choice every member is sure to accept. A member that joined without replay
    drops, silently and without passing it on, any event below the event time it
    learned when it joined; the seed's clock has witnessed every event since, so
    it is at or above every such floor. Far below the clock (more than 512
    behind) members drop the event as too old, with a warning. A time far above
    would be accepted but would drag every member's clock up for good and make
    later push/pulls report older buffered events as too old, so the time is
    never invented, only learned. A fresh pool's clock starts at 1.
    """
    return max(pool.event_ltime, 1)


# ----------------------------------------------------------------------------
# Delivery


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

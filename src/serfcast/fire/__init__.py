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

This package makes the bytes and the choices (:mod:`.event` the event,
:mod:`.pool` the push/pull and what it teaches, :mod:`.delivery` who gets what);
:mod:`serfcast.oneshot` owns the sockets. Nothing here reads the clock, and
randomness comes from the caller's ``random.Random``.
"""

from serfcast.fire.delivery import (
    GOSSIP_FANOUT,
    MISSED_FRACTION,
    SMALL_POOL,
    TARGET_ROUNDS,
    TCP_TARGETS,
    Delivery,
    FirePlan,
    direct_fanout,
    plan_delivery,
    plan_fire,
)
from serfcast.fire.event import (
    BuiltEvent,
    EventSpec,
    PayloadTooLargeError,
    build_event,
    check_event,
)
from serfcast.fire.pool import (
    DEFAULT_PORT,
    Address,
    AgentErrorReply,
    PoolMember,
    PoolView,
    choose_ltime,
    parse_address,
    pull_request,
    read_pool,
    reply_decoder,
    serf_reply,
)

__all__ = [
    "DEFAULT_PORT",
    "GOSSIP_FANOUT",
    "MISSED_FRACTION",
    "SMALL_POOL",
    "TARGET_ROUNDS",
    "TCP_TARGETS",
    "Address",
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
    "serf_reply",
]

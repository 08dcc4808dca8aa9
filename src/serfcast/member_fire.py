"""Fire one event as a member: join the pool, fire, wait until it is sent, leave.

This is ``serfcast event -member``. Unlike the default path, which never joins
(see :mod:`serfcast.oneshot`), the pool sees a member arrive and then leave
gracefully, and the event spreads from that member's own gossip exactly as if a
serf agent had fired it. It runs the Serf engine on the trio driver, so it is
imported only when asked for.

The steps: the same checks as the one-shot path; bind a UDP socket and a TCP
listener on one port; join through the seeds (a push/pull that makes us a
member, with old events not replayed); build the event at the event clock the
join taught us and check its size there; fire it; wait until the event queue
has retransmitted it as often as Serf would (at most Serf's broadcast timeout);
leave gracefully, which lets every member mark us ``left``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
from collections.abc import Sequence
from typing import TypeVar

import trio

from serfcast.drivers import advertise_address
from serfcast.drivers.trio import TrioDriver
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.memberlist import JoinFinished
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_events import LeaveComplete, MemberStatus, SerfEvent
from serfcast.fire import Address, EventSpec, build_event, check_event
from serfcast.oneshot import FireResult, NoSeedError, SeedFailure, WrongKeyError
from serfcast.wire.keyring import Keyring

__all__ = ["fire_as_member", "fire_as_member_sync"]

E = TypeVar("E")
#: How often to look at the event queue while waiting for it to drain.
QUEUE_POLL = 0.05


async def fire_as_member(
    spec: EventSpec,
    seeds: Sequence[Address],
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    bind: Address | None = None,
    timeout: float = 5.0,
    name: str | None = None,
) -> FireResult:
    """Join through ``seeds``, fire ``spec``, wait until it is sent, and leave.

    ``name`` is the member name to join under (by default ``serfcast-<host>-``
    and a random suffix, so two runs never collide); ``timeout`` bounds each
    seed's TCP exchange. Raises like :func:`serfcast.oneshot.fire`.
    """
    check_event(spec)
    targets = [await _resolve(seed) for seed in seeds]
    sockets = TrioDriver.bind(bind or _local_address_towards(targets[0]))
    node = SerfNode(
        name or _member_name(),
        advertise_address(sockets.address),
        keyring=keyring,
        memberlist_config=MemberlistConfig(label=label, tcp_timeout=timeout),
    )
    async with TrioDriver(node, sockets=sockets) as driver:
        events = driver.events()
        driver.call(functools.partial(node.join, targets))
        joined = await _next(events, JoinFinished, timeout * len(targets) + 1)
        if joined is None or not joined.contacted:
            raise _join_error(joined, timeout)
        try:
            result = await _fire(driver, node, spec, joined.contacted[0])
        finally:
            driver.call(node.leave)
            cfg = node.serf_config
            wait = 2 * cfg.broadcast_timeout + cfg.leave_propagate_delay + 1
            left = await _next(events, LeaveComplete, wait)
    if left is None:
        note = "the graceful leave did not finish in time; members may list us failed"
        result = dataclasses.replace(result, warnings=(*result.warnings, note))
    return result


def fire_as_member_sync(
    spec: EventSpec,
    seeds: Sequence[Address],
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    bind: Address | None = None,
    timeout: float = 5.0,
) -> FireResult:
    """:func:`fire_as_member` from synchronous code (runs trio here)."""
    call = functools.partial(
        fire_as_member,
        spec,
        seeds,
        keyring=keyring,
        label=label,
        bind=bind,
        timeout=timeout,
    )
    return trio.run(call)


async def _fire(
    driver: TrioDriver[SerfEvent], node: SerfNode, spec: EventSpec, seed: Address
) -> FireResult:
    # Our own checks once more at the clock the join taught us, for the budget.
    built = build_event(spec, node.event_time)
    fire = functools.partial(
        node.fire_event,
        built.message.name,
        built.message.payload or b"",
        built.message.coalesce,
    )
    message = driver.call(fire)
    warnings = []
    if not await _event_queue_drained(node):
        warnings.append(
            "the event was still waiting for retransmission when we left; members "
            "that missed it get it from the others' gossip or push/pull"
        )
    alive = [
        m.name
        for m in node.members()
        if m.status == MemberStatus.ALIVE and m.name != node.name
    ]
    return FireResult(
        built.event_id,
        spec.name,
        message.name,
        message.ltime,
        f"{seed[0]}:{seed[1]}",
        len(alive),
        (),
        (),
        tuple(warnings),
        member=node.name,
    )


async def _event_queue_drained(node: SerfNode) -> bool:
    with trio.move_on_after(node.serf_config.broadcast_timeout):
        while node.queue_depths()["event"]:
            await trio.sleep(QUEUE_POLL)
        return True
    return False


async def _next(
    events: trio.MemoryReceiveChannel[SerfEvent], kind: type[E], wait: float
) -> E | None:
    """The next event of type ``kind``, or None if none comes within ``wait``."""
    with trio.move_on_after(wait):
        async for event in events:
            if isinstance(event, kind):
                return event
    return None


def _join_error(joined: JoinFinished | None, timeout: float) -> NoSeedError:
    if joined is None:
        reason = f"the join did not finish within {timeout:g} s per seed"
        return NoSeedError([SeedFailure("every seed", reason)])
    failures = [
        SeedFailure(f"{host}:{port}", reason, "crypt" in reason.lower())
        for (host, port), reason in joined.errors
    ]
    if any(failure.key_problem for failure in failures):
        return WrongKeyError(failures)
    return NoSeedError(failures)


async def _resolve(seed: Address) -> Address:
    host, port = seed
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NoSeedError(
            [SeedFailure(f"{host}:{port}", f"cannot resolve {host!r}: {exc.strerror}")]
        ) from None
    return str(infos[0][4][0]), port


def _local_address_towards(seed: Address) -> Address:
    """The local address the system would use to reach ``seed``, any port."""
    family = socket.AF_INET6 if ":" in seed[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(seed)  # a UDP connect sends nothing; it only picks a route
        return str(probe.getsockname()[0]), 0


def _member_name() -> str:
    return f"serfcast-{socket.gethostname()}-{os.urandom(4).hex()}"

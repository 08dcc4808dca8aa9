"""``open_node``: a Serf member for the duration of an ``async with`` block.

::

    async with serfcast.open_node(bind="10.0.0.7:7946", join=["10.0.0.5"]) as node:
        await node.fire("deploy", b"v42")
        async for event in node.events():
            print(event)

Entering binds the gossip port (UDP and TCP), builds a sans-IO
:class:`~serfcast.engine.serf.SerfNode` advertising the bound address, starts
the driver of the async library that is running (trio or asyncio, found when
the block is entered, so importing this module imports neither) and joins
through the seeds, if any. Leaving the block leaves the pool gracefully, then
stops the driver and closes the sockets.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from serfcast.drivers.base import advertise_address
from serfcast.drivers.core import EventSink
from serfcast.drivers.library import running_library
from serfcast.drivers.sockets import BoundSockets, bind_sockets
from serfcast.engine.actions import Address
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.config import profile as memberlist_profile
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import SerfEvent
from serfcast.errors import LocalProtocolError
from serfcast.node import (
    SERF_PORT,
    Node,
    node_log,
    parse_member_address,
    seed_addresses,
)
from serfcast.oneshot import make_keyring
from serfcast.wire.keyring import Keyring

__all__ = ["open_node"]

Key = str | bytes


def open_node(
    *,
    name: str | None = None,
    bind: str | Address = f"127.0.0.1:{SERF_PORT}",
    join: str | Sequence[str | Address] = (),
    encrypt: Key | Iterable[Key] | None = None,
    keyring_file: str | os.PathLike[str] | None = None,
    tags: Mapping[str, str] | None = None,
    profile: str = "lan",
    label: str = "",
    ignore_old: bool = True,
    event_buffer: int = 1024,
    leave_on_exit: bool = True,
    memberlist_config: MemberlistConfig | None = None,
    serf_config: SerfConfig | None = None,
    rng: random.Random | None = None,
) -> AbstractAsyncContextManager[Node]:
    """Run a Serf member for the duration of an ``async with`` block.

    Works under trio and asyncio alike. ``name`` defaults to the host name.
    ``bind`` is ``host[:port]`` (a literal IP address; port 7946 by default,
    0 for any free port), used for UDP and TCP and advertised to the pool.
    ``join`` lists seeds (``host[:port]``); when given, the block starts only
    once one of them answered (:meth:`Node.join` says what is raised
    otherwise). ``encrypt`` is the pool's gossip key (base64 text or raw bytes,
    or several), ``keyring_file`` a JSON list of keys as serf writes it;
    ``label`` is memberlist's label. ``profile`` picks Go's ``lan``, ``wan``
    or ``local`` timings unless ``memberlist_config`` is given. ``event_buffer``
    bounds the queue :meth:`Node.events` reads.

    Leaving the block leaves the pool gracefully (unless ``leave_on_exit`` is
    false, or the block was cancelled: then the node just stops and the others
    will see it fail).
    """
    if event_buffer < 1:
        raise LocalProtocolError("event_buffer must be at least 1")
    settings = _Settings(
        name or socket.gethostname(),
        parse_member_address(bind, "bind"),
        seed_addresses(join),
        tags or {},
        _memberlist_config(memberlist_config, profile, label),
        serf_config,
        ignore_old,
        event_buffer,
        leave_on_exit,
        rng,
    )
    keyring = make_keyring(encrypt, None if keyring_file is None else str(keyring_file))
    return _run_node(settings, keyring)


@dataclass(frozen=True, slots=True)
class _Settings:
    name: str
    bind: Address
    seeds: list[Address]
    tags: Mapping[str, str]
    memberlist_config: MemberlistConfig
    serf_config: SerfConfig | None
    ignore_old: bool
    event_buffer: int
    leave_on_exit: bool
    rng: random.Random | None


@asynccontextmanager
async def _run_node(
    settings: _Settings, keyring: Keyring | None
) -> AsyncIterator[Node]:
    library = running_library()
    sockets = bind_sockets(settings.bind)
    try:
        engine = _build_engine(settings, sockets, keyring)
    except BaseException:
        sockets.close()
        raise
    node = Node(engine, library, sockets.address, settings.event_buffer)
    sink: EventSink[SerfEvent] = node._route
    driver = library.driver(engine, sockets=sockets, event_sink=sink)
    async with driver:
        node._attach(driver)
        try:
            if settings.seeds:
                await node.join(settings.seeds, ignore_old=settings.ignore_old)
            async with _leaving(node, settings.leave_on_exit):
                yield node
        finally:
            node._close()


@asynccontextmanager
async def _leaving(node: Node, graceful: bool) -> AsyncIterator[None]:
    """Leave gracefully after the block, unless it was cancelled."""
    try:
        yield
    except Exception:
        # The block failed on its own: still leave cleanly, and let its
        # error (not one from leaving) be what the caller sees.
        if graceful:
            await _leave_quietly(node)
        raise
    if graceful:
        await node.leave()


async def _leave_quietly(node: Node) -> None:
    try:
        await node.leave()
    except Exception as exc:
        node_log.debug("leave after error failed error=%r", exc)


def _build_engine(
    settings: _Settings, sockets: BoundSockets, keyring: Keyring | None
) -> SerfNode:
    return SerfNode(
        settings.name,
        advertise_address(sockets.address),
        tags=settings.tags,
        memberlist_config=settings.memberlist_config,
        keyring=keyring,
        rng=settings.rng,
        serf_config=settings.serf_config,
    )


def _memberlist_config(
    given: MemberlistConfig | None, profile: str, label: str
) -> MemberlistConfig:
    config = given or memberlist_profile(profile)
    return config.replace(label=label.encode()) if label else config

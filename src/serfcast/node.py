"""A running Serf member, as a trio or asyncio program holds it.

:class:`Node` is what ``async with serfcast.open_node(...) as node`` gives
(see :mod:`serfcast.node_open`): it looks at the member list, fires events,
asks queries and answers them, and leaves, all through the driver that runs
its sans-IO :class:`~serfcast.engine.serf.SerfNode`.

Theory of operation
-------------------
The driver hands every engine event to :meth:`Node._route`, synchronously,
from inside the engine call that produced it:

* acks, responses and the end of one of our queries go to its
  :class:`~serfcast.node_types.QueryResult`;
* the end of a join goes to the :meth:`Node.join` that asked for it, and the
  end of a graceful leave wakes :meth:`Node.leave`;
* everything else (user events, queries to answer, member changes, name
  conflicts) goes to the bounded channel :meth:`Node.events` reads. When it is
  full, events are dropped and counted in ``node.stats["events_dropped"]``.

An operation that waits registers its waiter inside the very engine call that
starts it, so an answer produced by that call (our own ack to our own query,
a join without seeds) cannot be missed. Waiting uses one-shot signals of the
running library; nothing here depends on which one it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from serfcast.drivers.channel import EventChannel, Signal
from serfcast.drivers.library import AsyncLibrary, RunningDriver
from serfcast.engine.actions import Address
from serfcast.engine.memberlist import JoinFinished
from serfcast.engine.serf import SerfNode, SerfState
from serfcast.engine.serf_events import (
    LeaveComplete,
    Member,
    QueryAck,
    QueryFinished,
    QueryReceived,
    QueryResponse,
    SerfEvent,
)
from serfcast.errors import LocalProtocolError
from serfcast.fire import EventSpec, build_event, check_event, parse_address
from serfcast.node_types import FiredEvent, NodeEvent, QueryResult
from serfcast.oneshot import NoSeedError, SeedFailure, WrongKeyError
from serfcast.serf.messages import NodeFilter, TagFilter

__all__ = ["SERF_PORT", "Node", "parse_member_address", "seed_addresses"]

node_log = logging.getLogger("serfcast.node")

#: The serf agent's gossip port: the default for ``bind`` and for seeds.
SERF_PORT: Final = 7946


@dataclass(slots=True)
class _JoinWaiter:
    seeds: frozenset[Address]
    done: Signal
    report: JoinFinished | None = None


class Node:
    """One running member of a Serf pool; get one from :func:`open_node`.

    Every method must be called from the task (or nursery) that opened the
    node, or from tasks of the same event loop.
    """

    def __init__(
        self,
        engine: SerfNode,
        library: AsyncLibrary,
        address: Address,
        event_buffer: int,
    ) -> None:
        self._engine = engine
        self._library = library
        self._address = address
        self._driver: RunningDriver | None = None
        self._driver_stats: dict[str, int] = {}
        self._events = EventChannel[NodeEvent](event_buffer, library.new_signal)
        self._queries: dict[int, QueryResult] = {}
        self._joins: list[_JoinWaiter] = []
        self._leave_done: Signal | None = None

    # ------------------------------------------------------------------------
    # Looking

    @property
    def name(self) -> str:
        """This node's name in the pool."""
        return self._engine.name

    @property
    def address(self) -> Address:
        """The ``(host, port)`` the gossip sockets are bound to."""
        return self._address

    @property
    def tags(self) -> Mapping[str, str]:
        """This node's own tags."""
        return self._engine.tags

    @property
    def left(self) -> bool:
        """Whether a graceful leave has completed."""
        return self._engine.state is SerfState.LEFT

    @property
    def stats(self) -> dict[str, int]:
        """Counters of what was dropped, refused or failed, engine and driver.

        ``events_dropped`` counts events lost because :meth:`events` was not
        drained fast enough.
        """
        engine = self._engine
        return {**engine.memberlist.stats, **engine.stats, **self._driver_stats}

    def members(self) -> list[Member]:
        """Every member known, this node and left or failed ones included."""
        return self._engine.members()

    def events(self) -> EventChannel[NodeEvent]:
        """User events, queries to answer and member changes, as they happen.

        ``async for event in node.events()`` yields
        :data:`~serfcast.node_types.NodeEvent` dataclasses and ends when the
        node closes. Events fired by this node come back here too, as in Serf.
        """
        return self._events

    # ------------------------------------------------------------------------
    # Acting

    async def join(
        self, seeds: str | Sequence[str | Address], *, ignore_old: bool = True
    ) -> tuple[Address, ...]:
        """Join the pool through ``seeds`` (``host[:port]``, port 7946 by default).

        Returns the seeds that answered. With ``ignore_old`` the pool's recent
        user events are not replayed to us. Raises
        :class:`~serfcast.oneshot.NoSeedError` when no seed answered, or its
        subclass :class:`~serfcast.oneshot.WrongKeyError` when it looks like
        the gossip key (or label) is wrong.
        """
        addresses = seed_addresses(seeds)
        if not addresses:
            raise LocalProtocolError("give at least one seed to join through")
        waiter = _JoinWaiter(frozenset(addresses), self._library.new_signal())

        def start(now: float) -> None:
            self._joins.append(waiter)
            self._engine.join(addresses, now, ignore_old)

        self._require_driver().call(start)
        await waiter.done.wait()
        assert waiter.report is not None  # set before the signal
        if not waiter.report.contacted:
            raise _join_error(waiter.report)
        node_log.debug("joined contacted=%s", _show_all(waiter.report.contacted))
        return waiter.report.contacted

    async def fire(
        self,
        name: str,
        payload: bytes | str = b"",
        *,
        coalesce: bool = False,
        consul: bool = False,
        node_filter: str = "",
        service_filter: str = "",
        tag_filter: str = "",
        allow_reserved: bool = False,
    ) -> FiredEvent:
        """Fire a user event into the pool; it is delivered here too.

        A plain Serf event by default; with ``consul=True`` a Consul event
        (``consul:event:<name>`` carrying Consul's map, with a fresh ID and the
        Go regular expression filters ``node_filter``, ``service_filter`` and
        ``tag_filter``), which Consul agents in the pool pick up. Names that
        Consul agents act on are refused unless ``allow_reserved``. Raises
        :class:`~serfcast.errors.EventTooLargeError` (with the payload budget)
        or :class:`~serfcast.errors.LocalProtocolError` before sending anything.
        """
        self._check_alive()
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        spec = EventSpec(
            name,
            data,
            consul=consul,
            node_filter=node_filter,
            service_filter=service_filter,
            tag_filter=tag_filter,
            coalesce=coalesce,
            allow_reserved=allow_reserved,
            size_limit=self._engine.serf_config.user_event_size_limit,
        )
        check_event(spec)
        built = build_event(spec, self._engine.event_time)
        message = built.message
        fire = functools.partial(
            self._engine.fire_event,
            message.name,
            message.payload or b"",
            message.coalesce,
        )
        sent = self._require_driver().call(fire)
        await self._library.checkpoint()
        return FiredEvent(
            name,
            sent.name,
            sent.payload or b"",
            sent.ltime,
            sent.coalesce,
            built.event_id,
        )

    async def query(
        self,
        name: str,
        payload: bytes | str = b"",
        *,
        filter_nodes: Iterable[str] | None = None,
        filter_tags: Mapping[str, str] | None = None,
        timeout: float | None = None,
        request_ack: bool = True,
        relay_factor: int = 0,
    ) -> QueryResult:
        """Ask the pool; return a :class:`QueryResult` that collects the answers.

        ``filter_nodes`` limits the query to the named nodes; ``filter_tags``
        maps tag names to Go regular expressions their values must match.
        ``timeout`` (seconds) defaults to Serf's, which grows with the pool.
        This node receives its own query too, as in Serf. The result fills in
        as acks and responses arrive; ``await result.wait()`` waits for the
        timeout, ``async for reply in result`` yields replies as they come.
        """
        self._check_alive()
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        filters = _query_filters(filter_nodes, filter_tags)

        def ask(now: float) -> QueryResult:
            query_id = self._engine.query(
                name,
                data,
                filters=filters,
                request_ack=request_ack,
                timeout=timeout,
                relay_factor=relay_factor,
                now=now,
            )
            result = QueryResult(query_id, name, self._library.new_signal)
            self._queries[query_id] = result
            return result

        result = self._require_driver().call(ask)
        await self._library.checkpoint()
        return result

    async def respond(self, query: QueryReceived, payload: bytes | str = b"") -> None:
        """Answer a query from :meth:`events`, once, before its deadline.

        Raises :class:`~serfcast.errors.LocalProtocolError` when the answer is
        too large, was already sent, or comes too late.
        """
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._require_driver().call(
            functools.partial(self._engine.respond, query, data)
        )
        await self._library.checkpoint()

    async def set_tags(self, tags: Mapping[str, str]) -> None:
        """Replace this node's tags and announce them to the pool."""
        self._check_alive()
        self._require_driver().call(functools.partial(self._engine.set_tags, tags))
        await self._library.checkpoint()

    async def leave(self) -> None:
        """Leave the pool gracefully; return once the others have been told.

        The others then list this node as ``left`` rather than ``failed``.
        The wait is bounded by Serf's broadcast timeout (twice) and its leave
        propagation delay. Calling it again, or concurrently, just waits for
        the same leave.
        """
        if self.left:
            return
        if self._leave_done is None:
            self._leave_done = self._library.new_signal()
            self._require_driver().call(self._engine.leave)
        await self._leave_done.wait()
        node_log.debug("left name=%s", self.name)

    # ------------------------------------------------------------------------
    # Plumbing

    def _attach(self, driver: RunningDriver) -> None:
        self._driver = driver
        self._driver_stats = driver.stats

    def _close(self) -> None:
        self._driver = None
        self._events.close()

    def _require_driver(self) -> RunningDriver:
        if self._driver is None:
            raise LocalProtocolError(
                "the node is closed; use it inside 'async with open_node(...)'"
            )
        return self._driver

    def _check_alive(self) -> None:
        if self._engine.state is not SerfState.ALIVE:
            raise LocalProtocolError(
                "the node has left (or is leaving) the pool; open a new node"
            )

    def _route(self, event: SerfEvent) -> bool:
        """Where each engine event goes (the driver's event sink)."""
        if isinstance(event, QueryAck | QueryResponse | QueryFinished):
            self._to_query(event)
        elif isinstance(event, JoinFinished):
            self._to_join(event)
        elif isinstance(event, LeaveComplete):
            if self._leave_done is not None:
                self._leave_done.set()
        else:
            return self._events.offer(event)
        return True

    def _to_query(self, event: QueryAck | QueryResponse | QueryFinished) -> None:
        result = self._queries.get(event.query_id)
        if result is None:
            return
        if isinstance(event, QueryFinished):
            del self._queries[event.query_id]
        result._take(event)

    def _to_join(self, report: JoinFinished) -> None:
        tried = frozenset(report.contacted) | {addr for addr, _ in report.errors}
        for waiter in self._joins:
            if waiter.seeds == tried:
                self._joins.remove(waiter)
                waiter.report = report
                waiter.done.set()
                return


def parse_member_address(value: str | Address, what: str) -> Address:
    """``host[:port]`` (port 7946 by default) or a ``(host, port)`` pair."""
    if isinstance(value, tuple):
        return value
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be 'host:port' or (host, port)")
    return parse_address(value, default_port=SERF_PORT)


def seed_addresses(seeds: str | Sequence[str | Address]) -> list[Address]:
    """``host[:port]`` texts (port 7946 by default) or pairs, as addresses."""
    items = [seeds] if isinstance(seeds, str) else list(seeds)
    return [parse_member_address(seed, "a seed") for seed in items]


def _query_filters(
    nodes: Iterable[str] | None, tags: Mapping[str, str] | None
) -> list[NodeFilter | TagFilter]:
    filters: list[NodeFilter | TagFilter] = []
    if nodes is not None:
        filters.append(NodeFilter(tuple(nodes)))
    for tag, expr in (tags or {}).items():
        filters.append(TagFilter(tag=tag, expr=expr))
    return filters


def _join_error(report: JoinFinished) -> NoSeedError:
    failures = [
        SeedFailure(f"{host}:{port}", reason, "crypt" in reason.lower())
        for (host, port), reason in report.errors
    ]
    if any(failure.key_problem for failure in failures):
        return WrongKeyError(failures)
    return NoSeedError(failures)


def _show_all(addresses: Iterable[Address]) -> str:
    return ",".join(f"{host}:{port}" for host, port in addresses)

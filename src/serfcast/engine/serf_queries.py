"""Serf queries: asking the pool, answering it, and collecting the answers.

Theory of operation
-------------------
A query is gossiped like a user event but is answered point to point. The
asker stamps it with its query clock and a random 31-bit id, opens a
*collector* under that Lamport time, handles the query itself like any
receiver, and queues it for gossip. The collector accepts acks and responses
until the timeout passes (:class:`~serfcast.engine.serf_events.QueryFinished`
marks the end); the first ack and the first response from each node count,
later copies (relays send several) are dropped.

A receiver runs Serf's ring rules (new, not too old, not a duplicate), then
the filters, all of which must pass: a node list that names us, and tag
regular expressions that match our tags (unanchored, Go's RE2 syntax, a
missing tag reads as ""). A filter it cannot read means "not for me". A query
that fails its filters is still gossiped on. One that passes is acked first
when the asker wants acks, then handed to the application, or answered by the
node itself when its name starts with ``_serf_``. The application may answer
once, before ``now + timeout``.

Acks and answers go by UDP straight to the asker's address. With a relay
factor, copies also go through that many random alive members that speak
memberlist protocol 5; each forwards the inner message untouched.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from serfcast.engine.memberlist import Memberlist
from serfcast.engine.nodes import format_addr
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import (
    MemberStatus,
    QueryAck,
    QueryFinished,
    QueryReceived,
    QueryResponse,
    SerfEvent,
)
from serfcast.engine.serf_internal import INTERNAL_PREFIX, internal_answer
from serfcast.engine.serf_members import MemberTable
from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.serf import messages as sm
from serfcast.serf.buffers import (
    Accepted,
    BelowMinimum,
    Duplicate,
    QueryBuffer,
    SlotFull,
    TooOld,
    Verdict,
)
from serfcast.serf.limits import check_query_size, check_response_size

__all__ = [
    "MAX_ANSWERABLE",
    "QueryEngine",
    "encode_filters",
    "filters_pass",
    "refusal_label",
]

_NS = 1_000_000_000
#: How many received queries we keep the right to answer at once. Serf keeps
#: no list (each query object holds its own), so this bound is ours.
MAX_ANSWERABLE = 4096

Emit = Callable[[SerfEvent], None]
Count = Callable[[str], None]
OnResponse = Callable[[str, bytes], None]
OnFinished = Callable[[], None]


_REFUSALS: dict[type[Verdict], str] = {
    Duplicate: "duplicate",
    TooOld: "too_old",
    BelowMinimum: "below_minimum",
    SlotFull: "slot_full",
}


def refusal_label(verdict: Verdict) -> str:
    """A counter-friendly name for why a ring refused a message."""
    return _REFUSALS.get(type(verdict), "refused")


def encode_filters(filters: Sequence[sm.NodeFilter | sm.TagFilter]) -> list[bytes]:
    """Filter blobs for a query; tag expressions must be valid Go RE2."""
    # Go's regexp rules are loaded only when a tag filter needs them: they cost
    # a member start-up time and memory that most never need.
    from serfcast.re2 import check_go_regexp

    blobs = []
    for spec in filters:
        if isinstance(spec, sm.TagFilter):
            check_go_regexp(spec.expr)
        blobs.append(spec.encode())
    return blobs


def filters_pass(
    blobs: Sequence[bytes], name: str, tags: Mapping[str, str], count: Count
) -> bool:
    """Whether every filter admits the node ``name`` with ``tags``."""
    for blob in blobs:
        try:
            spec = sm.decode_filter(blob)
        except RemoteProtocolError:
            count("bad_query_filters")
            return False
        if isinstance(spec, sm.NodeFilter):
            if name not in spec.nodes:
                return False
        elif not _tag_matches(spec, tags, count):
            return False
    return True


def _tag_matches(spec: sm.TagFilter, tags: Mapping[str, str], count: Count) -> bool:
    from serfcast.re2 import match_string  # loaded on first use, as above

    try:
        return match_string(spec.expr, tags.get(spec.tag, ""))
    except LocalProtocolError:
        # Go fails to compile it and drops the query; an expression valid in
        # Go that Python cannot run is dropped the same way.
        count("bad_query_filters")
        return False


@dataclass(slots=True)
class _Collector:
    """Our own open query."""

    id: int
    deadline: float
    wants_ack: bool
    acks: set[str] = field(default_factory=set)
    responders: set[str] = field(default_factory=set)
    on_response: OnResponse | None = None
    on_finished: OnFinished | None = None


@dataclass(slots=True)
class _Inbound:
    """Someone else's query that we may still answer."""

    query: sm.Query
    deadline: float
    responded: bool = False


class QueryEngine:
    """Sends, receives and answers queries for one Serf node."""

    def __init__(
        self,
        config: SerfConfig,
        *,
        memberlist: Memberlist,
        members: MemberTable,
        tags: Callable[[], Mapping[str, str]],
        emit: Emit,
        count: Count,
    ) -> None:
        self.config = config
        self.memberlist = memberlist
        self.name = memberlist.name
        self.members = members
        self.buffer = QueryBuffer(size=config.query_buffer_size)
        self._tags = tags
        self._emit = emit
        self._count = count
        self._collectors: dict[int, _Collector] = {}
        self._inbound: dict[tuple[int, int], _Inbound] = {}

    @property
    def rng(self) -> random.Random:
        return self.memberlist.rng

    # ------------------------------------------------------------------
    # Asking

    def default_timeout(self) -> float:
        """Go's default: gossip interval times mult times ⌈log10(n + 1)⌉."""
        n = max(1, len(self.memberlist.alive_members()))
        scale = len(str(n))
        return self.memberlist.config.gossip_interval * (
            self.config.query_timeout_mult * scale
        )

    def ask(
        self,
        name: str,
        payload: bytes,
        *,
        filters: Sequence[sm.NodeFilter | sm.TagFilter],
        request_ack: bool,
        timeout: float | None,
        relay_factor: int,
        now: float,
        on_response: OnResponse | None = None,
        on_finished: OnFinished | None = None,
    ) -> tuple[int, bytes]:
        """Start a query; return its id and the bytes to gossip.

        The query is also handled locally, as Serf does, so this node acks and
        receives it too when it matches.
        """
        seconds = self.default_timeout() if timeout is None else timeout
        if seconds <= 0:
            raise LocalProtocolError("a query timeout must be positive seconds")
        if not 0 <= relay_factor <= 255:
            raise LocalProtocolError("relay_factor must be between 0 and 255")
        query = sm.Query(
            ltime=self.buffer.clock.time(),
            id=self._new_id(),
            addr=self.memberlist.advertise_addr,
            port=self.memberlist.advertise_port,
            source_node=self.name,
            filters=encode_filters(filters) or None,
            flags=sm.QUERY_FLAG_ACK if request_ack else 0,
            relay_factor=relay_factor,
            timeout=round(seconds * _NS),
            name=name,
            payload=payload or None,
        )
        raw = sm.encode_serf_message(query)
        check_query_size(len(raw), self.config.query_size_limit)
        self._collectors[query.ltime] = _Collector(
            query.id, now + seconds, request_ack, set(), set(), on_response, on_finished
        )
        self.receive(query, now)
        return query.id, raw

    def _new_id(self) -> int:
        # Collectors are keyed by Lamport time, but the application tells
        # queries apart by id, so keep ids of open queries distinct.
        in_use = {c.id for c in self._collectors.values()}
        while (qid := self.rng.getrandbits(31)) in in_use:
            pass
        return qid

    def on_reply(self, reply: sm.QueryResponse, now: float) -> None:
        """An ack or response to one of our queries arrived."""
        collector = self._collectors.get(reply.ltime)
        if collector is None or collector.id != reply.id:
            self._count("replies_for_unknown_queries")
            return
        if now > collector.deadline:
            return
        if reply.is_ack:
            self._take_ack(collector, reply.from_node)
        else:
            self._take_response(collector, reply.from_node, reply.payload or b"")

    def _take_ack(self, collector: _Collector, node: str) -> None:
        if not collector.wants_ack:
            self._count("unrequested_query_acks")
            return
        if node in collector.acks:
            self._count("duplicate_query_acks")
            return
        collector.acks.add(node)
        if collector.on_response is None:
            self._emit(QueryAck(collector.id, node))

    def _take_response(self, collector: _Collector, node: str, payload: bytes) -> None:
        if node in collector.responders:
            self._count("duplicate_query_responses")
            return
        collector.responders.add(node)
        if collector.on_response is not None:
            collector.on_response(node, payload)
        else:
            self._emit(QueryResponse(collector.id, node, payload))

    # ------------------------------------------------------------------
    # Receiving

    def receive(self, query: sm.Query, now: float) -> bool:
        """Handle a query from gossip (or our own); return whether to gossip it on."""
        verdict = self.buffer.accept(query)
        if not isinstance(verdict, Accepted):
            self._count(f"queries_{refusal_label(verdict)}")
            return False
        if not filters_pass(query.filters or (), self.name, self._tags(), self._count):
            return verdict.rebroadcast
        if query.wants_ack:
            self._ack(query, now)
        deadline = now + query.timeout / _NS
        self._remember_inbound(_Inbound(query, deadline))
        event = QueryReceived(
            query.name,
            query.payload or b"",
            query.ltime,
            query.id,
            query.source_node,
            (format_addr(query.addr), query.port),
            deadline,
            query.relay_factor,
        )
        if query.name.startswith(INTERNAL_PREFIX):
            self._answer_internal(event, now)
        else:
            self._emit(event)
        return verdict.rebroadcast

    def _ack(self, query: sm.Query, now: float) -> None:
        ack = sm.QueryResponse(query.ltime, query.id, self.name, sm.QUERY_FLAG_ACK)
        try:
            self._send_reply(query, ack.encode(), now)
        except LocalProtocolError:
            self._count("acks_too_large")

    def _remember_inbound(self, inbound: _Inbound) -> None:
        query = inbound.query
        self._inbound[(query.ltime, query.id)] = inbound
        if len(self._inbound) > MAX_ANSWERABLE:
            # Timeouts come from the network and may be huge; forget the
            # oldest right to answer rather than grow without bound.
            del self._inbound[next(iter(self._inbound))]
            self._count("answerable_queries_dropped")

    # ------------------------------------------------------------------
    # Answering

    def respond(self, event: QueryReceived, payload: bytes, now: float) -> None:
        """Answer a received query, once and before its deadline.

        Raises :class:`LocalProtocolError` with Serf's words when the answer is
        too large, was already sent or comes too late.
        """
        reply = sm.QueryResponse(event.ltime, event.id, self.name, 0, payload or None)
        raw = reply.encode()
        check_response_size(len(raw), self.config.query_response_size_limit)
        inbound = self._inbound.get((event.ltime, event.id))
        if inbound is not None and inbound.responded:
            raise LocalProtocolError("response already sent")
        if inbound is None or now > inbound.deadline:
            raise LocalProtocolError("response is past the deadline")
        self._send_reply(inbound.query, raw, now)
        inbound.responded = True

    def _send_reply(self, query: sm.Query, raw: bytes, now: float) -> None:
        """Send an ack or response to the asker, plus its relayed copies."""
        relayed = self._relay_copy(query, raw)
        self.memberlist.send_user_packet(
            (format_addr(query.addr), query.port), raw, now
        )
        if relayed is None:
            return
        for target in self._relay_targets(query.relay_factor):
            self.memberlist.send_user_packet(target, relayed, now)

    def _relay_copy(self, query: sm.Query, raw: bytes) -> bytes | None:
        if query.relay_factor == 0:
            return None
        relay = sm.Relay(query.addr, query.port, query.source_node, raw).encode()
        check_response_size(
            len(relay), self.config.query_response_size_limit, relayed=True
        )
        return relay

    def _relay_targets(self, factor: int) -> list[tuple[str, int]]:
        # Serf only relays when it knows at least factor other members (of any
        # status), then picks among alive ones that speak memberlist 5.
        if len(self.members) < factor + 1:
            return []
        candidates = [
            (format_addr(m.addr), m.port)
            for m in self.members.with_status(MemberStatus.ALIVE)
            if m.name != self.name and len(m.vsn) > 1 and m.vsn[1] >= 5
        ]
        return self.rng.sample(candidates, min(factor, len(candidates)))

    def _answer_internal(self, event: QueryReceived, now: float) -> None:
        try:
            payload = internal_answer(
                event,
                self.name,
                self.memberlist.keyring,
                self._member_info,
                self.config.query_response_size_limit,
            )
        except LookupError:
            self._count("unknown_internal_queries")
            return
        if payload is None:
            return
        try:
            self.respond(event, payload, now)
        except LocalProtocolError:
            self._count("internal_answers_failed")

    def _member_info(self, name: str) -> sm.MemberInfo | None:
        member = self.members.members.get(name)
        return None if member is None else member.info()

    # ------------------------------------------------------------------
    # Time

    def expire(self, now: float) -> None:
        """Close collectors whose timeout passed; forget stale inbound queries."""
        for ltime, collector in list(self._collectors.items()):
            if now >= collector.deadline:
                del self._collectors[ltime]
                if collector.on_finished is not None:
                    collector.on_finished()
                else:
                    self._emit(QueryFinished(collector.id))
        for key, inbound in list(self._inbound.items()):
            if now > inbound.deadline:
                del self._inbound[key]

    def next_deadline(self) -> float | None:
        """When the next collector closes, or ``None``."""
        return min((c.deadline for c in self._collectors.values()), default=None)

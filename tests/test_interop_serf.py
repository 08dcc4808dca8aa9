"""Real serf agents accept Serf messages built by serfcast.serf from a non-member.

A plain Python socket that never joins the pool

1. learns the pool's Lamport clocks the way a joining node would, with a TCP
   push/pull to the seed (``Join`` false, no node states, an empty Serf state),
   which Serf answers with its whole state and otherwise ignores;
2. injects user events over UDP (with the CRC header agents of protocol 5 send
   each other) into a three-agent pool, serf 0.10.1 alone and mixed with 0.9.4:
   every agent's handler must run exactly once per event, with its exact name
   and payload, non-UTF-8 bytes included;
3. asks a query with a tag filter that two of the three agents match and
   collects, on its own UDP socket, the acks and responses: only the matching
   agents send them, as plain ``08 05 ...`` datagrams.

No agent may log an error or a warning about any of it.
"""

from __future__ import annotations

import random
import socket
import time

import pytest

from serf_agents import HOST, SerfAgent, SerfPool, SerfPoolFactory
from serfcast.serf.limits import check_query_size, check_user_event_size
from serfcast.serf.messages import (
    EVENT_BUFFER_SIZE,
    QUERY_FLAG_ACK,
    PushPullState,
    Query,
    QueryResponse,
    TagFilter,
    decode_serf_message,
    encode_serf_message,
)
from serfcast.wire.frames import UserMsg, iter_messages
from serfcast.wire.packet import build_packet, decode_packet
from serfcast.wire.stream import PushPull, StreamDecoder, encode_stream

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

IO_TIMEOUT = 5.0
DELIVERY_TIMEOUT = 10.0
#: After the expected deliveries, how long to watch for an unwanted extra one.
DUPLICATE_WINDOW = 1.0
QUERY_TIMEOUT_NS = 5_000_000_000
LOCALHOST = bytes([127, 0, 0, 1])

POOLS = [
    pytest.param(("0.10.1", "0.10.1", "0.10.1"), id="0.10.1"),
    pytest.param(("0.9.4", "0.10.1", "0.10.1"), id="mixed"),
]
#: Names and payloads of the injected events; none may end in a newline (the
#: agent adds one on the handler's stdin, and the harness takes it off again).
EVENTS = {
    "serfcast-text": b"hello from serfcast",
    "serfcast-binary": b"\x00\xff\xfe\x80 not UTF-8: \xc3\x28 \xed\xa0\x80 end",
}


def learn_state(agent: SerfAgent) -> tuple[PushPull, PushPullState]:
    """Push/pull with ``agent`` without joining: its reply and the Serf state in it.

    The request holds no node states and a Serf state at time zero, so the agent
    merges nothing; it answers with every member it knows and its clocks.
    """
    hello = PushPull(join=False, user_state=PushPullState().encode())
    decoder = StreamDecoder(expect_label_header=False)
    deadline = time.monotonic() + IO_TIMEOUT
    with socket.create_connection((HOST, agent.bind_port), IO_TIMEOUT) as sock:
        sock.sendall(encode_stream(hello))
        while decoder.result is None and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            decoder.feed(chunk)
    reply = decoder.feed_eof().message
    assert isinstance(reply, PushPull)
    state = decode_serf_message(reply.user_state)
    assert isinstance(state, PushPullState)
    return reply, state


def send_udp(agent: SerfAgent, serf_message: bytes) -> None:
    """One datagram holding one Serf message, from a socket that never joined."""
    packet = build_packet([UserMsg(serf_message)], crc=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, (HOST, agent.bind_port))


def complaints(pool: SerfPool) -> list[str]:
    """Every error or warning line any agent of the pool logged."""
    return [
        f"{agent.name}: {line}"
        for agent in pool.agents
        for line in agent.log_text().splitlines()
        if "[ERR]" in line or "[WARN]" in line
    ]


# ----------------------------------------------------------------------------
# User events


@pytest.mark.parametrize("versions", POOLS)
def test_injected_user_events_reach_every_handler_once(
    serf_pool_factory: SerfPoolFactory, versions: tuple[str, ...]
) -> None:
    pool = serf_pool_factory(versions)
    seed, target = pool.agents[0], pool.agents[-1]
    reply, state = learn_state(seed)
    assert {node.name for node in reply.nodes} == {a.name for a in pool.agents}

    # An agent that joined with replay off (the default) ignores every event below
    # the event clock it learned at join, its eventMinTime, and does so silently:
    # no log line, no rebroadcast. The seed's EventLTime is the next time it would
    # use, so it is at or above every late joiner's minimum, and far from the
    # 512-event window below which events count as too old.
    ltime = state.event_ltime
    for name, payload in EVENTS.items():
        send_udp(target, check_user_event_size(name, payload, ltime, coalesce=False))

    pool.wait_for(
        lambda: all(a.user_events(n) for a in pool.agents for n in EVENTS),
        DELIVERY_TIMEOUT,
        "every injected event on every agent",
    )
    time.sleep(DUPLICATE_WINDOW)
    for agent in pool.agents:
        for name, payload in EVENTS.items():
            runs = agent.user_events(name)
            assert len(runs) == 1, f"{agent.name} ran {name} {len(runs)} times"
            assert runs[0].payload_as_sent == payload
            assert runs[0].user_ltime == ltime

    _, after = learn_state(seed)
    assert after.event_ltime == ltime + 1  # the seed witnessed our time
    assert after.events is not None
    slot = after.events[ltime % EVENT_BUFFER_SIZE]
    assert slot is not None and slot.ltime == ltime
    assert {(e.name, e.payload) for e in slot.events or ()} == set(EVENTS.items())
    assert complaints(pool) == []


# ----------------------------------------------------------------------------
# Queries


def collect_answers(
    sock: socket.socket, senders: set[str]
) -> list[tuple[bytes, QueryResponse]]:
    """Receive query answers on ``sock`` until every sender acked and responded.

    Keeps listening for :data:`DUPLICATE_WINDOW` after that, so that an answer
    nobody should have sent is caught too. Returns each datagram and its answer.
    """
    answers: list[tuple[bytes, QueryResponse]] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            datagram, _ = sock.recvfrom(65536)
        except TimeoutError:
            break
        for leaf in iter_messages(decode_packet(datagram).frame):
            assert isinstance(leaf, UserMsg)
            answer = decode_serf_message(leaf.payload)
            assert isinstance(answer, QueryResponse)
            answers.append((datagram, answer))
        if _all_answered(answers, senders):
            deadline = min(deadline, time.monotonic() + DUPLICATE_WINDOW)
    return answers


def _all_answered(
    answers: list[tuple[bytes, QueryResponse]], senders: set[str]
) -> bool:
    acks = {a.from_node for _, a in answers if a.is_ack}
    responses = {a.from_node for _, a in answers if not a.is_ack}
    return senders <= acks and senders <= responses


@pytest.mark.parametrize("versions", POOLS)
def test_query_is_answered_by_the_agents_its_filter_selects(
    serf_pool_factory: SerfPoolFactory, versions: tuple[str, ...]
) -> None:
    pool = serf_pool_factory(
        versions,
        agent_tags=[{"role": "web"}, {"role": "web"}, {"role": "db"}],
        query_response="resp-from-{name}",
    )
    web = {pool.agents[0].name, pool.agents[1].name}
    other = pool.agents[2]
    _, state = learn_state(pool.agents[0])

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        query = Query(
            ltime=state.query_ltime,
            id=random.Random().getrandbits(31),
            addr=LOCALHOST,
            port=sock.getsockname()[1],
            source_node="serfcast-asker",
            filters=[TagFilter("role", "^web$").encode()],
            flags=QUERY_FLAG_ACK,
            timeout=QUERY_TIMEOUT_NS,
            name="serfcast-whoami",
            payload=b"who is there?",
        )
        encoded = encode_serf_message(query)
        check_query_size(len(encoded))
        # Sent to the agent the filter leaves out: it must still pass it on.
        send_udp(other, encoded)
        answers = collect_answers(sock, web)

    acks = sorted(a.from_node for _, a in answers if a.is_ack)
    responses = {a.from_node: a.payload for _, a in answers if not a.is_ack}
    assert acks == sorted(web)
    assert responses == {name: f"resp-from-{name}".encode() for name in web}
    assert len(answers) == 2 * len(web)
    for datagram, answer in answers:
        assert datagram.startswith(b"\x08\x05")  # no CRC for a stranger
        assert (answer.ltime, answer.id) == (query.ltime, query.id)
        if answer.is_ack:
            assert answer.payload is None

    for agent in pool.agents:
        runs = [e for e in agent.events() if e.event == "query"]
        expected = 1 if agent.name in web else 0
        assert len(runs) == expected, f"{agent.name} ran {len(runs)} query handlers"
        for run in runs:
            assert run.query_name == query.name
            assert run.payload_as_sent == query.payload
            assert run.query_ltime == query.ltime
    assert complaints(pool) == []


def test_complaints_are_seen_when_an_agent_has_one(
    serf_pool_factory: SerfPoolFactory,
) -> None:
    # The control for the checks above: a Serf type no agent knows is logged as
    # a warning, and complaints() must find it.
    pool = serf_pool_factory(["0.10.1"])
    send_udp(pool.agents[0], b"\x63\x80")
    found = pool.wait_for(lambda: complaints(pool), IO_TIMEOUT, "a warning")
    assert any("unknown type: 99" in line for line in found)

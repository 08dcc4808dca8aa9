"""SerfNode queries: filters, acks, responses, relays and internal queries."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from serf_engine_net import Net
from serfcast.engine.actions import SendPacket
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import (
    NameConflict,
    NameConflictResolved,
    QueryAck,
    QueryFinished,
    QueryReceived,
    QueryResponse,
)
from serfcast.engine.serf_internal import fit_key_list, list_keys_answer
from serfcast.errors import LocalProtocolError
from serfcast.serf import messages as sm
from serfcast.wire.frames import UserMsg
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import PROTOCOL_VSN, Alive
from serfcast.wire.packet import decode_packet, encode_packet

LOCALHOST = bytes([127, 0, 0, 1])
KEY1 = bytes(range(32))
KEY2 = bytes(range(1, 33))


def three(net: Net, *, keyring: bool = False) -> tuple[SerfNode, SerfNode, SerfNode]:
    roles = {"a": "web", "b": "db", "c": "mongodb"}
    nodes = [
        net.add(n, tags={"role": r}, keyring=Keyring([KEY1]) if keyring else None)
        for n, r in roles.items()
    ]
    net.join("b", "a")
    net.join("c", "a")
    net.run(3)
    for name in roles:
        net.events[name].clear()
    return nodes[0], nodes[1], nodes[2]


def answer_all(net: Net, *names: str) -> None:
    """Every named node answers each query it received with its own name."""
    for name in names:
        for query in net.take(name, QueryReceived):
            net.nodes[name].respond(query, f"hi from {name}".encode(), net.now)
    net.pump()


def replies(net: Net, asker: str) -> tuple[list[str], dict[str, bytes]]:
    acks = [e.from_node for e in net.take(asker, QueryAck)]
    responses = {e.from_node: e.payload for e in net.take(asker, QueryResponse)}
    return sorted(acks), responses


# ---------------------------------------------------------------------------
# Filters, acks and responses


def test_tag_filter_is_acked_and_answered_only_by_matching_nodes() -> None:
    net = Net()
    a, _b, _c = three(net)
    # Unanchored, like Go: "db" matches "db" and "mongodb" but not "web".
    qid = a.query(
        "who",
        b"?",
        filters=[sm.TagFilter("role", "db")],
        request_ack=True,
        timeout=3.0,
        now=net.now,
    )
    net.pump()
    net.run(1)
    assert net.take("a", QueryReceived) == []
    answer_all(net, "b", "c")
    net.run(3)

    acks, responses = replies(net, "a")
    assert acks == ["b", "c"]
    assert responses == {"b": b"hi from b", "c": b"hi from c"}
    assert net.take("a", QueryFinished) == [QueryFinished(qid)]


def test_node_filter_and_missing_tag() -> None:
    net = Net()
    a, _b, _c = three(net)
    a.query("n", filters=[sm.NodeFilter(("c",))], request_ack=True, now=net.now)
    a.query("t", filters=[sm.TagFilter("zone", "^$")], request_ack=True, now=net.now)
    net.pump()
    net.run(1)
    got = {n: sorted(q.name for q in net.take(n, QueryReceived)) for n in "abc"}
    # A missing tag reads as "", which "^$" matches everywhere.
    assert got == {"a": ["t"], "b": ["t"], "c": ["n", "t"]}


def test_query_without_ack_request_gets_no_acks_but_responses() -> None:
    net = Net()
    a, _b, _c = three(net)
    a.query("plain", timeout=2.0, now=net.now)
    net.pump()
    net.run(0.5)
    answer_all(net, "a", "b", "c")
    net.run(2)
    acks, responses = replies(net, "a")
    assert acks == []
    assert set(responses) == {"a", "b", "c"}  # the asker handles its own query


def test_undecodable_filter_means_not_for_me_but_is_gossiped_on() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    blobs = [b"\x09junk", b"\x01\xc1", sm.TagFilter("r", "(").encode()]
    for qid, blob in enumerate(blobs):
        raw = sm.Query(ltime=5, id=qid, filters=[blob], name="q").encode()
        node.notify_msg(raw, 0.0)
        assert raw in node.get_broadcasts(3, 1400)
    assert not [e for e in node.pop_events() if isinstance(e, QueryReceived)]
    assert node.stats["bad_query_filters"] == 3


def test_no_broadcast_flag_is_processed_but_not_gossiped() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    flags = sm.QUERY_FLAG_NO_BROADCAST
    node.notify_msg(sm.Query(ltime=1, id=1, name="q", flags=flags).encode(), 0.0)
    assert node.get_broadcasts(3, 1400) == []
    assert [e.name for e in node.pop_events() if isinstance(e, QueryReceived)] == ["q"]


def test_duplicate_query_is_dropped() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    raw = sm.Query(ltime=1, id=77, name="q", timeout=10**9).encode()
    node.notify_msg(raw, 0.0)
    node.notify_msg(raw, 0.0)
    assert len([e for e in node.pop_events() if isinstance(e, QueryReceived)]) == 1
    assert node.stats["queries_duplicate"] == 1


def test_bad_filter_expression_is_refused_when_asking() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    with pytest.raises(LocalProtocolError):
        node.query("q", filters=[sm.TagFilter("role", "(?=x)")], now=0.0)


def test_query_too_large_is_refused_with_serfs_words() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    with pytest.raises(LocalProtocolError, match="query exceeds limit of 1024 bytes"):
        node.query("big", b"x" * 1024, now=0.0)


# ---------------------------------------------------------------------------
# Responding


def received_query(timeout: float = 2.0, relay_factor: int = 0) -> SerfNode:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    query = sm.Query(
        ltime=1,
        id=9,
        addr=LOCALHOST,
        port=5000,
        source_node="asker",
        name="q",
        timeout=round(timeout * 1e9),
        relay_factor=relay_factor,
    )
    node.notify_msg(query.encode(), 0.0)
    node.pop_actions()
    return node


def sent_user_messages(node: SerfNode) -> list[tuple[tuple[str, int], bytes]]:
    out = []
    for action in node.pop_actions():
        assert isinstance(action, SendPacket)
        frame = decode_packet(action.data).frame
        assert isinstance(frame, UserMsg)
        out.append((action.addr, frame.payload))
    return out


def test_respond_goes_straight_to_the_asker_once() -> None:
    node = received_query()
    (query,) = [e for e in node.pop_events() if isinstance(e, QueryReceived)]
    assert (query.source, query.source_addr, query.deadline) == (
        "asker",
        ("127.0.0.1", 5000),
        2.0,
    )
    node.respond(query, b"yes", 1.0)
    ((addr, raw),) = sent_user_messages(node)
    assert addr == ("127.0.0.1", 5000)
    assert sm.decode_serf_message(raw) == sm.QueryResponse(1, 9, "a", 0, b"yes")
    with pytest.raises(LocalProtocolError, match="response already sent"):
        node.respond(query, b"again", 1.0)


def test_respond_after_the_deadline_or_too_large_is_refused() -> None:
    node = received_query()
    (query,) = [e for e in node.pop_events() if isinstance(e, QueryReceived)]
    with pytest.raises(LocalProtocolError, match="response exceeds limit of 1024"):
        node.respond(query, b"x" * 1000, 1.0)
    with pytest.raises(LocalProtocolError, match="response is past the deadline"):
        node.respond(query, b"late", 2.5)


def test_response_is_relayed_through_other_members() -> None:
    net = Net()
    _a, b, _c = three(net)
    b.notify_msg(
        sm.Query(
            ltime=50,
            id=3,
            addr=LOCALHOST,
            port=5000,
            source_node="asker",
            name="r",
            timeout=10**9,
            relay_factor=2,
        ).encode(),
        net.now,
    )
    (query,) = [e for e in b.pop_events() if isinstance(e, QueryReceived)]
    b.pop_actions()
    b.respond(query, b"ok", net.now)
    sent = sent_user_messages(b)
    direct = sm.QueryResponse(50, 3, "b", 0, b"ok").encode()
    assert sent[0] == (("127.0.0.1", 5000), direct)
    relays = {addr: sm.decode_serf_message(raw) for addr, raw in sent[1:]}
    assert set(relays) == {net.addr("a"), net.addr("c")}
    for relay in relays.values():
        assert relay == sm.Relay(LOCALHOST, 5000, "asker", direct)


def test_relay_message_is_forwarded_unchanged() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    node.pop_actions()
    inner = b"\x05not even decoded"
    node.notify_msg(sm.Relay(LOCALHOST, 6000, "x", inner).encode(), 0.0)
    assert sent_user_messages(node) == [(("127.0.0.1", 6000), inner)]
    node.notify_msg(sm.Relay(b"\x01\x02", 6000, "x", inner).encode(), 0.0)
    assert node.stats["bad_relays"] == 1


def test_replies_are_matched_by_lamport_time_then_id() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    qid = node.query("q", request_ack=True, timeout=5.0, now=0.0)
    node.pop_events()
    ltime = node.query_time - 1
    for reply in (
        sm.QueryResponse(ltime, qid, "x", sm.QUERY_FLAG_ACK),
        sm.QueryResponse(ltime, qid, "x", sm.QUERY_FLAG_ACK),  # duplicate
        sm.QueryResponse(ltime, qid ^ 1, "y", 0, b"wrong id"),
        sm.QueryResponse(ltime + 7, qid, "z", 0, b"unknown time"),
        sm.QueryResponse(ltime, qid, "x", 0, b"first"),
        sm.QueryResponse(ltime, qid, "x", 0, b"second"),
    ):
        node.notify_msg(reply.encode(), 1.0)
    node.notify_msg(sm.QueryResponse(ltime, qid, "w", 0, b"late").encode(), 6.0)
    assert node.pop_events() == [QueryAck(qid, "x"), QueryResponse(qid, "x", b"first")]
    assert node.stats["replies_for_unknown_queries"] == 2


def test_default_timeout_is_gos() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    node.query("q", now=0.0)
    (raw,) = node.get_broadcasts(3, 1400)
    query = sm.decode_serf_message(raw)
    assert isinstance(query, sm.Query)
    assert query.timeout == 3_200_000_000  # 200 ms x 16 x ceil(log10(1 + 1))


# ---------------------------------------------------------------------------
# Internal queries


def key_query(net: Net, kind: str, key: bytes = b"") -> dict[str, sm.KeyResponse]:
    payload = sm.KeyRequest(key).encode()
    net.nodes["a"].query(f"_serf_{kind}", payload, timeout=2.0, now=net.now)
    net.pump()
    net.run(3)
    _, responses = replies(net, "a")
    assert all(net.take(n, QueryReceived) == [] for n in "abc")  # never the app's
    return {node: sm.decode_key_response(p) for node, p in responses.items()}


def test_key_queries_change_every_keyring() -> None:
    net = Net()
    three(net, keyring=True)
    rings = [net.nodes[n].memberlist.keyring for n in "abc"]

    answers = key_query(net, "install-key", KEY2)
    assert {n: (r.result, r.message) for n, r in answers.items()} == dict.fromkeys(
        "abc", (True, "")
    )
    assert all(ring is not None and ring.keys == (KEY1, KEY2) for ring in rings)

    answers = key_query(net, "use-key", KEY2)
    assert all(r.result for r in answers.values())
    assert all(ring is not None and ring.primary == KEY2 for ring in rings)

    answers = key_query(net, "remove-key", KEY2)
    assert {r.message for r in answers.values()} == {
        "Removing the primary key is not allowed"
    }
    answers = key_query(net, "remove-key", KEY1)
    assert all(r.result for r in answers.values())

    answers = key_query(net, "list-keys")
    b64 = base64.b64encode(KEY2).decode()
    assert {n: (r.keys, r.primary_key) for n, r in answers.items()} == dict.fromkeys(
        "abc", ([b64], b64)
    )


def test_key_query_errors_use_memberlists_words() -> None:
    net = Net()
    three(net, keyring=True)
    answers = key_query(net, "use-key", KEY2)
    assert {r.message for r in answers.values()} == {
        "Requested key is not in the keyring"
    }
    answers = key_query(net, "install-key", b"short")
    assert {r.message for r in answers.values()} == {
        "key size must be 16, 24 or 32 bytes"
    }


def test_key_queries_without_encryption_say_so() -> None:
    net = Net()
    three(net)
    answers = key_query(net, "install-key", KEY2)
    assert {(r.result, r.message) for r in answers.values()} == {
        (False, "No keyring to modify (encryption not enabled)")
    }
    answers = key_query(net, "list-keys")
    assert {(r.result, r.message) for r in answers.values()} == {
        (False, "Keyring is empty (encryption not enabled)")
    }


def test_list_keys_is_truncated_to_the_response_limit() -> None:
    ring = Keyring(bytes([i]) * 32 for i in range(1, 41))
    answer = list_keys_answer(ring)

    def fits(payload: bytes) -> bool:
        return len(sm.QueryResponse(1, 1, "node", 0, payload).encode()) <= 1024

    encoded = fit_key_list(answer, fits, 1024)
    assert encoded is not None
    shown = sm.decode_key_response(encoded)
    assert 0 < len(shown.keys or []) < 40
    assert shown.message == (
        f"truncated key list response, showing first {len(shown.keys or [])} of 40 keys"
    )
    assert shown.primary_key == answer.primary_key
    assert fit_key_list(answer, lambda _: False, 1024) is None


def test_list_keys_through_a_small_response_limit() -> None:
    config = SerfConfig(query_response_size_limit=300)
    net = Net()
    ring = Keyring(bytes([i]) * 32 for i in range(1, 9))
    a = net.add("a", keyring=ring, serf_config=config)
    a.query("_serf_list-keys", sm.KeyRequest().encode(), timeout=1.0, now=net.now)
    net.pump()
    net.run(2)
    (response,) = net.take("a", QueryResponse)
    shown = sm.decode_key_response(response.payload)
    assert shown.message.startswith("truncated key list response, showing first ")
    assert shown.message.endswith(" of 8 keys")


def test_ping_is_acked_and_nothing_else() -> None:
    net = Net()
    a, _b, _c = three(net)
    a.query("_serf_ping", request_ack=True, timeout=1.0, now=net.now)
    net.pump()
    net.run(2)
    acks, responses = replies(net, "a")
    assert acks == ["a", "b", "c"]
    assert responses == {}


def test_unknown_internal_query_is_acked_but_neither_answered_nor_delivered() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    node.pop_actions()
    query = sm.Query(ltime=1, id=4, addr=LOCALHOST, port=5000, name="_serf_bogus")
    node.notify_msg(replace(query, flags=sm.QUERY_FLAG_ACK).encode(), 0.0)
    ((_, raw),) = sent_user_messages(node)
    assert sm.decode_serf_message(raw) == sm.QueryResponse(1, 4, "a", 1)
    assert not [e for e in node.pop_events() if isinstance(e, QueryReceived)]
    assert node.stats["unknown_internal_queries"] == 1


def test_conflict_query_is_answered_by_everyone_but_the_named_node() -> None:
    net = Net()
    a, _b, _c = three(net)
    a.query("_serf_conflict", b"b", timeout=1.0, now=net.now)
    a.query("_serf_conflict", b"nobody", timeout=1.0, now=net.now)
    net.pump()
    net.run(2)
    answers = [(e.from_node, e.payload) for e in net.take("a", QueryResponse)]
    about_b = {
        node: sm.decode_conflict_response(p).member
        for node, p in answers
        if p != b"\x06\xc0"
    }
    assert set(about_b) == {"a", "c"}
    member = about_b["a"]
    assert member is not None
    assert (member.name, member.addr, member.port) == ("b", LOCALHOST, 7947)
    assert (member.tags, member.status, member.delegate_cur) == ({"role": "db"}, 1, 5)
    assert sorted(n for n, p in answers if p == b"\x06\xc0") == ["a", "b", "c"]


def impostor_alive(name: str) -> bytes:
    """An alive message claiming ``name`` from another address."""
    alive = Alive(5, name, LOCALHOST, 9999, b"\xff\x80", PROTOCOL_VSN)
    return encode_packet(alive.encode())


def test_name_conflict_vote_when_enabled() -> None:
    config = SerfConfig(enable_name_conflict_resolution=True)
    net = Net()
    a = net.add("a", serf_config=config)
    for name in ("b", "c"):
        net.add(name)
        net.join(name, "a")
    net.run(3)
    net.events["a"].clear()
    a.receive_packet(impostor_alive("a"), ("127.0.0.1", 9999), net.now)
    net.pump()
    net.run(5)
    assert net.take("a", NameConflict) == [
        NameConflict("a", net.addr("a"), ("127.0.0.1", 9999))
    ]
    # b and c both know a at its real address: a keeps its name.
    (vote,) = net.take("a", NameConflictResolved)
    assert (vote.matching, vote.responses, vote.majority) == (2, 2, True)
    assert net.take("a", QueryResponse) == []  # the vote's answers are internal


def test_name_conflict_about_another_node_is_only_reported() -> None:
    config = SerfConfig(enable_name_conflict_resolution=True)
    net = Net()
    a = net.add("a", serf_config=config)
    net.add("b")
    net.join("b", "a")
    net.run(2)
    net.events["a"].clear()
    a.receive_packet(impostor_alive("b"), ("127.0.0.1", 9999), net.now)
    net.pump()
    net.run(5)
    assert net.take("a", NameConflict) == [
        NameConflict("b", net.addr("b"), ("127.0.0.1", 9999))
    ]
    assert net.take("a", NameConflictResolved) == []

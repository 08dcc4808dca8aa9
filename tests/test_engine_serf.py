"""SerfNode: membership, intents, user events, push/pull and leaving.

Two or three engines exchange their packets and streams through the in-memory
network in ``serf_engine_net``; time is a fake clock that jumps from deadline
to deadline.
"""

from __future__ import annotations

import msgpack
import pytest

from serf_engine_net import Net
from serfcast.engine.memberlist import JoinFinished
from serfcast.engine.nodes import Node, NodeState
from serfcast.engine.serf import SerfNode, SerfState
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import (
    LeaveComplete,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberStatus,
    MemberUpdated,
    UserEventReceived,
)
from serfcast.engine.serf_members import MemberTable, Outcome
from serfcast.engine.serf_steps import LeavePhase, LeaveSteps
from serfcast.errors import EventTooLargeError, LocalProtocolError
from serfcast.serf import messages as sm
from serfcast.wire.messages import PROTOCOL_VSN

LOCALHOST = bytes([127, 0, 0, 1])


def pool(net: Net, *names: str, **tags: dict[str, str]) -> list[SerfNode]:
    """Start ``names``, join the others through the first, settle, clear events."""
    nodes = [net.add(name, tags=tags.get(name)) for name in names]
    for name in names[1:]:
        net.join(name, names[0])
    net.run(3)
    for name in names:
        net.events[name].clear()
    return nodes


def statuses(node: SerfNode) -> dict[str, str]:
    return {m.name: str(m.status) for m in node.members()}


def user_events(net: Net, name: str) -> list[UserEventReceived]:
    return net.take(name, UserEventReceived)


# ---------------------------------------------------------------------------
# Joining


def test_join_makes_both_alive_with_tags() -> None:
    net = Net()
    a = net.add("a", tags={"role": "web"})
    b = net.add("b", tags={"role": "db", "dc": "x"})
    net.join("b", "a")
    net.run(3)

    for node in (a, b):
        members = {m.name: m for m in node.members()}
        assert set(members) == {"a", "b"}
        assert all(m.status is MemberStatus.ALIVE for m in members.values())
        assert members["a"].tags == {"role": "web"}
        assert members["b"].tags == {"role": "db", "dc": "x"}
        assert members["b"].address == net.addr("b")
        assert (members["b"].delegate_min, members["b"].delegate_max) == (2, 5)
        assert members["b"].delegate_cur == 5

    joined_at_a = [e.name for e in net.take("a", MemberJoined)]
    assert joined_at_a == ["a", "b"]  # Serf announces itself too
    reports = net.take("b", JoinFinished)
    assert [r.contacted for r in reports] == [(net.addr("a"),)]


def test_join_intent_reaches_the_seed() -> None:
    net = Net()
    a, b = net.add("a"), net.add("b")
    assert a.member_time == 1
    net.join("b", "a")
    net.run(2)
    # b broadcast {LTime 1, Node b}; witnessing 1 puts a's member clock at 2.
    assert a.member_time == 2
    assert b.member_time == 2


def test_join_through_nobody_reports_and_sends_no_intent() -> None:
    net = Net()
    a = net.add("a")
    a.join([("127.0.0.1", 1)], net.now)
    net.pump()
    report = net.take("a", JoinFinished)
    assert len(report) == 1
    assert report[0].contacted == ()
    assert report[0].errors[0][0] == ("127.0.0.1", 1)
    assert a.queue_depths()["intent"] == 0


def test_join_before_start_and_after_leave_is_refused() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    with pytest.raises(LocalProtocolError, match="start"):
        node.join([("127.0.0.1", 7947)], 0.0)
    node.start(0.0)
    node.leave(0.0)
    with pytest.raises(LocalProtocolError, match="can't Join after Leave"):
        node.join([("127.0.0.1", 7947)], 0.0)


def test_set_tags_reaches_the_others_as_an_update() -> None:
    net = Net()
    a, b = pool(net, "a", "b", a={"role": "web"})
    a.set_tags({"role": "api", "v": "2"}, net.now)
    net.run(2)
    updates = net.take("b", MemberUpdated)
    assert [(u.name, u.tags) for u in updates] == [("a", {"role": "api", "v": "2"})]
    assert {m.name: m.tags for m in b.members()}["a"] == {"role": "api", "v": "2"}
    assert a.tags == {"role": "api", "v": "2"}


def test_tags_over_512_bytes_are_refused_with_serfs_words() -> None:
    with pytest.raises(LocalProtocolError, match="exceeds limit of 512 bytes"):
        SerfNode("a", (LOCALHOST, 7946), tags={"k": "v" * 600})
    node = SerfNode("a", (LOCALHOST, 7946))
    with pytest.raises(LocalProtocolError, match="exceeds limit of 512 bytes"):
        node.set_tags({"k": "v" * 600}, 0.0)


# ---------------------------------------------------------------------------
# User events


def test_event_is_delivered_once_everywhere_and_rebroadcast() -> None:
    net = Net()
    a, _b, c = pool(net, "a", "b", "c")
    # a cannot reach c directly: c can only hear the event from b's rebroadcast.
    net.cut.add(frozenset(("a", "c")))
    net.delivered.clear()
    fired = a.fire_event("deploy", b"v1", False, net.now)
    net.pump()
    net.run(3)

    assert (fired.ltime, fired.name, fired.payload) == (1, "deploy", b"v1")
    for name in ("a", "b", "c"):
        got = user_events(net, name)
        assert [(e.name, e.payload, e.ltime, e.coalesce) for e in got] == [
            ("deploy", b"v1", 1, False)
        ]
    assert not any(s == "a" and d == "c" for s, d, _ in net.delivered)
    assert c.event_time == 2


def test_received_event_is_gossiped_on_as_the_bytes_that_arrived() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    # Go never writes bin (c4) nor these key orders; our encoder would not
    # reproduce them, so identical bytes prove the message was not re-encoded.
    body = {"Payload": b"\x00\x01", "Name": "odd", "LTime": 5, "CC": False}
    raw = b"\x03" + msgpack.packb(body, use_bin_type=True)
    node.notify_msg(raw, 0.0)
    assert node.get_broadcasts(3, 1400) == [raw]
    assert [e.payload for e in node.pop_events() if isinstance(e, UserEventReceived)]
    assert raw != sm.UserEvent(5, "odd", b"\x00\x01").encode()


def test_duplicate_event_is_dropped_and_not_gossiped_again() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    raw = sm.UserEvent(3, "x", b"p").encode()
    node.notify_msg(raw, 0.0)
    node.get_broadcasts(3, 1400)  # drain what the first copy queued
    node.notify_msg(raw, 0.0)
    events = [e for e in node.pop_events() if isinstance(e, UserEventReceived)]
    assert len(events) == 1
    assert node.queue_depths()["event"] == 1  # only the first copy's entry
    assert node.stats["events_duplicate"] == 1
    # Same name and time but another payload is a different event.
    node.notify_msg(sm.UserEvent(3, "x", b"q").encode(), 0.0)
    events = [e for e in node.pop_events() if isinstance(e, UserEventReceived)]
    assert [e.payload for e in events] == [b"q"]


def test_fire_event_checks_serfs_size_limit() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    # Serf's measured limit: with a 4-character name, 478 bytes fit and 479 not.
    with pytest.raises(EventTooLargeError, match="after encoding"):
        node.fire_event("size", b"x" * 479, False, 0.0)
    assert node.event_time == 1  # a refused event does not use a Lamport time
    node.fire_event("size", b"x" * 478, False, 0.0)
    assert node.event_time == 2


def test_fired_event_with_empty_payload_goes_out_as_nil() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.fire_event("ping", b"", True, 0.0)
    (raw,) = node.get_broadcasts(3, 1400)
    assert raw.endswith(b"\xa7Payload\xc0")
    events = [e for e in node.pop_events() if isinstance(e, UserEventReceived)]
    assert [(e.payload, e.coalesce) for e in events] == [(b"", True)]


def test_coalescing_when_configured_delivers_only_the_latest() -> None:
    config = SerfConfig(user_coalesce_period=3.0, user_quiescent_period=1.0)
    net = Net()
    a = net.add("a", serf_config=config)
    for payload in (b"p1", b"p2", b"p3"):
        a.fire_event("co", payload, True, net.now)
    a.fire_event("nc", b"now", False, net.now)
    net.pump()
    assert [e.name for e in user_events(net, "a")] == ["nc"]
    net.run(2)
    assert [e.payload for e in user_events(net, "a")] == [b"p3"]


def test_bad_serf_messages_are_counted_not_raised() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    for junk in (b"\x03\xc1", b"\x63", b"\x05\xa3abc", b"\x02\x80"):
        node.notify_msg(junk, 0.0)
    # The last is push/pull state, which is only valid inside a push/pull.
    assert node.stats["bad_serf_messages"] == 4
    assert not [e for e in node.pop_events() if isinstance(e, UserEventReceived)]


# ---------------------------------------------------------------------------
# Push/pull


def fire_before_join(ignore_old: bool) -> tuple[Net, SerfNode, SerfNode]:
    net = Net()
    a = net.add("a")
    for i in range(3):
        a.fire_event("old", bytes([i]), False, net.now)
    b = net.add("b")
    net.join("b", "a", ignore_old=ignore_old)
    net.run(1)
    return net, a, b


def test_join_ignoring_old_events_learns_the_clock_without_replay() -> None:
    net, a, b = fire_before_join(ignore_old=True)
    assert a.event_time == 4
    assert b.event_time >= 4
    assert user_events(net, "b") == []
    # Later events are delivered normally.
    a.fire_event("new", b"", False, net.now)
    net.run(2)
    assert [(e.name, e.ltime) for e in user_events(net, "b")] == [("new", 4)]


def test_join_with_replay_delivers_the_pools_events_without_coalescing() -> None:
    net, _a, b = fire_before_join(ignore_old=False)
    got = user_events(net, "b")
    assert sorted((e.ltime, e.payload) for e in got) == [
        (1, b"\0"),
        (2, b"\1"),
        (3, b"\2"),
    ]
    assert not any(e.coalesce for e in got)
    # Replays are not gossiped again.
    assert b.queue_depths()["event"] == 0


def test_local_state_is_byte_identical_to_a_fresh_go_node() -> None:
    node = SerfNode("b09", (LOCALHOST, 17002))
    node.start(0.0)
    expected = (
        b"\x02\x86\xaaEventLTime\x01\xa6Events\xdc\x02\x00"
        + b"\xc0" * 512
        + b"\xa5LTime\x01\xabLeftMembers\x90\xaaQueryLTime\x01"
        + b"\xacStatusLTimes\x81\xa3b09\x00"
    )
    assert node.local_state(join=True) == expected


def test_merge_remote_state_applies_left_members_and_clocks() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    remote = sm.PushPullState(
        ltime=40,
        status_ltimes={"gone": 7, "new": 9},
        left_members=["gone"],
        event_ltime=30,
        events=None,
        query_ltime=20,
    )
    node.merge_remote_state(remote.encode(), join=False, now=0.0)
    assert (node.member_time, node.event_time, node.query_time) == (40, 30, 20)
    # Both names are unknown to memberlist yet: their intents wait. "gone"
    # shows up leaving (its leave intent is the status time plus one).
    node.notify_join(Node("gone", LOCALHOST, 1, None, 1, NodeState.ALIVE), 0.0)
    node.notify_join(Node("new", LOCALHOST, 2, None, 1, NodeState.ALIVE), 0.0)
    assert statuses(node)["gone"] == "leaving"
    assert statuses(node)["new"] == "alive"


def test_undecodable_push_pull_state_is_counted() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.merge_remote_state(b"", join=True, now=0.0)
    node.merge_remote_state(sm.Join(1, "x").encode(), join=True, now=0.0)
    assert node.stats["bad_push_pull_states"] == 2


# ---------------------------------------------------------------------------
# Intents and member states


def node_record(name: str, port: int = 1) -> Node:
    return Node(name, LOCALHOST, port, b"\xff\x80", 1, NodeState.ALIVE, PROTOCOL_VSN)


def status(members: MemberTable, name: str) -> MemberStatus:
    return members.members[name].status


def table() -> tuple[MemberTable, list[MemberEvent]]:
    events: list[MemberEvent] = []
    return MemberTable("me", SerfConfig(), events.append, lambda _: None), events


def test_intent_for_an_unknown_node_waits_for_it() -> None:
    members, _ = table()
    assert members.leave_intent(sm.Leave(5, "x"), 0.0, True) is Outcome.REBROADCAST
    assert members.leave_intent(sm.Leave(5, "x"), 0.0, True) is Outcome.IGNORE
    members.node_joined(node_record("x"), 1.0)
    assert status(members, "x") is MemberStatus.LEAVING
    assert members.members["x"].status_ltime == 5


def test_buffered_intents_expire() -> None:
    members, _ = table()
    members.join_intent(sm.Join(5, "x"), 0.0)
    members.reap(301.0)
    members.node_joined(node_record("x"), 302.0)
    assert members.members["x"].status_ltime == 0


def test_older_intents_change_nothing_newer_ones_do() -> None:
    members, _ = table()
    members.node_joined(node_record("x"), 0.0)
    assert members.join_intent(sm.Join(4, "x"), 0.0) is Outcome.REBROADCAST
    assert members.leave_intent(sm.Leave(4, "x"), 0.0, True) is Outcome.IGNORE
    assert members.leave_intent(sm.Leave(6, "x"), 0.0, True) is Outcome.REBROADCAST
    assert status(members, "x") is MemberStatus.LEAVING
    # The same leave again is old news: this is what ends rebroadcast storms.
    assert members.leave_intent(sm.Leave(6, "x"), 0.0, True) is Outcome.IGNORE
    assert members.join_intent(sm.Join(7, "x"), 0.0) is Outcome.REBROADCAST
    assert status(members, "x") is MemberStatus.ALIVE


def test_leave_intent_for_a_failed_member_makes_it_left() -> None:
    members, events = table()
    members.node_joined(node_record("x"), 0.0)
    members.node_left(node_record("x"), 1.0)
    assert status(members, "x") is MemberStatus.FAILED
    members.leave_intent(sm.Leave(3, "x"), 2.0, True)
    assert status(members, "x") is MemberStatus.LEFT
    assert [type(e) for e in events] == [MemberJoined, MemberFailed, MemberLeft]


def test_prune_erases_a_force_left_member() -> None:
    members, events = table()
    members.node_joined(node_record("x"), 0.0)
    members.node_left(node_record("x"), 1.0)
    members.leave_intent(sm.Leave(3, "x", prune=True), 2.0, True)
    assert "x" not in members.members
    assert isinstance(events[-1], MemberReaped)


def test_leave_intent_about_ourselves_is_refuted_with_a_join_intent() -> None:
    node = SerfNode("a", (LOCALHOST, 7946))
    node.start(0.0)
    node.notify_msg(sm.Leave(10, "a").encode(), 0.0)
    (raw,) = node.get_broadcasts(3, 1400)
    refute = sm.decode_serf_message(raw)
    assert isinstance(refute, sm.Join)
    assert refute.node == "a"
    assert refute.ltime == 11
    assert statuses(node)["a"] == "alive"
    assert node.stats["leave_intents_refuted"] == 1


# ---------------------------------------------------------------------------
# Leaving, failing, reaping


def leave_and_stop(net: Net, name: str) -> LeaveComplete:
    net.nodes[name].leave(net.now)
    net.pump()
    for _ in range(20):
        done = net.take(name, LeaveComplete)
        if done:
            net.down.add(name)
            return done[0]
        net.run(0.5)
    raise AssertionError("the leave never completed")


def test_graceful_leave_shows_left_not_failed() -> None:
    net = Net()
    a, b, c = pool(net, "a", "b", "c")
    done = leave_and_stop(net, "c")
    assert done == LeaveComplete(intent_timed_out=False, memberlist_timed_out=False)
    assert c.state is SerfState.LEFT
    assert [e.name for e in net.take("c", MemberLeft)] == ["c"]  # as in Go

    net.run(30)  # long past any suspicion timeout
    for node, name in ((a, "a"), (b, "b")):
        assert statuses(node)["c"] == "left"
        assert [e.name for e in net.take(name, MemberLeft)] == ["c"]
        assert net.take(name, MemberFailed) == []


def test_crash_shows_failed() -> None:
    net = Net()
    a, _b, _c = pool(net, "a", "b", "c")
    net.down.add("c")
    net.run(30)
    assert statuses(a)["c"] == "failed"
    assert [e.name for e in net.take("a", MemberFailed)] == ["c"]


def test_leave_alone_completes_without_waiting_for_anyone() -> None:
    net = Net()
    a = net.add("a")
    done = leave_and_stop(net, "a")
    assert not done.intent_timed_out
    assert a.state is SerfState.LEFT
    a.leave(net.now)  # leaving again is a no-op, as in Serf


def test_second_leave_while_leaving_is_refused() -> None:
    net = Net()
    a, _b = pool(net, "a", "b")
    a.leave(net.now)
    with pytest.raises(LocalProtocolError, match="already in progress"):
        a.leave(net.now)


def test_leave_completes_with_everyone_unreachable() -> None:
    net = Net()
    a, _b = pool(net, "a", "b")
    net.down.add("b")
    a.leave(net.now)
    net.pump()
    net.run(15)
    assert len(net.take("a", LeaveComplete)) == 1
    assert a.state is SerfState.LEFT


def test_leave_steps_move_on_when_their_waits_time_out() -> None:
    steps = LeaveSteps(deadline=5.0)
    assert not steps.ready_for_memberlist(4.9)
    assert steps.ready_for_memberlist(5.0)
    assert steps.intent_timed_out
    steps.enter(LeavePhase.MEMBERLIST, 10.0)
    assert not steps.ready_to_propagate(9.0)
    steps.memberlist_out()
    assert steps.ready_to_propagate(9.0)
    steps.enter(LeavePhase.PROPAGATE, 10.0)
    assert steps.finished(9.5) is None
    assert steps.finished(10.0) == LeaveComplete(True, False)
    assert steps.finished(11.0) is None  # reported once


def test_failed_members_are_reaped_after_the_reconnect_timeout() -> None:
    config = SerfConfig(reconnect_timeout=20.0, reap_interval=1.0)
    net = Net()
    a = net.add("a", serf_config=config)
    net.add("b")
    net.join("b", "a")
    net.run(2)
    net.down.add("b")
    net.run(15)
    assert statuses(a)["b"] == "failed"
    assert net.take("a", MemberReaped) == []
    net.run(30)
    assert "b" not in statuses(a)
    assert [e.name for e in net.take("a", MemberReaped)] == ["b"]


def test_reconnect_tries_failed_members_again() -> None:
    config = SerfConfig(reconnect_interval=2.0)
    net = Net()
    a = net.add("a", serf_config=config)
    net.add("b")
    net.join("b", "a")
    net.run(2)
    net.down.add("b")
    net.run(15)
    assert statuses(a)["b"] == "failed"
    net.down.discard("b")
    net.run(10)
    assert statuses(a)["b"] == "alive"
    # Serf's reconnects are memberlist joins: no JoinFinished for the app.
    assert net.take("a", JoinFinished) == []


def test_queue_above_max_depth_is_pruned_and_counted() -> None:
    config = SerfConfig(max_queue_depth=5, queue_depth_warning=3)
    net = Net()
    a = net.add("a", serf_config=config)
    for i in range(9):
        a.fire_event("e", bytes([i]), False, net.now)
    assert a.queue_depths()["event"] == 9
    net.run(31)
    assert a.queue_depths()["event"] == 5
    assert a.stats["event_queue_pruned"] == 4
    assert a.stats["event_queue_depth_warnings"] == 1


def test_config_refuses_nonsense() -> None:
    with pytest.raises(LocalProtocolError, match="protocol 3"):
        SerfConfig(protocol_version=3)
    with pytest.raises(LocalProtocolError, match="9216"):
        SerfConfig(user_event_size_limit=10_000)
    with pytest.raises(LocalProtocolError, match="reap_interval"):
        SerfConfig(reap_interval=0)
    assert SerfConfig(protocol_version=4).vsn == bytes([1, 5, 2, 2, 5, 4])

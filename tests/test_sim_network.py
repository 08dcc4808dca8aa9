"""SimNetwork's own mechanics, checked with a scripted engine.

The engine here does nothing by itself: a test queues the actions it should
emit and reads back every call the network made into it, with the virtual
time of each call.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from serfcast.engine.actions import (
    Action,
    Address,
    CloseStream,
    OpenStream,
    SendPacket,
    StreamWrite,
)
from serfcast.engine.nodes import NodeState
from serfcast.errors import LocalProtocolError
from serfcast.testing import LinkConfig, SimNetwork, SimulationLimitExceeded

Call = tuple[object, ...]


class Scripted:
    """An engine that emits what it is told to and records what it is given."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.outbox: list[Action] = []
        self.deadline: float | None = None
        self.started_at: float | None = None
        #: Actions to emit in answer to the next stream_data on any stream.
        self.on_data: list[Action] = []

    def start(self, now: float) -> None:
        self.started_at = now

    def receive_packet(self, data: bytes, source: Address, now: float) -> None:
        self.calls.append(("packet", data, source, now))

    def handle_timeout(self, now: float) -> None:
        self.calls.append(("timeout", now))
        self.deadline = None

    def next_deadline(self) -> float | None:
        return self.deadline

    def pop_actions(self) -> list[Action]:
        actions, self.outbox = self.outbox, []
        return actions

    def pop_events(self) -> Sequence[object]:
        return []

    def stream_accepted(self, stream_id: int, peer: Address, now: float) -> None:
        self.calls.append(("accepted", stream_id, peer[0], now))

    def stream_data(self, stream_id: int, data: bytes, now: float) -> None:
        self.calls.append(("data", stream_id, data, now))
        self.outbox.extend(self.on_data)
        self.on_data = []

    def stream_closed(self, stream_id: int, now: float) -> None:
        self.calls.append(("closed", stream_id, now))

    def stream_failed(self, stream_id: int, reason: str, now: float) -> None:
        self.calls.append(("failed", stream_id, reason, now))

    def kinds(self) -> list[object]:
        return [call[0] for call in self.calls]


def pair(
    **link: object,
) -> tuple[SimNetwork, Scripted, Scripted]:
    delay = (0.01, 0.01)
    sim = SimNetwork(seed=1, delay=delay, **link)  # type: ignore[arg-type]
    a, b = Scripted(), Scripted()
    sim.add_node("a", a, sim.new_address())
    sim.add_node("b", b, sim.new_address())
    return sim, a, b


def send(sim: SimNetwork, engine: Scripted, name: str, *actions: Action) -> None:
    engine.outbox.extend(actions)
    sim.settle(sim.node(name))


def test_addresses_are_distinct_ipv4_on_the_memberlist_port() -> None:
    sim = SimNetwork(seed=0)
    first, second = sim.new_address(), sim.new_address()
    assert first == ("10.0.0.1", 7946)
    assert second == ("10.0.0.2", 7946)
    assert [sim.new_address()[0] for _ in range(300)][-1] == "10.0.1.46"


def test_a_datagram_arrives_after_the_link_delay_with_the_sender_address() -> None:
    sim, a, b = pair()
    send(sim, a, "a", SendPacket(sim.node("b").address, b"hello"))
    sim.run_for(1.0)
    assert b.calls == [("packet", b"hello", sim.node("a").address, pytest.approx(0.01))]
    assert sim.node("a").stats.packets_sent == 1
    assert sim.node("b").stats.packets_received == 1


def test_loss_and_duplication_are_counted() -> None:
    sim, a, b = pair(loss=1.0)
    send(sim, a, "a", *[SendPacket(sim.node("b").address, b"x")] * 5)
    sim.run_for(1.0)
    assert b.calls == []
    assert sim.node("a").stats.packets_dropped == 5

    sim, a, b = pair(duplicate=1.0)
    send(sim, a, "a", SendPacket(sim.node("b").address, b"x"))
    sim.run_for(1.0)
    assert b.kinds() == ["packet", "packet"]
    assert sim.node("a").stats.packets_duplicated == 1


def test_set_link_overrides_one_direction_or_both() -> None:
    sim, a, b = pair()
    sim.set_link("a", "b", loss=1.0, one_way=True)
    assert sim.link("a", "b").loss == 1.0
    assert sim.link("b", "a") == sim.default_link
    send(sim, a, "a", SendPacket(sim.node("b").address, b"lost"))
    send(sim, b, "b", SendPacket(sim.node("a").address, b"kept"))
    sim.run_for(1.0)
    assert (b.kinds(), a.kinds()) == ([], ["packet"])
    sim.reset_link("a", "b")
    assert sim.link("a", "b") == sim.default_link


def test_reordering_lets_later_datagrams_overtake() -> None:
    sim, a, b = pair()
    sim.set_link("a", "b", delay=(0.001, 0.002), reorder=0.5)
    send(
        sim, a, "a", *[SendPacket(sim.node("b").address, bytes([i])) for i in range(50)]
    )
    sim.run_for(1.0)
    order = [call[1][0] for call in b.calls]  # type: ignore[index]
    assert sorted(order) == list(range(50))
    assert order != sorted(order)


def test_link_settings_are_checked() -> None:
    with pytest.raises(LocalProtocolError, match="loss"):
        LinkConfig(loss=1.5)
    with pytest.raises(LocalProtocolError, match="delay"):
        LinkConfig(delay=(0.2, 0.1))


def test_partition_blocks_both_ways_until_healed() -> None:
    sim, a, b = pair()
    sim.partition(["a"], ["b"])
    send(sim, a, "a", SendPacket(sim.node("b").address, b"1"))
    send(sim, b, "b", SendPacket(sim.node("a").address, b"2"))
    sim.run_for(1.0)
    assert (a.calls, b.calls) == ([], [])
    sim.heal()
    send(sim, a, "a", SendPacket(sim.node("b").address, b"3"))
    sim.run_for(1.0)
    assert b.kinds() == ["packet"]


def test_a_stream_request_and_reply_arrive_in_order_then_close() -> None:
    sim, a, b = pair()
    b.on_data = [StreamWrite(-1, b"re"), StreamWrite(-1, b"ply"), CloseStream(-1)]
    open_ = OpenStream(1, sim.node("b").address, b"request", 5.0, expect_reply=True)
    send(sim, a, "a", open_)
    sim.run_for(1.0)
    assert b.calls == [
        ("accepted", -1, "10.0.0.1", pytest.approx(0.01)),
        ("data", -1, b"request", pytest.approx(0.01)),
    ]
    assert a.kinds() == ["data", "data", "closed"]
    assert b"".join(call[2] for call in a.calls[:2]) == b"reply"  # type: ignore[misc]
    sim.run_for(10.0)
    assert a.kinds() == ["data", "data", "closed"], "no timeout after a clean close"


def test_a_stream_without_reply_is_closed_by_the_dialler_after_writing() -> None:
    sim, a, b = pair()
    send(sim, a, "a", OpenStream(1, sim.node("b").address, b"note", 5.0, False))
    sim.run_for(1.0)
    assert b.kinds() == ["accepted", "data", "closed"]
    assert a.calls == []


def test_dialling_a_dead_node_is_refused_at_once() -> None:
    sim, a, _ = pair()
    sim.kill("b")
    send(sim, a, "a", OpenStream(1, sim.node("b").address, b"x", 5.0, True))
    sim.run_for(1.0)
    assert a.calls == [("failed", 1, "connection refused", 0.0)]
    assert sim.node("a").stats.streams_failed == 1


def test_a_stream_across_a_partition_times_out_for_the_dialler() -> None:
    sim, a, b = pair()
    sim.partition(["a"], ["b"])
    send(sim, a, "a", OpenStream(1, sim.node("b").address, b"x", 5.0, True))
    sim.run_for(10.0)
    assert a.calls == [("failed", 1, "i/o timeout", 5.0)]
    assert b.calls == []


def test_closing_after_the_dialler_gave_up_is_harmless() -> None:
    sim, a, b = pair()
    b.on_data = [StreamWrite(-1, b"late")]
    send(sim, a, "a", OpenStream(1, sim.node("b").address, b"x", 0.005, True))
    sim.run_for(1.0)
    assert a.calls == [("failed", 1, "i/o timeout", 0.005)]
    assert b.kinds() == ["accepted", "data", "closed"]
    send(sim, a, "a", CloseStream(1), StreamWrite(1, b"ignored"))
    sim.run_for(1.0)
    assert b.kinds() == ["accepted", "data", "closed"]


def test_lossy_links_delay_stream_segments_instead_of_losing_them() -> None:
    sim, a, b = pair()
    sim.set_link("a", "b", loss=0.5)
    for sid in range(1, 21):
        send(sim, a, "a", OpenStream(sid, sim.node("b").address, b"x", 60.0, False))
    sim.run_for(60.0)
    times = [t for c in b.calls if c[0] == "data" and isinstance(t := c[3], float)]
    assert len(times) >= 19, "at most a rare stream gives up after 8 losses"
    assert max(times) > 0.2, "some segment waited for a retransmission"


def test_wake_ups_follow_the_engine_deadline_and_stop_when_killed() -> None:
    sim, a, _ = pair()
    a.deadline = 2.5
    sim.run_until(3.0)
    assert a.calls == [("timeout", 2.5)]
    a.deadline = 4.0
    sim.kill("a")
    sim.run_until(5.0)
    assert a.calls == [("timeout", 2.5)]
    with pytest.raises(LocalProtocolError, match="killed"):
        sim.invoke("a", a.start)


def test_start_all_staggers_starts_within_the_window() -> None:
    sim, a, b = pair()
    sim.start_all(stagger=1.0)
    sim.run_for(1.0)
    assert a.started_at is not None and b.started_at is not None
    assert 0.0 <= a.started_at <= 1.0 and 0.0 <= b.started_at <= 1.0
    assert a.started_at != b.started_at


def test_an_engine_that_never_moves_its_deadline_is_reported() -> None:
    sim, a, _ = pair()
    a.handle_timeout = lambda now: None  # type: ignore[method-assign]
    a.deadline = 1.0
    with pytest.raises(SimulationLimitExceeded, match="without moving its deadline"):
        sim.run_until(2.0)


def test_run_calls_are_bounded_by_steps_and_by_time() -> None:
    sim, a, _ = pair()
    a.outbox = [SendPacket(sim.node("b").address, b"x")] * 10
    with pytest.raises(SimulationLimitExceeded, match="more than 3 events"):
        sim.run_for(1.0, max_steps=3)
    assert sim.now == pytest.approx(0.01), "stopped at the last event run"
    with pytest.raises(SimulationLimitExceeded, match=r"still false after 2\.0"):
        sim.run_until_true(lambda: False, max_time=2.0)
    assert sim.now == pytest.approx(2.01)
    assert sim.run_until_idle(1.0) == pytest.approx(2.01)
    with pytest.raises(LocalProtocolError, match="back"):
        sim.run_until(1.0)


def test_run_until_idle_refuses_an_engine_with_periodic_work() -> None:
    sim, a, _ = pair()

    def tick(now: float) -> None:
        a.deadline = now + 1.0

    a.handle_timeout = tick  # type: ignore[method-assign]
    a.deadline = 0.5
    with pytest.raises(SimulationLimitExceeded, match="still busy"):
        sim.run_until_idle(10.0)


def test_step_runs_one_event_at_a_time() -> None:
    sim, a, b = pair()
    send(sim, a, "a", SendPacket(sim.node("b").address, b"1"))
    send(sim, a, "a", SendPacket(sim.node("b").address, b"2"))
    assert sim.step()
    assert len(b.calls) == 1
    assert sim.step()
    assert not sim.step()
    assert len(b.calls) == 2


def test_names_and_addresses_must_be_unique() -> None:
    sim, _, _ = pair()
    with pytest.raises(LocalProtocolError, match="already"):
        sim.add_node("a", Scripted(), sim.new_address())
    with pytest.raises(LocalProtocolError, match="taken"):
        sim.add_node("c", Scripted(), sim.node("a").address)
    with pytest.raises(LocalProtocolError, match="no node named"):
        sim.partition(["a"], ["zzz"])
    with pytest.raises(LocalProtocolError, match="both sides"):
        sim.partition(["a"], ["a", "b"])


def test_memberlist_helpers_report_user_messages_and_views() -> None:
    sim = SimNetwork(seed=2)
    a = sim.add_memberlist_node("a")
    sim.add_memberlist_node("b")
    heard: list[tuple[str, bytes, float]] = []
    sim.on_user_message(lambda name, payload, now: heard.append((name, payload, now)))
    sim.start_all()
    sim.join_all("a")
    sim.run_until_true(sim.converged, max_time=5.0)
    assert sim.views_of("a") == {"b": NodeState.ALIVE}

    sim.invoke("a", lambda now: a.send_user_packet(sim.node("b").address, b"hi", now))
    sim.run_for(1.0)
    assert [(name, payload) for name, payload, _ in heard] == [("b", b"hi")]
    assert sim.node("b").stats.user_messages == 1


def test_helpers_say_what_an_engine_lacks() -> None:
    sim = SimNetwork(seed=2)
    sim.add_memberlist_node("a")
    sim.add_node("scripted", Scripted(), sim.new_address())
    with pytest.raises(LocalProtocolError, match="members view"):
        sim.views_of("a")
    with pytest.raises(LocalProtocolError, match="does not run a Memberlist"):
        sim.memberlist("scripted")
    sim.join_all("a")
    with pytest.raises(LocalProtocolError, match="no join"):
        sim.run_for(1.0)

"""The event and query rings against Serf's accept rules and real-agent findings.

The property tests drive the rings with random sequences (clock jumps, the
window of one ring length, minimum times, same and different payloads at one
Lamport time) next to ``SerfModel``, a deliberately naive transcription of
Serf's rules, and require the same verdict, clock and remembered history at
every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serfcast.errors import EventTooLargeError, LocalProtocolError
from serfcast.serf.buffers import (
    MAX_PER_SLOT,
    Accepted,
    BelowMinimum,
    Duplicate,
    EventBuffer,
    QueryBuffer,
    SlotFull,
    TooOld,
    Verdict,
)
from serfcast.serf.clock import LamportClock
from serfcast.serf.messages import (
    EVENT_BUFFER_SIZE,
    QUERY_FLAG_NO_BROADCAST,
    PushPullState,
    Query,
    UserEvent,
    UserEventRecord,
    UserEvents,
)

# ----------------------------------------------------------------------------
# The model: Serf's rules, one line each, with no shared code.


@dataclass
class SerfModel:
    """What a Go node does with an incoming message, written out plainly."""

    size: int
    what: str = "event"
    clock: int = 1
    min_time: int = 0
    # slot index -> (Lamport time held, keys seen at that time, in order)
    slots: dict[int, tuple[int, list[object]]] = field(default_factory=dict)

    def receive(self, ltime: int, name: str, key: object) -> tuple[str, str]:
        if ltime >= self.clock:
            self.clock = ltime + 1
        if ltime < self.min_time:
            return "below", ""
        if self.clock > self.size and ltime < self.clock - self.size:
            text = f"received old {self.what} {name} from time {ltime} "
            return "old", text + f"(current: {self.clock})"
        index = ltime % self.size
        if index in self.slots and self.slots[index][0] == ltime:
            if key in self.slots[index][1]:
                return "dup", ""
            self.slots[index][1].append(key)
        else:
            self.slots[index] = (ltime, [key])
        return "new", ""

    def fire(self, name: str, payload: bytes) -> tuple[int, tuple[str, str]]:
        ltime = self.clock
        self.clock += 1
        return ltime, self.receive(ltime, name, (name, payload))


def outcome(verdict: Verdict) -> tuple[str, str]:
    """A verdict in the model's terms."""
    if isinstance(verdict, Accepted):
        return "new", ""
    if isinstance(verdict, TooOld):
        return "old", verdict.message
    if isinstance(verdict, Duplicate):
        return "dup", ""
    assert isinstance(verdict, BelowMinimum), verdict
    return "below", ""


def remembered(buffer: EventBuffer) -> dict[int, tuple[int, list[object]]]:
    """The ring's history in the model's shape, read from its push/pull form."""
    out: dict[int, tuple[int, list[object]]] = {}
    for index, entry in enumerate(buffer.export_events()):
        if entry is not None:
            keys: list[object] = [
                (r.name, r.payload or b"") for r in entry.events or ()
            ]
            out[index] = (entry.ltime, keys)
    return out


NAMES = st.sampled_from(["a", "b"])
#: None and b"" are the same payload to Serf's duplicate check.
PAYLOADS = st.sampled_from([None, b"", b"x", b"y"])
SIZES = st.sampled_from([4, 8, 16, EVENT_BUFFER_SIZE])


def ltime_offsets(size: int) -> st.SearchStrategy[tuple[bool, int]]:
    """Lamport times to try: (relative to the clock?, value).

    They fall behind the clock, inside the window, just ahead, far ahead, and
    anywhere up to 2**40, so that clock jumps are common.
    """
    return st.one_of(
        st.tuples(st.just(False), st.integers(0, 3 * size)),
        st.tuples(st.just(True), st.integers(-2 * size, 3)),
        st.tuples(st.just(True), st.integers(0, 20 * size)),
        st.tuples(st.just(False), st.integers(0, 2**40)),
    )


def ltime_near(data: st.DataObject, clock: int, size: int) -> int:
    """Draw one Lamport time around ``clock`` (see :func:`ltime_offsets`)."""
    relative, value = data.draw(_OFFSETS[size])
    return max(0, clock + value) if relative else value


_OFFSETS = {size: ltime_offsets(size) for size in (4, 8, 16, EVENT_BUFFER_SIZE)}


# ----------------------------------------------------------------------------
# Properties.


@settings(max_examples=300)
@given(data=st.data(), size=SIZES, steps=st.integers(1, 60))
def test_event_ring_matches_the_model(
    data: st.DataObject, size: int, steps: int
) -> None:
    buffer = EventBuffer(size=size)
    model = SerfModel(size)
    for _ in range(steps):
        action = data.draw(st.sampled_from(["receive", "receive", "fire", "min"]))
        name, payload = data.draw(NAMES), data.draw(PAYLOADS)
        if action == "receive":
            ltime = ltime_near(data, model.clock, size)
            key = (name, payload or b"")
            expected = model.receive(ltime, name, key)
            verdict = buffer.accept(UserEvent(ltime, name, payload))
            assert outcome(verdict) == expected
            assert verdict == Accepted(True) or expected[0] != "new"
        elif action == "fire":
            ltime, expected = model.fire(name, payload or b"")
            fired = buffer.fire(name, payload, limit=EVENT_BUFFER_SIZE)
            assert fired.message.ltime == ltime
            assert outcome(fired.verdict) == expected
        else:
            floor = data.draw(st.integers(0, model.clock + size))
            model.min_time = max(model.min_time, floor)
            buffer.raise_min_time(floor)
        assert buffer.clock.time() == model.clock
    assert remembered(buffer) == model.slots


@settings(max_examples=200)
@given(
    data=st.data(),
    size=SIZES,
    join=st.booleans(),
    ignore_old=st.booleans(),
)
def test_merging_a_push_pull_matches_the_model(
    data: st.DataObject, size: int, join: bool, ignore_old: bool
) -> None:
    # Two histories: ours and a peer's, built by random receives.
    ours, peer = EventBuffer(size=size), EventBuffer(size=size)
    model = SerfModel(size)
    for buffer in (ours, peer):
        for _ in range(data.draw(st.integers(0, 25))):
            ltime = ltime_near(data, buffer.clock.time(), size)
            name, payload = data.draw(NAMES), data.draw(PAYLOADS)
            buffer.accept(UserEvent(ltime, name, payload))
            if buffer is ours:
                model.receive(ltime, name, (name, payload or b""))
    state = PushPullState(event_ltime=peer.event_ltime, events=peer.export_events())

    if state.event_ltime > 0 and state.event_ltime - 1 >= model.clock:
        model.clock = state.event_ltime
    if join and ignore_old:
        model.min_time = max(model.min_time, state.event_ltime)
    expected = [
        model.receive(entry.ltime, r.name, (r.name, r.payload or b""))
        for entry in state.events or ()
        if entry is not None
        for r in entry.events or ()
    ]

    replayed = ours.merge_push_pull(state, join=join, ignore_old=ignore_old)
    assert [outcome(v) for _, v in replayed] == expected
    assert all(v == Accepted(False) for _, v in replayed if isinstance(v, Accepted))
    assert not any(event.coalesce for event, _ in replayed)
    assert ours.clock.time() == model.clock
    assert remembered(ours) == model.slots


@settings(max_examples=200)
@given(data=st.data(), size=SIZES, steps=st.integers(1, 60))
def test_query_ring_matches_the_model(
    data: st.DataObject, size: int, steps: int
) -> None:
    buffer = QueryBuffer(size=size)
    model = SerfModel(size, what="query")
    for _ in range(steps):
        ltime = ltime_near(data, model.clock, size)
        query_id = data.draw(st.integers(0, 3))
        flags = data.draw(st.sampled_from([0, QUERY_FLAG_NO_BROADCAST]))
        expected = model.receive(ltime, "q", query_id)
        verdict = buffer.accept(Query(ltime=ltime, id=query_id, name="q", flags=flags))
        assert outcome(verdict) == expected
        if expected[0] == "new":
            assert verdict == Accepted(rebroadcast=flags == 0)
        assert buffer.clock.time() == model.clock


# ----------------------------------------------------------------------------
# What real agents showed.


def jumped(to: int) -> EventBuffer:
    """A ring whose clock was moved by an event injected at ``to``."""
    buffer = EventBuffer()
    assert buffer.accept(UserEvent(to, "jump")) == Accepted()
    assert buffer.clock.time() == to + 1
    return buffer


def test_after_a_jump_to_1001_time_400_is_too_old_and_600_is_delivered() -> None:
    buffer = jumped(1000)
    assert buffer.accept(UserEvent(400, "deploy", b"v")) == TooOld(
        "received old event deploy from time 400 (current: 1001)"
    )
    assert buffer.accept(UserEvent(600, "deploy", b"v")) == Accepted()


def test_the_window_edge_with_the_clock_at_601() -> None:
    buffer = jumped(600)
    assert buffer.accept(UserEvent(89, "e")) == Accepted()
    assert isinstance(buffer.accept(UserEvent(88, "e")), TooOld)
    assert isinstance(buffer.accept(UserEvent(87, "e")), TooOld)


def test_the_injected_time_1_after_a_jump_to_100000() -> None:
    buffer = jumped(100_000)
    assert buffer.fire("real").message.ltime == 100_001
    assert buffer.accept(UserEvent(1, "inj_old")) == TooOld(
        "received old event inj_old from time 1 (current: 100002)"
    )


def test_nothing_is_too_old_before_the_clock_passes_the_ring_size() -> None:
    buffer = EventBuffer(LamportClock(EVENT_BUFFER_SIZE))
    assert buffer.accept(UserEvent(0, "first")) == Accepted()
    assert buffer.accept(UserEvent(1, "inj_lt1", b"hello-from-outsider")) == Accepted()


def test_same_name_and_payload_at_one_time_collapse_but_other_payloads_do_not() -> None:
    buffer = EventBuffer()
    assert buffer.accept(UserEvent(2, "deploy", b"v1")) == Accepted()
    assert buffer.accept(UserEvent(2, "deploy", b"v1", coalesce=True)) == Duplicate()
    assert buffer.accept(UserEvent(2, "deploy", b"v2")) == Accepted()
    assert buffer.accept(UserEvent(2, "other", b"v1")) == Accepted()
    assert buffer.accept(UserEvent(3, "deploy", b"v1")) == Accepted()


def test_a_nil_payload_and_an_empty_one_are_the_same_event() -> None:
    buffer = EventBuffer()
    assert buffer.accept(UserEvent(5, "ping", None)) == Accepted()
    assert buffer.accept(UserEvent(5, "ping", b"")) == Duplicate()


def test_a_slot_holding_another_time_is_overwritten() -> None:
    buffer = EventBuffer(LamportClock(600))
    buffer.accept(UserEvent(100, "old", b"1"))
    buffer.accept(UserEvent(100 + EVENT_BUFFER_SIZE, "new", b"2"))
    entry = buffer.export_events()[100]
    assert entry == UserEvents(612, [UserEventRecord("new", b"2")])


def test_a_late_joiner_without_replay_drops_old_times_silently() -> None:
    seed = EventBuffer()
    for n in range(20):
        seed.fire(f"e{n}")
    joiner = EventBuffer()
    state = PushPullState(event_ltime=seed.event_ltime, events=seed.export_events())
    replayed = joiner.merge_push_pull(state, join=True, ignore_old=True)
    assert replayed and all(v == BelowMinimum() for _, v in replayed)
    assert joiner.min_time == 21
    for ltime in (0, 5, 20):
        assert joiner.accept(UserEvent(ltime, "inj")) == BelowMinimum()
    assert joiner.accept(UserEvent(21, "inj")) == Accepted()


def test_a_replayed_join_delivers_everything_without_rebroadcast_or_coalescing() -> (
    None
):
    seed = EventBuffer()
    fired = [seed.fire("co", b"p%d" % n, coalesce=True) for n in range(3)]
    state = PushPullState(event_ltime=seed.event_ltime, events=seed.export_events())
    joiner = EventBuffer()
    replayed = joiner.merge_push_pull(state, join=True, ignore_old=False)
    assert replayed == [
        (UserEvent(f.message.ltime, "co", f.message.payload), Accepted(False))
        for f in fired
    ]
    assert joiner.clock.time() == seed.clock.time()


def test_later_push_pulls_still_respect_the_raised_minimum() -> None:
    joiner = EventBuffer()
    joiner.merge_push_pull(PushPullState(event_ltime=10), join=True, ignore_old=True)
    peer = EventBuffer(LamportClock(8))
    peer.accept(UserEvent(9, "old"))
    peer.accept(UserEvent(12, "missed"))
    state = PushPullState(event_ltime=peer.event_ltime, events=peer.export_events())
    replayed = joiner.merge_push_pull(state)
    assert [(e.name, v) for e, v in replayed] == [
        ("old", BelowMinimum()),
        ("missed", Accepted(False)),
    ]


def test_a_zero_event_clock_in_a_push_pull_does_not_underflow() -> None:
    buffer = EventBuffer()
    assert buffer.merge_push_pull(PushPullState()) == []
    assert buffer.clock.time() == 1


def test_a_slot_holds_a_bounded_number_of_events() -> None:
    buffer = EventBuffer()
    for n in range(MAX_PER_SLOT):
        assert buffer.accept(UserEvent(7, "flood", b"%d" % n)) == Accepted()
    assert buffer.accept(UserEvent(7, "flood", b"one more")) == SlotFull()
    assert buffer.accept(UserEvent(7, "flood", b"0")) == Duplicate()
    queries = QueryBuffer()
    for n in range(MAX_PER_SLOT):
        queries.accept(Query(ltime=7, id=n))
    assert queries.accept(Query(ltime=7, id=MAX_PER_SLOT)) == SlotFull()


# ----------------------------------------------------------------------------
# Firing locally.


def test_fire_stamps_with_the_current_time_then_increments() -> None:
    buffer = EventBuffer()
    first = buffer.fire("deploy", b"v1", coalesce=True)
    assert first.message == UserEvent(1, "deploy", b"v1", True)
    assert first.encoded == bytes.fromhex(
        "0384a24343c3a54c54696d6501a44e616d65a66465706c6f79a75061796c6f6164a27631"
    )
    assert first.verdict == Accepted()
    assert buffer.fire("deploy", b"v2").message.ltime == 2
    assert buffer.clock.time() == 3
    assert buffer.accept(first.message) == Duplicate()


def test_a_node_that_only_witnessed_time_1_fires_at_2() -> None:
    buffer = EventBuffer()
    buffer.accept(UserEvent(1, "from-elsewhere"))
    assert buffer.fire("mine").message.ltime == 2


def test_a_refused_event_leaves_the_clock_and_ring_alone() -> None:
    buffer = EventBuffer()
    with pytest.raises(EventTooLargeError):
        buffer.fire("sz", bytes(481))
    assert buffer.clock.time() == 1
    assert buffer.export_events() == [None] * EVENT_BUFFER_SIZE
    assert buffer.fire("sz", bytes(481), limit=1024).message.ltime == 1


# ----------------------------------------------------------------------------
# The push/pull form.


def test_export_has_one_entry_per_slot_and_survives_the_wire() -> None:
    buffer = EventBuffer()
    buffer.fire("a", b"1")
    buffer.accept(UserEvent(700, "b", None))
    events = buffer.export_events()
    assert len(events) == EVENT_BUFFER_SIZE
    assert sum(entry is not None for entry in events) == 2
    state = PushPullState(event_ltime=buffer.event_ltime, events=events)
    decoded = PushPullState.decode_body(state.encode_body())
    restored = EventBuffer.restore(decoded.event_ltime, decoded.events or ())
    assert restored.export_events() == events
    assert restored.event_ltime == 701
    assert restored.accept(UserEvent(700, "b", b"")) == Duplicate()


def test_restore_refuses_a_misplaced_slot() -> None:
    misplaced: list[UserEvents | None] = [UserEvents(5, [UserEventRecord("x")])]
    with pytest.raises(LocalProtocolError, match="belongs elsewhere"):
        EventBuffer.restore(6, misplaced)


def test_a_ring_needs_a_slot() -> None:
    with pytest.raises(LocalProtocolError, match="at least one slot"):
        EventBuffer(size=0)


# ----------------------------------------------------------------------------
# Queries.


def test_queries_are_duplicates_by_time_and_id() -> None:
    buffer = QueryBuffer()
    assert buffer.accept(Query(ltime=3, id=42, name="whoami")) == Accepted()
    assert buffer.accept(Query(ltime=3, id=42, name="other")) == Duplicate()
    assert buffer.accept(Query(ltime=3, id=43, name="whoami")) == Accepted()
    assert buffer.accept(Query(ltime=4, id=42, name="whoami")) == Accepted()
    assert buffer.clock.time() == 5


def test_a_no_broadcast_query_is_delivered_but_not_gossiped() -> None:
    buffer = QueryBuffer()
    query = Query(ltime=1, id=1, flags=QUERY_FLAG_NO_BROADCAST)
    assert buffer.accept(query) == Accepted(rebroadcast=False)


def test_old_queries_and_the_query_minimum() -> None:
    buffer = QueryBuffer(LamportClock(2000), min_time=10)
    assert buffer.accept(Query(ltime=5, name="q")) == BelowMinimum()
    assert buffer.accept(Query(ltime=1000, name="big")) == TooOld(
        "received old query big from time 1000 (current: 2000)"
    )


def test_a_peer_query_clock_is_witnessed_less_one() -> None:
    buffer = QueryBuffer()
    buffer.witness_push_pull(PushPullState(query_ltime=50))
    assert buffer.query_ltime == 50

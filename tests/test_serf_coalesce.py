"""The user event coalescer: Serf's agent scenarios and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.errors import LocalProtocolError
from serfcast.serf.coalesce import UserEventCoalescer
from serfcast.serf.messages import UserEvent


def agent_coalescer() -> UserEventCoalescer[UserEvent]:
    """The serf agent's settings: 3 s window, 1 s quiescence."""
    return UserEventCoalescer(coalesce_period=3.0, quiescent_period=1.0)


def co(ltime: int, payload: bytes, name: str = "co") -> UserEvent:
    return UserEvent(ltime, name, payload, coalesce=True)


def test_three_quick_events_then_a_plain_one() -> None:
    coalescer = agent_coalescer()
    p1, p2, p3 = co(8, b"p1"), co(9, b"p2"), co(10, b"p3")
    nc1 = UserEvent(11, "co", b"nc1", coalesce=False)
    assert coalescer.push(p1, now=0.0) == []
    assert coalescer.push(p2, now=0.1) == []
    assert coalescer.push(p3, now=0.2) == []
    assert coalescer.push(nc1, now=0.3) == [nc1]
    # The plain event did not restart the quiet period, which ends 1 s after p3.
    assert coalescer.next_deadline() == pytest.approx(1.2)
    assert coalescer.flush_due(1.1) == []
    assert coalescer.flush_due(1.2) == [p3]
    assert coalescer.next_deadline() is None
    assert coalescer.flush_due(5.0) == []


def test_a_window_closes_three_seconds_after_it_opened() -> None:
    coalescer = agent_coalescer()
    times = [0.0, 0.8, 1.6, 2.4]
    for n, now in enumerate(times):
        assert coalescer.flush_due(now) == []
        assert coalescer.push(co(n + 1, b"%d" % n), now) == []
    assert coalescer.next_deadline() == pytest.approx(3.0)
    assert coalescer.flush_due(3.0) == [co(4, b"3")]


def test_events_at_the_highest_time_are_all_kept_and_lower_ones_dropped() -> None:
    coalescer = agent_coalescer()
    a, b = co(5, b"from-a"), co(5, b"from-b")
    for event in (co(4, b"old"), a, co(3, b"older"), b, co(2, b"x", name="other")):
        coalescer.push(event, now=0.0)
    assert coalescer.flush_due(1.0) == [a, b, co(2, b"x", name="other")]


def test_a_due_window_is_flushed_before_a_new_event() -> None:
    coalescer = agent_coalescer()
    first = co(1, b"first")
    coalescer.push(first, now=0.0)
    plain = UserEvent(2, "plain")
    assert coalescer.push(plain, now=1.5) == [first, plain]
    second = co(3, b"second")
    assert coalescer.push(second, now=2.0) == []
    assert coalescer.next_deadline() == pytest.approx(3.0)
    assert coalescer.flush_all() == [second]


@pytest.mark.parametrize(("period", "quiet"), [(0.0, 0.0), (3.0, 0.0), (0.0, 1.0)])
def test_coalescing_is_off_unless_both_periods_are_positive(
    period: float, quiet: float
) -> None:
    coalescer: UserEventCoalescer[UserEvent] = UserEventCoalescer(period, quiet)
    assert not coalescer.enabled
    events = [co(1, b"a"), co(2, b"b"), UserEvent(3, "c")]
    assert [coalescer.push(e, now=0.0) for e in events] == [[e] for e in events]
    assert coalescer.next_deadline() is None


def test_negative_periods_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="positive"):
        UserEventCoalescer(-1.0, 1.0)


# A pushed event: (seconds after the previous push, Lamport time, name, CC flag,
# whether the driver calls flush_due before pushing).
pushes = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0.0, 0.5, 0.9, 1.0]), st.floats(0.0, 2.0)),
        st.integers(0, 6),
        st.sampled_from(["x", "y"]),
        st.booleans(),
        st.booleans(),
    ),
    max_size=40,
)


class WindowModel:
    """The coalescing window as Serf's loop runs it, written out plainly."""

    def __init__(self) -> None:
        self.held: list[UserEvent] = []
        self.opened = self.last = 0.0

    def due(self, now: float) -> list[UserEvent]:
        if not self.held or now < min(self.opened + 3.0, self.last + 1.0):
            return []
        return self.close()

    def close(self) -> list[UserEvent]:
        top = {
            e.name: max(o.ltime for o in self.held if o.name == e.name)
            for e in self.held
        }
        out = [e for e in self.held if e.ltime == top[e.name]]
        self.held = []
        return out

    def hold(self, event: UserEvent, now: float) -> None:
        if not self.held:
            self.opened = now
        self.held.append(event)
        self.last = now


def same(left: list[UserEvent], right: list[UserEvent]) -> bool:
    return sorted(left, key=repr) == sorted(right, key=repr)


@given(steps=pushes)
def test_the_coalescer_matches_the_window_model(
    steps: list[tuple[float, int, str, bool, bool]],
) -> None:
    coalescer, model = agent_coalescer(), WindowModel()
    now = 0.0
    for count, (gap, ltime, name, flag, poll_first) in enumerate(steps):
        now += gap
        expected = model.due(now)
        if poll_first:
            assert same(coalescer.flush_due(now), expected)
            expected = []
        event = UserEvent(ltime, name, b"%d" % count, flag)
        if flag:
            model.hold(event, now)
        else:
            expected = [*expected, event]
        out = coalescer.push(event, now)
        assert same(out, expected)
        assert out[-1:] == [event] or flag
    assert same(coalescer.flush_all(), model.close())

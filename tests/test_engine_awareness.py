"""The local health score: clamped to its range, stretching timeouts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.engine.awareness import Awareness
from serfcast.errors import LocalProtocolError


def test_starts_healthy() -> None:
    awareness = Awareness(8)
    assert awareness.score == 0
    assert awareness.scale_timeout(0.5) == 0.5


def test_score_stops_at_both_ends() -> None:
    awareness = Awareness(8)
    awareness.apply_delta(-3)
    assert awareness.score == 0
    awareness.apply_delta(5)
    assert awareness.score == 5
    awareness.apply_delta(5)
    assert awareness.score == 7
    awareness.apply_delta(-2)
    assert awareness.score == 5


def test_timeouts_stretch_by_score_plus_one() -> None:
    awareness = Awareness(8)
    awareness.apply_delta(2)
    assert awareness.scale_timeout(1.0) == 3.0
    awareness.apply_delta(100)
    # At most max_multiplier times the base: 8 s for a 1 s LAN probe interval.
    assert awareness.scale_timeout(1.0) == 8.0


def test_a_multiplier_of_one_never_scales() -> None:
    awareness = Awareness(1)
    awareness.apply_delta(4)
    assert awareness.score == 0
    assert awareness.scale_timeout(2.5) == 2.5


@pytest.mark.parametrize("bad", [0, -1])
def test_multiplier_must_be_positive(bad: int) -> None:
    with pytest.raises(LocalProtocolError, match="1 or more"):
        Awareness(bad)


@given(
    st.integers(1, 20),
    st.lists(st.integers(-10, 10), max_size=50),
)
def test_score_matches_a_clamped_running_sum(maximum: int, deltas: list[int]) -> None:
    awareness = Awareness(maximum)
    expected = 0
    for delta in deltas:
        awareness.apply_delta(delta)
        expected = min(max(expected + delta, 0), maximum - 1)
        assert awareness.score == expected
    assert awareness.scale_timeout(1.0) == expected + 1

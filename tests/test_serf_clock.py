"""Serf's Lamport clock: increment, witness, push/pull witness and uint64 wrap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.errors import LocalProtocolError
from serfcast.serf.clock import MAX_LAMPORT_TIME, LamportClock

times = st.integers(min_value=0, max_value=MAX_LAMPORT_TIME - 1)


def test_increment_returns_the_new_value() -> None:
    clock = LamportClock()
    assert clock.time() == 0
    assert clock.increment() == 1
    assert clock.increment() == 2
    assert clock.time() == 2


def test_witness_below_changes_nothing_equal_or_above_moves_past() -> None:
    clock = LamportClock(15)
    clock.witness(3)
    assert clock.time() == 15
    clock.witness(15)  # equal still advances
    assert clock.time() == 16
    clock.witness(20)  # the injected-event case: 15 -> 21
    assert clock.time() == 21
    clock.witness(1000)
    assert clock.time() == 1001


def test_peer_clock_is_witnessed_less_one_and_zero_is_ignored() -> None:
    clock = LamportClock(1)
    clock.witness_peer_clock(0)
    assert clock.time() == 1
    clock.witness_peer_clock(21)  # the peer has used up to 20
    assert clock.time() == 21
    clock.witness_peer_clock(21)
    assert clock.time() == 21


def test_the_counter_wraps_like_a_go_uint64() -> None:
    clock = LamportClock()
    clock.witness(MAX_LAMPORT_TIME)
    assert clock.time() == 0
    clock = LamportClock(MAX_LAMPORT_TIME)
    assert clock.increment() == 0


@pytest.mark.parametrize("bad", [-1, MAX_LAMPORT_TIME + 1])
def test_values_outside_uint64_are_refused(bad: int) -> None:
    with pytest.raises(LocalProtocolError, match="outside"):
        LamportClock(bad)
    with pytest.raises(LocalProtocolError, match="outside"):
        LamportClock().witness(bad)


@given(start=times, seen=st.lists(times, max_size=20))
def test_witness_is_the_running_maximum_plus_one(start: int, seen: list[int]) -> None:
    clock = LamportClock(start)
    for value in seen:
        clock.witness(value)
    assert clock.time() == max([start, *(v + 1 for v in seen)])
    assert repr(clock) == f"LamportClock({clock.time()})"

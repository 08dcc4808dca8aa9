"""Suspicion timeouts: memberlist's numbers, to the nanosecond.

The tables marked "Go" were produced by running memberlist's formulas
(``suspicionTimeout`` in util.go, ``remainingSuspicionTime`` in suspicion.go)
with Go 1.19.8; the rest follow from the curve by hand.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.engine.config import profile
from serfcast.engine.suspicion import Suspicion, suspicion_k, suspicion_timeout


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


# (suspicion_mult, n, probe interval in ns, Go's result in ns)
GO_SUSPICION_TIMEOUTS = [
    (4, 0, 1_000_000_000, 4_000_000_000),
    (4, 10, 1_000_000_000, 4_000_000_000),
    (4, 11, 1_000_000_000, 4_164_000_000),
    (4, 50, 1_000_000_000, 6_792_000_000),
    (4, 99, 1_000_000_000, 7_980_000_000),
    (4, 100, 1_000_000_000, 8_000_000_000),
    (4, 101, 1_000_000_000, 8_016_000_000),
    (4, 4096, 1_000_000_000, 14_448_000_000),
    (4, 11, 1_300_000_000, 5_413_200_000),
    (4, 4096, 1_300_000_000, 18_782_400_000),
    (6, 11, 5_000_000_000, 31_230_000_000),
    (6, 1000, 5_000_000_000, 90_000_000_000),
    (3, 11, 50_000_000, 156_150_000),
    (3, 50, 200_000_000, 1_018_800_000),
]


@pytest.mark.parametrize(("mult", "n", "interval", "expected"), GO_SUSPICION_TIMEOUTS)
def test_suspicion_timeout_matches_go(
    mult: int, n: int, interval: int, expected: int
) -> None:
    assert ns(suspicion_timeout(mult, n, interval / 1e9)) == expected


def test_the_logarithm_is_cut_to_thousandths() -> None:
    # log10(11) = 1.04139...; the exact product would be 4.1655... s.
    assert 4 * math.log10(11) > 4.165
    assert ns(suspicion_timeout(4, 11, 1.0)) == 4_164_000_000


@pytest.mark.parametrize(
    ("name", "n", "low", "high", "k"),
    [
        ("lan", 10, 4.0, 24.0, 2),
        ("wan", 10, 30.0, 180.0, 4),
        ("local", 10, 3.0, 18.0, 1),
        ("lan", 3, 4.0, 24.0, 0),
        ("wan", 5, 30.0, 180.0, 0),
    ],
)
def test_profile_defaults(name: str, n: int, low: float, high: float, k: int) -> None:
    config = profile(name)
    minimum = suspicion_timeout(config.suspicion_mult, n, config.probe_interval)
    assert minimum == low
    assert config.suspicion_max_timeout_mult * minimum == high
    assert suspicion_k(config.suspicion_mult, n) == k


def test_k_needs_enough_other_members() -> None:
    # Ourselves and the suspect do not count towards the k confirmations.
    assert [suspicion_k(4, n) for n in range(1, 6)] == [0, 0, 0, 2, 2]
    assert [suspicion_k(6, n) for n in range(4, 8)] == [0, 0, 4, 4]


def deadline_after(k: int, low: float, high: float, confirmers: list[str]) -> float:
    timer = Suspicion("origin", k, low, high, now=0.0)
    for name in confirmers:
        timer.confirm(name, now=0.0)
    return timer.deadline


def test_confirmation_curve_with_k_3() -> None:
    # max - ln(c+1)/ln(4) * 28 s: c=1 gives 30 - 14, c=2 gives 30 - 22.1895...
    # floored to 7.810 s, and c=3 reaches the minimum.
    curve = [deadline_after(3, 2.0, 30.0, ["a", "b", "c"][:c]) for c in range(4)]
    assert [ns(d) for d in curve] == [30e9, 16e9, 7_810_000_000, 2e9]


@pytest.mark.parametrize(
    ("confirmations", "elapsed", "remaining"),
    [(0, 0.0, 30.0), (1, 2.0, 14.0), (2, 3.0, 4.81), (3, 4.0, -2.0)],
)
def test_remaining_time_as_in_gos_table(
    confirmations: int, elapsed: float, remaining: float
) -> None:
    timer = Suspicion("origin", 3, 2.0, 30.0, now=100.0)
    for name in ["a", "b", "c"][:confirmations]:
        assert timer.confirm(name, now=100.0 + elapsed)
    assert timer.remaining(100.0 + elapsed) == pytest.approx(remaining, abs=1e-9)
    assert timer.expired(100.0 + elapsed) is (remaining <= 0)


# (confirmations, k, min ns, max ns, Go's total timeout in ns)
GO_CONFIRMED_TIMEOUTS = [
    (1, 2, 4_000_000_000, 24_000_000_000, 11_381_000_000),
    (1, 4, 30_000_000_000, 180_000_000_000, 115_398_000_000),
    (2, 4, 30_000_000_000, 180_000_000_000, 77_609_000_000),
    (3, 4, 30_000_000_000, 180_000_000_000, 50_797_000_000),
    (2, 4, 7_996_000_000, 47_976_000_000, 20_685_000_000),
    (1, 2, 1_234_567_000, 7_407_402_000, 3_512_000_000),
    # The curve ends a fraction of a millisecond under the minimum, which wins.
    (2, 2, 1_234_567_000, 7_407_402_000, 1_234_567_000),
]


@pytest.mark.parametrize(("c", "k", "low", "high", "expected"), GO_CONFIRMED_TIMEOUTS)
def test_confirmed_timeouts_match_go(
    c: int, k: int, low: int, high: int, expected: int
) -> None:
    names = [f"peer{i}" for i in range(c)]
    assert ns(deadline_after(k, low / 1e9, high / 1e9, names)) == expected


def test_the_timer_starts_at_max_unrounded() -> None:
    assert ns(deadline_after(2, 1.234567, 7.407402, [])) == 7_407_402_000


def test_who_counts_as_a_confirmation() -> None:
    # Go's timer test: k=3, 0.5 s to 2 s. Its table writes 810 ms for two
    # confirmations because it measures with 25 ms of slack; the formula's
    # exact value is 2 - 1.5 * ln(3)/ln(4) = 0.8113 s, floored to 811 ms.
    timer = Suspicion("me", 3, 0.5, 2.0, now=0.0)
    assert ns(timer.deadline) == 2_000_000_000
    assert not timer.confirm("me", now=0.025)
    assert timer.confirm("foo", now=0.05)
    assert ns(timer.deadline) == 1_250_000_000
    assert not timer.confirm("foo", now=0.075)
    assert timer.confirm("bar", now=0.1)
    assert ns(timer.deadline) == 811_000_000
    assert timer.confirm("baz", now=0.125)
    assert not timer.confirm("zoo", now=0.15)
    assert timer.confirmations == 3
    assert ns(timer.deadline) == 500_000_000


def test_without_k_the_timer_is_min_and_ignores_confirmations() -> None:
    timer = Suspicion("me", 0, 0.025, 30.0, now=5.0)
    assert not timer.confirm("foo", now=5.0)
    assert timer.deadline == pytest.approx(5.025)
    assert not timer.expired(5.02)
    assert timer.expired(5.025)


def test_a_late_confirmation_puts_the_deadline_in_the_past() -> None:
    timer = Suspicion("me", 1, 0.1, 30.0, now=0.0)
    assert not timer.expired(0.2)
    assert timer.confirm("foo", now=0.2)
    assert timer.expired(0.2)
    assert timer.remaining(0.2) == pytest.approx(-0.1)


@given(
    k=st.integers(1, 8),
    low_ms=st.integers(1, 60_000),
    mult=st.integers(1, 10),
    order=st.permutations([f"peer{i}" for i in range(10)]),
)
def test_deadline_only_moves_in_and_stays_within_bounds(
    k: int, low_ms: int, mult: int, order: list[str]
) -> None:
    low, high = low_ms / 1000, mult * low_ms / 1000
    timer = Suspicion("origin", k, low, high, now=0.0)
    deadlines = [timer.deadline]
    for name in order:
        timer.confirm(name, now=0.0)
        deadlines.append(timer.deadline)
    assert deadlines == sorted(deadlines, reverse=True)
    assert deadlines[0] == pytest.approx(high)
    assert deadlines[-1] == pytest.approx(low)
    assert timer.confirmations == min(k, len(order))

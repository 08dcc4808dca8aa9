"""The transmit-limited broadcast queue: memberlist's order, limits and callbacks.

The scenarios retell memberlist's queue tests (queue_test.go) with our own
messages; the property tests run random sequences against ``NaiveQueue``, a
plain transcription of the rules that re-sorts everything on every step.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.engine.broadcast import TransmitLimitedQueue, retransmit_limit
from serfcast.errors import LocalProtocolError

# ---------------------------------------------------------------------------
# retransmit_limit


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 0), (1, 4), (9, 4), (10, 8), (99, 8), (100, 12), (999, 12), (1000, 16)],
)
def test_retransmit_limit_lan(n: int, expected: int) -> None:
    assert retransmit_limit(4, n) == expected


def test_retransmit_limit_go_example() -> None:
    assert retransmit_limit(3, 99) == 6


@given(st.integers(1, 10**12), st.integers(1, 10))
def test_retransmit_limit_is_mult_times_ceil_log10(n: int, mult: int) -> None:
    scale = retransmit_limit(mult, n) // mult
    assert 10 ** (scale - 1) < n + 1 <= 10**scale


def test_retransmit_limit_refuses_negative_counts() -> None:
    with pytest.raises(LocalProtocolError, match="negative"):
        retransmit_limit(4, -1)


# ---------------------------------------------------------------------------
# Scenarios


class Finishes:
    """Records which on_finished callbacks ran, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def cb(self, label: str) -> Callable[[], None]:
        return lambda: self.log.append(label)


def fixed(n: int, mult: int = 1) -> TransmitLimitedQueue:
    return TransmitLimitedQueue(mult, lambda: n)


def test_same_size_goes_newest_first_and_a_name_replaces() -> None:
    finishes = Finishes()
    q = fixed(1)
    for label in ["alpha", "bravo", "chuck"]:
        q.queue(label.encode(), name=label, on_finished=finishes.cb(label))
    q.queue(b"ALPHA", name="alpha", on_finished=finishes.cb("ALPHA"))
    assert len(q) == 3
    assert finishes.log == ["alpha"]
    assert (q.invalidated, q.dropped, q.pruned) == (1, 1, 0)
    # One node, one transmit each: everything goes out once and is finished.
    assert q.get_broadcasts(1, 100) == [b"ALPHA", b"chuck", b"bravo"]
    assert finishes.log == ["alpha", "ALPHA", "chuck", "bravo"]
    assert len(q) == 0


def test_unnamed_and_empty_named_messages_never_replace() -> None:
    q = fixed(1)
    q.queue(b"one")
    q.queue(b"two")
    q.queue(b"three", name="")
    q.queue(b"four", name="")
    assert len(q) == 4
    assert q.invalidated == 0


def test_a_whole_packet_fits_exactly_and_overhead_counts() -> None:
    # Four 20-byte messages, six transmits each (mult 3, 10 nodes).
    q = fixed(10, mult=3)
    for i in range(4):
        q.queue(f"message number {i:05}".encode(), name=str(i))
    assert len(q.get_broadcasts(2, 88)) == 4  # 4 * (20 + 2) == 88
    assert len(q.get_broadcasts(3, 88)) == 3  # a fourth would need 92
    assert len(q) == 4


def test_transmit_limit_retires_messages_tier_by_tier() -> None:
    # mult 1 at 10 nodes: two transmits each. 17-byte messages, overhead 3:
    # 20 bytes apiece, so three fit in 70 bytes.
    finishes = Finishes()
    q = fixed(10)
    for label in "ABCD":
        message = f"{label} is for a gossip".encode()
        assert len(message) == 17
        q.queue(message, on_finished=finishes.cb(label))
    first = q.get_broadcasts(3, 70)
    assert [m[:1] for m in first] == [b"D", b"C", b"B"]
    assert finishes.log == []
    # A is alone in the fresh tier; then D and C make their second trip.
    second = q.get_broadcasts(3, 70)
    assert [m[:1] for m in second] == [b"A", b"D", b"C"]
    assert finishes.log == ["D", "C"]
    third = q.get_broadcasts(3, 70)
    assert [m[:1] for m in third] == [b"B", b"A"]
    assert finishes.log == ["D", "C", "B", "A"]
    assert q.get_broadcasts(3, 70) == []
    assert len(q) == 0
    assert q.dropped == 0


def test_prune_keeps_the_newest() -> None:
    finishes = Finishes()
    q = fixed(10)
    for label in "ABCD":
        q.queue(f"{label} is for gossip".encode(), on_finished=finishes.cb(label))
    q.prune(2)
    assert len(q) == 2
    assert finishes.log == ["A", "B"]
    assert (q.pruned, q.dropped) == (2, 2)
    assert [m[:1] for m in q.get_broadcasts(0, 1000)] == [b"D", b"C"]


def test_prune_drops_the_most_repeated_before_the_oldest() -> None:
    q = fixed(100)  # three transmits each
    q.queue(b"old")
    q.get_broadcasts(0, 100)
    q.queue(b"new but short")
    q.queue(b"x")
    q.prune(2)
    assert q.get_broadcasts(0, 100) == [b"new but short", b"x"]
    q.prune(0)
    assert len(q) == 0
    with pytest.raises(LocalProtocolError, match="max_retain"):
        q.prune(-1)


def test_fewer_transmits_go_first_then_longer_then_newer() -> None:
    q = fixed(1000, mult=5)  # 20 transmits: nothing retires here
    q.queue(b"sent once already, and long")
    q.get_broadcasts(0, 100)
    q.queue(b"mid-size")
    q.queue(b"tiny")
    q.queue(b"ten bytes!")
    q.queue(b"10 bytes !")
    assert q.get_broadcasts(0, 1000) == [
        b"10 bytes !",
        b"ten bytes!",
        b"mid-size",
        b"tiny",
        b"sent once already, and long",
    ]


def test_the_largest_that_fits_is_taken_and_smaller_ones_fill_the_rest() -> None:
    q = fixed(1000, mult=5)
    for size in [40, 25, 10, 30, 5]:
        q.queue(bytes(size))
    # 50 bytes, overhead 2: 40 uses 42, and of the rest only 5 fits in 6.
    assert [len(m) for m in q.get_broadcasts(2, 50)] == [40, 5]
    # 60 bytes: the fresh 30 (32 used), then the fresh 25 (59 used).
    assert [len(m) for m in q.get_broadcasts(2, 60)] == [30, 25]
    # The last fresh one, 10 (12 used), then the longest once-sent one that
    # fits in 46, which is the 40; nothing fits in the 4 bytes left.
    assert [len(m) for m in q.get_broadcasts(2, 60)] == [10, 40]


def test_a_tier_without_room_falls_through_to_the_next() -> None:
    q = fixed(1000, mult=5)
    q.queue(b"s")
    q.get_broadcasts(0, 10)  # "s" moves to tier 1
    q.get_broadcasts(0, 10)  # and to tier 2
    q.queue(b"far too long for the packet")
    assert q.get_broadcasts(0, 5) == [b"s"]


def test_no_room_no_messages() -> None:
    q = fixed(10)
    q.queue(b"")
    assert q.get_broadcasts(2, 2) == []  # free space must stay positive
    assert q.get_broadcasts(2, 3) == [b""]  # an empty message costs its overhead


def test_an_empty_cluster_still_sends_each_message_once() -> None:
    finishes = Finishes()
    q = fixed(0, mult=4)
    q.queue(b"hello", on_finished=finishes.cb("hello"))
    assert q.get_broadcasts(0, 100) == [b"hello"]
    assert finishes.log == ["hello"]
    assert len(q) == 0


def test_the_limit_follows_the_cluster_size() -> None:
    nodes = [10]
    q = TransmitLimitedQueue(1, lambda: nodes[0])
    q.queue(b"grows")
    assert q.get_broadcasts(0, 100) == [b"grows"]
    nodes[0] = 100  # three transmits now instead of two
    assert q.get_broadcasts(0, 100) == [b"grows"]
    assert len(q) == 1
    assert q.get_broadcasts(0, 100) == [b"grows"]
    assert len(q) == 0


def test_reset_finishes_everything() -> None:
    finishes = Finishes()
    q = fixed(10)
    q.queue(b"a", name="a", on_finished=finishes.cb("a"))
    q.queue(b"b", on_finished=finishes.cb("b"))
    q.reset()
    assert len(q) == 0
    assert sorted(finishes.log) == ["a", "b"]
    assert q.dropped == 2
    q.queue(b"a again", name="a")
    assert q.invalidated == 0  # the name was forgotten with the message


def test_callbacks_may_queue_more() -> None:
    q = fixed(1)
    q.queue(b"first", name="n", on_finished=lambda: q.queue(b"follow-up"))
    q.queue(b"second", name="n")  # replaces, and the callback queues
    assert len(q) == 2
    assert q.get_broadcasts(0, 100) == [b"follow-up", b"second"]


# ---------------------------------------------------------------------------
# Against a naive transcription


@dataclass
class Record:
    id: int
    message: bytes
    name: str | None
    transmits: int = 0


@dataclass
class NaiveQueue:
    mult: int
    nodes: int
    items: list[Record] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    def queue(self, record: Record) -> None:
        old = [r for r in self.items if record.name and r.name == record.name]
        self.items = [r for r in self.items if r not in old]
        self.items.append(record)
        self.finished += [r.id for r in old]

    def get(self, overhead: int, limit: int) -> list[bytes]:
        if not self.items:
            return []
        top = max(r.transmits for r in self.items)
        tier, used, picked = min(r.transmits for r in self.items), 0, []
        while tier <= top and limit - used - overhead > 0:
            free = limit - used - overhead
            fits = [r for r in self.items if r.transmits == tier]
            fits = [r for r in fits if len(r.message) <= free]
            if not fits:
                tier += 1
                continue
            best = max(fits, key=lambda r: (len(r.message), r.id))
            self.items.remove(best)
            picked.append(best)
            used += overhead + len(best.message)
        cap = retransmit_limit(self.mult, self.nodes)
        for r in picked:
            if r.transmits + 1 >= cap:
                self.finished.append(r.id)
            else:
                r.transmits += 1
                self.items.append(r)
        return [r.message for r in picked]

    def prune(self, keep: int) -> None:
        self.items.sort(key=lambda r: (r.transmits, -len(r.message), -r.id))
        self.finished += [r.id for r in reversed(self.items[keep:])]
        del self.items[keep:]


NAMES = [None, "", "a", "b", "c"]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("queue"), st.integers(0, len(NAMES) - 1), st.integers(0, 40)),
        st.tuples(st.just("get"), st.integers(0, 5), st.integers(0, 150)),
        st.tuples(st.just("prune"), st.integers(0, 8), st.just(0)),
        st.tuples(st.just("nodes"), st.integers(0, 150), st.just(0)),
    )
)


@given(st.integers(0, 3), steps)
def test_matches_the_naive_queue(mult: int, ops: list[tuple[str, int, int]]) -> None:
    model = NaiveQueue(mult, nodes=5)
    q = TransmitLimitedQueue(mult, lambda: model.nodes)
    finished: list[int] = []
    ids = itertools.count(1)
    for op, a, b in ops:
        if op == "queue":
            record_id = next(ids)
            message = record_id.to_bytes(4, "big") + b"." * b
            model.queue(Record(record_id, message, NAMES[a]))
            q.queue(message, name=NAMES[a], on_finished=record(finished, record_id))
        elif op == "get":
            assert q.get_broadcasts(a, b) == model.get(a, b)
        elif op == "prune":
            q.prune(a)
            model.prune(a)
        else:
            model.nodes = a
        assert finished == model.finished
        assert len(q) == len(model.items)


def record(log: list[int], record_id: int) -> Callable[[], None]:
    return lambda: log.append(record_id)


@given(
    st.integers(0, 200),
    st.integers(0, 4),
    st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 60)), max_size=30),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 200)), max_size=60),
)
def test_packet_budget_transmit_cap_and_one_finish_each(
    nodes: int,
    mult: int,
    queued: list[tuple[str | None, int]],
    calls: list[tuple[int, int]],
) -> None:
    q = TransmitLimitedQueue(mult, lambda: nodes)
    finishes: Counter[bytes] = Counter()
    messages = [
        i.to_bytes(2, "big") + bytes(size) for i, (_, size) in enumerate(queued)
    ]
    for message, (name, _) in zip(messages, queued, strict=True):
        q.queue(message, name=name, on_finished=count(finishes, message))
    # A message survives unless a later one took its name.
    last_by_name = {name: m for m, (name, _) in zip(messages, queued, strict=True)}
    survivors = {m for m, (name, _) in zip(messages, queued, strict=True) if not name}
    survivors |= {m for name, m in last_by_name.items() if name}

    sent: Counter[bytes] = Counter()
    for overhead, limit in calls:
        batch = q.get_broadcasts(overhead, limit)
        assert sum(len(m) + overhead for m in batch) <= limit
        sent.update(batch)
    while batch := q.get_broadcasts(0, 10_000):
        sent.update(batch)

    # Even an empty cluster sends each message once.
    cap = max(1, retransmit_limit(mult, nodes))
    assert sent == Counter(dict.fromkeys(survivors, cap))
    assert finishes == Counter(messages)
    assert q.invalidated == q.dropped == len(messages) - len(survivors)


def count(counts: Counter[bytes], key: bytes) -> Callable[[], None]:
    def bump() -> None:
        counts[key] += 1

    return bump

"""The transmit-limited broadcast queue that gossip piggybacks on.

Every message a node wants the cluster to hear waits here until it has been
handed out a fixed number of times, the *retransmit limit*, which grows with
the number of digits in the cluster size (:func:`retransmit_limit`). Each
packet the engine sends asks the queue for whatever fits in its spare bytes.

Order decides what goes first when space is short. Messages are ranked by

1. how often they have been handed out (fewest first), so fresh news spreads
   before old news is repeated;
2. length, longest first, so big messages are not starved by small ones;
3. age, newest first.

:meth:`TransmitLimitedQueue.get_broadcasts` walks the ranks tier by tier (one
tier per transmit count). Within a tier it keeps taking the longest message
that still fits, each costing its length plus a fixed per-message overhead,
until nothing in the tier fits; then it moves to the next tier. Picked messages
leave the queue during the walk and come back one tier up only afterwards, so
a message is never picked twice for the same packet. A message whose transmit
count reaches the limit is finished instead of coming back.

A message may carry a *name*. Queuing another message under the same name
replaces the older one, whatever either says: memberlist names its alive,
suspect and dead messages after the node they are about, so only the latest
word about a node circulates. (Its refuting alive is named after the node's
address text instead, so it does not replace news queued under the node's
name; the caller chooses the key.) Unnamed messages never replace anything,
which is how Serf queues user events.

Every message leaves the queue exactly once -- sent out, replaced, pruned or
reset -- and its ``on_finished`` callback runs then, once. Callbacks run after
the queue is consistent again, so they may queue new messages.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from serfcast.errors import LocalProtocolError

__all__ = ["TransmitLimitedQueue", "retransmit_limit"]

Finished = Callable[[], None]


def retransmit_limit(mult: int, n: int) -> int:
    """How many times a message is handed out: ``mult * ceil(log10(n + 1))``.

    ``ceil(log10(n + 1))`` is the number of decimal digits of ``n`` (0 for no
    nodes), counted exactly here instead of through floating point.
    """
    if n < 0:
        raise LocalProtocolError(f"node count must not be negative, got {n}")
    return mult * len(str(n)) if n else 0


@dataclass(eq=False, slots=True)
class _Queued:
    message: bytes
    name: str | None
    on_finished: Finished | None
    id: int
    transmits: int = 0


def _rank(item: _Queued) -> tuple[int, ...]:
    return (item.transmits, -len(item.message), -item.id)


class TransmitLimitedQueue:
    """Messages waiting to be piggybacked, each sent a bounded number of times.

    ``num_nodes`` is asked for the cluster size on every
    :meth:`get_broadcasts`, so the limit follows the cluster as it grows.
    """

    def __init__(self, retransmit_mult: int, num_nodes: Callable[[], int]) -> None:
        self.retransmit_mult = retransmit_mult
        self._num_nodes = num_nodes
        self._order: list[_Queued] = []  # sorted by _rank
        self._named: dict[str, _Queued] = {}
        # Go restarts its ids whenever the queue runs empty, which can make an
        # older message outrank a newer one and, when rank keys then collide,
        # silently overwrite a queued message. Counting on forever avoids both.
        self._next_id = 1
        #: Messages replaced by a newer one under the same name.
        self.invalidated = 0
        #: Messages thrown away by :meth:`prune`.
        self.pruned = 0
        #: Messages that left before reaching their transmit limit, for any
        #: reason: replaced, pruned or reset.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._order)

    def queue(
        self,
        message: bytes,
        *,
        name: str | None = None,
        on_finished: Finished | None = None,
    ) -> None:
        """Add ``message``; a non-empty ``name`` replaces the message queued
        under that name, and ``on_finished`` runs once when it leaves."""
        item = _Queued(message, name or None, on_finished, self._next_id)
        self._next_id += 1
        old = self._named.get(item.name) if item.name else None
        if old is not None:
            self._remove(old)
            self.invalidated += 1
            self.dropped += 1
        self._insert(item)
        if old is not None:
            _finish(old)

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        """Messages for one packet: each costs ``len + overhead`` and together
        they cost at most ``limit`` bytes."""
        if not self._order:
            return []
        transmit_limit = retransmit_limit(self.retransmit_mult, self._num_nodes())
        picked = self._pick(overhead, limit)
        done = [item for item in picked if item.transmits + 1 >= transmit_limit]
        for item in picked:
            if item.transmits + 1 < transmit_limit:
                item.transmits += 1
                self._insert(item)
        for item in done:
            _finish(item)
        return [item.message for item in picked]

    def prune(self, max_retain: int) -> None:
        """Drop messages until at most ``max_retain`` remain, lowest-ranked
        first: the most repeated, then the shortest, then the oldest."""
        if max_retain < 0:
            raise LocalProtocolError(f"max_retain must be 0 or more, got {max_retain}")
        while len(self._order) > max_retain:
            item = self._order[-1]
            self._remove(item)
            self.pruned += 1
            self.dropped += 1
            _finish(item)

    def reset(self) -> None:
        """Drop every message (each one's ``on_finished`` still runs)."""
        items, self._order, self._named = self._order, [], {}
        self.dropped += len(items)
        for item in items:
            _finish(item)

    def _pick(self, overhead: int, limit: int) -> list[_Queued]:
        """Take messages out tier by tier, the longest that fits first."""
        picked: list[_Queued] = []
        used = 0
        tier = self._order[0].transmits
        while (free := limit - used - overhead) > 0:
            # The first message ranked at or after (tier, -free) is the longest
            # and then newest one in this tier that fits, if it is in the tier.
            probe: tuple[int, ...] = (tier, -free)
            index = bisect.bisect_left(self._order, probe, key=_rank)
            if index == len(self._order):
                break
            item = self._order[index]
            if item.transmits != tier:
                # Nothing in this tier fits, and no tier in between has
                # anything in it; carry on where this message sits.
                tier = item.transmits
                continue
            del self._order[index]
            self._forget_name(item)
            picked.append(item)
            used += overhead + len(item.message)
        return picked

    def _insert(self, item: _Queued) -> None:
        bisect.insort(self._order, item, key=_rank)
        if item.name:
            self._named[item.name] = item

    def _remove(self, item: _Queued) -> None:
        index = bisect.bisect_left(self._order, _rank(item), key=_rank)
        del self._order[index]
        self._forget_name(item)

    def _forget_name(self, item: _Queued) -> None:
        if item.name and self._named.get(item.name) is item:
            del self._named[item.name]


def _finish(item: _Queued) -> None:
    if item.on_finished is not None:
        item.on_finished()

"""Virtual time: one heap of everything that will happen, run in order.

Entries are ordered by time, then by the order they were scheduled, so two
things due at the same instant always run in the same order. An engine's
wake-up carries the engine's node and a token; when the engine names a new
deadline the node's token moves on, and the old entry, still in the heap, is
skipped as stale instead of being searched out and removed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Final

from serfcast.errors import SerfcastError
from serfcast.testing._node import SimNode

__all__ = ["DEFAULT_MAX_STEPS", "Scheduler", "SimulationLimitExceeded"]

#: The default cap on steps (events run) in one run call.
DEFAULT_MAX_STEPS: Final = 10_000_000

_Entry = tuple[float, int, Callable[[], object], SimNode | None, int]


class SimulationLimitExceeded(SerfcastError):
    """A run reached its virtual-time or step limit before it was done."""


class Scheduler:
    """The virtual clock and what is due when."""

    def __init__(self, start: float) -> None:
        self.now = start
        self._heap: list[_Entry] = []
        self._seq = 0

    def at(
        self,
        when: float,
        callback: Callable[[], object],
        owner: SimNode | None = None,
        token: int = 0,
    ) -> None:
        """Run ``callback`` at ``when`` (or now, if that has passed); an
        ``owner``'s entry only runs if its wake token is still ``token``."""
        self._seq += 1
        entry = (max(when, self.now), self._seq, callback, owner, token)
        heapq.heappush(self._heap, entry)

    def run(self, until: float, max_steps: int) -> int:
        """Run every live entry due by ``until``; returns how many ran."""
        steps = 0
        while (entry := self._pop_live(until)) is not None:
            if steps >= max_steps:
                heapq.heappush(self._heap, entry)
                raise SimulationLimitExceeded(
                    f"more than {max_steps} events before t={until} (t={self.now})"
                )
            self.now = entry[0]
            entry[2]()
            steps += 1
        return steps

    def step(self) -> bool:
        """Run the next live entry; False if there is none."""
        entry = self._pop_live(float("inf"))
        if entry is None:
            return False
        self.now = entry[0]
        entry[2]()
        return True

    def idle(self) -> bool:
        """Whether nothing but stale wake-ups is left."""
        while self._heap and _is_stale(self._heap[0]):
            heapq.heappop(self._heap)
        return not self._heap

    def _pop_live(self, until: float) -> _Entry | None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            entry = heapq.heappop(heap)
            if not _is_stale(entry):
                return entry
        return None


def _is_stale(entry: _Entry) -> bool:
    owner = entry[3]
    return owner is not None and (not owner.alive or owner.wake_token != entry[4])

"""How the simulated network treats traffic between two nodes.

A :class:`LinkConfig` says what happens to traffic from one node to another:
datagrams are lost, duplicated, delayed and held back at random; stream
segments are never lost but wait for TCP-like retransmissions on a lossy link.
:class:`Partitions` records which groups of nodes cannot reach each other at
all. Every random choice is drawn from the ``random.Random`` passed in, so a
seeded network makes the same choices every run.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from serfcast.errors import LocalProtocolError

__all__ = ["LinkConfig", "Partitions", "sample_datagram", "sample_segment"]

#: The first TCP retransmission timeout; it doubles with each further loss.
INITIAL_RTO: Final = 0.2
#: After this many lost transmissions in a row a stream segment is given up on
#: (the dialler then times out), as a real TCP stack eventually gives up.
MAX_RETRANSMITS: Final = 8


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """What happens to traffic sent from one node to another.

    * ``loss``: chance that a datagram is lost (and that a stream segment needs
      a retransmission).
    * ``duplicate``: chance that a datagram that gets through arrives twice.
    * ``delay``: ``(min, max)`` one-way delay in seconds, drawn uniformly.
    * ``reorder``: chance that a datagram is held back for an extra delay drawn
      between the maximum delay and twice it, so later datagrams overtake it.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.001, 0.005)
    reorder: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise LocalProtocolError(f"{name} must be between 0 and 1, got {value}")
        low, high = self.delay
        if not 0.0 <= low <= high:
            raise LocalProtocolError(
                f"delay must be (min, max) with 0 <= min <= max, got {self.delay}"
            )

    def replace(self, **changes: object) -> LinkConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def sample_datagram(rng: random.Random, link: LinkConfig) -> list[float]:
    """The delay of every copy of one datagram that arrives; empty if it is lost."""
    if rng.random() < link.loss:
        return []
    copies = 2 if rng.random() < link.duplicate else 1
    return [_datagram_delay(rng, link) for _ in range(copies)]


def _datagram_delay(rng: random.Random, link: LinkConfig) -> float:
    low, high = link.delay
    delay = rng.uniform(low, high)
    if link.reorder and rng.random() < link.reorder:
        delay += rng.uniform(high, 2 * high)
    return delay


def sample_segment(rng: random.Random, link: LinkConfig) -> float | None:
    """How long one stream segment takes, or ``None`` if TCP would give up.

    Each lost transmission costs a retransmission timeout, starting at
    :data:`INITIAL_RTO` and doubling, like a real stack's back-off.
    """
    delay = rng.uniform(*link.delay)
    rto = INITIAL_RTO
    for _ in range(MAX_RETRANSMITS):
        if not (link.loss and rng.random() < link.loss):
            return delay
        delay += rto
        rto *= 2
    return None


class Partitions:
    """Pairs of node groups that cannot reach each other, in either direction."""

    def __init__(self) -> None:
        self._cuts: list[tuple[frozenset[str], frozenset[str]]] = []

    def __bool__(self) -> bool:
        return bool(self._cuts)

    def cut(self, group_a: Iterable[str], group_b: Iterable[str]) -> None:
        """Stop all traffic between any node of ``group_a`` and any of ``group_b``."""
        a, b = frozenset(group_a), frozenset(group_b)
        if a & b:
            raise LocalProtocolError(
                f"a node cannot be on both sides of a partition: {sorted(a & b)}"
            )
        self._cuts.append((a, b))

    def heal(self) -> None:
        """Remove every partition."""
        self._cuts.clear()

    def blocked(self, x: str, y: str) -> bool:
        """Whether traffic between ``x`` and ``y`` is cut."""
        return any((x in a and y in b) or (x in b and y in a) for a, b in self._cuts)

"""The local node's own health score (memberlist's "awareness").

A node that is slow to answer -- overloaded, paused, or behind a lossy link --
would wrongly suspect healthy peers if it kept probing at full speed. So it
keeps a score: 0 when all is well, raised when its probes fail in ways that
point at itself (missing nacks from helpers, having to refute a suspicion about
itself) and lowered by each successful probe. The score stretches the probe
interval and probe timeout by ``score + 1``, up to ``max_multiplier`` times.
"""

from __future__ import annotations

from serfcast.errors import LocalProtocolError

__all__ = ["Awareness"]


class Awareness:
    """A health score between 0 (healthy) and ``max_multiplier - 1``."""

    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise LocalProtocolError(
                f"awareness_max_multiplier must be 1 or more, got {max_multiplier}"
            )
        self.max_multiplier = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        """The current score; higher means less healthy."""
        return self._score

    def apply_delta(self, delta: int) -> None:
        """Move the score by ``delta``, stopping at either end of its range."""
        self._score = min(max(self._score + delta, 0), self.max_multiplier - 1)

    def scale_timeout(self, timeout: float) -> float:
        """``timeout`` stretched by the score: ``timeout * (score + 1)``."""
        return timeout * (self._score + 1)

"""How long a suspected node has to refute before it is declared dead.

When a node is first suspected the engine opens a :class:`Suspicion`. Its
deadline starts far out, at ``max``, and every other member that independently
reports the same suspicion pulls it in, along a logarithmic curve that reaches
``min`` after ``k`` such confirmations::

    timeout(c) = max - ln(c + 1) / ln(k + 1) * (max - min)

floored to whole milliseconds and never below ``min``. The timeout is measured
from when the suspicion began, so a late confirmation can put the deadline in
the past: the node is then dead at once. The member that raised the suspicion
does not count (its own message may come back to it through gossip), nor does
anyone twice, nor anything past the ``k``-th confirmation. With ``k`` below 1
no confirmations are expected and the deadline is ``min`` from the start.

``min`` comes from :func:`suspicion_timeout`, ``max`` is a multiple of it, and
``k`` from :func:`suspicion_k`; all three follow memberlist's arithmetic to the
nanosecond, so a Go peer and serfcast give up on a silent node at the same
moment. Nothing here keeps time: the engine reads :attr:`Suspicion.deadline`
and asks :meth:`Suspicion.expired`.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "suspicion_k", "suspicion_timeout"]

_NS_PER_SECOND = 1_000_000_000
_NS_PER_MS = 1_000_000
# 1/ln(10) rounded once, the way Go's compiler folds its exact constant; Go's
# log10 is ln(x) times this, and serfcast truncates the result as Go does.
_INV_LN10 = 0.43429448190325182765112891891660508229439700580366656611445378


def suspicion_timeout(suspicion_mult: int, n: int, probe_interval: float) -> float:
    """The shortest suspicion, in seconds, for a cluster of ``n`` nodes:
    ``suspicion_mult * max(1, log10(n)) * probe_interval``.

    The logarithm is cut to thousandths and the product to whole nanoseconds,
    exactly as memberlist computes it.
    """
    scale = max(1.0, math.log(max(1.0, float(n))) * _INV_LN10)
    timeout = suspicion_mult * int(scale * 1000) * _to_ns(probe_interval) // 1000
    return timeout / _NS_PER_SECOND


def suspicion_k(suspicion_mult: int, n: int) -> int:
    """How many confirmations drive a suspicion down to its minimum.

    Two short of the multiplier, or none when the cluster lacks that many
    members besides ourselves and the suspect.
    """
    k = suspicion_mult - 2
    return 0 if n - 2 < k else k


class Suspicion:
    """The countdown for one suspected node."""

    def __init__(
        self,
        from_node: str,
        k: int,
        min_timeout: float,
        max_timeout: float,
        now: float,
    ) -> None:
        self.k = k
        self.start = now
        self._min = _to_ns(min_timeout)
        self._max = _to_ns(max_timeout)
        self._confirmations = 0
        # The original suspecter is in the set from the start so that its own
        # message echoing back never counts.
        self._confirmed_by = {from_node}

    @property
    def confirmations(self) -> int:
        """Independent confirmations counted so far (at most ``k``)."""
        return self._confirmations

    def confirm(self, from_node: str, now: float) -> bool:
        """Count ``from_node``'s report; True if it was new information.

        The deadline stays anchored at the start, so ``now`` does not move it;
        a confirmation after the deadline still counts, as in memberlist.
        """
        if self._confirmations >= self.k or from_node in self._confirmed_by:
            return False
        self._confirmed_by.add(from_node)
        self._confirmations += 1
        return True

    @property
    def deadline(self) -> float:
        """When the suspect is declared dead unless it refutes first."""
        return self.start + self._timeout_ns() / _NS_PER_SECOND

    def remaining(self, now: float) -> float:
        """Seconds left until the deadline; zero or less means it has passed."""
        return self.deadline - now

    def expired(self, now: float) -> bool:
        """Whether the deadline has been reached."""
        return now >= self.deadline

    def _timeout_ns(self) -> int:
        if self.k < 1:
            return self._min
        if self._confirmations == 0:
            return self._max
        return _confirmed_timeout_ns(self._confirmations, self.k, self._min, self._max)


def _confirmed_timeout_ns(confirmations: int, k: int, min_ns: int, max_ns: int) -> int:
    """The total timeout after ``confirmations`` (1 or more) out of ``k``, in
    nanoseconds from the start: the curve in the module docstring."""
    fraction = math.log(confirmations + 1.0) / math.log(k + 1.0)
    raw = _seconds(max_ns) - fraction * (_seconds(max_ns) - _seconds(min_ns))
    return max(min_ns, math.floor(1000.0 * raw) * _NS_PER_MS)


def _to_ns(seconds: float) -> int:
    return round(seconds * _NS_PER_SECOND)


def _seconds(ns: int) -> float:
    # Whole seconds and the nanosecond rest converted apart, which is how Go
    # turns a duration into float seconds; the last bit can differ from ns/1e9.
    whole, rest = divmod(ns, _NS_PER_SECOND)
    return whole + rest / 1e9

"""What firing returns, and the errors when no seed gives us the pool's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serfcast.errors import SerfcastError

__all__ = ["FireResult", "NoSeedError", "SeedFailure", "WrongKeyError"]


@dataclass(frozen=True, slots=True)
class FireResult:
    """What was fired, at which Lamport time, and who was sent it.

    ``event_id`` is the Consul event's ID (None for a plain Serf event);
    ``serf_name`` is the name on the wire (``consul:event:`` + ``name`` for a
    Consul event). ``tcp`` and ``udp`` name the members that were handed the
    event directly; gossip takes it from them to the rest. ``members`` counts
    the alive members the seed reported. ``member`` is the name we joined
    under when firing as a member (then ``tcp`` and ``udp`` are empty: our
    own gossip carried the event).
    """

    event_id: str | None
    name: str
    serf_name: str
    ltime: int
    seed: str
    members: int
    tcp: tuple[str, ...]
    udp: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the result."""
        return {
            "id": self.event_id,
            "name": self.name,
            "serf_name": self.serf_name,
            "ltime": self.ltime,
            "seed": self.seed,
            "members": self.members,
            "tcp": list(self.tcp),
            "udp": list(self.udp),
            "warnings": list(self.warnings),
            "member": self.member,
        }


@dataclass(frozen=True, slots=True)
class SeedFailure:
    """Why one seed gave us no state; ``key_problem`` blames the gossip key."""

    seed: str
    reason: str
    key_problem: bool = False


class NoSeedError(SerfcastError):
    """No seed answered the push/pull, so nothing was sent."""

    def __init__(self, failures: Sequence[SeedFailure]) -> None:
        self.failures = tuple(failures)
        super().__init__(f"{self._headline()}, so nothing was sent: {self._list()}")

    def _headline(self) -> str:
        return "no seed answered"

    def _list(self) -> str:
        text = "; ".join(f"{f.seed}: {f.reason}" for f in self.failures)
        if any("refused" in f.reason for f in self.failures):
            text += (
                " (Consul agents gossip on port 8301, serf agents on 7946 unless "
                "told otherwise: give the port as host:port)"
            )
        return text

    def __reduce__(self) -> tuple[type[NoSeedError], tuple[tuple[SeedFailure, ...]]]:
        return type(self), (self.failures,)


class WrongKeyError(NoSeedError):
    """Seeds were reached but none could read our request: the gossip key differs."""

    def _headline(self) -> str:
        return "no seed could decrypt our request (check the gossip key and label)"

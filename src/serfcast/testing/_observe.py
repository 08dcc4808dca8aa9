"""Watching what simulated engines see: user messages and member states."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter

from serfcast.engine.delegate import Delegate
from serfcast.engine.nodes import Node, NodeState

__all__ = ["MembershipChange", "MembershipRecorder", "ObservingDelegate"]

#: Called with the receiving node's name, the payload and the virtual time.
UserMessageHook = Callable[[str, bytes, float], None]


class ObservingDelegate:
    """Passes every call to the application's delegate, reporting user messages
    to the network on the way."""

    def __init__(
        self, inner: Delegate, on_message: Callable[[bytes, float], None]
    ) -> None:
        self.inner = inner
        self._on_message = on_message

    def node_meta(self, limit: int) -> bytes:
        return self.inner.node_meta(limit)

    def notify_msg(self, payload: bytes, now: float) -> None:
        self._on_message(payload, now)
        self.inner.notify_msg(payload, now)

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        return self.inner.get_broadcasts(overhead, limit)

    def local_state(self, join: bool) -> bytes:
        return self.inner.local_state(join)

    def merge_remote_state(self, state: bytes, join: bool, now: float) -> None:
        self.inner.merge_remote_state(state, join, now)

    def ack_payload(self) -> bytes | None:
        return self.inner.ack_payload()

    def notify_join(self, node: Node, now: float) -> None:
        self.inner.notify_join(node, now)

    def notify_leave(self, node: Node, now: float) -> None:
        self.inner.notify_leave(node, now)

    def notify_update(self, node: Node, now: float) -> None:
        self.inner.notify_update(node, now)

    def notify_conflict(self, existing: Node, other: Node, now: float) -> None:
        self.inner.notify_conflict(existing, other, now)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """``observer`` saw ``subject`` go from ``old`` to ``new`` at ``time``.

    ``old`` is ``None`` when the subject was not in the observer's table before;
    ``new`` is ``None`` when it was removed (reaped). ``incarnation`` is the
    subject's incarnation as the observer knows it afterwards (0 if removed).
    """

    time: float
    observer: str
    subject: str
    old: NodeState | None
    new: NodeState | None
    incarnation: int


class MembershipRecorder:
    """Diffs each observer's member table against what it held last time."""

    def __init__(self) -> None:
        self.changes: list[MembershipChange] = []
        self._seen: dict[str, dict[str, NodeState]] = {}
        self._last: dict[str, _Snapshot] = {}

    def baseline(self, observer: str, members: Mapping[str, Node]) -> None:
        """Remember the current table without recording anything."""
        self._seen[observer] = {name: n.state for name, n in members.items()}
        self._last[observer] = _snapshot(members)

    def observe(self, observer: str, members: Mapping[str, Node], now: float) -> None:
        """Record every state that differs from the last look at this table."""
        # This runs after every call into every engine, and mostly nothing
        # changed: a snapshot built and compared in C settles that cheaply.
        snapshot = _snapshot(members)
        if self._last.get(observer) == snapshot:
            return
        self._last[observer] = snapshot
        seen = self._seen.setdefault(observer, {})
        for name, node in members.items():
            old = seen.get(name)
            if old is not node.state:
                seen[name] = node.state
                self.changes.append(
                    MembershipChange(
                        now, observer, name, old, node.state, node.incarnation
                    )
                )
        if len(seen) != len(members):
            for name in [n for n in seen if n not in members]:
                old = seen.pop(name)
                self.changes.append(MembershipChange(now, observer, name, old, None, 0))


_Snapshot = tuple[tuple[str, ...], tuple[NodeState, ...]]
_state = attrgetter("state")


def _snapshot(members: Mapping[str, Node]) -> _Snapshot:
    return tuple(members), tuple(map(_state, members.values()))

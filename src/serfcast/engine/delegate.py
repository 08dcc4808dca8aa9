"""How an application (Serf) plugs into the memberlist engine.

The engine calls these hooks synchronously while it handles input, so a hook must
not block; anything it wants sent goes through the engine's own methods or its
broadcast queue. :class:`NullDelegate` is the do-nothing default.

One hook is optional: a delegate may define ``has_broadcasts() -> bool``, saying
whether :meth:`Delegate.get_broadcasts` would return anything. With it, an idle
node skips empty gossip ticks instead of waking five times a second; without it,
every tick asks for broadcasts, as Go does.
"""

from __future__ import annotations

from typing import Protocol

from serfcast.engine.nodes import Node

__all__ = ["Delegate", "NullDelegate"]


class Delegate(Protocol):
    """Application hooks, mirroring memberlist's delegate interfaces."""

    def node_meta(self, limit: int) -> bytes:
        """Meta for our own alive message (at most ``limit`` bytes)."""
        ...

    def notify_msg(self, payload: bytes, now: float) -> None:
        """A user message arrived (UDP or stream)."""
        ...

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        """User messages to piggyback: each costs ``len + overhead``, in total
        at most ``limit`` bytes."""
        ...

    def local_state(self, join: bool) -> bytes:
        """User state to send in a push/pull."""
        ...

    def merge_remote_state(self, state: bytes, join: bool, now: float) -> None:
        """User state received in a push/pull."""
        ...

    def ack_payload(self) -> bytes | None:
        """Payload for acks to direct pings (Serf sends its coordinate)."""
        ...

    def notify_join(self, node: Node, now: float) -> None:
        """A node became alive (new, or back from dead or left)."""
        ...

    def notify_leave(self, node: Node, now: float) -> None:
        """A node died or left (``node.state`` says which)."""
        ...

    def notify_update(self, node: Node, now: float) -> None:
        """An alive node's meta changed."""
        ...

    def notify_conflict(self, existing: Node, other: Node, now: float) -> None:
        """Another address claims a known node's name."""
        ...


class NullDelegate:
    """A delegate that has nothing to say and ignores everything."""

    def node_meta(self, limit: int) -> bytes:
        return b""

    def notify_msg(self, payload: bytes, now: float) -> None:
        return None

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        return []

    def local_state(self, join: bool) -> bytes:
        return b""

    def merge_remote_state(self, state: bytes, join: bool, now: float) -> None:
        return None

    def ack_payload(self) -> bytes | None:
        return None

    def notify_join(self, node: Node, now: float) -> None:
        return None

    def notify_leave(self, node: Node, now: float) -> None:
        return None

    def notify_update(self, node: Node, now: float) -> None:
        return None

    def notify_conflict(self, existing: Node, other: Node, now: float) -> None:
        return None

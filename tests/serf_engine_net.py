"""A tiny in-memory network for driving SerfNode engines by hand in tests.

Datagrams and stream bytes move between engines the moment they are emitted;
time only passes in :meth:`Net.run`, which jumps from deadline to deadline.
Nodes can be taken down (a crash: nothing in or out) and links cut.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TypeVar

from serfcast.engine.actions import (
    Action,
    Address,
    CloseStream,
    OpenStream,
    SendPacket,
    StreamWrite,
)
from serfcast.engine.config import MemberlistConfig
from serfcast.engine.serf import SerfNode
from serfcast.engine.serf_config import SerfConfig
from serfcast.engine.serf_events import SerfEvent
from serfcast.wire.keyring import Keyring

_MAX_STEPS = 200_000
E = TypeVar("E")


class Net:
    """Engines on 127.0.0.1, one port each, under a shared fake clock."""

    def __init__(self, seed: int = 7) -> None:
        self.now = 100.0
        self.seed = seed
        self.nodes: dict[str, SerfNode] = {}
        self.events: dict[str, list[SerfEvent]] = {}
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        #: Every datagram delivered: (sender, receiver, bytes).
        self.delivered: list[tuple[str, str, bytes]] = []
        self._by_addr: dict[Address, str] = {}
        self._peers: dict[tuple[str, int], tuple[str, int]] = {}
        self._accept_id = 0

    def add(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        keyring: Keyring | None = None,
        serf_config: SerfConfig | None = None,
        memberlist_config: MemberlistConfig | None = None,
    ) -> SerfNode:
        """Create and start a node."""
        port = 7946 + len(self.nodes)
        node = SerfNode(
            name,
            (bytes([127, 0, 0, 1]), port),
            tags=tags,
            keyring=keyring,
            rng=random.Random(f"{self.seed}-{name}"),
            serf_config=serf_config,
            memberlist_config=memberlist_config,
        )
        self.nodes[name] = node
        self.events[name] = []
        self._by_addr[("127.0.0.1", port)] = name
        node.start(self.now)
        self.pump()
        return node

    def addr(self, name: str) -> Address:
        """A node's gossip address."""
        node = self.nodes[name]
        return ("127.0.0.1", node.memberlist.advertise_port)

    def join(self, name: str, seed: str, ignore_old: bool | None = None) -> None:
        """``name`` joins through ``seed``."""
        self.nodes[name].join([self.addr(seed)], self.now, ignore_old)
        self.pump()

    def take(self, name: str, kind: type[E]) -> list[E]:
        """Remove and return the events of ``kind`` collected for ``name``."""
        taken: list[E] = [e for e in self.events[name] if isinstance(e, kind)]
        self.events[name] = [e for e in self.events[name] if not isinstance(e, kind)]
        return taken

    # ------------------------------------------------------------------

    def pump(self) -> None:
        """Deliver everything the engines want to send, until all is quiet."""
        for _ in range(_MAX_STEPS):
            moved = False
            for name, node in list(self.nodes.items()):
                actions = node.pop_actions()
                moved = moved or bool(actions)
                if name not in self.down:
                    for action in actions:
                        self._perform(name, action)
                self.events[name].extend(node.pop_events())
            if not moved:
                return
        raise AssertionError("the network never went quiet")

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass, waking engines at their deadlines."""
        end = self.now + seconds
        for _ in range(_MAX_STEPS):
            due = [
                (deadline, name)
                for name, node in self.nodes.items()
                if name not in self.down
                and (deadline := node.next_deadline()) is not None
            ]
            if not due or min(due)[0] > end:
                self.now = end
                return
            self.now = max(self.now, min(due)[0])
            for deadline, name in due:
                if deadline <= self.now:
                    self.nodes[name].handle_timeout(self.now)
            self.pump()
        raise AssertionError("time never reached the end")

    def _reachable(self, src: str, dest: str | None) -> bool:
        return (
            dest is not None
            and dest not in self.down
            and frozenset((src, dest)) not in self.cut
        )

    def _perform(self, src: str, action: Action) -> None:
        if isinstance(action, SendPacket):
            dest = self._by_addr.get(action.addr)
            if dest is not None and self._reachable(src, dest):
                self.delivered.append((src, dest, action.data))
                self.nodes[dest].receive_packet(action.data, self.addr(src), self.now)
        elif isinstance(action, OpenStream):
            self._open(src, action)
        elif isinstance(action, StreamWrite):
            peer = self._peers.get((src, action.stream_id))
            if peer is not None:
                self.nodes[peer[0]].stream_data(peer[1], action.data, self.now)
        elif isinstance(action, CloseStream):
            self._close(src, action.stream_id)

    def _open(self, src: str, action: OpenStream) -> None:
        node = self.nodes[src]
        dest = self._by_addr.get(action.addr)
        if dest is None or not self._reachable(src, dest):
            node.stream_failed(action.stream_id, "connection refused", self.now)
            return
        self._accept_id -= 1
        accepted = self._accept_id
        server = self.nodes[dest]
        if action.expect_reply:
            self._peers[(src, action.stream_id)] = (dest, accepted)
            self._peers[(dest, accepted)] = (src, action.stream_id)
        server.stream_accepted(accepted, self.addr(src), self.now)
        server.stream_data(accepted, action.data, self.now)
        if not action.expect_reply:
            server.stream_closed(accepted, self.now)

    def _close(self, src: str, stream_id: int) -> None:
        peer = self._peers.pop((src, stream_id), None)
        if peer is not None and self._peers.pop(peer, None) is not None:
            self.nodes[peer[0]].stream_closed(peer[1], self.now)

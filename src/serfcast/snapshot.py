"""The pool as one seed sees it, learned without joining.

One TCP push/pull with a seed, sent with ``Join`` false, no node states and a
Serf state whose clocks are all 0 (:func:`serfcast.fire.pull_request`), makes a
Serf or Consul agent answer with everything it knows and merge nothing: its
members with their addresses, states, versions and tags, and its Serf state,
which holds the clocks, the members that left and the ring of recent user
events. ``serfcast members`` lists the members from it and ``serfcast watch
-observe`` repeats it to pick new events out of the ring.

:func:`read_snapshot` is sans-IO; :func:`take_snapshot` owns one blocking
socket per seed and gives up on a seed after ``timeout`` seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from serfcast.engine.nodes import format_addr
from serfcast.errors import DecryptionError, RemoteProtocolError, SerfcastError
from serfcast.fire import (
    Address,
    AgentErrorReply,
    pull_request,
    reply_decoder,
    serf_reply,
)
from serfcast.serf.messages import (
    PushPullState,
    UserEventRecord,
)
from serfcast.serf.tags import decode_tags
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import MessageType, NodeState, PushNodeState
from serfcast.wire.stream import StreamFrame

__all__ = [
    "BufferedEvent",
    "NoAnswerError",
    "PoolSnapshot",
    "SeedFailure",
    "SnapshotMember",
    "member_status",
    "read_snapshot",
    "show_address",
    "take_snapshot",
]

_CHUNK: Final = 65536
_CLOSED: Final = (
    "the agent closed the connection without a reply: it could not read our "
    "request (wrong gossip key or label?)"
)


@dataclass(frozen=True, slots=True)
class SnapshotMember:
    """A member as ``serf members`` shows it.

    ``status`` is Serf's word (``alive``, ``failed``, ``left``); ``protocol``
    holds the Serf protocol ``min``, ``max`` and ``version`` the member speaks.
    """

    name: str
    addr: str
    port: int
    tags: Mapping[str, str]
    status: str
    protocol: Mapping[str, int] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port``)."""
        return show_address((self.addr, self.port))


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """One user event from the seed's ring (the ring keeps no coalesce flag)."""

    ltime: int
    name: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """What one seed told us."""

    seed: Address
    members: tuple[SnapshotMember, ...]
    state: PushPullState

    @property
    def event_ltime(self) -> int:
        """The Lamport time the seed would give its next user event."""
        return self.state.event_ltime

    def events(self) -> list[BufferedEvent]:
        """Every user event in the seed's ring, oldest Lamport time first."""
        found = []
        for slot in self.state.events or ():
            if slot is None:
                continue
            for record in slot.events or ():
                found.append(_buffered(slot.ltime, record))
        found.sort(key=lambda event: event.ltime)
        return found


def _buffered(ltime: int, record: UserEventRecord) -> BufferedEvent:
    return BufferedEvent(ltime, record.name, record.payload or b"")


def show_address(address: Address) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ----------------------------------------------------------------------------
# Reading the reply


def member_status(state: int, left: bool) -> str:
    """Serf's status for a memberlist state (``left``: Serf says it left).

    A suspect member is still alive to Serf; a dead one failed unless it said
    it would leave. Serf's ``leaving`` cannot be seen from a push/pull.
    """
    if left or state == NodeState.LEFT:
        return "left"
    if state in (NodeState.ALIVE, NodeState.SUSPECT):
        return "alive"
    return "failed"


def _snapshot_member(node: PushNodeState, left: frozenset[str]) -> SnapshotMember:
    try:
        tags = decode_tags(node.meta)
    except RemoteProtocolError:
        tags = {}  # Go keeps a member whose tags it cannot read
    vsn = node.vsn.ljust(6, b"\0")
    protocol = {"min": vsn[3], "max": vsn[4], "version": vsn[5]}
    status = member_status(node.state, node.name in left)
    return SnapshotMember(
        node.name, format_addr(node.addr), node.port, tags, status, protocol
    )


def read_snapshot(frame: StreamFrame, seed: Address) -> PoolSnapshot:
    """The members and Serf state in a seed's reply to ``pull_request``."""
    message, state = serf_reply(frame)
    left = frozenset(state.left_members or ())
    members = tuple(_snapshot_member(node, left) for node in message.nodes)
    return PoolSnapshot(seed, tuple(sorted(members, key=lambda m: m.name)), state)


# ----------------------------------------------------------------------------
# Asking seeds


@dataclass(frozen=True, slots=True)
class SeedFailure:
    """Why one seed gave us no state; ``key_problem`` blames the gossip key."""

    seed: str
    reason: str
    key_problem: bool = False


class NoAnswerError(SerfcastError):
    """No seed gave us its state; ``failures`` says why, seed by seed.

    ``key_problem`` is set when some seed was reached but could not read us,
    which points at the gossip key or label.
    """

    def __init__(self, failures: Sequence[SeedFailure]) -> None:
        self.failures = tuple(failures)
        self.key_problem = any(failure.key_problem for failure in self.failures)
        headline = (
            "no seed could be read, or could read us (check the gossip key and label)"
            if self.key_problem
            else "no seed answered"
        )
        reasons = "; ".join(f"{f.seed}: {f.reason}" for f in self.failures)
        if any("refused" in f.reason for f in self.failures):
            reasons += (
                " (Consul agents gossip on port 8301, serf agents on 7946 unless "
                "told otherwise: give the port as host:port)"
            )
        super().__init__(f"{headline}: {reasons}")

    def __reduce__(self) -> tuple[type[NoAnswerError], tuple[tuple[SeedFailure, ...]]]:
        return type(self), (self.failures,)


class _SeedProblem(Exception):
    def __init__(self, reason: str, key_problem: bool = False) -> None:
        super().__init__(reason)
        self.reason = " ".join(reason.split())
        self.key_problem = key_problem


def take_snapshot(
    seeds: Sequence[Address],
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    timeout: float = 5.0,
) -> PoolSnapshot:
    """Ask the seeds in order; the first that answers gives the snapshot.

    Raises :class:`NoAnswerError`, listing every seed's reason, when none
    answers.
    """
    request = pull_request(keyring, label)
    failures = []
    for seed in seeds:
        try:
            frame = _ask(seed, request, keyring, label, timeout)
            return read_snapshot(frame, seed)
        except _SeedProblem as problem:
            failures.append(
                SeedFailure(show_address(seed), problem.reason, problem.key_problem)
            )
        except AgentErrorReply as exc:
            key_problem = "crypt" in exc.text.lower()
            failures.append(SeedFailure(show_address(seed), str(exc), key_problem))
        except RemoteProtocolError as exc:
            reason = f"its reply is not a Serf push/pull: {exc}"
            failures.append(SeedFailure(show_address(seed), reason))
    raise NoAnswerError(failures)


def _ask(
    seed: Address,
    request: bytes,
    keyring: Keyring | None,
    label: bytes,
    timeout: float,
) -> StreamFrame:
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(seed, timeout) as sock:
            sock.sendall(request)
            return _read_reply(sock, deadline, keyring, label)
    except TimeoutError:
        raise _SeedProblem(f"no reply within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise _SeedProblem("connection refused") from None
    except ConnectionResetError:
        raise _SeedProblem(_CLOSED, key_problem=True) from None
    except socket.gaierror as exc:
        raise _SeedProblem(f"cannot resolve {seed[0]!r}: {exc.strerror}") from None
    except OSError as exc:
        raise _SeedProblem((exc.strerror or str(exc)).lower()) from None
    except DecryptionError:
        raise _SeedProblem(
            "its reply could not be decrypted: the pool uses another gossip key",
            key_problem=True,
        ) from None


def _read_reply(
    sock: socket.socket, deadline: float, keyring: Keyring | None, label: bytes
) -> StreamFrame:
    decoder = reply_decoder(keyring, label)
    first: int | None = None
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(_CHUNK)
        if not chunk:
            if first is None:
                raise _SeedProblem(_CLOSED, key_problem=True)
            return decoder.feed_eof()
        if first is None:
            first = chunk[0]
        try:
            frame = decoder.feed(chunk)
        except RemoteProtocolError:
            _blame_key(first, keyring)
            raise
        if frame is not None:
            return frame


def _blame_key(first: int, keyring: Keyring | None) -> None:
    """Explain an unreadable reply by encryption on one side only, if so."""
    encrypted = first == MessageType.ENCRYPT
    if encrypted and keyring is None:
        raise _SeedProblem(
            "the pool is encrypted and no gossip key was given", key_problem=True
        )
    if keyring is not None and not encrypted:
        raise _SeedProblem(
            "the agent does not use encryption: leave out the gossip key",
            key_problem=True,
        )

"""Event handlers as the ``serf agent`` runs them: filters, environment, stdin.

A handler is written ``[filter=]COMMAND``. The filter is a comma-separated list
of event kinds (``member-join``, ``member-leave``, ``member-failed``,
``member-update``, ``member-reap``, ``user``, ``query``), where ``user:NAME``
and ``query:NAME`` pick one event or query name and ``*`` (or no filter at all)
takes everything. The text is split at its first ``=``, so a command that holds
one needs a filter in front of it: ``*=FOO=1 ./script``.

The command runs as ``/bin/sh -c COMMAND`` with the parent's environment plus
Serf's variables: ``SERF_EVENT``, ``SERF_SELF_NAME``, ``SERF_SELF_ROLE`` and one
``SERF_TAG_<KEY>`` per own tag; user events add ``SERF_USER_EVENT`` and
``SERF_USER_LTIME``, queries ``SERF_QUERY_NAME`` and ``SERF_QUERY_LTIME``.
Standard input holds a user event's or query's payload, with a newline added
when the payload does not end in one, or one line per member for member events:
``name TAB address TAB role TAB k=v,k=v``, tabs and newlines inside a field
written as ``\\t`` and ``\\n``.

Standard output and error go to one pipe, of which the last 8 KiB are kept (a
query's handler answers with them). Every run is bounded by a timeout, and the
handler's whole process group is killed when it runs over. This module starts
processes but imports no async library; the agent calls :meth:`HandlerRun.run`
from a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from serfcast.engine.serf_events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberUpdated,
    QueryReceived,
    UserEventReceived,
)
from serfcast.errors import LocalProtocolError
from serfcast.serf.tags import tag_env_name

__all__ = [
    "MEMBER_EVENTS",
    "OUTPUT_LIMIT",
    "EventFilter",
    "HandlerResult",
    "HandlerRun",
    "HandlerSpec",
    "Invocation",
    "MemberLike",
    "OutputTail",
    "invocation_for",
    "member_invocation",
    "member_line",
    "parse_event_filter",
    "parse_handler",
    "query_invocation",
    "user_event_invocation",
]

#: The member event kinds, as ``SERF_EVENT`` names them.
MEMBER_EVENTS: Final = (
    "member-join",
    "member-leave",
    "member-failed",
    "member-update",
    "member-reap",
)
_KINDS: Final = frozenset({*MEMBER_EVENTS, "user", "query", "*"})
#: How much of a handler's output is kept, as the serf agent keeps it.
OUTPUT_LIMIT: Final = 8 * 1024
_READ_CHUNK: Final = 65536
#: How often a running handler checks whether it was asked to stop.
_POLL: Final = 0.05
SHELL: Final = "/bin/sh"


# ----------------------------------------------------------------------------
# Filters


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One entry of a handler's filter: a kind, and for user/query a name."""

    kind: str
    name: str = ""

    def matches(self, kind: str, name: str = "") -> bool:
        """Whether an event of ``kind`` called ``name`` passes this entry."""
        if self.kind == "*":
            return True
        return self.kind == kind and (not self.name or self.name == name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


def parse_event_filter(text: str) -> tuple[EventFilter, ...]:
    """Parse ``user:deploy,member-join``; an empty text takes every event."""
    entries = []
    for part in (text or "*").split(","):
        kind, colon, name = part.partition(":")
        if colon and kind not in ("user", "query"):
            kind, name = part, ""  # only user and query take a name
        if kind not in _KINDS:
            raise LocalProtocolError(
                f"invalid event filter {part!r}: use {', '.join(sorted(_KINDS))}, "
                "user:NAME or query:NAME, separated by commas"
            )
        entries.append(EventFilter(kind, name))
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler: which events it wants and the shell command to run."""

    filters: tuple[EventFilter, ...]
    command: str

    def wants(self, kind: str, name: str = "") -> bool:
        """Whether this handler runs for an event of ``kind`` named ``name``."""
        return any(entry.matches(kind, name) for entry in self.filters)

    def __str__(self) -> str:
        return f"{','.join(map(str, self.filters))}={self.command}"


def parse_handler(text: str) -> HandlerSpec:
    """Parse ``[filter=]COMMAND`` as ``-event-handler`` takes it."""
    filter_text, equals, command = text.partition("=")
    if not equals:
        filter_text, command = "", text
    if not command.strip():
        raise LocalProtocolError(f"event handler {text!r} has no command to run")
    try:
        filters = parse_event_filter(filter_text)
    except LocalProtocolError as exc:
        raise LocalProtocolError(
            f"{exc} (a command that holds '=' needs a filter first, as in '*={text}')"
        ) from None
    return HandlerSpec(filters, command)


# ----------------------------------------------------------------------------
# What a handler is given


class MemberLike(Protocol):
    """What a member line needs (serf's member events and snapshots have it)."""

    @property
    def name(self) -> str: ...
    @property
    def addr(self) -> str: ...
    @property
    def tags(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Invocation:
    """One event as handlers see it: kind, name, Serf's variables and stdin."""

    kind: str
    name: str
    env: Mapping[str, str]
    stdin: bytes


def _base_env(kind: str, self_name: str, tags: Mapping[str, str]) -> dict[str, str]:
    env = {
        "SERF_EVENT": kind,
        "SERF_SELF_NAME": self_name,
        "SERF_SELF_ROLE": tags.get("role", ""),
    }
    for key, value in tags.items():
        env[tag_env_name(key)] = value
    return env


def _payload_stdin(payload: bytes) -> bytes:
    # serf adds the newline so that `read line` in a shell sees the last line.
    return payload if not payload or payload.endswith(b"\n") else payload + b"\n"


def user_event_invocation(
    self_name: str,
    tags: Mapping[str, str],
    name: str,
    ltime: int,
    payload: bytes,
) -> Invocation:
    """What handlers get for a user event."""
    env = _base_env("user", self_name, tags)
    env["SERF_USER_EVENT"] = name
    env["SERF_USER_LTIME"] = str(ltime)
    return Invocation("user", name, env, _payload_stdin(payload))


def query_invocation(
    self_name: str,
    tags: Mapping[str, str],
    name: str,
    ltime: int,
    payload: bytes,
) -> Invocation:
    """What handlers get for a query (their output is the answer)."""
    env = _base_env("query", self_name, tags)
    env["SERF_QUERY_NAME"] = name
    env["SERF_QUERY_LTIME"] = str(ltime)
    return Invocation("query", name, env, _payload_stdin(payload))


def _clean(text: str) -> str:
    return text.replace("\t", "\\t").replace("\n", "\\n")


def member_line(member: MemberLike) -> str:
    """``name TAB addr TAB role TAB k=v,...`` with tabs and newlines escaped.

    Go lists the tags in map order, which is random; here they are sorted.
    """
    tags = ",".join(f"{k}={v}" for k, v in sorted(member.tags.items()))
    fields = (member.name, member.addr, member.tags.get("role", ""), tags)
    return "\t".join(_clean(value) for value in fields) + "\n"


def member_invocation(
    self_name: str,
    tags: Mapping[str, str],
    kind: str,
    members: Iterable[MemberLike],
) -> Invocation:
    """What handlers get for a member event of ``kind`` (one line per member)."""
    if kind not in MEMBER_EVENTS:
        raise LocalProtocolError(f"{kind!r} is not a member event kind")
    stdin = "".join(member_line(member) for member in members)
    env = _base_env(kind, self_name, tags)
    return Invocation(kind, "", env, stdin.encode("utf-8", "surrogateescape"))


_MEMBER_KINDS: Final[dict[type[MemberEvent], str]] = {
    MemberJoined: "member-join",
    MemberLeft: "member-leave",
    MemberFailed: "member-failed",
    MemberUpdated: "member-update",
    MemberReaped: "member-reap",
}


def invocation_for(
    event: object, self_name: str, tags: Mapping[str, str]
) -> Invocation | None:
    """What handlers get for one of a Serf node's events (None: not for them)."""
    if isinstance(event, UserEventReceived):
        return user_event_invocation(
            self_name, tags, event.name, event.ltime, event.payload
        )
    if isinstance(event, QueryReceived):
        return query_invocation(self_name, tags, event.name, event.ltime, event.payload)
    if not isinstance(event, MemberEvent):
        return None
    kind = _MEMBER_KINDS.get(type(event))
    if kind is None:
        return None  # a bare MemberEvent names no change
    return member_invocation(self_name, tags, kind, [event])


# ----------------------------------------------------------------------------
# Running one


class OutputTail:
    """Keeps the last ``limit`` bytes written, and counts them all."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        if limit < 1:
            raise LocalProtocolError("the output limit must be at least one byte")
        self.limit = limit
        self.total = 0
        self._data = bytearray()

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``, dropping the oldest bytes beyond the limit."""
        self.total += len(chunk)
        self._data += chunk[-self.limit :]
        del self._data[: max(0, len(self._data) - self.limit)]

    @property
    def truncated(self) -> bool:
        """Whether more was written than is kept."""
        return self.total > self.limit

    def getvalue(self) -> bytes:
        """The bytes kept, oldest first."""
        return bytes(self._data)


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """How one run ended.

    ``returncode`` is None when the handler was killed (``timed_out`` says
    whether for its timeout or because it was stopped); ``output`` is the last
    8 KiB of its stdout and stderr, ``output_total`` how much it wrote.
    """

    returncode: int | None
    output: bytes
    output_total: int
    timed_out: bool = False
    stopped: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the command ran to the end and exited 0."""
        return self.returncode == 0


@dataclass(eq=False)
class HandlerRun:
    """One handler process: :meth:`run` blocks until it ends; :meth:`stop`,
    from any thread, kills it (and everything it started) at once."""

    command: str
    invocation: Invocation
    timeout: float
    output_limit: int = OUTPUT_LIMIT
    base_env: Mapping[str, str] | None = None
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _stopped: bool = field(init=False, default=False)

    def run(self) -> HandlerResult:
        """Start the command, feed it, collect its output; bounded by ``timeout``."""
        deadline = time.monotonic() + max(self.timeout, 0.0)
        try:
            process = self._start()
        except OSError as exc:
            return HandlerResult(None, b"", 0, error=f"cannot start {SHELL}: {exc}")
        if process is None:
            return HandlerResult(None, b"", 0, stopped=True)
        tail = OutputTail(self.output_limit)
        try:
            finished = self._collect(process, tail, deadline)
            if finished:
                finished = self._wait(process, deadline)
        finally:
            if process.returncode is None:
                self._kill_group(process)
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        code = process.returncode if finished else None
        timed_out = not finished and not self._stopped
        return HandlerResult(
            code, tail.getvalue(), tail.total, timed_out, self._stopped
        )

    def stop(self) -> None:
        """Kill the handler now (or keep it from starting)."""
        with self._lock:
            self._stopped = True
            if self._process is not None and self._process.returncode is None:
                self._kill_group(self._process)

    def _start(self) -> subprocess.Popen[bytes] | None:
        env = dict(os.environ if self.base_env is None else self.base_env)
        env.update(self.invocation.env)
        # A file, not a pipe, so a handler that never reads its input cannot
        # block us; it is unlinked at once and closed once the child has it.
        with tempfile.TemporaryFile() as stdin, self._lock:
            if self._stopped:
                return None
            stdin.write(self.invocation.stdin)
            stdin.seek(0)
            self._process = subprocess.Popen(
                [SHELL, "-c", self.command],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, killed as one
            )
            return self._process

    def _collect(
        self, process: subprocess.Popen[bytes], tail: OutputTail, deadline: float
    ) -> bool:
        """Read output until EOF (True) or the deadline or a stop (False)."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if selector.select(min(left, _POLL)):
                    chunk = os.read(fd, _READ_CHUNK)
                    if not chunk:
                        return True
                    tail.write(chunk)
        return False

    def _wait(self, process: subprocess.Popen[bytes], deadline: float) -> bool:
        while not self._stopped:
            try:
                process.wait(min(max(deadline - time.monotonic(), 0.0), _POLL))
                return True
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    return False
        return False

    def _kill_group(self, process: subprocess.Popen[bytes]) -> None:
        # The group is the one start_new_session made for this very child, and
        # the child is not reaped yet, so the id still names it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

"""Start and stop real serf agents on 127.0.0.1 for interop tests.

The binaries come from ``scripts/fetch-serf`` (``scripts/test`` runs it and exports
their paths). An interop test that cannot find them fails: it never skips, so a green
run always means the agents really ran.

Every agent gets a small ``/bin/sh`` event handler that appends one line per invocation
to a per-agent file: the event type, the two Lamport times, and then, as hex, the node
name, user event name, query name and the handler's stdin separated by NUL bytes (an
environment variable cannot hold a NUL, so the split is unambiguous). Reading that file
gives :class:`HandlerEvent` records. For a query, the handler also prints the agent's
``query_response`` (if it has one), which the agent sends back as its response.

Every wait is bounded, and agents are only ever signalled through their own PID.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypedDict, TypeVar, cast

import pytest

SERF_VERSIONS = ("0.9.4", "0.10.1")
_BINARY_ENV = {"0.9.4": "SERFCAST_SERF_094", "0.10.1": "SERFCAST_SERF_0101"}
_REPO_ROOT = Path(__file__).resolve().parents[1]

HOST = "127.0.0.1"
PORT_RANGE = range(20000, 30000)
CLI_TIMEOUT = 10.0
KILL_AFTER = 10.0
READY_TIMEOUT = 10.0
CONVERGE_TIMEOUT = 20.0

T = TypeVar("T")


class AgentError(AssertionError):
    """A serf agent or CLI call did not do what the harness asked."""


def serf_binary(version: str) -> Path:
    """The serf executable for ``version`` ("0.9.4" or "0.10.1").

    ``SERFCAST_SERF_094`` / ``SERFCAST_SERF_0101`` name it when set; otherwise it is
    ``.cache/serf/<version>/serf`` in the repository. Fails the test when it is missing.
    """
    if version not in _BINARY_ENV:
        raise ValueError(
            f"unknown serf version {version!r}; use one of {SERF_VERSIONS}"
        )
    env_name = _BINARY_ENV[version]
    configured = os.environ.get(env_name)
    path = (
        Path(configured)
        if configured
        else _REPO_ROOT / ".cache/serf" / version / "serf"
    )
    if not (path.is_file() and os.access(path, os.X_OK)):
        origin = f"${env_name}" if configured else "the default location"
        pytest.fail(
            f"serf {version} binary not found at {path} ({origin}): run scripts/test,"
            " or scripts/fetch-serf to download it",
            pytrace=False,
        )
    return path


def serf_keygen(version: str = "0.10.1") -> str:
    """A fresh base64 encryption key made by ``serf keygen``."""
    done = _run([str(serf_binary(version)), "keygen"])
    return done.stdout.strip()


# --- Ports ---------------------------------------------------------------------------

_handed_out: set[int] = set()


def free_port(rng: random.Random | None = None) -> int:
    """A random port in :data:`PORT_RANGE` that is free on 127.0.0.1 for UDP and TCP.

    A port is handed out at most once per process, so agents started by the same test
    run never race each other for it.
    """
    rng = rng or random.Random()
    for _ in range(500):
        port = rng.choice(PORT_RANGE)
        if port not in _handed_out and _is_free(port):
            _handed_out.add(port)
            return port
    raise AgentError(f"no free UDP+TCP port found in {PORT_RANGE} after 500 tries")


def _is_free(port: int) -> bool:
    # Both sockets are held at once: serf needs the TCP and the UDP port together.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        try:
            tcp.bind((HOST, port))
            udp.bind((HOST, port))
        except OSError:
            return False
    return True


# --- Handler events ------------------------------------------------------------------

HANDLER_SCRIPT = """#!/bin/sh
# serfcast test harness: one line per invocation, see tests/serf_agents.py.
hex=$( { printf '%s\\0%s\\0%s\\0' "$SERF_SELF_NAME" "$SERF_USER_EVENT" \\
    "$SERF_QUERY_NAME"; cat; } | od -An -v -tx1 | tr -d ' \\n')
printf '%s\\t%s\\t%s\\t%s\\n' "$SERF_EVENT" "$SERF_USER_LTIME" "$SERF_QUERY_LTIME" \\
    "$hex" >> "$SERFCAST_HANDLER_LOG"
# Whatever a query handler prints is the agent's response to the query.
if [ "$SERF_EVENT" = query ] && [ -n "$SERFCAST_QUERY_RESPONSE" ]; then
    printf '%s' "$SERFCAST_QUERY_RESPONSE"
fi
"""


def strip_added_newline(payload: bytes) -> bytes:
    """Undo the ``\\n`` the agent appends to a handler's stdin.

    The agent appends it only when the payload does not already end in one, so this
    is exact only for payloads that did not end in a newline when they were sent.
    """
    return payload[:-1] if payload.endswith(b"\n") else payload


@dataclass(frozen=True)
class HandlerEvent:
    """One run of an agent's event handler."""

    event: str  # SERF_EVENT: "user", "query", "member-join", ...
    self_name: str
    user_event: str  # empty unless event == "user"
    user_ltime: int | None
    query_name: str  # empty unless event == "query"
    query_ltime: int | None
    payload: bytes  # stdin exactly as the handler read it

    @property
    def payload_as_sent(self) -> bytes:
        """The payload without the newline the agent added (see strip_added_newline)."""
        return strip_added_newline(self.payload)


def parse_handler_log(data: bytes) -> list[HandlerEvent]:
    """Parse the handler's log; an unfinished last line is left for the next read."""
    lines = data.split(b"\n")[:-1]
    return [_parse_record(line.decode("ascii")) for line in lines]


def _parse_record(line: str) -> HandlerEvent:
    event, user_ltime, query_ltime, blob = line.split("\t")
    self_name, user_event, query_name, payload = bytes.fromhex(blob).split(b"\0", 3)
    return HandlerEvent(
        event=event,
        self_name=self_name.decode("utf-8", "surrogateescape"),
        user_event=user_event.decode("utf-8", "surrogateescape"),
        user_ltime=int(user_ltime) if user_ltime else None,
        query_name=query_name.decode("utf-8", "surrogateescape"),
        query_ltime=int(query_ltime) if query_ltime else None,
        payload=payload,
    )


def write_handler(directory: Path) -> Path:
    """Write the event handler script into ``directory`` and return its path."""
    path = directory / "serf-handler.sh"
    if path.exists() and path.read_text() == HANDLER_SCRIPT:
        return path
    # Written aside and renamed, so an agent that is running the script right now
    # never reads a half-written file.
    partial = directory / "serf-handler.sh.partial"
    partial.write_text(HANDLER_SCRIPT)
    partial.chmod(0o755)
    partial.replace(path)
    return path


# --- Agents --------------------------------------------------------------------------


class Member(TypedDict):
    """One entry of ``serf members -format=json``."""

    name: str
    addr: str
    port: int
    tags: dict[str, str]
    status: str  # "alive", "leaving", "left" or "failed"
    protocol: dict[str, int]


_live_agents: set[SerfAgent] = set()


class SerfAgent:
    """One real ``serf agent`` process on 127.0.0.1, with its own ports and logs."""

    def __init__(
        self,
        version: str,
        name: str,
        workdir: Path,
        *,
        encrypt: str | None = None,
        tags: Mapping[str, str] | None = None,
        join: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        query_response: str | None = None,
    ) -> None:
        self.version = version
        self.binary = serf_binary(version)
        self.name = name
        self.workdir = workdir
        self.bind_port = free_port()
        self.rpc_port = free_port()
        self.encrypt = encrypt
        self.tags = dict(tags or {})
        self.join = list(join)
        self.extra_args = list(extra_args)
        #: What this agent's handler prints for a query: its response (None: none).
        self.query_response = query_response
        self.log_path = workdir / f"{name}.log"
        self.handler_log_path = workdir / f"{name}.events"
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<SerfAgent {self.name} serf {self.version} {self.bind_addr}>"

    @property
    def bind_addr(self) -> str:
        """The gossip address, ``127.0.0.1:<port>``, for UDP and TCP."""
        return f"{HOST}:{self.bind_port}"

    @property
    def rpc_addr(self) -> str:
        """The address the serf CLI talks to."""
        return f"{HOST}:{self.rpc_port}"

    @property
    def pid(self) -> int:
        """The agent's process id; the agent must have been started."""
        return self._started().pid

    def command(self) -> list[str]:
        """The full ``serf agent`` command line."""
        handler = write_handler(self.workdir)
        if "=" in str(handler):
            raise AgentError(f"serf cannot take a handler path with '=': {handler}")
        args = [str(self.binary), "agent", f"-node={self.name}"]
        args += [f"-bind={self.bind_addr}", f"-rpc-addr={self.rpc_addr}"]
        args += ["-profile=lan", "-log-level=debug"]
        args.append(f"-event-handler={shlex.quote(str(handler))}")
        if self.encrypt is not None:
            args.append(f"-encrypt={self.encrypt}")
        for key, value in self.tags.items():
            args += ["-tag", f"{key}={value}"]
        args += [f"-join={address}" for address in self.join]
        return args + self.extra_args

    def start(self) -> None:
        """Launch the agent (without waiting for it: see :meth:`wait_ready`)."""
        if self._process is not None:
            raise AgentError(f"{self!r} was already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, SERFCAST_HANDLER_LOG=str(self.handler_log_path))
        env.pop("SERFCAST_QUERY_RESPONSE", None)
        if self.query_response is not None:
            env["SERFCAST_QUERY_RESPONSE"] = self.query_response
        with self.log_path.open("wb") as log:
            # A new session keeps a terminal's Ctrl-C away from it: the harness alone
            # decides how each agent stops.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _live_agents.add(self)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the agent answers ``serf members`` on its RPC address."""
        deadline = time.monotonic() + timeout
        while self.cli("members").returncode != 0:
            if self._started().poll() is not None:
                raise AgentError(f"{self!r} exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AgentError(
                    f"{self!r} not ready in {timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``serf <command> -rpc-addr=<this agent> <args>`` (bounded, no check)."""
        argv = [str(self.binary), command, f"-rpc-addr={self.rpc_addr}", *args]
        return _run(argv, check=False)

    def members(self) -> list[Member]:
        """This agent's view of the cluster, from ``serf members -format=json``."""
        done = self._checked(self.cli("members", "-format=json"))
        return cast(list[Member], json.loads(done.stdout)["members"])

    def statuses(self) -> dict[str, str]:
        """Member name -> status, as this agent sees them."""
        return {member["name"]: member["status"] for member in self.members()}

    def fire_event(
        self, name: str, payload: bytes | str = b"", *, coalesce: bool = False
    ) -> None:
        """Send a user event through ``serf event``; the payload may not hold a NUL."""
        data = payload.encode() if isinstance(payload, str) else payload
        args = [f"-coalesce={str(coalesce).lower()}", "--", name]
        if data:
            args.append(os.fsdecode(data))
        self._checked(self.cli("event", *args))

    def events(self) -> list[HandlerEvent]:
        """Every handler run recorded so far, oldest first."""
        try:
            data = self.handler_log_path.read_bytes()
        except FileNotFoundError:
            return []
        return parse_handler_log(data)

    def user_events(self, name: str) -> list[HandlerEvent]:
        """The recorded runs for user event ``name``."""
        return [e for e in self.events() if e.event == "user" and e.user_event == name]

    def log_text(self) -> str:
        """Everything the agent has printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the agent's output, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def send_stop_signal(self, graceful: bool) -> None:
        """SIGINT (leave the cluster) or SIGTERM (just exit) to this agent's PID."""
        process = self._started()
        if process.poll() is None:
            process.send_signal(signal.SIGINT if graceful else signal.SIGTERM)

    def reap(self, timeout: float = KILL_AFTER) -> int:
        """Wait for the agent to exit, SIGKILL it after ``timeout``; its exit code."""
        process = self._started()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(CLI_TIMEOUT)
        _live_agents.discard(self)
        return process.returncode

    def stop(self, graceful: bool = False) -> int:
        """Stop the agent (see send_stop_signal and reap); returns its exit code."""
        self.send_stop_signal(graceful)
        return self.reap()

    def kill(self) -> int:
        """SIGKILL this agent's PID, a crash: it leaves nothing behind and says
        nothing to the pool. Returns its exit code (``-SIGKILL``)."""
        process = self._started()
        if process.poll() is None:
            process.kill()
        return self.reap()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` launched the process (it may have exited since)."""
        return self._process is not None

    @property
    def running(self) -> bool:
        """Whether the agent was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise AgentError(f"{self!r} has not been started")
        return self._process

    def _checked(
        self, done: subprocess.CompletedProcess[str]
    ) -> subprocess.CompletedProcess[str]:
        if done.returncode != 0:
            raise AgentError(
                f"{' '.join(done.args)} exited {done.returncode}:"
                f" {done.stdout}{done.stderr}\nagent log:\n{self.log_tail()}"
            )
        return done


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if check and done.returncode != 0:
        raise AgentError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return done


def stop_agents(agents: Iterable[SerfAgent], graceful: bool = False) -> None:
    """Stop several agents at once: signal all of them first, then wait for each."""
    started = [agent for agent in agents if agent.started]
    for agent in started:
        agent.send_stop_signal(graceful)
    for agent in started:
        agent.reap()


@atexit.register
def _stop_leftover_agents() -> None:
    # Last resort when a test run is interrupted before its fixtures tear down.
    stop_agents(list(_live_agents))


# --- Pools ---------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout: float, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AgentError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class SerfPool:
    """N agents on 127.0.0.1 forming one cluster; a context manager that stops them all.

    ``versions`` gives each agent's serf version, so a mixed pool is just a mixed list.
    Agent i is named ``<prefix><i>``; agent 0 is the seed every other agent joins.
    Every agent gets ``tags``; agent i also gets ``agent_tags[i]`` when there is one
    (it wins over ``tags``). ``query_response``, if given, is what each agent answers
    to a query, with ``{name}`` replaced by the agent's name.
    """

    def __init__(
        self,
        versions: Sequence[str],
        workdir: Path,
        *,
        encrypt: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        prefix: str = "n",
        agent_tags: Sequence[Mapping[str, str]] = (),
        query_response: str | None = None,
    ) -> None:
        if not versions:
            raise ValueError("a pool needs at least one agent version")
        if len(agent_tags) > len(versions):
            raise ValueError(
                f"{len(agent_tags)} agent_tags entries for {len(versions)} agents"
            )
        self.versions = list(versions)
        self.workdir = workdir
        self.encrypt = encrypt
        self.tags = dict(tags or {})
        self.extra_args = list(extra_args)
        self.prefix = prefix
        self.agent_tags = [dict(tags) for tags in agent_tags]
        self.query_response = query_response
        self.agents: list[SerfAgent] = []

    def __enter__(self) -> SerfPool:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(self, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Start the seed, then the others joining it; wait until all see all alive."""
        try:
            seed = self._add_agent(self.versions[0], join=())
            seed.wait_ready()
            others = [
                self._add_agent(version, join=(seed.bind_addr,))
                for version in self.versions[1:]
            ]
            for agent in others:
                agent.wait_ready()
            self.wait_converged(timeout)
        except BaseException:
            self.stop_all()
            raise

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Wait until every running agent lists every pool member as alive."""
        names = {agent.name for agent in self.agents}

        def converged() -> bool:
            return all(
                {n for n, s in agent.statuses().items() if s == "alive"} == names
                for agent in self.agents
            )

        wait_for(converged, timeout, f"{sorted(names)} to see each other alive")

    def wait_for(
        self, predicate: Callable[[], T], timeout: float, what: str = "condition"
    ) -> T:
        """Poll ``predicate`` until it returns something truthy (:func:`wait_for`)."""
        return wait_for(predicate, timeout, what)

    def stop_all(self, graceful: bool = False) -> None:
        """Stop every agent of the pool that is still running."""
        stop_agents(self.agents, graceful)

    def _add_agent(self, version: str, join: Sequence[str]) -> SerfAgent:
        index = len(self.agents)
        name = f"{self.prefix}{index}"
        own_tags = self.agent_tags[index] if index < len(self.agent_tags) else {}
        template = self.query_response
        response = None if template is None else template.replace("{name}", name)
        agent = SerfAgent(
            version,
            name,
            self.workdir,
            encrypt=self.encrypt,
            tags={**self.tags, **own_tags},
            join=join,
            extra_args=self.extra_args,
            query_response=response,
        )
        self.agents.append(agent)
        agent.start()
        return agent


class SerfPoolFactory(Protocol):
    """The ``serf_pool_factory`` fixture: starts a converged pool, stopped later."""

    def __call__(
        self,
        versions: Sequence[str],
        *,
        encrypt: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        agent_tags: Sequence[Mapping[str, str]] = (),
        query_response: str | None = None,
    ) -> SerfPool: ...

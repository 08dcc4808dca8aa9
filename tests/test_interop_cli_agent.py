"""serfcast agent, watch and members as processes, in pools of real serf agents.

* ``serfcast agent`` joins a serf 0.10.1 + 0.9.4 pool: both agents list it alive
  with its tags; its handler sees serf's variables and standard input for a
  user event fired with ``serf event`` (with the Lamport time the serf agents'
  own handlers saw) and for a ``serf query``, whose answer comes back to the
  serf CLI; SIGINT makes it leave, and the agents list it as ``left``.
* ``serfcast watch``, as a member and as an observer, prints every event fired
  with ``serf event`` exactly once; restarted with the same state file it
  prints none of them again, only what is fired afterwards.
* ``serfcast members -join`` lists what ``serf members`` lists, plain and
  encrypted.

Every process is started here and stopped by its own PID; every wait is bounded.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serf_agents import (
    HOST,
    SerfAgent,
    SerfPoolFactory,
    free_port,
    serf_keygen,
    wait_for,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

STEP = 20.0
#: After an expected line, how long to watch for an unwanted repeat.
REPEAT_WINDOW = 2.0
EXIT_BOUND = 15.0
POOL = ("0.10.1", "0.9.4")


class CliProcess:
    """``python -m serfcast.cli ...`` in its own session, output in files."""

    def __init__(self, args: list[str], workdir: Path, label: str) -> None:
        self.args = args
        self.stdout_path = workdir / f"{label}.out"
        self.stderr_path = workdir / f"{label}.err"
        # Handlers must see only the SERF_ variables the agent sets.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERF_")}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serfcast.cli", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_output(self, text: str, *, stream: str = "stdout") -> None:
        read = self.stdout if stream == "stdout" else self.stderr

        def seen() -> bool:
            if self.process.poll() is not None and text not in read():
                raise AssertionError(
                    f"serfcast {self.args[0]} exited {self.process.returncode} "
                    f"before printing {text!r}:\n{self.stdout()}\n{self.stderr()}"
                )
            return text in read()

        wait_for(seen, STEP, f"{text!r} from serfcast {self.args[0]}")

    def interrupt(self) -> int:
        """SIGINT to this PID, then its exit status (SIGKILL if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.reap()

    def reap(self) -> int:
        try:
            return self.process.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(EXIT_BOUND)
            raise AssertionError(
                f"serfcast {self.args[0]} did not exit:\n{self.stdout()}"
            ) from None


@pytest.fixture
def start_cli(tmp_path: Path) -> Iterator[Callable[..., CliProcess]]:
    started: list[CliProcess] = []

    def start(*args: str, label: str) -> CliProcess:
        process = CliProcess(list(args), tmp_path, label)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(EXIT_BOUND)


# ----------------------------------------------------------------------------
# serfcast agent

HANDLER = """#!{python}
import json, os, sys
stdin = sys.stdin.buffer.read()
record = {{k: v for k, v in os.environ.items() if k.startswith("SERF_")}}
record["stdin"] = stdin.hex()
with open({log!r}, "a") as log:
    log.write(json.dumps(record) + "\\n")
if os.environ["SERF_EVENT"] == "query":
    sys.stdout.write("hi-from-" + os.environ["SERF_SELF_NAME"])
"""


def handler_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def listed(agent: SerfAgent, name: str) -> dict[str, Any] | None:
    for member in agent.members():
        if member["name"] == name:
            return dict(member)
    return None


def test_serfcast_agent_in_a_serf_pool(
    serf_pool_factory: SerfPoolFactory,
    start_cli: Callable[..., CliProcess],
    tmp_path: Path,
) -> None:
    pool = serf_pool_factory(POOL)
    seed, other = pool.agents
    log = tmp_path / "handler.jsonl"
    script = tmp_path / "handler.py"
    script.write_text(HANDLER.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    port = free_port()
    agent = start_cli(
        "agent",
        "-node=py0",
        f"-bind={HOST}:{port}",
        f"-join={seed.bind_addr}",
        "-tag",
        "role=py",
        "-tag",
        "lang=python",
        "-event-handler",
        f"user,query,member-join={script}",
        "-log-level=debug",
        label="agent",
    )
    agent.wait_for_output("Join completed. Synced with 1 initial agents")

    tags = {"role": "py", "lang": "python"}
    for serf in pool.agents:
        member = found(functools.partial(_alive, serf, "py0"), f"py0 at {serf}")
        assert member["tags"] == tags
        assert member["addr"] == f"{HOST}:{port}"

    # Member joins: one line per member on stdin, as serf writes them.
    joins = wait_for(functools.partial(_join_lines, log, 3), STEP, "3 member-joins")
    assert joins == {
        "py0\t127.0.0.1\tpy\tlang=python,role=py\n",
        f"{seed.name}\t127.0.0.1\t\t\n",
        f"{other.name}\t127.0.0.1\t\t\n",
    }

    # A user event fired by a serf agent: serf's variables and stdin.
    other.fire_event("deploy", "v1 payload")
    record = found(functools.partial(_find, log, "user"), "our handler's event")
    serf_run = wait_for(lambda: seed.user_events("deploy"), STEP, "serf's own handler")
    assert record == {
        "SERF_EVENT": "user",
        "SERF_SELF_NAME": "py0",
        "SERF_SELF_ROLE": "py",
        "SERF_TAG_ROLE": "py",
        "SERF_TAG_LANG": "python",
        "SERF_USER_EVENT": "deploy",
        "SERF_USER_LTIME": str(serf_run[0].user_ltime),
        "stdin": b"v1 payload\n".hex(),
    }
    assert serf_run[0].payload == b"v1 payload\n"  # what serf gives its handlers

    # A query: our handler's output is the answer the serf CLI prints.
    done = seed.cli("query", "-format=json", "-timeout=5s", "ask", "qpayload")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["Responses"].get("py0") == "hi-from-py0"
    assert "py0" in answer["Acks"]
    record = found(functools.partial(_find, log, "query"), "our handler's query")
    serf_query = [e for e in seed.events() if e.event == "query"]
    assert record["SERF_QUERY_NAME"] == "ask"
    assert record["SERF_QUERY_LTIME"] == str(serf_query[0].query_ltime)
    assert record["stdin"] == b"qpayload\n".hex()
    assert "SERF_USER_EVENT" not in record

    # SIGINT: a graceful leave.
    assert agent.interrupt() == 0
    assert "==> Gracefully shutting down agent..." in agent.stdout()
    for serf in pool.agents:
        wait_for(functools.partial(_has_left, serf, "py0"), STEP, f"py0 left at {serf}")
    assert len([r for r in handler_records(log) if r["SERF_EVENT"] == "user"]) == 1


def found(predicate: Callable[[], dict[str, Any] | None], what: str) -> dict[str, Any]:
    """Wait until ``predicate`` finds a record, and return it."""
    record = wait_for(predicate, STEP, what)
    assert record is not None
    return record


def _alive(serf: SerfAgent, name: str) -> dict[str, Any] | None:
    member = listed(serf, name)
    return member if member is not None and member["status"] == "alive" else None


def _join_lines(log: Path, count: int) -> set[str] | None:
    runs = [r for r in handler_records(log) if r["SERF_EVENT"] == "member-join"]
    lines = {bytes.fromhex(r["stdin"]).decode() for r in runs}
    return lines if len(runs) >= count else None


def _has_left(serf: SerfAgent, name: str) -> bool:
    return serf.statuses().get(name) == "left"


def _find(log: Path, kind: str) -> dict[str, Any] | None:
    found = [r for r in handler_records(log) if r["SERF_EVENT"] == kind]
    return found[0] if found else None


# ----------------------------------------------------------------------------
# serfcast watch

EVENTS = [("alpha", "1"), ("beta", "two words"), ("gamma", "")]


def printed(process: CliProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.stdout().splitlines()]


@pytest.mark.parametrize("observe", [False, True], ids=["member", "observer"])
def test_watch_prints_each_event_once_across_restarts(
    serf_pool_factory: SerfPoolFactory,
    start_cli: Callable[..., CliProcess],
    tmp_path: Path,
    observe: bool,
) -> None:
    pool = serf_pool_factory(POOL)
    seed = pool.agents[0]
    state = tmp_path / "watch-state.json"
    args = ["watch", f"-join={seed.bind_addr}", f"-state-file={state}"]
    args += ["-observe", "-interval=0.5"] if observe else ["-node=watcher"]
    ready = "observing through" if observe else "joined the pool"

    first = start_cli(*args, label="watch1")
    first.wait_for_output(ready, stream="stderr")
    for index, (name, payload) in enumerate(EVENTS):
        pool.agents[index % 2].fire_event(name, payload)
    wait_for(lambda: len(printed(first)) >= len(EVENTS), STEP, "every event printed")
    time.sleep(REPEAT_WINDOW)
    lines = printed(first)
    assert sorted((line["name"], line.get("text")) for line in lines) == sorted(EVENTS)
    ltimes = {e.user_event: e.user_ltime for e in seed.events() if e.event == "user"}
    assert {line["name"]: line["ltime"] for line in lines} == ltimes
    assert first.interrupt() == 0
    if not observe:
        wait_for(functools.partial(_has_left, seed, "watcher"), STEP, "watcher left")

    second = start_cli(*args, label="watch2")
    second.wait_for_output(ready, stream="stderr")
    pool.agents[1].fire_event("delta", "after the restart")
    wait_for(lambda: printed(second), STEP, "the new event printed")
    time.sleep(REPEAT_WINDOW)
    assert [line["name"] for line in printed(second)] == ["delta"]
    assert second.interrupt() == 0


# ----------------------------------------------------------------------------
# serfcast members


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_members_lists_what_serf_members_lists(
    serf_pool_factory: SerfPoolFactory,
    start_cli: Callable[..., CliProcess],
    encrypted: bool,
) -> None:
    key = serf_keygen() if encrypted else None
    pool = serf_pool_factory(POOL, encrypt=key, agent_tags=[{"role": "a"}, {"x": "y"}])
    seed = pool.agents[0]
    flags = [f"-encrypt={key}"] if key else []

    listing = start_cli(
        "members", f"-join={seed.bind_addr}", "-format=json", *flags, label="json"
    )
    assert listing.reap() == 0, listing.stderr()
    ours = json.loads(listing.stdout())["members"]
    theirs = seed.members()
    assert sorted(ours, key=_name) == sorted(theirs, key=_name)

    text = start_cli("members", f"-join={seed.bind_addr}", *flags, label="text")
    assert text.reap() == 0, text.stderr()
    serf_text = seed.cli("members").stdout
    assert _rows(text.stdout()) == _rows(serf_text)


def _name(member: Any) -> str:
    return str(member["name"])


def _rows(text: str) -> list[tuple[str, ...]]:
    """Lines as sorted rows, the tags in one order (Go prints them at random)."""
    rows = []
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 4:
            cells[3] = ",".join(sorted(cells[3].split(",")))
        rows.append(tuple(cells))
    return sorted(rows)

"""Fire latency: ``serfcast event -serf`` beside ``serf event`` in a real serf pool.

Run ``.venv/bin/python benchmarks/fire.py`` (about a minute) or ``--quick``. It
starts a pool of real serf agents on 127.0.0.1 with the test harness
(``tests/serf_agents.py``; the binaries come from ``scripts/fetch-serf`` or the
``SERFCAST_SERF_0101`` variable), then fires events alternately with both tools
and prints the medians and their ratio. Nothing is asserted; the target is that
serfcast takes at most half of serf's time.

One sample is the time from just before the command starts until the last of the
pool's event handlers has run: both figures include their tool's own process
start, and serf's includes its RPC call to an agent, which then gossips the event
from that one node; serfcast instead asks a seed for the pool's state and hands
the event to the members itself. The last handler's time is the newest
modification time of the agents' handler logs (each run appends one line), so a
sample is only as fine as the kernel's file timestamps (a few milliseconds).
Every wait is bounded and the agents are stopped by PID, even on errors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serf_agents import SerfAgent, SerfPool

#: How long one event may take to reach every handler before it counts as missed.
DELIVERY_TIMEOUT = 20.0
#: Quiet time between events, so one event's gossip does not slow the next.
PAUSE = 0.5
#: After the pool converges, let its own member-join handlers finish first.
SETTLE = 4.0
PAYLOAD = "benchmark-payload"

Fire = Callable[[str], None]


def serfcast_command() -> list[str]:
    """The installed ``serfcast`` script beside this Python, else ``-m``."""
    script = Path(sys.executable).with_name("serfcast")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "serfcast.cli"]


def bytecode_env(cache: Path) -> dict[str, str]:
    """The environment of an installed serfcast: compiled modules are cached.

    pip compiles a package's modules when it installs it; a source checkout
    run with ``PYTHONDONTWRITEBYTECODE`` would compile every module on every
    start instead. The cache goes to a folder of this run, not the tree.
    """
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def serfcast_fire(seed: SerfAgent, env: dict[str, str]) -> Fire:
    """``serfcast event -serf`` in its own process, with the agent as seed."""
    command = [*serfcast_command(), "event", "-serf", "-join", seed.bind_addr]

    def fire(name: str) -> None:
        argv = [*command, name, PAYLOAD]
        subprocess.run(argv, check=True, capture_output=True, timeout=30, env=env)

    return fire


def serf_fire(agent: SerfAgent) -> Fire:
    """``serf event -coalesce=false`` through the agent's RPC address."""

    def fire(name: str) -> None:
        done = agent.cli("event", "-coalesce=false", name, PAYLOAD)
        if done.returncode != 0:
            raise RuntimeError(f"serf event failed: {done.stderr}")

    return fire


@dataclass(frozen=True)
class Sample:
    """One event, in seconds from the command's start (None: a handler missed)."""

    command: float
    first: float | None
    last: float | None


def handler_times_ns(agents: Sequence[SerfAgent], name: str) -> list[int] | None:
    """When each agent ran its handler for ``name``; None if one never did.

    Events are fired one at a time, so each log was last written for ``name``.
    """
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not all(agent.user_events(name) for agent in agents):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return [os.stat(agent.handler_log_path).st_mtime_ns for agent in agents]


def sample(fire: Fire, agents: Sequence[SerfAgent], name: str) -> Sample:
    """Fire ``name`` and time the command and the first and last handler."""
    start = time.time_ns()
    fire(name)
    command = (time.time_ns() - start) / 1e9
    times = handler_times_ns(agents, name)
    time.sleep(PAUSE)
    if times is None:
        return Sample(command, None, None)
    return Sample(command, (min(times) - start) / 1e9, (max(times) - start) / 1e9)


def measure(
    pool: SerfPool, rounds: int, env: dict[str, str]
) -> dict[str, list[Sample]]:
    """Alternate the tools, swapping which goes first every round."""
    tools = {
        "serfcast": serfcast_fire(pool.agents[0], env),
        "serf": serf_fire(pool.agents[0]),
    }
    tools["serfcast"]("warm-up")  # fills the bytecode cache
    time.sleep(PAUSE)
    samples: dict[str, list[Sample]] = {tool: [] for tool in tools}
    for index in range(rounds):
        order = list(tools) if index % 2 == 0 else list(reversed(tools))
        for tool in order:
            name = f"{tool}-{index}"
            samples[tool].append(sample(tools[tool], pool.agents, name))
    return samples


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f}" if values else "      -"


def report(samples: dict[str, list[Sample]], agents: int) -> None:
    """Print the medians of both tools and serfcast's ratio (all handlers ran)."""
    print(f"fire until all {agents} handlers ran ({len(samples['serf'])} events each)")
    print("  median ms   all ran  (min   max)  1st ran  command  missed")
    medians = {}
    for tool, runs in samples.items():
        done = [run for run in runs if run.last is not None]
        last = [run.last for run in done if run.last is not None]
        first = [run.first for run in done if run.first is not None]
        if last:
            medians[tool] = statistics.median(last)
        spread = f"({min(last) * 1000:5.0f} {max(last) * 1000:5.0f})" if last else ""
        print(
            f"  {tool:9s} {_ms(last)} {spread:>13s}  {_ms(first)}  "
            f"{_ms([run.command for run in runs])}  {len(runs) - len(done)}"
        )
    if len(medians) == 2:
        ratio = medians["serfcast"] / medians["serf"]
        print(f"  ratio serfcast / serf: {ratio:.2f} (target <= 0.5)")


def main(argv: Sequence[str] | None = None) -> None:
    """Start the pool, measure, print, stop the pool."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--version", default="0.10.1", choices=("0.9.4", "0.10.1"))
    parser.add_argument("--quick", action="store_true", help="5 agents, 4 rounds")
    args = parser.parse_args(argv)
    agents, rounds = (5, 4) if args.quick else (args.agents, args.rounds)
    with (
        tempfile.TemporaryDirectory(prefix="serfcast-bench-") as workdir,
        SerfPool([args.version] * agents, Path(workdir)) as pool,
    ):
        time.sleep(SETTLE)
        env = bytecode_env(Path(workdir) / "pycache")
        report(measure(pool, rounds, env), agents)


if __name__ == "__main__":
    main()

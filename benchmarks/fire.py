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


def serfcast_fire(seed: SerfAgent) -> Fire:
    """``serfcast event -serf`` in its own process, with the agent as seed."""
    command = [sys.executable, "-m", "serfcast.cli", "event", "-serf"]

    def fire(name: str) -> None:
        argv = [*command, "-join", seed.bind_addr, name, PAYLOAD]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)

    return fire


def serf_fire(agent: SerfAgent) -> Fire:
    """``serf event -coalesce=false`` through the agent's RPC address."""

    def fire(name: str) -> None:
        done = agent.cli("event", "-coalesce=false", name, PAYLOAD)
        if done.returncode != 0:
            raise RuntimeError(f"serf event failed: {done.stderr}")

    return fire


def last_handler_ns(agents: Sequence[SerfAgent], name: str) -> int | None:
    """When the last agent ran its handler for ``name``; None if one never did."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not all(agent.user_events(name) for agent in agents):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return max(os.stat(agent.handler_log_path).st_mtime_ns for agent in agents)


def sample(fire: Fire, agents: Sequence[SerfAgent], name: str) -> float | None:
    """Seconds from starting the command until every handler ran (None: missed)."""
    start = time.time_ns()
    fire(name)
    done = last_handler_ns(agents, name)
    time.sleep(PAUSE)
    return None if done is None else (done - start) / 1e9


def measure(pool: SerfPool, rounds: int) -> dict[str, list[float | None]]:
    """Alternate the tools, swapping which goes first every round."""
    tools = {
        "serfcast": serfcast_fire(pool.agents[0]),
        "serf": serf_fire(pool.agents[0]),
    }
    samples: dict[str, list[float | None]] = {tool: [] for tool in tools}
    for index in range(rounds):
        order = list(tools) if index % 2 == 0 else list(reversed(tools))
        for tool in order:
            name = f"{tool}-{index}"
            samples[tool].append(sample(tools[tool], pool.agents, name))
    return samples


def report(samples: dict[str, list[float | None]], agents: int) -> None:
    """Print the medians (and spread) of both tools and serfcast's ratio."""
    print(f"fire until all {agents} handlers ran ({len(samples['serf'])} events each)")
    medians = {}
    for tool, values in samples.items():
        got = [v for v in values if v is not None]
        missed = len(values) - len(got)
        if not got:
            print(f"  {tool:9s} every event missed")
            continue
        medians[tool] = statistics.median(got)
        print(
            f"  {tool:9s} median {medians[tool] * 1000:7.1f} ms   "
            f"min {min(got) * 1000:7.1f}   max {max(got) * 1000:7.1f}   "
            f"missed {missed}"
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
        report(measure(pool, rounds), agents)


if __name__ == "__main__":
    main()

"""CPU and memory of a serfcast member beside real serf agents in the same pool.

Run ``.venv/bin/python benchmarks/member.py`` (about 75 s) or add ``--quick`` for
a 10 s window. It starts a pool of ten real serf agents on 127.0.0.1 (mixed
0.9.4 and 0.10.1 unless ``--versions`` says otherwise), then a serfcast member
(a ``SerfNode`` under the trio driver, or with ``--driver asyncio`` the asyncio
one, ``member_child.py``) in a process of its
own, so that it is measured alone. Once every agent lists the member alive, the CPU time
(utime + stime from ``/proc/<pid>/stat``, all threads, handler children not
included) of the member and of every agent is sampled, again ``--seconds`` later,
and the peak resident set (``VmHWM`` in ``/proc/<pid>/status``) is read at the
end. The figures are printed beside the targets, never asserted.

``--event-rate`` adds user events fired from the agents (by the ``serf event``
CLI, round robin); the default measures an idle pool: probes, gossip and
push/pulls only. ``--encrypt`` gives the pool (and the member) a gossip key,
``--no-compression`` turns the member's LZW attempts off. ``--profile`` runs
the member under cProfile and prints where its time goes (this slows it down:
do not compare that run's CPU figure).

The binaries come from ``scripts/fetch-serf`` (or ``SERFCAST_SERF_094`` and
``SERFCAST_SERF_0101``). Every wait is bounded, and every process this starts,
agents and member alike, is stopped through its own PID.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The agents come from the test suite's harness.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serf_agents import SerfAgent, SerfPool, serf_keygen, wait_for

#: The member may use at most this multiple of a serf agent's CPU time.
TARGET_CPU_RATIO: Final = 1.5
#: The member's peak resident set may not exceed this.
TARGET_RSS_MB: Final = 35.0
AGENTS: Final = 10
#: The member's name, as member_child.py calls itself.
MEMBER_NAME: Final = "serfcast-bench"
#: Bounds on the member's start (imports and join) and its graceful leave.
START_TIMEOUT: Final = 30.0
LEAVE_TIMEOUT: Final = 15.0
#: The member's program, run as a process of its own.
CHILD: Final = Path(__file__).resolve().parent / "member_child.py"

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------
# /proc readings


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (every thread, not its children), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` of ``pid``: the most resident memory it has had, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


@dataclass(frozen=True)
class Usage:
    """What one process used during the window."""

    label: str
    cpu: float
    rss_mb: float


# ----------------------------------------------------------------------------
# The parent: pool, member, measurements


class MemberProcess:
    """The member's process, started and stopped by its PID."""

    def __init__(
        self, seed: SerfAgent, key: str | None, args: argparse.Namespace, log: Path
    ) -> None:
        argv = [sys.executable, str(CHILD), str(seed.bind_port)]
        if key:
            argv += ["--key", key]
        argv += ["--driver", args.driver]
        if args.no_compression:
            argv.append("--no-compression")
        if args.profile:
            argv.append("--profile")
        self.log = log
        # stderr goes to a file: a full pipe would stall the member.
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_joined(self) -> float:
        """The member's own join time (join call to join finished), once it
        reports it; fails after START_TIMEOUT."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        word, _, seconds = line.partition(" ")
        if word != "joined":
            raise RuntimeError(f"member did not join: {line or 'no answer'}")
        return float(seconds)

    def stop(self) -> str:
        """Close its stdin (it leaves and exits); SIGKILL it if it lingers.
        Returns what it wrote on stderr (the profile, when asked for)."""
        try:
            self.process.communicate(b"", timeout=LEAVE_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=10)
        return self.log.read_text(errors="replace")


def fire_events(pool: SerfPool, rate: float, seconds: float) -> int:
    """Fire ``rate`` events a second from the agents in turn; return how many."""
    if rate <= 0:
        time.sleep(seconds)
        return 0
    deadline = time.monotonic() + seconds
    fired = 0
    while (now := time.monotonic()) < deadline:
        agent = pool.agents[fired % len(pool.agents)]
        agent.fire_event(f"bench-{fired}", b"x" * 64, coalesce=False)
        fired += 1
        time.sleep(max(0.0, min(1.0 / rate, deadline - now)))
    return fired


@dataclass
class Measurement:
    """One run: usage of the member (first) and of every agent, and context."""

    usage: list[Usage]
    versions: dict[str, str]
    window: float
    join_seconds: float
    seen_alive: float
    start_cpu: float
    fired: int
    alive: bool
    profile: str = ""


def measure(args: argparse.Namespace, workdir: Path) -> Measurement:
    """Start the pool and the member, and take the readings."""
    versions = args.versions.split(",")
    key = serf_keygen() if args.encrypt else None
    agent_versions = [versions[i % len(versions)] for i in range(AGENTS)]
    with SerfPool(agent_versions, workdir, encrypt=key) as pool:
        member = MemberProcess(pool.agents[0], key, args, workdir / "member.err")
        try:
            join_seconds = member.wait_joined()
            joined = time.monotonic()
            wait_for(
                lambda: all(listed_alive(a) for a in pool.agents),
                START_TIMEOUT,
                "every agent to list the member alive",
            )
            seen_alive = time.monotonic() - joined
            pids = {MEMBER_NAME: member.pid} | {a.name: a.pid for a in pool.agents}
            started, before = time.monotonic(), read_cpu(pids)
            fired = fire_events(pool, args.event_rate, args.seconds)
            window, after = time.monotonic() - started, read_cpu(pids)
            usage = [
                Usage(name, after[name] - before[name], peak_rss_mb(pid))
                for name, pid in pids.items()
            ]
            alive = all(listed_alive(a) for a in pool.agents)
        finally:
            profile = member.stop()
    versions_of = {a.name: a.version for a in pool.agents}
    start_cpu = before[MEMBER_NAME]
    return Measurement(
        usage,
        versions_of,
        window,
        join_seconds,
        seen_alive,
        start_cpu,
        fired,
        alive,
        profile,
    )


def read_cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def listed_alive(agent: SerfAgent) -> bool:
    return agent.statuses().get(MEMBER_NAME) == "alive"


def report(args: argparse.Namespace, m: Measurement) -> None:
    """Print the table, the targets, and the profile if there is one."""
    ours, agents = m.usage[0], m.usage[1:]
    pool = "encrypted" if args.encrypt else "plain"
    print(
        f"\n{len(agents)} serf agents ({args.versions}, {pool}) + 1 serfcast"
        f" member ({args.driver} driver), {m.window:.1f} s window,"
        f" {m.fired} events fired"
    )
    print(f"member start-up (imports, join): {m.start_cpu:.2f} CPU s")
    print(
        f"member join: {m.join_seconds:.2f} s, then {m.seen_alive:.2f} s until"
        " every agent listed it alive"
    )
    print(f"member listed alive by every agent at the end: {yes(m.alive)}\n")
    print(f"{'process':<18}{'CPU s':>8}{'% core':>8}{'peak RSS MB':>13}")
    for row in m.usage:
        version = "" if row is ours else f" ({m.versions[row.label]})"
        print(table_row(row.label + version, row.cpu, row.rss_mb, m.window))
    median_cpu = statistics.median(a.cpu for a in agents)
    median_rss = statistics.median(a.rss_mb for a in agents)
    print(table_row("agent median", median_cpu, median_rss, m.window))
    ratio = ours.cpu / median_cpu if median_cpu > 0 else math.inf
    print(
        f"\nCPU: member / agent median = {ratio:.2f}x"
        f" (target <= {TARGET_CPU_RATIO}x): {verdict(ratio <= TARGET_CPU_RATIO)}"
    )
    print(
        f"RSS: member peak = {ours.rss_mb:.1f} MB"
        f" (target <= {TARGET_RSS_MB:.0f} MB): {verdict(ours.rss_mb <= TARGET_RSS_MB)}"
    )
    if args.profile:
        print("(profiled run: the member's CPU figure includes cProfile's overhead)")
        print("\nMember profile (cProfile):\n" + m.profile)


def table_row(label: str, cpu: float, rss_mb: float, window: float) -> str:
    return f"{label:<18}{cpu:>8.2f}{100 * cpu / window:>8.2f}{rss_mb:>13.1f}"


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def verdict(ok: bool) -> str:
    return "within target" if ok else "OVER TARGET"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="window length")
    parser.add_argument("--quick", action="store_true", help="a 10 s window")
    parser.add_argument(
        "--versions", default="0.9.4,0.10.1", help="agent versions, round robin"
    )
    parser.add_argument("--encrypt", action="store_true", help="an encrypted pool")
    parser.add_argument(
        "--driver",
        choices=("trio", "asyncio"),
        default="trio",
        help="the member's driver (default trio)",
    )
    parser.add_argument(
        "--event-rate", type=float, default=0.0, help="user events per second"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the member")
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="run the member with enable_compression=False",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 10.0
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be between 0 and 3600")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serfcast-bench-") as tmp:
        report(args, measure(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real serf agents for ``serfcast demo -with-serf``.

Each agent is a ``serf agent`` process on 127.0.0.1 with its own gossip and
RPC ports, in a session of its own (so a Ctrl-C typed in the terminal reaches
only the demo, which then decides how the agents stop). It joins the demo's
pool at start and runs a tiny ``/bin/sh`` handler for the demo's event, which
writes the wall-clock time it ran and the payload it read into the demo's
temporary folder; that is how the timeline learns when an agent got the event.
Agents leave gracefully on SIGINT, sent to their own PID; one that does not
exit in time is killed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Agent", "SerfBinary", "find_serf", "no_serf_message", "write_handler"]

HOST: Final = "127.0.0.1"
#: Where an environment variable names the serf binary of one version.
VERSION_ENV: Final = (("0.10.1", "SERFCAST_SERF_0101"), ("0.9.4", "SERFCAST_SERF_094"))

#: Seconds to wait for a killed agent to be reaped.
KILL_WAIT: Final = 5.0

HANDLER_SCRIPT: Final = """#!/bin/sh
# serfcast demo: note when this agent's handler ran, and the payload it read.
now=$(date +%s.%N)
out="$SERFCAST_DEMO_DIR/$SERF_SELF_NAME"
cat > "$out.payload"
printf '%s\\n' "$now" > "$out.partial"
mv "$out.partial" "$out.time"
"""


@dataclass(frozen=True, slots=True)
class SerfBinary:
    """A serf executable, and its version when the place it came from says so."""

    path: Path
    version: str | None

    @property
    def label(self) -> str:
        """``serf 0.10.1``, or ``serf`` for one found on PATH."""
        return f"serf {self.version}" if self.version else "serf"


def find_serf(env: Mapping[str, str], cwd: Path) -> list[SerfBinary]:
    """One serf binary per version, from the environment or ``.cache/serf``.

    ``$SERFCAST_SERF_0101`` and ``$SERFCAST_SERF_094`` win over
    ``.cache/serf/<version>/serf`` (where ``scripts/fetch-serf`` puts them);
    a ``serf`` on PATH is used only when neither gave anything.
    """
    found: list[SerfBinary] = []
    for version, name in VERSION_ENV:
        configured = env.get(name)
        cached = cwd / ".cache" / "serf" / version / "serf"
        path = Path(configured) if configured and _runnable(Path(configured)) else None
        path = path or (cached if _runnable(cached) else None)
        if path is not None:
            found.append(SerfBinary(path, version))
    on_path = shutil.which("serf", path=env.get("PATH", os.defpath))
    if not found and on_path:
        found.append(SerfBinary(Path(on_path), None))
    return found


def no_serf_message() -> str:
    """What to do when ``-with-serf`` finds no serf binary."""
    return (
        "-with-serf found no serf binary ($SERFCAST_SERF_0101, $SERFCAST_SERF_094, "
        ".cache/serf/<version>/serf, PATH): run scripts/fetch-serf in a serfcast "
        "checkout to download serf 0.9.4 and 0.10.1, or put serf on your PATH"
    )


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def write_handler(folder: Path) -> Path:
    """Write the agents' event handler into ``folder``."""
    path = folder / "handler.sh"
    path.write_text(HANDLER_SCRIPT)
    path.chmod(0o700)
    return path


@dataclass(eq=False, slots=True)
class Agent:
    """One ``serf agent`` process of the demo."""

    name: str
    binary: SerfBinary
    port: int
    rpc_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the agent's output goes."""
        return self.folder / f"{self.name}.log"

    def command(self, seed: int, profile: str, event: str, handler: Path) -> list[str]:
        """The ``serf agent`` command line: join ``seed``, run ``handler``."""
        return [
            str(self.binary.path),
            "agent",
            f"-node={self.name}",
            f"-bind={HOST}:{self.port}",
            f"-rpc-addr={HOST}:{self.rpc_port}",
            f"-profile={profile}",
            "-log-level=info",
            f"-event-handler=user:{event}={shlex.quote(str(handler))}",
            f"-join={HOST}:{seed}",
        ]

    def start(self, command: Sequence[str]) -> None:
        """Launch the agent in a session of its own; output goes to its log."""
        env = dict(os.environ, SERFCAST_DEMO_DIR=str(self.folder))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def exited_early(self) -> str | None:
        """Why the agent is gone (its last log line), or None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        last = lines[-1].strip() if lines else "no output"
        return f"serf agent {self.name} exited ({self.process.returncode}): {last}"

    def arrival(self, payload: bytes) -> float | None:
        """The wall-clock time the handler ran, if it read ``payload``."""
        try:
            stamp = (self.folder / f"{self.name}.time").read_text().strip()
            got = (self.folder / f"{self.name}.payload").read_bytes()
        except FileNotFoundError:
            return None
        # The agent ends a handler's input with a newline unless it had one.
        if got not in (payload, payload + b"\n"):
            return None
        try:
            return float(stamp)
        except ValueError:
            return None

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the agent's own PID, if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the agent and reap it (bounded)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        # Past that the kernel has it; there is nothing more a process can do.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=KILL_WAIT)

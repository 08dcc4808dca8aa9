"""``serfcast demo`` as a user runs it: a process, its output, what it leaves behind.

* With six members (and not on a terminal) it prints one timeline row per
  member, the sender's marked, every other with the time it got the event, then
  the summary and the graceful leave, and exits 0; afterwards every port it
  used is free again.
* With ``-with-serf`` the real serf agents get rows of their own, marked with
  their version, and are gone afterwards.
* Ctrl-C (SIGINT) stops it at once with status 130, and again nothing is left.
* Bad flags are refused by the parser (status 2) with one error line, a payload
  Serf would not send and ``-with-serf`` without serf with one ``serfcast:``
  line (status 1), all before anything starts.

Every process is started here and stopped by its own PID; every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from serf_agents import serf_binary
from serfcast.cli import main
from serfcast.serf.limits import user_event_budget

HOST = "127.0.0.1"
#: The demo stops itself within 30 s; this only bounds a hung process.
DEMO_BOUND = 60.0
#: How long to wait for one line of the demo's output.
LINE_BOUND = 30.0

ROW = re.compile(
    r"^  (?P<name>[ns]\d+)\s+(?P<kind>serfcast|serf(?: [\d.]+)?)\s+"
    r":(?P<port>\d+)\s+│(?P<bar>[▏▎▍▌▋▊▉█░]*) (?P<label>.*)$"
)
TIME_LABEL = re.compile(r"^\d+(\.\d)? m?s( push/pull)?$")


@dataclass(frozen=True)
class TimelineRow:
    name: str
    kind: str
    port: int
    bar: str
    label: str


def demo_command(*args: str) -> list[str]:
    """The installed ``serfcast`` script, as the README runs it."""
    return [str(Path(sys.executable).with_name("serfcast")), "demo", *args]


def run_demo(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_command(*args),
        capture_output=True,
        text=True,
        timeout=DEMO_BOUND,
        env=None if env is None else dict(env),
        cwd=cwd,
        check=False,
    )


def timeline(stdout: str) -> list[TimelineRow]:
    rows = []
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match:
            rows.append(
                TimelineRow(
                    match["name"],
                    match["kind"],
                    int(match["port"]),
                    match["bar"],
                    match["label"],
                )
            )
    return rows


def port_is_free(port: int) -> bool:
    """Whether UDP and a TCP listener could have ``port`` on 127.0.0.1 now."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        # As a listener binds: connections left in TIME_WAIT do not hold it.
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((HOST, port))
            udp.bind((HOST, port))
        except OSError:
            return False
    return True


def processes_naming(text: str) -> list[int]:
    """PIDs whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def assert_everyone_got_it(rows: list[TimelineRow]) -> None:
    senders = [row for row in rows if row.label == "fired here"]
    assert len(senders) == 1, rows
    for row in rows:
        if row is not senders[0]:
            assert TIME_LABEL.match(row.label), row
            assert row.bar and "░" not in row.bar, row


def assert_nothing_left(rows: list[TimelineRow]) -> None:
    busy = [row.port for row in rows if not port_is_free(row.port)]
    assert busy == [], f"ports still bound after the demo: {busy}"
    agents = [pid for row in rows for pid in processes_naming(f"{HOST}:{row.port}")]
    assert agents == [], f"processes still running after the demo: {agents}"


# ----------------------------------------------------------------------------
# A whole run


def test_demo_shows_every_member_getting_the_event() -> None:
    done = run_demo("-nodes", "6", "-seed", "11")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    rows = timeline(done.stdout)
    assert [row.name for row in rows] == [f"n0{i}" for i in range(1, 7)]
    assert {row.kind for row in rows} == {"serfcast"}
    assert_everyone_got_it(rows)
    assert re.search(r"all 6 members had the event within \d", done.stdout)
    assert "gossip intervals of 100 ms (profile local)" in done.stdout
    assert "left gracefully in" in done.stdout
    assert "\x1b" not in done.stdout  # not a terminal: no colour, no redrawing
    assert_nothing_left(rows)


@pytest.mark.interop
def test_demo_with_serf_agents_shows_their_rows() -> None:
    env = dict(os.environ)
    env.setdefault("SERFCAST_SERF_0101", str(serf_binary("0.10.1")))
    env.setdefault("SERFCAST_SERF_094", str(serf_binary("0.9.4")))
    done = run_demo("-nodes", "4", "-with-serf", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = timeline(done.stdout)
    kinds = {row.name: row.kind for row in rows}
    assert kinds == {
        "n01": "serfcast",
        "n02": "serfcast",
        "n03": "serfcast",
        "n04": "serfcast",
        "s01": "serf 0.10.1",
        "s02": "serf 0.9.4",
        "s03": "serf 0.10.1",
        "s04": "serf 0.9.4",
    }
    assert_everyone_got_it(rows)
    assert "all 8 members had the event within" in done.stdout
    assert "every serf agent has exited" in done.stdout
    assert_nothing_left(rows)


# ----------------------------------------------------------------------------
# Ctrl-C


def _proc_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        # The parent PID is the second field after the command's closing ')'.
        if stat and int(stat.rpartition(")")[2].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def _udp_ports(pid: int) -> set[int]:
    """The ports of the UDP sockets process ``pid`` holds on 127.0.0.1."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with_target = os.readlink(fd) if fd.is_symlink() else ""
        if with_target.startswith("socket:["):
            inodes.add(with_target[len("socket:[") : -1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        address, inode = fields[1], fields[9]
        if inode in inodes and address.startswith("0100007F:"):
            ports.add(int(address.partition(":")[2], 16))
    return ports


def _read_until(process: subprocess.Popen[str], text: str) -> str:
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"the demo ended before printing {text!r}: {seen}")


@pytest.mark.parametrize(
    "with_serf", [False, pytest.param(True, marks=pytest.mark.interop)]
)
@pytest.mark.timeout(DEMO_BOUND + LINE_BOUND)
def test_ctrl_c_stops_everything(with_serf: bool) -> None:
    env = dict(os.environ)
    args = ["-nodes", "5", "-profile", "wan"]
    if with_serf:
        env.setdefault("SERFCAST_SERF_0101", str(serf_binary("0.10.1")))
        args.append("-with-serf")
    process = subprocess.Popen(
        demo_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _read_until(process, "fires user event")
        agents = _proc_children(process.pid)
        ports = _udp_ports(process.pid).union(*map(_udp_ports, agents))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=DEMO_BOUND)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=DEMO_BOUND)
    assert process.returncode == 130, err
    assert err.strip() == "serfcast: interrupted; stopping the pool"
    assert len(agents) == (4 if with_serf else 0)
    assert len(ports) == 5 + len(agents)  # each member's and agent's gossip port
    assert [port for port in ports if not port_is_free(port)] == []
    assert [pid for pid in agents if Path(f"/proc/{pid}").exists()] == []


# ----------------------------------------------------------------------------
# Refusals, before anything starts


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["-nodes", "1"], "1 members: give 2 to 64"),
        (["-nodes", "65"], "65 members: give 2 to 64"),
        (["-nodes", "many"], "'many' is not a whole number"),
        (["-profile", "moon"], "invalid choice: 'moon'"),
        (["-seed", "x"], "invalid int value: 'x'"),
        (["-with-serf=maybe"], "invalid boolean value 'maybe' for -with-serf"),
        (["-bogus"], "unrecognized arguments: -bogus"),
    ],
)
def test_bad_flags_exit_2_with_one_error_line(
    flags: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *flags])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert complaint in errors[0]
    assert out == ""


def test_a_payload_serf_would_not_send_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "-payload", "x" * 600]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("serfcast: -payload is 600 bytes, too big: ")
    budget = user_event_budget("serfcast-demo", 0)
    assert err.endswith(f"(a payload of up to {budget} bytes fits)\n")


def test_with_serf_without_serf_says_how_to_get_it(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SERFCAST_SERF_0101", "SERFCAST_SERF_094")
    }
    env["PATH"] = str(empty)
    done = run_demo("-with-serf", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("serfcast: -with-serf found no serf binary")
    assert "scripts/fetch-serf" in done.stderr

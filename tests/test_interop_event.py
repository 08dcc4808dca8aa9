"""``serfcast event`` against real serf 0.9.4 and 0.10.1 pools, plain and encrypted.

The command runs as a separate process, as a user would run it, and never joins:

* a plain Serf event (``-serf``) reaches every agent's handler exactly once with
  its exact name and payload, binary bytes read from standard input included;
* a Consul event arrives as ``consul:event:<name>`` with a payload that decodes
  to the event that was sent, ID included;
* the Lamport time printed is the one the handlers see;
* no agent's member list changes, no agent logs a member join or leave (nor runs
  a member handler) for us, and no agent logs an error or a warning;
* a wrong key, a missing key, a key for a plain pool, and a seed nobody listens
  on each give their own one-line error, and nothing reaches any handler.

With ``-member`` the command joins instead: the event reaches every handler
once, and every agent logs our join and then our leave and lists us as left.
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time

import pytest

from serf_agents import SERF_VERSIONS, SerfAgent, SerfPoolFactory, serf_keygen
from serfcast.consul import ConsulEvent

pytestmark = pytest.mark.interop

DELIVERY_TIMEOUT = 10.0
#: After every handler ran once, how long to watch for an unwanted second run.
DUPLICATE_WINDOW = 1.0
COMMAND_TIMEOUT = 30.0
MEMBER_EVENTS = ("member-join", "member-leave", "member-failed", "member-update")


def serfcast_event(
    args: list[str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """Run ``serfcast event <args>`` in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "serfcast.cli", "event", *args],
        input=stdin,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def fired(args: list[str], stdin: bytes = b"") -> dict[str, object]:
    done = serfcast_event([*args, "-format", "json"], stdin)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""  # no warnings either
    result: dict[str, object] = json.loads(done.stdout)
    return result


def wait_delivered(agents: list[SerfAgent], names: list[str]) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not all(agent.user_events(n) for agent in agents for n in names):
        assert time.monotonic() < deadline, [
            (agent.name, [e.user_event for e in agent.events()]) for agent in agents
        ]
        time.sleep(0.05)
    time.sleep(DUPLICATE_WINDOW)


def complaints(agent: SerfAgent) -> list[str]:
    lines = agent.log_text().splitlines()
    return [line for line in lines if "[ERR]" in line or "[WARN]" in line]


def strangers(agent: SerfAgent, names: set[str]) -> list[str]:
    """Members other than ``names`` that the agent logged or ran a handler for.

    The log has ``EventMemberJoin: <name> <addr>`` (and Leave, Failed, ...) lines;
    a member handler gets one ``<name>\t<addr>\t...`` line per member on stdin.
    """
    seen = [
        line.split("EventMember", 1)[1].split(": ", 1)[1].split()[0]
        for line in agent.log_text().splitlines()
        if "EventMember" in line
    ]
    for event in agent.events():
        if event.event in MEMBER_EVENTS:
            lines = event.payload.decode(errors="replace").splitlines()
            seen += [line.split("\t")[0] for line in lines]
    assert seen, "the pool's own joins should show up here"
    return [name for name in seen if name not in names]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("version", SERF_VERSIONS)
def test_event_reaches_every_handler_once_without_joining(
    serf_pool_factory: SerfPoolFactory, version: str, encrypted: bool
) -> None:
    key = serf_keygen() if encrypted else None
    pool = serf_pool_factory([version] * 3, encrypt=key)
    agents = pool.agents
    base = ["-join", agents[1].bind_addr] + (["-encrypt", key] if key else [])
    members_before = [agent.statuses() for agent in agents]

    plain = fired([*base, "-serf", "deploy-web", "v1.2 go!"])
    binary = b"\x00\x01 bytes \xff\xfe"
    piped = fired([*base, "-serf", "-coalesce=false", "binary", "-"], binary)
    consul = fired([*base, "-name", "restart", "-node", "^n", "please"])
    wait_delivered(agents, ["deploy-web", "binary", "consul:event:restart"])

    for agent in agents:
        (run,) = agent.user_events("deploy-web")
        assert (run.payload_as_sent, run.user_ltime) == (b"v1.2 go!", plain["ltime"])
        (run,) = agent.user_events("binary")
        assert (run.payload_as_sent, run.user_ltime) == (binary, piped["ltime"])
        (run,) = agent.user_events("consul:event:restart")
        assert run.user_ltime == consul["ltime"]
        assert ConsulEvent.decode_payload(run.payload_as_sent) == ConsulEvent(
            str(consul["id"]), "restart", b"please", node_filter="^n"
        )
    assert [agent.statuses() for agent in agents] == members_before
    names = {agent.name for agent in agents}
    assert [strangers(agent, names) for agent in agents] == [[], [], []]
    assert [complaints(agent) for agent in agents] == [[], [], []]


def has_left(agent: SerfAgent, name: str) -> bool:
    return agent.statuses().get(name) == "left"


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_member_mode_joins_fires_and_leaves(
    serf_pool_factory: SerfPoolFactory, encrypted: bool
) -> None:
    key = serf_keygen() if encrypted else None
    pool = serf_pool_factory(["0.9.4", "0.10.1", "0.10.1"], encrypt=key)
    agents = pool.agents
    base = ["-join", agents[0].bind_addr] + (["-encrypt", key] if key else [])

    result = fired([*base, "-member", "-serf", "as-member", "joined"])
    ours = str(result["member"])
    wait_delivered(agents, ["as-member"])

    for agent in agents:
        (run,) = agent.user_events("as-member")
        assert (run.payload_as_sent, run.user_ltime) == (b"joined", result["ltime"])
        pool.wait_for(
            functools.partial(has_left, agent, ours),
            DELIVERY_TIMEOUT,
            f"{agent.name} to list {ours} as left",
        )
        log = agent.log_text()
        assert f"EventMemberJoin: {ours} " in log
        assert f"EventMemberLeave: {ours} " in log
        assert complaints(agent) == []


@pytest.mark.parametrize("version", SERF_VERSIONS)
def test_key_mismatches_give_their_own_errors(
    serf_pool_factory: SerfPoolFactory, version: str
) -> None:
    encrypted = serf_pool_factory([version], encrypt=serf_keygen()).agents[0]
    plain = serf_pool_factory([version]).agents[0]
    cases = [
        (encrypted, ["-encrypt", serf_keygen()], "the pool uses another gossip key"),
        (encrypted, [], "the pool is encrypted and no gossip key was given"),
        (plain, ["-encrypt", serf_keygen()], "the agent does not use encryption"),
    ]
    for agent, flags, reason in cases:
        done = serfcast_event(["-join", agent.bind_addr, *flags, "-serf", "x"])
        err = done.stderr.decode()
        assert done.returncode == 1, err
        assert err.startswith(
            "serfcast: no seed could decrypt our request (check the gossip key and "
            f"label), so nothing was sent: {agent.bind_addr}: "
        )
        assert reason in err and err.count("\n") == 1
    assert encrypted.user_events("x") == plain.user_events("x") == []


def test_unreachable_seed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = serfcast_event(["-join", f"127.0.0.1:{port}", "-serf", "x"])
    assert done.returncode == 1
    assert done.stderr.decode().startswith(
        f"serfcast: no seed answered, so nothing was sent: 127.0.0.1:{port}: "
        "connection refused"
    )

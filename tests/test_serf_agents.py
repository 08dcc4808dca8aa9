"""The real-agent harness proves itself against serf 0.9.4 and 0.10.1."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from serf_agents import (
    PORT_RANGE,
    SERF_VERSIONS,
    HandlerEvent,
    SerfPool,
    SerfPoolFactory,
    free_port,
    parse_handler_log,
    serf_binary,
    serf_keygen,
    strip_added_newline,
    write_handler,
)

# (versions of the two agents, encrypted?)
POOLS = [
    pytest.param((("0.9.4", "0.9.4"), False), id="0.9.4"),
    pytest.param((("0.10.1", "0.10.1"), False), id="0.10.1"),
    pytest.param((("0.9.4", "0.9.4"), True), id="0.9.4-encrypted"),
    pytest.param((("0.10.1", "0.10.1"), True), id="0.10.1-encrypted"),
    pytest.param((("0.9.4", "0.10.1"), False), id="mixed"),
]


@pytest.fixture(params=POOLS)
def pool(
    request: pytest.FixtureRequest, serf_pool_factory: SerfPoolFactory
) -> SerfPool:
    versions, encrypted = request.param
    key = serf_keygen(versions[0]) if encrypted else None
    return serf_pool_factory(versions, encrypt=key)


# --- Against real agents -------------------------------------------------------------


@pytest.mark.interop
def test_pool_converges(pool: SerfPool) -> None:
    for agent in pool.agents:
        members = {member["name"]: member for member in agent.members()}
        assert set(members) == {"n0", "n1"}
        for other in pool.agents:
            assert members[other.name]["status"] == "alive"
            assert members[other.name]["addr"] == other.bind_addr
        assert agent.running


@pytest.mark.interop
def test_pool_is_encrypted_only_when_asked(pool: SerfPool) -> None:
    expected = "true" if pool.encrypt else "false"
    for agent in pool.agents:
        assert f"Encrypted: {expected}" in agent.log_text()


@pytest.mark.interop
def test_user_event_reaches_every_handler_once(pool: SerfPool) -> None:
    payload = "hello world \N{CHECK MARK}".encode()
    pool.agents[0].fire_event("greet", payload, coalesce=False)
    # A second event, with an empty payload: by the time every handler has run for
    # both, a duplicate run for either would most likely have shown up as well.
    pool.agents[0].fire_event("marker", coalesce=False)
    pool.wait_for(
        lambda: all(
            a.user_events("greet") and a.user_events("marker") for a in pool.agents
        ),
        10,
        "both events on every agent",
    )

    greet_ltimes = set()
    for agent in pool.agents:
        (greet,) = agent.user_events("greet")
        (marker,) = agent.user_events("marker")
        assert greet.self_name == agent.name
        assert greet.payload == payload + b"\n"
        assert greet.payload_as_sent == payload
        assert marker.payload == b""
        greet_ltimes.add(greet.user_ltime)
    assert len(greet_ltimes) == 1


@pytest.mark.interop
def test_graceful_stop_shows_left(pool: SerfPool) -> None:
    first, second = pool.agents
    exit_code = second.stop(graceful=True)
    assert not second.running
    assert exit_code is not None
    pool.wait_for(
        lambda: first.statuses().get(second.name) == "left", 10, "n1 to be seen left"
    )
    leaves = pool.wait_for(
        lambda: [e for e in first.events() if e.event == "member-leave"],
        10,
        "a member-leave handler run on n0",
    )
    assert leaves[0].payload.startswith(b"n1\t127.0.0.1\t")


@pytest.mark.interop
def test_kill_is_a_sigkill_of_the_agent_alone(
    serf_pool_factory: SerfPoolFactory,
) -> None:
    pool = serf_pool_factory(["0.10.1", "0.10.1"])
    first, second = pool.agents
    assert second.kill() == -signal.SIGKILL
    assert not second.running
    assert first.running
    assert second.kill() == -signal.SIGKILL  # a second kill is harmless


# --- The harness pieces on their own --------------------------------------------------


@pytest.mark.parametrize("version", SERF_VERSIONS)
def test_binaries_are_present(version: str) -> None:
    done = subprocess.run(
        [str(serf_binary(version)), "version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert "Agent Protocol: 5" in done.stdout


def test_missing_binary_fails_the_test(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SERFCAST_SERF_0101", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="scripts/fetch-serf"):
        serf_binary("0.10.1")


def test_free_ports_are_distinct_and_free_for_udp_and_tcp() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    assert all(port in PORT_RANGE for port in ports)


@pytest.mark.parametrize(
    "stdin",
    [b"", b"hello-world\n", bytes(range(256)), b"\x00\n\t end\n\n"],
    ids=["empty", "line", "all-bytes", "awkward"],
)
def test_handler_records_exactly(tmp_path: Path, stdin: bytes) -> None:
    log = tmp_path / "events"
    env = dict(
        os.environ,
        SERFCAST_HANDLER_LOG=str(log),
        SERF_EVENT="user",
        SERF_SELF_NAME="node \N{SNOWMAN}",
        SERF_USER_EVENT="name\twith tab",
        SERF_USER_LTIME="42",
    )
    env.pop("SERF_QUERY_NAME", None)
    env.pop("SERF_QUERY_LTIME", None)
    handler = write_handler(tmp_path)
    for _ in range(2):
        subprocess.run([str(handler)], input=stdin, env=env, timeout=10, check=True)

    expected = HandlerEvent(
        "user", "node \N{SNOWMAN}", "name\twith tab", 42, "", None, stdin
    )
    assert parse_handler_log(log.read_bytes()) == [expected, expected]


@pytest.mark.parametrize("response", ["resp-from-n0", ""], ids=["set", "empty"])
def test_handler_prints_the_query_response(tmp_path: Path, response: str) -> None:
    log = tmp_path / "events"
    env = dict(
        os.environ,
        SERFCAST_HANDLER_LOG=str(log),
        SERFCAST_QUERY_RESPONSE=response,
        SERF_SELF_NAME="n0",
        SERF_QUERY_NAME="whoami",
        SERF_QUERY_LTIME="7",
    )
    handler = str(write_handler(tmp_path))
    printed = {}
    for event in ("query", "user"):
        done = subprocess.run(
            [handler],
            input=b"q",
            env={**env, "SERF_EVENT": event},
            timeout=10,
            capture_output=True,
            check=True,
        )
        printed[event] = done.stdout
    # Only a query handler answers; the recording is the same either way.
    assert printed == {"query": response.encode(), "user": b""}
    (query, user) = parse_handler_log(log.read_bytes())
    assert (query.event, query.query_name, query.query_ltime) == ("query", "whoami", 7)
    assert query.payload == b"q" and user.event == "user"


def test_handler_log_ignores_an_unfinished_line() -> None:
    complete = b"member-join\t\t\t" + b"n0\0\0\0".hex().encode() + b"\n"
    (event,) = parse_handler_log(complete + b"user\t3\t\t6e")
    assert (event.event, event.self_name, event.payload) == ("member-join", "n0", b"")


@pytest.mark.parametrize(
    ("stdin", "sent"),
    [(b"abc\n", b"abc"), (b"", b""), (b"abc", b"abc"), (b"a\n\n", b"a\n")],
)
def test_strip_added_newline(stdin: bytes, sent: bytes) -> None:
    assert strip_added_newline(stdin) == sent

"""Event handlers as the serf agent runs them: filters, environment, stdin, runs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serfcast.engine.serf_events import (
    LeaveComplete,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberStatus,
    MemberUpdated,
    QueryReceived,
    UserEventReceived,
)
from serfcast.errors import LocalProtocolError
from serfcast.handlers import (
    EventFilter,
    HandlerRun,
    Invocation,
    OutputTail,
    invocation_for,
    member_invocation,
    member_line,
    parse_event_filter,
    parse_handler,
    query_invocation,
    user_event_invocation,
)

TAGS = {"role": "web", "dc-zone": "eu-1", "ß": "sharp"}
#: Generous bound for handlers that should finish at once (never asserted on).
QUICK = 20.0


# ----------------------------------------------------------------------------
# Filters


def test_no_filter_and_star_take_everything() -> None:
    for text in ("", "*"):
        [entry] = parse_event_filter(text)
        assert entry == EventFilter("*")
        assert entry.matches("member-reap")
        assert entry.matches("user", "anything")


def test_filter_list_with_names() -> None:
    spec = parse_handler("user:deploy,member-join,query:ping=./run.sh")
    assert spec.command == "./run.sh"
    assert spec.filters == (
        EventFilter("user", "deploy"),
        EventFilter("member-join"),
        EventFilter("query", "ping"),
    )
    assert spec.wants("user", "deploy")
    assert not spec.wants("user", "other")
    assert spec.wants("member-join")
    assert not spec.wants("member-leave")
    assert spec.wants("query", "ping")
    assert not spec.wants("query", "pong")


def test_bare_kind_takes_every_name() -> None:
    spec = parse_handler("user,query=cmd")
    assert spec.wants("user", "a") and spec.wants("query", "b")
    assert not spec.wants("member-failed")


def test_command_without_filter_takes_everything() -> None:
    spec = parse_handler("/usr/bin/handler --flag")
    assert spec.command == "/usr/bin/handler --flag"
    assert spec.wants("member-update")


def test_command_with_equals_needs_a_filter() -> None:
    assert parse_handler("*=FOO=1 ./x").command == "FOO=1 ./x"
    with pytest.raises(LocalProtocolError, match=r"'\*=echo a=b'"):
        parse_handler("echo a=b")


@pytest.mark.parametrize(
    "text",
    ["bogus=cmd", "member-join,nope=cmd", "member:x=cmd", "users=cmd", ",user=cmd"],
)
def test_unknown_kinds_are_refused(text: str) -> None:
    with pytest.raises(LocalProtocolError, match="invalid event filter"):
        parse_handler(text)


def test_a_handler_needs_a_command() -> None:
    with pytest.raises(LocalProtocolError, match="no command"):
        parse_handler("user=  ")


# ----------------------------------------------------------------------------
# Environment and standard input


def test_user_event_environment_and_stdin() -> None:
    inv = user_event_invocation("n1", TAGS, "deploy", 42, b"v1")
    assert inv.kind == "user" and inv.name == "deploy"
    assert dict(inv.env) == {
        "SERF_EVENT": "user",
        "SERF_SELF_NAME": "n1",
        "SERF_SELF_ROLE": "web",
        "SERF_TAG_ROLE": "web",
        "SERF_TAG_DC_ZONE": "eu-1",
        "SERF_TAG__": "sharp",  # "ß" stays one character, then becomes "_"
        "SERF_USER_EVENT": "deploy",
        "SERF_USER_LTIME": "42",
    }
    assert inv.stdin == b"v1\n"


def test_tag_variable_names_follow_serf() -> None:
    inv = user_event_invocation("n", {"ß": "x", "a.b": "y"}, "e", 1, b"")
    assert inv.env["SERF_TAG__"] == "x"
    assert inv.env["SERF_TAG_A_B"] == "y"
    assert inv.env["SERF_SELF_ROLE"] == ""


@pytest.mark.parametrize(
    ("payload", "stdin"),
    [
        (b"", b""),
        (b"v1", b"v1\n"),
        (b"v1\n", b"v1\n"),
        (b"two\nlines", b"two\nlines\n"),
        (b"\x00\xff", b"\x00\xff\n"),
    ],
)
def test_payload_gets_a_newline_only_when_missing(payload: bytes, stdin: bytes) -> None:
    assert user_event_invocation("n", {}, "e", 1, payload).stdin == stdin
    assert query_invocation("n", {}, "q", 1, payload).stdin == stdin


def test_query_environment() -> None:
    inv = query_invocation("n2", {"role": "db"}, "ping", 9, b"are you there")
    assert inv.kind == "query" and inv.name == "ping"
    assert inv.env["SERF_EVENT"] == "query"
    assert inv.env["SERF_QUERY_NAME"] == "ping"
    assert inv.env["SERF_QUERY_LTIME"] == "9"
    assert inv.env["SERF_SELF_ROLE"] == "db"
    assert "SERF_USER_EVENT" not in inv.env
    assert inv.stdin == b"are you there\n"


def _member(name: str, addr: str, tags: dict[str, str]) -> MemberEvent:
    return MemberJoined(name, addr, 7946, tags, MemberStatus.ALIVE)


def test_member_line_like_serf() -> None:
    line = member_line(_member("a10", "127.0.0.1", {"role": "web", "foo": "bar"}))
    assert line == "a10\t127.0.0.1\tweb\tfoo=bar,role=web\n"
    assert member_line(_member("b", "::1", {})) == "b\t::1\t\t\n"


def test_member_line_escapes_tabs_and_newlines() -> None:
    member = _member("odd\tname", "10.0.0.1", {"role": "a\nb", "k": "v\tw"})
    assert member_line(member) == "odd\\tname\t10.0.0.1\ta\\nb\tk=v\\tw,role=a\\nb\n"


def test_member_event_lists_every_member() -> None:
    members = [_member("a", "10.0.0.1", {}), _member("b", "10.0.0.2", {"x": "1"})]
    inv = member_invocation("self", {"role": "r"}, "member-failed", members)
    assert inv.env["SERF_EVENT"] == "member-failed"
    assert inv.env["SERF_SELF_ROLE"] == "r"
    assert inv.stdin == b"a\t10.0.0.1\t\t\nb\t10.0.0.2\t\tx=1\n"
    with pytest.raises(LocalProtocolError):
        member_invocation("self", {}, "member-exploded", members)


@pytest.mark.parametrize(
    ("kind", "word"),
    [
        (MemberJoined, "member-join"),
        (MemberLeft, "member-leave"),
        (MemberFailed, "member-failed"),
        (MemberUpdated, "member-update"),
        (MemberReaped, "member-reap"),
    ],
)
def test_engine_member_events_map_to_serf_words(
    kind: type[MemberEvent], word: str
) -> None:
    event = kind("m", "10.1.2.3", 7946, {"role": "x"}, MemberStatus.ALIVE)
    inv = invocation_for(event, "me", {})
    assert inv is not None
    assert inv.kind == word
    assert inv.stdin == b"m\t10.1.2.3\tx\trole=x\n"


def test_engine_user_events_and_queries_map() -> None:
    user = invocation_for(UserEventReceived("e", b"p", 5, False), "me", {})
    assert user is not None
    assert (user.kind, user.env["SERF_USER_LTIME"], user.stdin) == ("user", "5", b"p\n")
    query = QueryReceived("q", b"", 6, 1, "src", ("127.0.0.1", 1), 10.0, 0)
    got = invocation_for(query, "me", {})
    assert got is not None
    assert (got.kind, got.env["SERF_QUERY_LTIME"], got.stdin) == ("query", "6", b"")


def test_other_events_are_not_for_handlers() -> None:
    assert invocation_for(LeaveComplete(), "me", {}) is None
    plain = MemberEvent("m", "10.0.0.1", 1, {}, MemberStatus.ALIVE)
    assert invocation_for(plain, "me", {}) is None


# ----------------------------------------------------------------------------
# Output tail


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 64))
def test_output_tail_keeps_the_last_bytes(chunks: list[bytes], limit: int) -> None:
    tail = OutputTail(limit)
    for chunk in chunks:
        tail.write(chunk)
    everything = b"".join(chunks)
    assert tail.getvalue() == everything[-limit:]
    assert tail.total == len(everything)
    assert tail.truncated == (len(everything) > limit)


def test_output_tail_needs_room() -> None:
    with pytest.raises(LocalProtocolError):
        OutputTail(0)


# ----------------------------------------------------------------------------
# Running


def _run(command: str, invocation: Invocation, timeout: float = QUICK) -> HandlerRun:
    return HandlerRun(command, invocation, timeout, base_env={"PATH": os.defpath})


def test_handler_sees_the_environment_and_stdin() -> None:
    inv = user_event_invocation("n1", {"role": "web"}, "deploy", 3, b"hello")
    result = _run("env | grep '^SERF_' | sort; printf '[%s]' \"$(cat)\"", inv).run()
    assert result.ok
    assert result.output == (
        b"SERF_EVENT=user\nSERF_SELF_NAME=n1\nSERF_SELF_ROLE=web\n"
        b"SERF_TAG_ROLE=web\nSERF_USER_EVENT=deploy\nSERF_USER_LTIME=3\n[hello]"
    )


def test_parent_environment_is_passed_on() -> None:
    inv = user_event_invocation("n", {}, "e", 1, b"")
    run = HandlerRun('printf %s "$KEEP_ME"', inv, QUICK, base_env={"KEEP_ME": "yes"})
    assert run.run().output == b"yes"


def test_stdout_and_stderr_are_one_stream() -> None:
    inv = query_invocation("n", {}, "q", 1, b"")
    result = _run("echo out; echo err >&2; exit 3", inv).run()
    assert result.returncode == 3 and not result.ok
    assert result.output == b"out\nerr\n"


def test_output_beyond_8_kib_keeps_the_end() -> None:
    inv = query_invocation("n", {}, "q", 1, b"")
    result = _run("head -c 20000 /dev/zero | tr '\\0' a; printf END", inv).run()
    assert result.output_total == 20003
    assert len(result.output) == 8192
    assert result.output.endswith(b"aaEND")


def test_a_handler_that_ignores_its_input_does_not_block() -> None:
    inv = user_event_invocation("n", {}, "e", 1, b"x" * 1_000_000)
    result = _run("echo done", inv).run()
    assert result.ok and result.output == b"done\n"


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (gone, or a zombie waiting to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_gone(pid: int, bound: float = 10.0) -> bool:
    deadline = time.monotonic() + bound
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_timeout_kills_the_handler_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    inv = user_event_invocation("n", {}, "e", 1, b"")
    # The background child keeps the output pipe open after the shell is gone.
    command = f"sleep 600 & echo $! > {pidfile}; echo started; wait"
    result = _run(command, inv, timeout=0.5).run()
    assert result.timed_out and not result.stopped
    assert result.returncode is None
    assert result.output == b"started\n"
    assert _wait_gone(int(pidfile.read_text()))


def test_stop_kills_a_running_handler(tmp_path: Path) -> None:
    pidfile = tmp_path / "shell.pid"
    inv = user_event_invocation("n", {}, "e", 1, b"")
    run = _run(f"echo $$ > {pidfile}; sleep 600", inv, timeout=600)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(run.run()))
    worker.start()
    deadline = time.monotonic() + QUICK
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the handler never started"
        time.sleep(0.02)
    run.stop()
    worker.join(QUICK)
    assert not worker.is_alive()
    [result] = outcome
    assert getattr(result, "stopped", False) and not getattr(result, "timed_out", True)
    assert _wait_gone(int(pidfile.read_text()))


def test_stop_before_start_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    run = _run(f"touch {marker}", user_event_invocation("n", {}, "e", 1, b""))
    run.stop()
    result = run.run()
    assert result.stopped and result.returncode is None
    assert not marker.exists()


def test_a_missing_shell_is_an_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("serfcast.handlers.SHELL", "/nonexistent/sh")
    result = _run("true", user_event_invocation("n", {}, "e", 1, b"")).run()
    assert result.error is not None and "/nonexistent/sh" in result.error
    assert not result.ok

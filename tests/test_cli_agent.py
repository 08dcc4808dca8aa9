"""serfcast agent and serfcast watch on the command line: the ways they refuse.

Each error is one ``serfcast: ...`` line on standard error and exit status 1
(argparse's own refusals exit 2), before any gossip is sent.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from serfcast.cli import main

HOST = "127.0.0.1"
KEY = "QHOYjmYlxSCBhdfiolhtDUZ2R0QYSRzhxFQ9z1LsNQA="


def _refused_address() -> str:
    with socket.create_server((HOST, 0)) as probe:
        port = probe.getsockname()[1]
    return f"{HOST}:{port}"


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, out), out.getvalue()


def fails_with(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``; it must exit 1 with one ``serfcast:`` line; that line."""
    status, _ = run_cli(argv)
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.startswith("serfcast: ") and err.count("\n") == 1, err
    return err


AGENT = ["agent", "-bind", f"{HOST}:0"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-event-handler", "bogus=./x"], "invalid event filter 'bogus'"),
        (["-event-handler", "echo a=b"], "needs a filter first"),
        (["-event-handler", "user="], "has no command"),
        (["-tag", "novalue"], "invalid tag 'novalue': write it as KEY=VALUE"),
        (["-tag", f"big={'x' * 600}"], "exceeds limit of 512 bytes"),
        (["-handler-timeout", "0"], "-handler-timeout must be a positive"),
        (["-advertise", "example.org"], "-advertise needs an IP address"),
        (["-join", "127.0.0.1:99999"], "is not a port"),
    ],
)
def test_agent_refuses_bad_flags(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in fails_with([*AGENT, *flags], capsys)


def test_agent_refuses_a_key_and_a_keyring_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring = tmp_path / "keyring.json"
    keyring.write_text(json.dumps([KEY]))
    err = fails_with([*AGENT, "-encrypt", KEY, "-keyring-file", str(keyring)], capsys)
    assert "-encrypt cannot be used with -keyring-file" in err


def test_agent_needs_an_address_to_advertise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = fails_with(["agent", "-bind", "0.0.0.0:0"], capsys)
    assert "give -advertise IP, or -bind a concrete IP" in err
    assert "-bind needs an IP address" in fails_with(
        ["agent", "-bind", "localhost:0"], capsys
    )


def test_agent_profile_is_checked_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*AGENT, "-profile", "moon"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'moon'" in capsys.readouterr().err


def test_agent_exits_when_no_seed_can_be_joined(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = _refused_address()
    status, text = run_cli([*AGENT, "-node", "lonely", "-join", seed])
    assert status == 1
    assert "==> Joining cluster...(replay: false)" in text
    assert f"==> Error joining the cluster: no member could be joined: {seed}" in text
    assert "Node name: 'lonely'" in text


# ----------------------------------------------------------------------------
# serfcast watch


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-observe", "-bind", f"{HOST}:7000"], "-observe opens no gossip port"),
        (["-interval", "0"], "-interval must be a positive number"),
        (["-timeout", "-1"], "-timeout must be a positive number"),
        (["-state-size", "0"], "-state-size must be at least 1"),
    ],
)
def test_watch_refuses_bad_flags(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails_with(["watch", "-join", _refused_address(), *flags], capsys)
    assert message in err


@pytest.mark.parametrize("observe", [True, False], ids=["observe", "join"])
def test_watch_refuses_a_corrupt_state_file(
    tmp_path: Path, observe: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    state.write_text("{broken")
    flags = ["-observe"] if observe else ["-bind", f"{HOST}:0"]
    argv = ["watch", "-join", _refused_address(), "-state-file", str(state), *flags]
    err = fails_with(argv, capsys)
    assert f"state file {state} is not a serfcast watch state" in err
    assert state.read_text() == "{broken"  # left as it was


def test_watch_observe_exits_when_no_seed_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = _refused_address()
    err = fails_with(["watch", "-observe", "-join", seed], capsys)
    assert f"no seed answered: {seed}: connection refused" in err


def test_watch_exits_when_no_seed_can_be_joined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = _refused_address()
    state = tmp_path / "state.json"
    argv = ["watch", "-join", seed, "-bind", f"{HOST}:0", "-state-file", str(state)]
    err = fails_with(argv, capsys)
    assert f"no member could be joined: {seed}" in err
    assert not state.exists()  # nothing was seen, so nothing is written

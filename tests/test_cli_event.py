"""``serfcast event``: flags, output, and every error path with its exit status."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_agents import FakeAgent, fake_pool
from serfcast.cli import main
from serfcast.consul import ConsulEvent, consul_event_budget
from serfcast.serf.limits import user_event_budget
from serfcast.serf.messages import UserEvent
from serfcast.wire.keyring import Keyring, generate_key

RECORD_TIMEOUT = 5.0
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the command line in-process: (exit status, stdout, stderr)."""
    out = io.StringIO()
    try:
        status = main(["event", *argv], out=out)
    except SystemExit as exc:  # argparse usage errors
        status = int(exc.code or 0)
    return status, out.getvalue(), capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event_at(agent: FakeAgent) -> UserEvent:
    deadline = time.monotonic() + RECORD_TIMEOUT
    while not agent.received:
        assert time.monotonic() < deadline, f"{agent.name} got nothing"
        time.sleep(0.01)
    message = agent.received[0].message
    assert isinstance(message, UserEvent)
    return message


# ----------------------------------------------------------------------------
# Firing


def test_consul_event_prints_id_name_and_ltime(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fake_pool(2, event_ltime=9) as agents:
        status, out, err = run(
            ["-name", "deploy", "-join", agents[0].address, "v1"], capsys
        )
        event = event_at(agents[1])
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3 and lines[1:] == ["Name: deploy", "LTime: 9"]
    event_id = lines[0].removeprefix("Event ID: ")
    assert UUID.fullmatch(event_id)
    assert ConsulEvent.from_serf(event) == ConsulEvent(event_id, "deploy", b"v1")


def test_serf_event_with_go_style_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_pool(1, event_ltime=4) as agents:
        argv = [f"--join={agents[0].address}", "-serf=true", "-coalesce=1", "up", "p"]
        status, out, _ = run(argv, capsys)
        event = event_at(agents[0])
    assert (status, out) == (0, "Name: up\nLTime: 4\n")
    assert event == UserEvent(4, "up", b"p", True)


def test_coalesce_false_form(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_pool(1) as agents:
        argv = ["-serf", "-coalesce", "-coalesce=false", "-join", agents[0].address]
        status, _, _ = run([*argv, "up"], capsys)
        assert status == 0
        assert event_at(agents[0]).coalesce is False


def test_payload_from_stdin_and_json_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"\x00binary\xff\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    with fake_pool(2, event_ltime=3) as agents:
        argv = ["-serf", "-format", "json", "-join", agents[0].address, "x", "-"]
        status, out, _ = run(argv, capsys)
        event = event_at(agents[1])
    assert status == 0
    assert event.payload == payload
    shown = json.loads(out)
    assert (shown["id"], shown["name"], shown["ltime"]) == (None, "x", 3)
    assert sorted(shown["tcp"] + shown["udp"]) == ["fake0", "fake1"]


def test_join_default_port_and_repeated_seeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fake_pool(1) as agents:
        argv = ["-join", f"127.0.0.1:{closed_port()}", "-join", agents[0].address]
        status, _, _ = run([*argv, "-name", "x"], capsys)
    assert status == 0


def test_encrypted_pool_with_keyring_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = generate_key()
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps([key]))
    with fake_pool(1, keyring=Keyring.from_base64(key)) as agents:
        argv = ["-keyring-file", str(path), "-join", agents[0].address, "-name=x"]
        status, _, _ = run(argv, capsys)
        assert event_at(agents[0]).name == "consul:event:x"
    assert status == 0


# ----------------------------------------------------------------------------
# Errors: one line, non-zero exit, nothing sent


def assert_one_line_error(status: int, out: str, err: str, expected: str) -> None:
    assert status == 1
    assert out == ""
    assert err == f"serfcast: {expected}\n"


def test_too_big_consul(capsys: pytest.CaptureFixture[str]) -> None:
    budget = consul_event_budget("deploy", ltime=1)
    argv = ["-name", "deploy", "-join", f"127.0.0.1:{closed_port()}"]
    status, out, err = run([*argv, "x" * 600], capsys)
    assert_one_line_error(
        status,
        out,
        err,
        "user event exceeds configured limit of 512 bytes before encoding: "
        f"the payload is 600 bytes, at most {budget} fit",
    )


def test_too_big_serf_after_encoding(capsys: pytest.CaptureFixture[str]) -> None:
    budget = user_event_budget("sz", 1)
    argv = ["-serf", "-join", f"127.0.0.1:{closed_port()}", "sz"]
    status, out, err = run([*argv, "y" * (budget + 1)], capsys)
    assert_one_line_error(
        status,
        out,
        err,
        "encoded user event exceeds configured limit of 512 bytes after encoding: "
        f"the payload is {budget + 1} bytes, at most {budget} fit",
    )


def test_bad_regex_names_the_construct(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["-name", "x", "-node", r"web(?<=1)"], capsys)
    assert status == 1 and out == ""
    assert err.startswith("serfcast: node filter: look-behind (?<=...) is not")
    assert err.count("\n") == 1


def test_tag_without_service(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["-name", "x", "-tag", "v1"], capsys)
    assert status == 1 and "a tag filter needs a service filter" in err


def test_unreachable_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = closed_port(), closed_port()
    argv = ["-join", f"127.0.0.1:{first}", "-join", f"127.0.0.1:{second}"]
    status, out, err = run([*argv, "-name", "x"], capsys)
    assert_one_line_error(
        status,
        out,
        err,
        f"no seed answered, so nothing was sent: 127.0.0.1:{first}: connection "
        f"refused; 127.0.0.1:{second}: connection refused (Consul agents gossip "
        "on port 8301, serf agents on 7946 unless told otherwise: give the port "
        "as host:port)",
    )


def test_wrong_key(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_pool(1, keyring=Keyring.from_base64(generate_key())) as agents:
        argv = ["-encrypt", generate_key(), "-join", agents[0].address, "-name=x"]
        status, out, err = run(argv, capsys)
        assert agents[0].received == []
    assert_one_line_error(
        status,
        out,
        err,
        "no seed could decrypt our request (check the gossip key and label), so "
        f"nothing was sent: {agents[0].address}: it could not decrypt our request, "
        "nor we its reply: the pool uses another gossip key",
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["-name", "_rexec"], "-allow-reserved"),
        (["-name", "_mine"], "-allow-reserved"),
        (["-serf", "consul:new-leader"], "-allow-reserved"),
    ],
)
def test_refused_name_says_which_flag_overrides(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(argv, capsys)
    assert status == 1 and out == ""
    assert err.endswith(f"pass {flag} to send it anyway\n")
    assert err.count("\n") == 1


def test_allow_reserved_passes_the_name_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fake_pool(1) as agents:
        argv = ["-allow-reserved", "-join", agents[0].address, "-name", "_rexec"]
        status, _, _ = run(argv, capsys)
        assert event_at(agents[0]).name == "consul:event:_rexec"
    assert status == 0


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("-datacenter=dc2", "-datacenter does not exist at the gossip layer"),
        ("--token=secret", "the key takes the place of the ACL"),
    ],
)
def test_datacenter_and_token_are_refused(
    flag: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run([flag, "-name", "x"], capsys)
    assert status == 1 and out == ""
    assert err.startswith("serfcast: ") and words in err and err.count("\n") == 1


def test_member_mode_unreachable_seed(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    argv = ["-member", "-join", f"127.0.0.1:{port}", "-name", "x"]
    status, out, err = run(argv, capsys)
    assert status == 1 and out == ""
    assert err.startswith(
        f"serfcast: no seed answered, so nothing was sent: 127.0.0.1:{port}: "
    )
    assert "refused" in err and err.count("\n") == 1


def test_member_mode_checks_before_joining(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["-member", "-name", "x", "-node", "(?=a)"], capsys)
    assert status == 1 and "look-ahead" in err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "an event needs a name: give -name NAME"),
        (["-name", "x", "a", "b"], "too many arguments (2 after the name)"),
        (["-coalesce", "-name", "x"], "coalescing is only for plain Serf events"),
        (["-serf", "-node", "a", "x"], "filters belong to Consul events"),
        (["-join", "host:port", "-name", "x"], "'port' is not a port"),
    ],
)
def test_usage_errors(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(argv, capsys)
    assert status == 1 and out == ""
    assert complaint in err and err.count("\n") == 1


def test_bad_boolean_value(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["-serf=yes", "x"], capsys)
    assert status == 2
    assert "invalid boolean value 'yes' for -serf" in err


# ----------------------------------------------------------------------------
# What the command imports


def test_event_command_imports_no_async_library() -> None:
    """The one-shot path must not pay for trio (or asyncio) at startup, nor for
    the modules of the other commands."""
    with fake_pool(1) as agents:
        script = (
            "import sys\n"
            "from serfcast.cli import main\n"
            f"status = main(['event', '-join', {agents[0].address!r}, '-name', 'x'])\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in "
            "('trio', 'asyncio', 'sniffio', 'logging')]\n"
            "commands = [m for m in sys.modules if m.startswith('serfcast.cli')]\n"
            "print(status, sorted(loaded), sorted(commands))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert event_at(agents[0]).name == "consul:event:x"
    assert done.stdout.splitlines()[-1] == (
        "0 [] ['serfcast.cli', 'serfcast.cli_event']"
    ), done.stderr


def test_import_serfcast_stays_light() -> None:
    script = (
        "import sys, serfcast\n"
        "heavy = ('msgpack', 'cryptography', 'trio', 'serfcast.oneshot')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout == "[]\n", done.stderr

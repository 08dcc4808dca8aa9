"""serfcast members: a seed's push/pull reply listed like ``serf members``."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from serfcast.cli import main
from serfcast.cli_members import filter_members, members_json, members_text
from serfcast.errors import RemoteProtocolError
from serfcast.fire import AgentErrorReply
from serfcast.serf.messages import PushPullState, UserEventRecord, UserEvents
from serfcast.serf.tags import encode_tags
from serfcast.snapshot import (
    NoAnswerError,
    member_status,
    read_snapshot,
    take_snapshot,
)
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import ErrResp, NodeState, PushNodeState
from serfcast.wire.stream import PushPull, StreamDecoder, StreamFrame, encode_stream

HOST = "127.0.0.1"
IO_TIMEOUT = 5.0
SERF_VSN = bytes([1, 5, 2, 2, 5, 5])
KEY = Keyring.from_base64("QHOYjmYlxSCBhdfiolhtDUZ2R0QYSRzhxFQ9z1LsNQA=")


def node(
    name: str,
    last_octet: int,
    port: int,
    tags: dict[str, str] | None = None,
    *,
    state: int = NodeState.ALIVE,
    vsn: bytes = SERF_VSN,
    meta: bytes | None = None,
) -> PushNodeState:
    return PushNodeState(
        name=name,
        addr=bytes([10, 0, 0, last_octet]),
        port=port,
        meta=meta if meta is not None else encode_tags(tags or {}),
        state=state,
        vsn=vsn,
    )


NODES = (
    node("web-1", 1, 7946, {"role": "web", "dc": "eu"}),
    node("db", 2, 7946, {"role": "db"}, state=NodeState.SUSPECT),
    node("gone", 3, 8301, {}, state=NodeState.DEAD),
    node("quit", 4, 7946, {}, state=NodeState.DEAD),
    node("bye", 5, 7946, {"x": "y"}, state=NodeState.LEFT),
    node("old", 6, 7946, meta=b"legacy-role", vsn=bytes([1, 3, 2, 2, 4, 4])),
)
STATE = PushPullState(
    ltime=9,
    left_members=["quit"],
    event_ltime=4,
    events=[None, UserEvents(2, [UserEventRecord("e", b"p")]), None],
)


def reply(
    nodes: Sequence[PushNodeState] = NODES,
    state: PushPullState = STATE,
    keyring: Keyring | None = None,
) -> bytes:
    message = PushPull(join=False, nodes=tuple(nodes), user_state=state.encode())
    return encode_stream(message, keyring=keyring, dialer=False)


def frame(nodes: Sequence[PushNodeState] = NODES) -> StreamFrame:
    message = PushPull(join=False, nodes=tuple(nodes), user_state=STATE.encode())
    return StreamFrame(message)


# ----------------------------------------------------------------------------
# Reading a reply


def test_statuses_as_serf_reports_them() -> None:
    assert member_status(NodeState.ALIVE, left=False) == "alive"
    assert member_status(NodeState.SUSPECT, left=False) == "alive"
    assert member_status(NodeState.DEAD, left=False) == "failed"
    assert member_status(NodeState.DEAD, left=True) == "left"
    assert member_status(NodeState.LEFT, left=False) == "left"


def test_snapshot_members_sorted_with_status_tags_and_protocol() -> None:
    snapshot = read_snapshot(frame(), (HOST, 1))
    rows = {m.name: (m.address, m.status, dict(m.tags)) for m in snapshot.members}
    assert [m.name for m in snapshot.members] == sorted(rows)
    assert rows == {
        "web-1": ("10.0.0.1:7946", "alive", {"role": "web", "dc": "eu"}),
        "db": ("10.0.0.2:7946", "alive", {"role": "db"}),
        "gone": ("10.0.0.3:8301", "failed", {}),
        "quit": ("10.0.0.4:7946", "left", {}),
        "bye": ("10.0.0.5:7946", "left", {"x": "y"}),
        "old": ("10.0.0.6:7946", "alive", {"role": "legacy-role"}),
    }
    old = next(m for m in snapshot.members if m.name == "old")
    assert old.protocol == {"min": 2, "max": 4, "version": 4}
    assert snapshot.event_ltime == 4
    [event] = snapshot.events()
    assert (event.ltime, event.name, event.payload) == (2, "e", b"p")


def test_unreadable_tags_keep_the_member() -> None:
    broken = node("odd", 9, 1, meta=b"\xff\xc1")
    [member] = read_snapshot(frame([broken]), (HOST, 1)).members
    assert member.tags == {}


def test_replies_that_are_not_a_serf_state_are_refused() -> None:
    with pytest.raises(AgentErrorReply, match="nope"):
        read_snapshot(StreamFrame(ErrResp("nope")), (HOST, 1))
    bare = StreamFrame(PushPull(join=False, nodes=NODES, user_state=b""))
    with pytest.raises(RemoteProtocolError, match="not a Serf or Consul agent"):
        read_snapshot(bare, (HOST, 1))


# ----------------------------------------------------------------------------
# Formatting


def test_text_like_serf_members() -> None:
    members = read_snapshot(frame(), (HOST, 1)).members
    assert members_text(members) == (
        "bye    10.0.0.5:7946  left    x=y\n"
        "db     10.0.0.2:7946  alive   role=db\n"
        "gone   10.0.0.3:8301  failed\n"
        "old    10.0.0.6:7946  alive   role=legacy-role\n"
        "quit   10.0.0.4:7946  left\n"
        "web-1  10.0.0.1:7946  alive   dc=eu,role=web\n"
    )
    assert members_text([]) == ""


def test_detailed_text_adds_the_serf_protocol() -> None:
    members = read_snapshot(frame(NODES[:1] + NODES[5:]), (HOST, 1)).members
    assert members_text(members, detailed=True) == (
        "old    10.0.0.6:7946  alive  role=legacy-role  "
        "Protocol Version: 4  Available Protocol Range: [2, 4]\n"
        "web-1  10.0.0.1:7946  alive  dc=eu,role=web    "
        "Protocol Version: 5  Available Protocol Range: [2, 5]\n"
    )


def test_json_like_serf_members() -> None:
    members = read_snapshot(frame(NODES[:1]), (HOST, 1)).members
    text = members_json(members)
    assert json.loads(text) == {
        "members": [
            {
                "name": "web-1",
                "addr": "10.0.0.1:7946",
                "port": 7946,
                "tags": {"dc": "eu", "role": "web"},
                "status": "alive",
                "protocol": {"max": 5, "min": 2, "version": 5},
            }
        ]
    }
    assert text.startswith('{\n  "members": [\n    {\n      "name": "web-1",')


def test_filters_match_whole_values() -> None:
    members = read_snapshot(frame(), (HOST, 1)).members

    def names(**filters: object) -> list[str]:
        return [m.name for m in filter_members(members, **filters)]  # type: ignore[arg-type]

    assert names(status="alive") == ["db", "old", "web-1"]
    assert names(status="left|failed") == ["bye", "gone", "quit"]
    assert names(name="web") == []  # anchored, as serf anchors it
    assert names(name="web-.*") == ["web-1"]
    assert names(tags={"role": "web|db"}) == ["db", "web-1"]
    assert names(tags={"role": "db", "dc": ".*"}) == []


# ----------------------------------------------------------------------------
# Asking a seed: a canned one on 127.0.0.1


@contextmanager
def canned_seed(answer: bytes | None, *, read_first: bool = True) -> Iterator[str]:
    """A TCP seed that reads one request, then sends ``answer`` (None: closes)."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(IO_TIMEOUT)
    requests: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(IO_TIMEOUT)
            if read_first:
                requests.append(_read_request(conn))
            if answer is not None:
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{HOST}:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(IO_TIMEOUT)


def _read_request(conn: socket.socket) -> bytes:
    decoder = StreamDecoder(keyring=None)
    data = b""
    while decoder.result is None:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        try:
            decoder.feed(chunk)
        except RemoteProtocolError:
            break  # encrypted: enough has been read
    return data


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, out), out.getvalue()


def test_members_command_lists_a_seeds_members() -> None:
    with canned_seed(reply(NODES[:2])) as seed:
        status, text = run_cli(["members", "-join", seed])
    assert status == 0
    assert text == (
        "db     10.0.0.2:7946  alive  role=db\n"
        "web-1  10.0.0.1:7946  alive  dc=eu,role=web\n"
    )


def test_members_command_json_and_filters() -> None:
    with canned_seed(reply()) as seed:
        status, text = run_cli(
            ["members", f"--join={seed}", "-format", "json", "-status", "left"]
        )
    assert status == 0
    assert [m["name"] for m in json.loads(text)["members"]] == ["bye", "quit"]


def test_encrypted_pool_with_the_key() -> None:
    with canned_seed(reply(NODES[:1], keyring=KEY)) as seed:
        status, text = run_cli(["members", "-join", seed, "-encrypt", _b64(KEY)])
    assert status == 0 and text.startswith("web-1  10.0.0.1:7946  alive")


def _b64(keyring: Keyring) -> str:
    import base64

    return base64.b64encode(keyring.keys[0]).decode()


# ----------------------------------------------------------------------------
# Errors: exit status 1 and one line that says why


def _refused_address() -> str:
    with socket.create_server((HOST, 0)) as probe:
        port = probe.getsockname()[1]
    return f"{HOST}:{port}"


def run_failing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    status, text = run_cli(argv)
    err = capsys.readouterr().err
    assert status == 1 and text == ""
    assert err.startswith("serfcast: ") and err.count("\n") == 1
    return err


def test_unreachable_seed(capsys: pytest.CaptureFixture[str]) -> None:
    address = _refused_address()
    err = run_failing(["members", "-join", address], capsys)
    assert f"no seed answered: {address}: connection refused" in err
    assert "serf agents on 7946" in err


def test_every_seed_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = _refused_address(), _refused_address()
    err = run_failing(["members", "-join", first, "-join", second], capsys)
    assert first in err and second in err


def test_a_seed_that_closes_without_a_reply_blames_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with canned_seed(None) as seed:
        err = run_failing(["members", "-join", seed], capsys)
    assert "check the gossip key and label" in err
    assert "closed the connection without a reply" in err


def test_an_encrypted_pool_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    with canned_seed(reply(keyring=KEY)) as seed:
        err = run_failing(["members", "-join", seed], capsys)
    assert "the pool is encrypted and no gossip key was given" in err


def test_a_key_for_a_plain_pool(capsys: pytest.CaptureFixture[str]) -> None:
    with canned_seed(reply()) as seed:
        err = run_failing(["members", "-join", seed, "-encrypt", _b64(KEY)], capsys)
    assert "the agent does not use encryption" in err


def test_an_error_reply_is_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    answer = encode_stream(ErrResp("Remote state is bad"), dialer=False)
    with canned_seed(answer) as seed:
        err = run_failing(["members", "-join", seed], capsys)
    assert "the agent answered with an error: Remote state is bad" in err


def test_garbage_is_not_a_state(capsys: pytest.CaptureFixture[str]) -> None:
    with canned_seed(b"\x63 not memberlist at all") as seed:
        err = run_failing(["members", "-join", seed], capsys)
    assert "its reply is not a Serf push/pull" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-tag", "novalue"], "write it as KEY=REGEX"),
        (["-name", "a(b"], "missing closing )"),
        (["-tag", "role=(?=x)"], "(?="),
        (["-join", "host:notaport"], "is not a port"),
    ],
)
def test_bad_flags_fail_before_asking(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server((HOST, 0)) as listener:
        seed = f"{HOST}:{listener.getsockname()[1]}"
        err = run_failing(["members", "-join", seed, *flags], capsys)
        listener.settimeout(0.0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody was asked
    assert message in err


def test_take_snapshot_raises_the_library_error() -> None:
    with pytest.raises(NoAnswerError) as caught:
        take_snapshot([(HOST, int(_refused_address().rsplit(":", 1)[1]))], timeout=2)
    assert not caught.value.key_problem
    assert len(caught.value.failures) == 1

"""serfcast watch: the printed lines, the memory of what was seen, restarts."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from serfcast.cli_node import MemberOptions
from serfcast.consul import ConsulEvent
from serfcast.errors import LocalProtocolError
from serfcast.serf.messages import PushPullState, UserEventRecord, UserEvents
from serfcast.snapshot import PoolSnapshot
from serfcast.watch_state import (
    SeenEvents,
    WatchedEvent,
    is_printable,
    load_seen,
    save_seen,
)
from serfcast.watcher import WatchConfig, Watcher, _take_ring

EVENT_ID = "0b4c7f2e-3a51-4c1e-9f0a-6d2b8e9c1a77"


def consul_event(name: str = "deploy", payload: bytes = b"v1") -> ConsulEvent:
    return ConsulEvent(EVENT_ID, name, payload, node_filter="web.*")


def watched_consul(ltime: int = 12) -> WatchedEvent:
    serf = consul_event().to_serf(ltime)
    return WatchedEvent.from_serf(serf.name, serf.ltime, serf.payload or b"")


# ----------------------------------------------------------------------------
# One line per event


def test_plain_event_line() -> None:
    event = WatchedEvent.from_serf("deploy", 5, b"v1")
    assert event.consul is None
    assert event.to_json() == {
        "name": "deploy",
        "ltime": 5,
        "payload": "djE=",
        "text": "v1",
    }


def test_binary_payload_has_no_text() -> None:
    record = WatchedEvent.from_serf("bin", 1, b"\x00\xffabc").to_json()
    assert base64.b64decode(record["payload"]) == b"\x00\xffabc"
    assert "text" not in record


def test_printable_text() -> None:
    assert is_printable("two\nlines\tand tabs")
    assert not is_printable("bell\x07")
    assert WatchedEvent.from_serf("e", 1, b"\x1b[31m").to_json().get("text") is None


def test_consul_event_line_has_consuls_fields() -> None:
    event = watched_consul(ltime=12)
    record = event.to_json()
    assert record["name"] == "consul:event:deploy"
    assert record["ltime"] == 12
    assert base64.b64decode(record["payload"]) == consul_event().encode_payload()
    assert record["consul"] == {
        "ID": EVENT_ID,
        "Name": "deploy",
        "Payload": "djE=",
        "PayloadText": "v1",
        "NodeFilter": "web.*",
        "ServiceFilter": "",
        "TagFilter": "",
        "Version": 1,
        "LTime": 12,
    }
    assert event.user_name == "deploy"
    assert event.user_payload == b"v1"


def test_unreadable_consul_payload_is_reported_not_raised() -> None:
    event = WatchedEvent.from_serf("consul:event:broken", 3, b"\xc1 not msgpack")
    record = event.to_json()
    assert "consul" not in record
    assert record["consul_error"]
    assert event.user_payload == b"\xc1 not msgpack"


def test_keys_tell_events_apart_as_serf_does() -> None:
    same = WatchedEvent.from_serf("e", 4, b"p")
    assert same.key == WatchedEvent.from_serf("e", 4, b"p").key
    assert same.key != WatchedEvent.from_serf("e", 5, b"p").key
    assert same.key != WatchedEvent.from_serf("e", 4, b"q").key
    assert same.key != WatchedEvent.from_serf("f", 4, b"p").key
    # A Consul event is its ID, whatever Lamport time it travels at.
    assert watched_consul(12).key == watched_consul(40).key == f"consul:{EVENT_ID}"


# ----------------------------------------------------------------------------
# What was seen


def test_floor_hides_the_history_of_a_first_run() -> None:
    seen = SeenEvents()
    seen.begin(10)
    assert not seen.is_new(WatchedEvent.from_serf("old", 10, b""))
    assert seen.is_new(WatchedEvent.from_serf("new", 11, b""))
    seen.begin(50)  # only the first begin counts
    assert seen.floor == 10


def test_seen_events_are_not_new() -> None:
    seen = SeenEvents()
    seen.begin(0)
    event = WatchedEvent.from_serf("e", 3, b"x")
    seen.add(event)
    assert not seen.is_new(event)
    assert seen.is_new(WatchedEvent.from_serf("e", 3, b"y"))


def test_cap_drops_the_oldest_and_raises_the_floor() -> None:
    seen = SeenEvents(capacity=3)
    seen.begin(0)
    events = [WatchedEvent.from_serf(f"e{i}", 10 + i, b"") for i in range(5)]
    for event in events:
        seen.add(event)
    assert len(seen) == 3
    assert seen.floor == 11
    # The dropped ones are still not new: they are at or below the floor.
    assert not any(seen.is_new(event) for event in events)


def test_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    seen = SeenEvents(capacity=10)
    seen.begin(7)
    seen.add(WatchedEvent.from_serf("e", 8, b"x"))
    seen.add(watched_consul(9))
    save_seen(path, seen)
    again = load_seen(path, capacity=10)
    assert again.to_json() == seen.to_json()
    assert not again.is_new(watched_consul(30))


def test_missing_state_file_is_a_first_run(tmp_path: Path) -> None:
    seen = load_seen(tmp_path / "absent.json")
    assert seen.floor is None and len(seen) == 0


def test_smaller_capacity_on_load_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    seen = SeenEvents()
    seen.begin(0)
    for ltime in range(1, 6):
        seen.add(WatchedEvent.from_serf("e", ltime, b""))
    save_seen(path, seen)
    smaller = load_seen(path, capacity=2)
    assert len(smaller) == 2 and smaller.floor == 3


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"version": 2, "floor": 0, "seen": []}',
        '{"version": 1, "floor": -1, "seen": []}',
        '{"version": 1, "floor": 0}',
        '{"version": 1, "floor": 0, "seen": [[1]]}',
        '{"version": 1, "floor": 0, "seen": [["x", "k"]]}',
        '{"version": 1, "floor": true, "seen": []}',
    ],
)
def test_a_corrupt_state_file_is_refused_with_advice(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(LocalProtocolError, match="remove it to start afresh"):
        load_seen(path)


def test_unwritable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "state.json"
    with pytest.raises(LocalProtocolError, match="cannot write state file"):
        save_seen(target, SeenEvents())


# ----------------------------------------------------------------------------
# The watcher: printing once, across restarts


def _config(
    state_file: Path | None, name: str | None = None, handler: str | None = None
) -> WatchConfig:
    member = MemberOptions(
        "watcher", ("127.0.0.1", 0), ("127.0.0.1", 0), (), None, b"", "lan", {}
    )
    return WatchConfig(
        member,
        observe=True,
        name=name,
        handler=handler,
        handler_timeout=10.0,
        state_file=str(state_file) if state_file else None,
        state_size=100,
        interval=1.0,
        timeout=1.0,
        log_level="warn",
    )


def _printed(out: io.StringIO) -> list[str]:
    return [json.loads(line)["name"] for line in out.getvalue().splitlines()]


def _ring(*events: tuple[int, str, bytes]) -> PoolSnapshot:
    slots: list[UserEvents | None] = [None] * 4
    for ltime, name, payload in events:
        slots.append(UserEvents(ltime, [UserEventRecord(name, payload)]))
    clock = max(ltime for ltime, _, _ in events) + 1
    state = PushPullState(ltime=1, event_ltime=clock, events=slots)
    return PoolSnapshot(("127.0.0.1", 1), (), state)


async def test_a_restart_with_the_state_file_replays_nothing(tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    first_out = io.StringIO()
    first = Watcher(_config(state), first_out)
    first.begin(2)  # the pool's clock when the first run started listening
    ring = _ring((1, "history", b""), (3, "a", b"1"), (4, "b", b"2"), (4, "c", b""))
    await _take_ring(first, ring)
    await _take_ring(first, ring)  # the same ring again: nothing twice
    assert _printed(first_out) == ["a", "b", "c"]

    second_out = io.StringIO()
    second = Watcher(_config(state), second_out)
    assert second.resuming
    second.begin(100)  # a later run's clock must not hide what it missed
    await _take_ring(second, ring)
    assert _printed(second_out) == []
    missed = _ring((3, "a", b"1"), (4, "b", b"2"), (5, "while-away", b""))
    await _take_ring(second, missed)
    assert _printed(second_out) == ["while-away"]


async def test_without_a_state_file_nothing_is_saved(tmp_path: Path) -> None:
    out = io.StringIO()
    watcher = Watcher(_config(None), out)
    watcher.begin(0)
    await _take_ring(watcher, _ring((1, "a", b"")))
    assert _printed(out) == ["a"]
    assert list(tmp_path.iterdir()) == []


async def test_name_filter_matches_consul_or_serf_names(tmp_path: Path) -> None:
    out = io.StringIO()
    watcher = Watcher(_config(None, name="deploy"), out)
    watcher.begin(0)
    await watcher.take(watched_consul(3))
    await watcher.take(WatchedEvent.from_serf("deploy", 4, b""))
    await watcher.take(WatchedEvent.from_serf("other", 5, b""))
    assert _printed(out) == ["consul:event:deploy", "deploy"]


async def test_handler_gets_serf_variables_and_consul_payload(tmp_path: Path) -> None:
    record = tmp_path / "handler.out"
    command = (
        # Only the variables a handler is given: the test command's own
        # environment may hold others (scripts/test exports SERFCAST_SERF_*).
        f"{{ env | grep -E '^(SERF_|SERFCAST_CONSUL_)' | sort;"
        f" printf '[%s]' \"$(cat)\"; }}"
        f" > {record}"
    )
    watcher = Watcher(_config(None, handler=command), io.StringIO())
    watcher.begin(0)
    await watcher.take(watched_consul(12))
    assert record.read_text() == (
        f"SERFCAST_CONSUL_ID={EVENT_ID}\nSERFCAST_CONSUL_NAME=deploy\n"
        "SERF_EVENT=user\nSERF_SELF_NAME=watcher\nSERF_SELF_ROLE=\n"
        "SERF_USER_EVENT=consul:event:deploy\nSERF_USER_LTIME=12\n[v1]"
    )

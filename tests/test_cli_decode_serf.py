"""``serfcast decode`` shows the Serf layer inside memberlist traffic.

Every user message is also shown as the Serf message it holds, every push/pull's
user state as Serf's state exchange, and payloads that say what they are (query
filters, keyring requests and responses, conflict answers, relayed messages) one
level deeper. A Serf-level failure adds ``serf_error`` to the memberlist record
and makes the exit status 1, without hiding what memberlist decoded.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serfcast.cli import main
from serfcast.consul import ConsulEvent
from serfcast.describe_serf import describe_user_message, describe_user_state
from serfcast.serf.messages import (
    EVENT_BUFFER_SIZE,
    ConflictResponse,
    Join,
    KeyRequest,
    KeyResponse,
    Leave,
    MemberInfo,
    NodeFilter,
    PushPullState,
    Query,
    QueryResponse,
    Relay,
    SerfMessage,
    TagFilter,
    UserEvent,
    UserEventRecord,
    UserEvents,
)
from serfcast.wire.frames import UserMsg
from serfcast.wire.messages import Ping
from serfcast.wire.packet import build_packet
from serfcast.wire.stream import PushPull, encode_stream

LOCALHOST = bytes([127, 0, 0, 1])
KEY = bytes(range(32))


def run(argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """Run the command line; the exit status and the parsed JSON lines."""
    out = io.StringIO()
    status = main(argv, out=out)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


def decode_user_message(serf_bytes: bytes) -> tuple[int, dict[str, Any]]:
    """Decode one datagram holding one user message; the status and its record."""
    status, [record] = run(["decode", UserMsg(serf_bytes).encode().hex()])
    assert record["type"] == "user"
    assert record["fields"]["Payload"]["hex"] == serf_bytes.hex()
    return status, record


def serf_of(message: SerfMessage) -> dict[str, Any]:
    """The ``serf`` entry for a message that must decode cleanly."""
    status, record = decode_user_message(message.encode())
    assert status == 0
    assert "serf_error" not in record
    serf: dict[str, Any] = record["serf"]
    return serf


def query(name: str, payload: bytes | None, **kwargs: Any) -> Query:
    return Query(
        7, 12345, LOCALHOST, 7946, "asker", name=name, payload=payload, **kwargs
    )


# ----------------------------------------------------------------------------
# Each Serf message type


@pytest.mark.parametrize(
    ("message", "type_name", "fields"),
    [
        (Join(3, "n1"), "join", {"LTime": 3, "Node": "n1"}),
        (Leave(4, "n2", True), "leave", {"LTime": 4, "Node": "n2", "Prune": True}),
        (
            UserEvent(5, "deploy", b"v1", coalesce=True),
            "userEvent",
            {"CC": True, "LTime": 5, "Name": "deploy"},
        ),
        (
            QueryResponse(6, 99, "n3", flags=1),
            "queryResponse",
            {"Flags": 1, "From": "n3", "ID": 99, "LTime": 6, "Payload": None},
        ),
    ],
    ids=["join", "leave", "userEvent", "ack"],
)
def test_gossip_messages(
    message: SerfMessage, type_name: str, fields: dict[str, Any]
) -> None:
    serf = serf_of(message)
    assert serf["type"] == type_name
    assert fields.items() <= serf["fields"].items()


def test_user_event_payload_is_bytes_with_text_when_printable() -> None:
    payload = serf_of(UserEvent(1, "e", b"\x00\xffraw"))["fields"]["Payload"]
    assert payload == {"hex": "00ff726177", "len": 5}
    payload = serf_of(UserEvent(1, "e", b"plain"))["fields"]["Payload"]
    assert payload["text"] == "plain"


def test_query_with_filters() -> None:
    filters = [NodeFilter(("a", "b")).encode(), TagFilter("role", "^web$").encode()]
    serf = serf_of(query("whoami", b"?", filters=filters, timeout=3_200_000_000))
    assert serf["type"] == "query"
    fields = serf["fields"]
    assert fields["Name"] == "whoami" and fields["Timeout"] == 3_200_000_000
    assert fields["Addr"]["hex"] == "7f000001"
    assert fields["Filters"] == [
        {"type": "nodeFilter", "fields": {"Nodes": ["a", "b"]}},
        {"type": "tagFilter", "fields": {"Expr": "^web$", "Tag": "role"}},
    ]


def test_bad_filter_is_a_serf_error_beside_the_query() -> None:
    status, record = decode_user_message(
        query("q", None, filters=[b"\x05junk"]).encode()
    )
    assert status == 1
    assert "filter 0" in record["serf_error"]
    assert record["serf"]["fields"]["Filters"] == [{"hex": "056a756e6b", "len": 5}]
    assert record["serf"]["fields"]["Name"] == "q"


# ----------------------------------------------------------------------------
# Consul events


def test_consul_event_payload_is_decoded() -> None:
    consul = ConsulEvent.new(
        "deploy", b"v2\x00", node_filter="^web", rng=random.Random(7)
    )
    status, record = decode_user_message(consul.to_serf(12).encode())
    assert status == 0
    assert record["serf"]["fields"]["Name"] == "consul:event:deploy"
    assert record["consul"] == {
        "type": "userEvent",
        "fields": {
            "ID": consul.id,
            "Name": "deploy",
            "Payload": {"hex": "763200", "len": 3},
            "NodeFilter": "^web",
            "ServiceFilter": "",
            "TagFilter": "",
            "Version": 1,
        },
    }


@pytest.mark.parametrize("payload", [b"\xc1", None], ids=["garbage", "none"])
def test_bad_consul_payload_is_a_consul_error(payload: bytes | None) -> None:
    status, record = decode_user_message(
        UserEvent(3, "consul:event:x", payload).encode()
    )
    assert status == 1
    assert record["consul_error"]
    assert record["serf"]["fields"]["Name"] == "consul:event:x"
    assert "consul" not in record


def test_other_events_have_no_consul_key() -> None:
    status, record = decode_user_message(UserEvent(3, "consul:new-leader").encode())
    assert status == 0
    assert "consul" not in record and "consul_error" not in record


# ----------------------------------------------------------------------------
# Keyring and conflict payloads


@pytest.mark.parametrize(
    "name", ["_serf_install-key", "_serf_use-key", "_serf_remove-key"]
)
def test_key_query_payload_is_a_key_request(name: str) -> None:
    serf = serf_of(query(name, KeyRequest(KEY).encode()))
    decoded = serf["fields"]["Payload"]["decoded"]
    assert decoded["type"] == "keyRequest"
    key = decoded["fields"]["Key"]
    assert key["base64"] == base64.b64encode(KEY).decode()
    assert key["hex"] == KEY.hex() and key["len"] == 32


def test_key_query_with_a_bad_payload_is_a_serf_error() -> None:
    status, record = decode_user_message(query("_serf_use-key", b"\x07\xc1").encode())
    assert status == 1
    assert record["serf_error"].startswith("_serf_use-key payload")
    assert "decoded" not in record["serf"]["fields"]["Payload"]


def test_list_keys_payload_is_decoded_but_never_required() -> None:
    serf = serf_of(query("_serf_list-keys", KeyRequest().encode()))
    assert serf["fields"]["Payload"]["decoded"]["type"] == "keyRequest"
    serf = serf_of(query("_serf_list-keys", b"anything"))
    assert "decoded" not in serf["fields"]["Payload"]


def test_other_queries_keep_a_key_shaped_payload_as_bytes() -> None:
    serf = serf_of(query("not-a-key-query", KeyRequest(KEY).encode()))
    assert "decoded" not in serf["fields"]["Payload"]


def test_key_response_payload_is_guessed_from_its_first_byte() -> None:
    answer = KeyResponse(True, "", ["a2V5"], "a2V5").encode()
    serf = serf_of(QueryResponse(1, 2, "n1", payload=answer))
    assert serf["fields"]["Payload"]["decoded"] == {
        "type": "keyResponse",
        "fields": {
            "Keys": ["a2V5"],
            "Message": "",
            "PrimaryKey": "a2V5",
            "Result": True,
        },
    }


def test_conflict_response_payload_is_guessed_from_its_first_byte() -> None:
    member = MemberInfo("b09", LOCALHOST, 17002, {"role": "db"}, status=1)
    serf = serf_of(QueryResponse(1, 2, "n1", payload=ConflictResponse(member).encode()))
    decoded = serf["fields"]["Payload"]["decoded"]
    assert decoded["type"] == "conflictResponse"
    assert decoded["fields"]["Name"] == "b09"
    assert decoded["fields"]["Tags"] == {"role": "db"}
    assert decoded["fields"]["Addr"]["hex"] == "7f000001"

    unknown = serf_of(QueryResponse(1, 2, "n1", payload=ConflictResponse().encode()))
    assert unknown["fields"]["Payload"]["decoded"] == {
        "type": "conflictResponse",
        "fields": None,
    }


@pytest.mark.parametrize("payload", [b"\x08not msgpack \xc1", b"\x06\xc1", b"8 ok"])
def test_a_response_that_only_looks_like_a_key_answer_stays_bytes(
    payload: bytes,
) -> None:
    serf = serf_of(QueryResponse(1, 2, "n1", payload=payload))
    assert serf["fields"]["Payload"]["hex"] == payload.hex()
    assert "decoded" not in serf["fields"]["Payload"]


# ----------------------------------------------------------------------------
# Relays


def test_relay_shows_the_message_it_forwards() -> None:
    inner = QueryResponse(6, 99, "n3", payload=b"resp").encode()
    serf = serf_of(Relay(LOCALHOST, 17002, "b09", inner))
    assert serf["type"] == "relay"
    assert serf["fields"] == {
        "DestAddr": {"IP": {"hex": "7f000001", "len": 4}, "Port": 17002},
        "DestName": "b09",
    }
    assert serf["inner"]["type"] == "queryResponse"
    assert serf["inner"]["fields"]["Payload"]["text"] == "resp"


def test_relay_of_garbage_is_a_serf_error() -> None:
    status, record = decode_user_message(Relay(LOCALHOST, 1, "x", b"\x13").encode())
    assert status == 1
    assert record["serf_error"].startswith("relayed message")
    assert record["serf"]["inner"] == {"hex": "13", "len": 1}


def test_relay_in_a_relay_is_not_unwrapped_again() -> None:
    inner = QueryResponse(1, 2, "n").encode()
    middle = Relay(LOCALHOST, 2, "mid", inner).encode()
    serf = serf_of(Relay(LOCALHOST, 1, "outer", middle))
    assert serf["inner"]["type"] == "relay"
    assert serf["inner"]["inner"] == {"hex": inner.hex(), "len": len(inner)}


def test_deeply_nested_relays_do_not_exhaust_the_stack() -> None:
    data = QueryResponse(1, 2, "n").encode()
    for _ in range(3000):
        data = Relay(LOCALHOST, 1, "r", data).encode()
    status, [record] = run(["decode", "-stream", _stream_user(data).hex()])
    assert status == 0
    assert record["serf"]["inner"]["type"] == "relay"


def _stream_user(serf_bytes: bytes) -> bytes:
    return encode_stream(UserMsg(serf_bytes))


# ----------------------------------------------------------------------------
# Malformed Serf inside valid memberlist


@pytest.mark.parametrize(
    ("serf_hex", "error"),
    [
        ("0384a54c54696d65", "UserEvent"),
        ("6380", "unknown Serf message type 99"),
        ("", "empty Serf message"),
    ],
    ids=["truncated-map", "type-99", "empty"],
)
def test_malformed_serf_keeps_the_memberlist_record(serf_hex: str, error: str) -> None:
    status, record = decode_user_message(bytes.fromhex(serf_hex))
    assert status == 1
    assert error in record["serf_error"]
    assert "serf" not in record
    assert record["path"]["transport"] == "udp"


def test_malformed_serf_does_not_spoil_its_compound_siblings() -> None:
    ping = Ping(7, "node-b", LOCALHOST, 7946, "node-a")
    packet = build_packet(
        [ping, UserMsg(b"\x63\x80"), UserMsg(Join(2, "n1").encode())], compress=False
    )
    status, records = run(["decode", packet.hex()])
    assert status == 1
    assert [r["type"] for r in records] == ["ping", "user", "user"]
    assert "serf_error" in records[1]
    assert records[2]["serf"] == {"type": "join", "fields": {"LTime": 2, "Node": "n1"}}
    assert "serf_error" not in records[2]


def test_push_pull_state_as_a_user_message_is_flagged() -> None:
    status, record = decode_user_message(PushPullState(ltime=1).encode())
    assert status == 1
    assert record["serf"]["type"] == "pushPull"
    assert "push/pull user state" in record["serf_error"]


def test_stream_user_message_is_decoded_too() -> None:
    event = UserEvent(9, "via-tcp", b"p").encode()
    status, [record] = run(["decode", "-stream", _stream_user(event).hex()])
    assert status == 0
    assert record["serf"]["fields"]["Name"] == "via-tcp"


# ----------------------------------------------------------------------------
# Push/pull user state


def _events_ring(filled: dict[int, UserEvents]) -> list[UserEvents | None]:
    return [filled.get(i) for i in range(EVENT_BUFFER_SIZE)]


def decode_push_pull(user_state: bytes) -> tuple[int, dict[str, Any]]:
    message = PushPull(join=False, user_state=user_state)
    status, [record] = run(["decode", "-stream", encode_stream(message).hex()])
    assert record["type"] == "pushPull"
    assert record["fields"]["UserStateLen"] == len(user_state)
    return status, record


def test_push_pull_state_shows_only_occupied_event_slots() -> None:
    ring = _events_ring(
        {
            1: UserEvents(1, [UserEventRecord("a", b"1"), UserEventRecord("b", None)]),
            600 % EVENT_BUFFER_SIZE: UserEvents(600, [UserEventRecord("c", b"3")]),
        }
    )
    state = PushPullState(
        ltime=4,
        status_ltimes={"n0": 1, "n1": 3},
        left_members=["gone"],
        event_ltime=601,
        events=ring,
        query_ltime=2,
    )
    status, record = decode_push_pull(state.encode())
    assert status == 0 and "serf_error" not in record
    shown = record["fields"]["UserState"]
    assert shown["type"] == "pushPull"
    assert shown["counts"] == {"EventSlots": 512, "UsedSlots": 2, "Events": 3}
    fields = shown["fields"]
    assert [slot["LTime"] for slot in fields["Events"]] == [1, 600]
    assert fields["Events"][0]["Events"][1] == {"Name": "b", "Payload": None}
    assert (fields["EventLTime"], fields["LTime"], fields["QueryLTime"]) == (601, 4, 2)
    assert fields["LeftMembers"] == ["gone"]
    assert fields["StatusLTimes"] == {"n0": 1, "n1": 3}


def test_push_pull_without_user_state_is_fine() -> None:
    status, record = decode_push_pull(b"")
    assert status == 0 and "serf_error" not in record
    assert record["fields"]["UserState"] == {"hex": "", "len": 0, "text": ""}


@pytest.mark.parametrize(
    ("user_state", "error"),
    [(b"state", "not Serf's push/pull type 2"), (b"\x02\xc1", "invalid msgpack")],
    ids=["not-serf", "bad-msgpack"],
)
def test_bad_user_state_keeps_the_push_pull(user_state: bytes, error: str) -> None:
    status, record = decode_push_pull(user_state)
    assert status == 1
    assert error in record["serf_error"]
    assert record["fields"]["UserState"]["hex"] == user_state.hex()


# ----------------------------------------------------------------------------
# Real captures


def _pcap(golden_dir: Path, name: str) -> str:
    return str(golden_dir / "captures" / f"{name}.pcap")


def test_capture_with_encryption_shows_every_serf_message(golden_dir: Path) -> None:
    key = (golden_dir / "captures" / "encrypt_key.txt").read_text().strip()
    pcap = _pcap(golden_dir, "serf094_encrypted")
    status, records = run(["decode", pcap, "-port", "18401", "-encrypt", key])
    assert status == 0
    users = [r for r in records if r.get("type") == "user"]
    assert users and all("serf" in r for r in users)
    kinds = {r["serf"]["type"] for r in users}
    assert kinds == {"join", "leave", "userEvent", "query", "queryResponse"}
    states = [r["fields"]["UserState"] for r in records if r.get("type") == "pushPull"]
    assert len(states) == 2
    assert all(s["counts"]["EventSlots"] == EVENT_BUFFER_SIZE for s in states)


def test_injection_capture_flags_exactly_the_garbage(golden_dir: Path) -> None:
    pcap = _pcap(golden_dir, "inject_serf094")
    status, records = run(["decode", pcap, "-port", "18200"])
    assert status == 1
    flagged = [r for r in records if "serf_error" in r]
    assert sorted(r["fields"]["Payload"]["hex"] for r in flagged) == [
        "",
        "0384a54c54696d65",
        "6380",
    ]
    assert all(r["type"] == "user" for r in flagged)
    events = {
        r["serf"]["fields"]["Name"]
        for r in records
        if "serf" in r and r["serf"]["type"] == "userEvent"
    }
    assert {"inj_lt1", "inj_tcp", "real0"} <= events


# ----------------------------------------------------------------------------
# Arbitrary input


_SERF_PREFIXES = st.sampled_from([b"", *(bytes([t]) for t in range(10))])


@given(prefix=_SERF_PREFIXES, body=st.binary(max_size=200))
@settings(max_examples=400)
def test_any_user_message_gives_a_json_record(prefix: bytes, body: bytes) -> None:
    extra = describe_user_message(prefix + body)
    json.dumps(extra)
    assert extra.keys() <= {"serf", "serf_error", "consul", "consul_error"}
    assert "serf" in extra or "serf_error" in extra


@given(body=st.binary(max_size=200))
@settings(max_examples=200)
def test_any_user_state_gives_json(body: bytes) -> None:
    shown, extra = describe_user_state(b"\x02" + body)
    json.dumps([shown, extra])
    assert extra.keys() <= {"serf_error"}


_SAMPLES = [
    query(
        "q", b"p", filters=[NodeFilter(("a",)).encode(), TagFilter("t", "x").encode()]
    ).encode(),
    query("_serf_install-key", KeyRequest(KEY).encode()).encode(),
    Relay(
        LOCALHOST, 1, "r", QueryResponse(1, 2, "n", payload=b"\x08").encode()
    ).encode(),
    QueryResponse(1, 2, "n", payload=KeyResponse(True, "m", ["k"]).encode()).encode(),
    UserEvent(
        1, "consul:event:x", ConsulEvent.new("x", b"p").encode_payload()
    ).encode(),
]


@given(
    sample=st.sampled_from(_SAMPLES),
    cut=st.integers(min_value=0, max_value=400),
    index=st.integers(min_value=0, max_value=400),
    byte=st.integers(min_value=0, max_value=255),
)
@settings(max_examples=600)
def test_damaged_messages_give_a_json_record(
    sample: bytes, cut: int, index: int, byte: int
) -> None:
    data = bytearray(sample[: max(cut, 1)])
    data[index % len(data)] = byte
    extra = describe_user_message(bytes(data))
    json.dumps(extra)
    assert "serf" in extra or "serf_error" in extra

"""Serf messages in real captures: each decodes and re-encodes as Go wrote it.

The captures hold two serf agents talking (0.9.4, 0.10.1, mixed, plain and
encrypted) and the runs where a plain Python socket injected events into a pool.
Serf messages sit in memberlist user messages (UDP, or a TCP user message) and in
the user state of every push/pull stream.

Three checks, each against something serfcast did not produce:

* the bytes: a message a Go agent wrote re-encodes to exactly its bytes. Two
  kinds of message cannot, and are held to Go's form instead (the values
  re-packed with sorted keys and old-spec raw strings, the way Go's codec
  writes them): events the Python injector wrote (insertion-ordered keys,
  ``str8`` and ``bin``), which Go re-gossips byte for byte, and push/pull
  states whose ``StatusLTimes`` has several entries, since Go writes a map in
  random order and serfcast in sorted order;
* the values: every ``serf N=...`` line of a capture's ``.decoded.txt``, an
  independent decoding, matches the message at the same position, field by
  field under Go's names;
* the deliberately malformed injections raise RemoteProtocolError and nothing
  else.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from conftest import INJECT_CAPTURES, SEQUENCE_CAPTURES
from serfcast.errors import RemoteProtocolError
from serfcast.pcap import read_pcap
from serfcast.serf.messages import (
    EVENT_BUFFER_SIZE,
    FilterType,
    Join,
    Leave,
    NodeFilter,
    PushPullState,
    Query,
    QueryResponse,
    Relay,
    SerfMessage,
    SerfType,
    TagFilter,
    UserEvent,
    decode_filter,
    decode_push_pull_state,
    decode_serf_message,
    decode_user_message,
    encode_serf_message,
)
from serfcast.wire.frames import UserMsg, iter_messages
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import Struct
from serfcast.wire.packet import decode_packet
from serfcast.wire.stream import PushPull, StreamDecoder

#: Serf-level garbage the injection runs sent on purpose (inside an ``08``): a
#: user event whose map is cut short, Serf type 99, and an empty user message.
MALFORMED_SERF = frozenset(
    {bytes.fromhex("0384a54c54696d65"), bytes.fromhex("6380"), b""}
)
#: The injector named every event it built itself ``inj_...``.
INJECTED_PREFIX = "inj_"
SERF_NAMES = {
    SerfType.LEAVE: "leave",
    SerfType.JOIN: "join",
    SerfType.PUSH_PULL: "pushPull",
    SerfType.USER_EVENT: "userEvent",
    SerfType.QUERY: "query",
    SerfType.QUERY_RESPONSE: "queryResponse",
    SerfType.RELAY: "relay",
}


@dataclass(frozen=True)
class Found:
    """The bytes of one Serf message and where in the capture they were."""

    where: str  # "udp", "tcp-user" or "push/pull"
    raw: bytes


def _keyring(golden_dir: Path, name: str) -> Keyring | None:
    if not ("encrypted" in name or name.endswith("_enc")):
        return None
    key = (golden_dir / "captures" / "encrypt_key.txt").read_text().strip()
    return Keyring.from_base64(key)


def serf_messages(golden_dir: Path, name: str) -> Iterator[Found]:
    """Every Serf message of a capture: datagrams in order, then streams.

    Packets and streams that memberlist itself refuses (bad CRC, wrong key,
    garbage types) are left out; tests/test_captures.py checks those.
    """
    keyring = _keyring(golden_dir, name)
    contents = read_pcap((golden_dir / "captures" / f"{name}.pcap").read_bytes())
    for datagram in contents.datagrams:
        try:
            packet = decode_packet(
                datagram.payload, keyring=keyring, verify_incoming=False
            )
        except RemoteProtocolError:
            continue
        for leaf in iter_messages(packet.frame):
            if isinstance(leaf, UserMsg):
                yield Found("udp", leaf.payload)
    for stream in contents.streams:
        decoder = StreamDecoder(keyring=keyring, verify_incoming=False)
        try:
            decoder.feed(stream.payload)
            message = decoder.feed_eof().message
        except RemoteProtocolError:
            continue
        if isinstance(message, UserMsg):
            yield Found("tcp-user", message.payload)
        elif isinstance(message, PushPull) and message.user_state:
            yield Found("push/pull", message.user_state)


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    return value


def go_form(raw: bytes) -> bytes:
    """The bytes Go writes for the values in ``raw``: an oracle built on msgpack.

    Go's codec writes struct keys sorted and strings and byte slices as old-spec
    raw strings, which is what msgpack's ``use_bin_type=False`` produces.
    """
    value = msgpack.unpackb(raw[1:], raw=True, strict_map_key=False)
    packed: bytes = msgpack.packb(_sorted_maps(value), use_bin_type=False)
    return raw[:1] + packed


def _injected(message: SerfMessage) -> bool:
    return isinstance(message, UserEvent) and message.name.startswith(INJECTED_PREFIX)


def _random_map_order(message: SerfMessage) -> bool:
    return isinstance(message, PushPullState) and len(message.status_ltimes) > 1


def check_round_trip(raw: bytes) -> bool:
    """Decode and re-encode ``raw``; true when the bytes came back unchanged."""
    message = decode_serf_message(raw)
    again = encode_serf_message(message)
    assert decode_serf_message(again) == message
    if again == raw:
        return True
    assert _injected(message) or _random_map_order(message), raw.hex()
    assert again == go_form(raw)
    return False


# ----------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("name", SEQUENCE_CAPTURES)
def test_sequence_capture_serf_messages_round_trip(golden_dir: Path, name: str) -> None:
    found = list(serf_messages(golden_dir, name))
    kinds = {decode_serf_message(f.raw).TYPE for f in found}
    assert kinds == {0, 1, 2, 3, 4, 5}
    assert all(check_round_trip(f.raw) for f in found)


@pytest.mark.parametrize("name", INJECT_CAPTURES)
def test_inject_capture_serf_messages_round_trip(golden_dir: Path, name: str) -> None:
    found = list(serf_messages(golden_dir, name))
    garbage = [f for f in found if f.raw in MALFORMED_SERF]
    assert {f.raw for f in garbage} == MALFORMED_SERF
    for item in garbage:
        with pytest.raises(RemoteProtocolError):
            decode_serf_message(item.raw)

    kept = [f for f in found if f.raw not in MALFORMED_SERF]
    identical = [check_round_trip(f.raw) for f in kept]
    assert {f.where for f in kept} == {"udp", "tcp-user", "push/pull"}
    # Go-written joins and real events are the bulk; the rest is the
    # injector's own encoding and the multi-member push/pull states.
    assert identical.count(True) > 0
    assert identical.count(False) > 0


def test_injected_events_keep_their_content(golden_dir: Path) -> None:
    events = {
        message.name: message
        for f in serf_messages(golden_dir, "inject_serf0101")
        if f.raw not in MALFORMED_SERF
        for message in [decode_serf_message(f.raw)]
        if isinstance(message, UserEvent)
    }
    assert events["inj_lt1"].payload == b"hello-from-outsider"
    assert events["inj_high"].ltime == 100000
    name = "inj_binstr8_" + "x" * 30  # sent as str8 with a bin8 payload
    assert events[name].payload == b"\x00\x01binpayload"
    assert events["inj_tcp"].payload == b"via-tcp"


# ----------------------------------------------------------------------------
# Values against the independent decoding in *.decoded.txt

_SERF_LINE = re.compile(r"^\s*serf (\d+)=(\w+) (\{.*\})\s*$")
_EVENTS_SUMMARY = re.compile(r"<list len=(\d+) nil-padded; non-nil at (\{.*\})>")


def expected_serf_lines(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """The ``serf N=name {...}`` lines: type number, type name, field values."""
    expected = []
    for line in path.read_text().splitlines():
        match = _SERF_LINE.match(line)
        if match:
            fields = ast.literal_eval(match.group(3))
            expected.append((int(match.group(1)), match.group(2), fields))
    return expected


def go_view(message: Struct) -> dict[str, Any]:
    """Our decoded message under Go's field names."""
    return {f.go_name: getattr(message, f.attr) for f in type(message).FIELDS}


def assert_same_value(key: str, ours: Any, theirs: Any) -> None:
    """Compare one field; the text file shows printable byte fields as str."""
    if key == "Events" and isinstance(theirs, str):
        summary = _EVENTS_SUMMARY.fullmatch(theirs)
        assert summary, theirs
        assert len(ours) == int(summary.group(1))
        filled = {i for i, slot in enumerate(ours) if slot is not None}
        assert filled == set(ast.literal_eval(summary.group(2)))
    elif isinstance(ours, bytes) and isinstance(theirs, str):
        assert ours == theirs.encode(), key
    else:
        assert ours == theirs, key


@pytest.mark.parametrize("name", SEQUENCE_CAPTURES)
def test_values_match_the_decoded_text(golden_dir: Path, name: str) -> None:
    expected = expected_serf_lines(golden_dir / "captures" / f"{name}.decoded.txt")
    found = list(serf_messages(golden_dir, name))
    assert len(found) == len(expected) > 0
    for item, (number, type_name, fields) in zip(found, expected, strict=True):
        message = decode_serf_message(item.raw)
        assert isinstance(message, Struct)
        assert (message.TYPE, SERF_NAMES[SerfType(message.TYPE)]) == (
            number,
            type_name,
        )
        ours = go_view(message)
        assert set(ours) == set(fields)
        for key, value in fields.items():
            assert_same_value(key, ours[key], value)


# ----------------------------------------------------------------------------
# Push/pull: the whole 512-slot event ring


@pytest.mark.parametrize("name", SEQUENCE_CAPTURES)
def test_push_pull_carries_the_whole_empty_event_ring(
    golden_dir: Path, name: str
) -> None:
    states = [f.raw for f in serf_messages(golden_dir, name) if f.where == "push/pull"]
    assert len(states) == 2  # the join's push and pull
    for raw in states:
        state = decode_serf_message(raw)
        assert isinstance(state, PushPullState)
        assert state.events == [None] * EVENT_BUFFER_SIZE
        assert b"\xa6Events\xdc\x02\x00" + b"\xc0" * 512 + b"\xa5LTime" in raw
        assert (state.event_ltime, state.query_ltime, state.ltime) == (1, 1, 1)


def test_push_pull_event_slots_are_ltime_modulo_512(golden_dir: Path) -> None:
    states = [
        decode_serf_message(f.raw)
        for f in serf_messages(golden_dir, "inject_serf0101_enc")
        if f.where == "push/pull"
    ]
    full = [s for s in states if isinstance(s, PushPullState) and s.event_ltime > 1]
    assert full
    for state in full:
        assert state.events is not None and len(state.events) == EVENT_BUFFER_SIZE
        slots = {i: slot for i, slot in enumerate(state.events) if slot is not None}
        assert all(slot.ltime % EVENT_BUFFER_SIZE == i for i, slot in slots.items())
        names = [e.name for slot in slots.values() for e in slot.events or ()]
        assert {"real0", "inj_lt1", "inj_high", "inj_tcp"} <= set(names)


# ----------------------------------------------------------------------------
# Representative packets quoted with the captures

QUERY_PACKET = (
    "0c806a8f3808048ba441646472a47f000001a746696c74657273c0a5466c61677301a24944"
    "ce54d93028a54c54696d6501a44e616d65a677686f616d69a75061796c6f6164a87170617"
    "96c6f6164a4506f7274cd47e1ab52656c6179466163746f7200aa536f757263654e6f6465"
    "a5616c706861a754696d656f7574ce77359400"
)
ACK_PACKET = (
    "080585a5466c61677301a446726f6da462657461a24944ce54d93028a54c54696d6501a750"
    "61796c6f6164c0"
)
RESPONSE_PACKET = (
    "080585a5466c61677300a446726f6da462657461a24944ce54d93028a54c54696d6501a750"
    "61796c6f6164ae726573702d66726f6d2d62657461"
)


def _only_serf_message(packet_hex: str) -> tuple[bytes, SerfMessage]:
    packet = decode_packet(bytes.fromhex(packet_hex))
    [leaf] = iter_messages(packet.frame)
    assert isinstance(leaf, UserMsg)
    return leaf.payload, decode_serf_message(leaf.payload)


def test_captured_query() -> None:
    raw, query = _only_serf_message(QUERY_PACKET)
    assert query == Query(
        ltime=1,
        id=1423519784,
        addr=bytes([127, 0, 0, 1]),
        port=18401,
        source_node="alpha",
        filters=None,
        flags=1,
        relay_factor=0,
        timeout=2_000_000_000,
        name="whoami",
        payload=b"qpayload",
    )
    assert query.wants_ack and not query.no_broadcast
    assert encode_serf_message(query) == raw


@pytest.mark.parametrize(
    ("packet_hex", "flags", "payload"),
    [(ACK_PACKET, 1, None), (RESPONSE_PACKET, 0, b"resp-from-beta")],
    ids=["ack", "response"],
)
def test_captured_query_answers(
    packet_hex: str, flags: int, payload: bytes | None
) -> None:
    packet = decode_packet(bytes.fromhex(packet_hex))
    assert packet.crc is None  # sent to a bare address: no CRC layer
    raw, answer = _only_serf_message(packet_hex)
    assert answer == QueryResponse(1, 1423519784, "beta", flags, payload)
    assert answer.is_ack == (flags == 1)
    assert encode_serf_message(answer) == raw


def test_captured_relay_wraps_an_ack_untouched() -> None:
    ack = bytes.fromhex(ACK_PACKET)[1:]
    header = (
        "0982a8446573744164647283a24950a47f000001a4506f7274cd426aa45a6f6e65a0"
        "a8446573744e616d65a3623039"
    )
    raw = bytes.fromhex(header) + ack
    relay = decode_serf_message(raw)
    assert relay == Relay(bytes([127, 0, 0, 1]), 17002, "b09", ack)
    assert encode_serf_message(relay) == raw
    assert isinstance(decode_serf_message(relay.inner), QueryResponse)


@pytest.mark.parametrize(
    ("blob_hex", "expected"),
    [
        ("0091a3613130", NodeFilter(("a10",))),
        ("0182a445787072a26462a3546167a4726f6c65", TagFilter("role", "db")),
    ],
    ids=["node", "tag"],
)
def test_captured_filters(blob_hex: str, expected: NodeFilter | TagFilter) -> None:
    blob = bytes.fromhex(blob_hex)
    assert decode_filter(blob) == expected
    assert expected.encode() == blob
    assert blob[0] == expected.TYPE == FilterType(blob[0])


@pytest.mark.parametrize(
    ("raw_hex", "expected"),
    [
        ("0182a54c54696d6501a44e6f6465a3623039", Join(1, "b09")),
        (
            "0083a54c54696d6504a44e6f6465a3643039a55072756e65c2",
            Leave(4, "d09", prune=False),
        ),
        (
            "0384a24343c3a54c54696d6501a44e616d65a66465706c6f79a75061796c6f6164a27631",
            UserEvent(1, "deploy", b"v1", coalesce=True),
        ),
    ],
    ids=["join", "leave", "user-event"],
)
def test_captured_intents_and_event(raw_hex: str, expected: SerfMessage) -> None:
    raw = bytes.fromhex(raw_hex)
    assert decode_serf_message(raw) == expected
    assert encode_serf_message(expected) == raw


def test_push_pull_state_is_refused_as_a_user_message() -> None:
    state = PushPullState(ltime=1, event_ltime=1, query_ltime=1).encode()
    assert decode_push_pull_state(state) == decode_serf_message(state)
    with pytest.raises(RemoteProtocolError, match="not valid as a user message"):
        decode_user_message(state)
    with pytest.raises(RemoteProtocolError, match="does not start with type 2"):
        decode_push_pull_state(b"\x03" + state[1:])

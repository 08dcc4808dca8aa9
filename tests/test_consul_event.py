"""ConsulEvent: round trips, the sender's checks, IDs, reserved names, decoder fuzz."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serfcast.consul import (
    EVENT_PREFIX,
    ConsulEvent,
    check_event_name,
    check_serf_event_name,
    is_event_id,
    new_event_id,
)
from serfcast.consul.codec import MAX_PAYLOAD_SIZE
from serfcast.errors import LimitExceededError, LocalProtocolError, RemoteProtocolError
from serfcast.re2 import BadRegexpError
from serfcast.serf.messages import UserEvent, UserEventRecord, decode_serf_message

ID = "c3f5f7a2-0b1d-4e6f-8a9b-0c1d2e3f4a5b"

# Go strings are bytes: names may hold undecodable bytes, kept as lone surrogates.
go_text = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))
events = st.builds(
    ConsulEvent,
    id=st.one_of(st.just(ID), go_text),
    name=go_text,
    payload=st.binary(max_size=70_000),
    node_filter=go_text,
    service_filter=go_text,
    tag_filter=go_text,
    version=st.integers(-(1 << 63), (1 << 63) - 1),
)


@settings(max_examples=300)
@given(events)
def test_payload_round_trip(event: ConsulEvent) -> None:
    encoded = event.encode_payload()
    assert ConsulEvent.decode_payload(encoded) == event
    assert ConsulEvent.decode_payload(encoded, strict=True) == event


@settings(max_examples=200)
@given(events, st.integers(0, (1 << 64) - 1), st.booleans())
def test_serf_round_trip(event: ConsulEvent, ltime: int, coalesce: bool) -> None:
    serf = UserEvent(ltime, EVENT_PREFIX + event.name, event.encode_payload(), coalesce)
    received = decode_serf_message(serf.encode())
    assert isinstance(received, UserEvent)
    assert ConsulEvent.from_serf(received) == event


utf8_events = st.builds(
    ConsulEvent,
    id=st.text(max_size=300),
    name=st.text(max_size=300),
    payload=st.binary(max_size=70_000),
    node_filter=st.text(max_size=40),
    service_filter=st.text(max_size=40),
    tag_filter=st.text(max_size=40),
    version=st.integers(-(1 << 63), (1 << 63) - 1),
)


@given(utf8_events)
def test_encoding_follows_consuls_profile(event: ConsulEvent) -> None:
    # For UTF-8 text, Python's msgpack with bin types writes Consul's layout.
    fields: dict[str, str | bytes] = {
        "ID": event.id,
        "n": event.name,
        "nf": event.node_filter,
        "p": event.payload,
        "sf": event.service_filter,
        "tf": event.tag_filter,
    }
    kept: dict[str, object] = {k: v for k, v in fields.items() if v or k in ("ID", "n")}
    kept["v"] = event.version
    assert event.encode_payload() == msgpack.packb(kept, use_bin_type=True)


def _decoded_or_refused(data: bytes, strict: bool = False) -> ConsulEvent | None:
    """Decode, turning the one allowed failure into None (any other escapes)."""
    try:
        return ConsulEvent.decode_payload(data, strict=strict)
    except RemoteProtocolError:
        return None


@settings(max_examples=500)
@given(st.binary(max_size=200), st.booleans())
def test_decoder_fuzz_raises_only_remote_errors(data: bytes, strict: bool) -> None:
    result = _decoded_or_refused(data, strict)
    assert result is None or isinstance(result, ConsulEvent)


@settings(max_examples=300)
@given(events, st.integers(0, 80), st.binary(min_size=1, max_size=4))
def test_decoder_fuzz_on_damaged_events(
    event: ConsulEvent, cut: int, junk: bytes
) -> None:
    encoded = event.encode_payload()
    for data in (encoded[:cut], encoded[:cut] + junk + encoded[cut:]):
        result = _decoded_or_refused(data)
        assert result is None or isinstance(result, ConsulEvent)
    assert _decoded_or_refused(encoded) == event


def test_decoder_bounds_its_input() -> None:
    oversized = ConsulEvent(ID, "x", bytes(MAX_PAYLOAD_SIZE)).encode_payload()
    with pytest.raises(LimitExceededError):
        ConsulEvent.decode_payload(oversized)


def test_decoder_takes_what_go_takes() -> None:
    # Array form in Go's field order, nil for an all-zero event, trailing bytes.
    array = msgpack.packb([ID, "deploy", b"p", "web", "", "", 1], use_bin_type=True)
    assert ConsulEvent.decode_payload(array) == ConsulEvent(ID, "deploy", b"p", "web")
    assert ConsulEvent.decode_payload(b"\xc0") == ConsulEvent("", "", version=0)
    good = ConsulEvent(ID, "deploy").encode_payload()
    assert ConsulEvent.decode_payload(good + b"\xff\xff") == ConsulEvent(ID, "deploy")
    wrapped = msgpack.packb({"ID": ID, "n": "d", "v": (1 << 64) - 1}, use_bin_type=True)
    assert ConsulEvent.decode_payload(wrapped).version == -1


@pytest.mark.parametrize(
    "value", [{"ID": ID, "n": 5}, {"v": 1.0}, {"v": True}, {"p": [300]}, {"n": [1]}]
)
def test_decoder_refuses_wrong_types(value: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        ConsulEvent.decode_payload(msgpack.packb(value, use_bin_type=True))


def test_from_serf_ignores_other_events() -> None:
    assert ConsulEvent.from_serf(UserEvent(1, "deploy", b"x")) is None
    assert ConsulEvent.from_serf(UserEvent(1, "consul:new-leader", b"")) is None
    with pytest.raises(RemoteProtocolError):
        ConsulEvent.from_serf(UserEvent(1, "consul:event:deploy", None))


def test_from_serf_reads_push_pull_records_and_trusts_the_inner_name() -> None:
    payload = ConsulEvent(ID, "inner").encode_payload()
    record = UserEventRecord("consul:event:outer", payload)
    assert ConsulEvent.from_serf(record) == ConsulEvent(ID, "inner")


def test_new_event_ids_are_lowercase_uuid4() -> None:
    first = new_event_id(random.Random(7))
    assert first == new_event_id(random.Random(7))
    assert first != new_event_id(random.Random(8))
    assert is_event_id(first) and first == first.lower()
    assert first[14] == "4" and first[19] in "89ab"
    assert is_event_id(new_event_id())


@pytest.mark.parametrize(
    "text", ["", "not-a-uuid", ID[:-1], ID + "0", ID.replace("-", "_"), "g" * 36]
)
def test_malformed_ids_are_recognised(text: str) -> None:
    assert not is_event_id(text)
    with pytest.raises(LocalProtocolError, match="new_event_id"):
        ConsulEvent(text, "deploy").to_serf(1)


def test_malformed_ids_from_others_decode() -> None:
    payload = ConsulEvent("zzz", "deploy").encode_payload()
    assert ConsulEvent.decode_payload(payload).id == "zzz"


def test_new_builds_a_sendable_event() -> None:
    event = ConsulEvent.new("deploy", b"v1", service_filter="api", tag_filter="canary")
    serf = event.to_serf(42)
    assert serf.name == "consul:event:deploy" and serf.ltime == 42
    assert not serf.coalesce
    assert ConsulEvent.from_serf(serf) == event


def test_sender_checks_consuls_api_rules() -> None:
    with pytest.raises(LocalProtocolError, match="needs a name"):
        ConsulEvent(ID, "").to_serf(1)
    with pytest.raises(LocalProtocolError, match="needs a service filter"):
        ConsulEvent(ID, "deploy", tag_filter="canary").to_serf(1)
    with pytest.raises(BadRegexpError, match="node filter: look-ahead"):
        ConsulEvent(ID, "deploy", node_filter="web(?=-1)").to_serf(1)
    with pytest.raises(BadRegexpError, match="service filter"):
        ConsulEvent(ID, "deploy", service_filter="api\\1").to_serf(1)


def test_sender_refuses_text_with_no_bytes() -> None:
    with pytest.raises(LocalProtocolError, match="surrogate"):
        ConsulEvent(ID, "bad\ud800").encode_payload()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("_rexec", "remote execution"),
        ("_private", "reserves"),
        ("consul:event:deploy", "already prefixed"),
        ("consul:new-leader", "already prefixed"),
    ],
)
def test_reserved_names_need_the_override(name: str, why: str) -> None:
    with pytest.raises(LocalProtocolError, match=why) as refused:
        ConsulEvent(ID, name).to_serf(1)
    assert "allow_reserved=True" in str(refused.value)
    serf = ConsulEvent(ID, name).to_serf(1, allow_reserved=True)
    assert serf.name == EVENT_PREFIX + name


def test_ordinary_names_pass() -> None:
    for name in ("deploy", "a_b", "x:consul:", "web-1.2", "ünïcode"):
        check_event_name(name)


@pytest.mark.parametrize(
    ("serf_name", "why"),
    [
        ("consul:new-leader", "full sync"),
        ("consul:event:deploy", "ConsulEvent"),
        ("consul:other", "logs a warning"),
    ],
)
def test_raw_serf_names_consul_acts_on(serf_name: str, why: str) -> None:
    with pytest.raises(LocalProtocolError, match=why) as refused:
        check_serf_event_name(serf_name)
    assert "allow_reserved=True" in str(refused.value)
    check_serf_event_name(serf_name, allow_reserved=True)
    check_serf_event_name("deploy")

"""The Serf layer of ``serfcast decode``.

memberlist carries Serf in two places: each user message holds one Serf message,
and the user state of a push/pull holds Serf's state exchange. Both are shown
under a Serf type name (``leave``, ``join``, ``pushPull``, ``userEvent``,
``query``, ``queryResponse``, ``relay``) with their fields under Go's names.

Where a message says what its payload holds, that is decoded too: a query's
filters are shown as node lists and tag filters, a keyring query's payload gets
a ``decoded`` key request beside its bytes, and a relay shows the message it
forwards under ``inner``. A response carries no query name, so its payload is
only a guess: one starting with byte 8 is tried as a key response and one
starting with byte 6 as a conflict response, and when that fails it stays plain
bytes, since a handler's output may start with any byte. A
``consul:event:...`` user event also gets a ``consul`` key: the Consul event its
payload holds, under the Go names of Consul's ``UserEvent``.

A push/pull state lists only the occupied slots of Serf's event ring (Go always
sends all 512, nearly all empty), with counts beside it.

Nothing here hides what memberlist decoded: when the Serf layer fails, the
memberlist record stays and gains a ``serf_error`` key (``consul_error`` for a
Consul payload that does not decode).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Final

from serfcast.consul import ConsulEvent
from serfcast.describe_values import go_fields, show_bytes
from serfcast.errors import RemoteProtocolError
from serfcast.serf.messages import (
    ConflictResponse,
    Join,
    KeyRequest,
    KeyResponse,
    Leave,
    NodeFilter,
    PushPullState,
    Query,
    QueryResponse,
    Relay,
    SerfMessage,
    SerfType,
    UserEvent,
    decode_conflict_response,
    decode_filter,
    decode_key_request,
    decode_key_response,
    decode_serf_message,
)

__all__ = ["SERF_TYPE_NAMES", "describe_user_message", "describe_user_state"]

SERF_TYPE_NAMES: Final[dict[type, str]] = {
    Leave: "leave",
    Join: "join",
    PushPullState: "pushPull",
    UserEvent: "userEvent",
    Query: "query",
    QueryResponse: "queryResponse",
    Relay: "relay",
}
#: Keyring queries whose payload must be a key request (Go answers with a
#: failure when it is not).
_KEY_CHANGES: Final = frozenset(
    {"_serf_install-key", "_serf_use-key", "_serf_remove-key"}
)
#: Go never reads this query's payload, so a bad one is no error.
_LIST_KEYS: Final = "_serf_list-keys"

Shown = dict[str, Any]


def describe_user_message(payload: bytes) -> Shown:
    """Keys to add to a user message's record: ``serf`` (and ``consul``), or errors."""
    try:
        message = decode_serf_message(payload)
    except RemoteProtocolError as exc:
        return {"serf_error": str(exc)}
    errors: list[str] = []
    if isinstance(message, PushPullState):
        # Go's gossip handler knows no type 2 and drops it with a warning.
        errors.append("a push/pull state is only valid as push/pull user state")
    extra: Shown = {"serf": _describe(message, errors, relayed=False)}
    if isinstance(message, UserEvent):
        extra.update(_describe_consul(message))
    if errors:
        extra["serf_error"] = "; ".join(errors)
    return extra


def describe_user_state(state: bytes) -> tuple[Any, Shown]:
    """How to show a push/pull's user state, and keys to add to its record."""
    if not state:
        return show_bytes(state), {}
    if state[0] != SerfType.PUSH_PULL:
        error = f"user state starts with byte {state[0]}, not Serf's push/pull type 2"
        return show_bytes(state), {"serf_error": error}
    try:
        message = decode_serf_message(state)
    except RemoteProtocolError as exc:
        return show_bytes(state), {"serf_error": str(exc)}
    assert isinstance(message, PushPullState)
    return _describe_state(message), {}


def _describe(message: SerfMessage, errors: list[str], relayed: bool) -> Shown:
    if isinstance(message, Relay):
        return _describe_relay(message, errors, relayed)
    if isinstance(message, PushPullState):
        return _describe_state(message)
    fields = go_fields(message)
    if isinstance(message, Query):
        _decode_query_parts(message, fields, errors)
    elif isinstance(message, QueryResponse):
        _guess_response_payload(message.payload or b"", fields)
    return {"type": SERF_TYPE_NAMES[type(message)], "fields": fields}


def _describe_consul(event: UserEvent) -> Shown:
    try:
        consul = ConsulEvent.from_serf(event)
    except RemoteProtocolError as exc:
        return {"consul_error": str(exc)}
    if consul is None:
        return {}
    fields = {
        "ID": consul.id,
        "Name": consul.name,
        "Payload": show_bytes(consul.payload),
        "NodeFilter": consul.node_filter,
        "ServiceFilter": consul.service_filter,
        "TagFilter": consul.tag_filter,
        "Version": consul.version,
    }
    return {"consul": {"type": "userEvent", "fields": fields}}


def _describe_state(state: PushPullState) -> Shown:
    fields = go_fields(state)
    slots = state.events or []
    used = [slot for slot in slots if slot is not None]
    if state.events is not None:
        fields["Events"] = [go_fields(slot) for slot in used]
    counts = {
        "EventSlots": len(slots),
        "UsedSlots": len(used),
        "Events": sum(len(slot.events or ()) for slot in used),
    }
    return {"type": "pushPull", "fields": fields, "counts": counts}


def _describe_relay(relay: Relay, errors: list[str], relayed: bool) -> Shown:
    shown: Shown = {
        "type": "relay",
        "fields": {
            "DestAddr": {"IP": show_bytes(relay.dest_addr), "Port": relay.dest_port},
            "DestName": relay.dest_name,
        },
    }
    # Go never wraps a relay in a relay; stopping here also bounds the recursion.
    if relayed:
        shown["inner"] = show_bytes(relay.inner)
        return shown
    try:
        inner = decode_serf_message(relay.inner)
    except RemoteProtocolError as exc:
        errors.append(f"relayed message: {exc}")
        shown["inner"] = show_bytes(relay.inner)
    else:
        shown["inner"] = _describe(inner, errors, relayed=True)
    return shown


def _decode_query_parts(query: Query, fields: Shown, errors: list[str]) -> None:
    if query.filters is not None:
        fields["Filters"] = [
            _decode_filter(i, blob, errors) for i, blob in enumerate(query.filters)
        ]
    payload = query.payload or b""
    if query.name in _KEY_CHANGES or query.name == _LIST_KEYS:
        try:
            request = decode_key_request(payload)
        except RemoteProtocolError as exc:
            if query.name != _LIST_KEYS:
                errors.append(f"{query.name} payload: {exc}")
        else:
            fields["Payload"]["decoded"] = _show_key_request(request)


def _decode_filter(index: int, blob: bytes, errors: list[str]) -> Shown:
    try:
        decoded = decode_filter(blob)
    except RemoteProtocolError as exc:
        errors.append(f"filter {index}: {exc}")
        return show_bytes(blob)
    if isinstance(decoded, NodeFilter):
        return {"type": "nodeFilter", "fields": {"Nodes": list(decoded.nodes)}}
    return {"type": "tagFilter", "fields": go_fields(decoded)}


def _show_key_request(request: KeyRequest) -> Shown:
    # Keys are random bytes, and people know them in base64 (serf keygen).
    key = {**show_bytes(request.key), "base64": base64.b64encode(request.key).decode()}
    key.pop("text", None)
    return {"type": "keyRequest", "fields": {"Key": key}}


def _guess_response_payload(payload: bytes, fields: Shown) -> None:
    guess = _RESPONSE_GUESSES.get(payload[:1])
    if guess is None:
        return
    try:
        fields["Payload"]["decoded"] = guess(payload)
    except RemoteProtocolError:
        return  # not what it looked like: plain bytes, as shown already


def _show_key_response(payload: bytes) -> Shown:
    response: KeyResponse = decode_key_response(payload)
    return {"type": "keyResponse", "fields": go_fields(response)}


def _show_conflict_response(payload: bytes) -> Shown:
    response: ConflictResponse = decode_conflict_response(payload)
    member = None if response.member is None else go_fields(response.member)
    return {"type": "conflictResponse", "fields": member}


_RESPONSE_GUESSES: Final[dict[bytes, Callable[[bytes], Shown]]] = {
    bytes((SerfType.KEY_RESPONSE,)): _show_key_response,
    bytes((SerfType.CONFLICT_RESPONSE,)): _show_conflict_response,
}

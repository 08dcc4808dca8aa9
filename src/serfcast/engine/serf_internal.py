"""Serf's internal queries: the ``_serf_*`` questions a node answers itself.

They never reach the application. Every node acks them like any query (when
asked to) and then:

* ``_serf_ping``: nothing more; the ack is the answer (``serf reachability``);
* ``_serf_conflict``: the payload names a node; everyone but that node answers
  with the member as it knows it (``06`` + member map, or ``06 c0``);
* ``_serf_install-key`` / ``use-key`` / ``remove-key``: change the keyring and
  answer ``08`` + {Result, Message} in Go's own words, so ``serf keys`` counts
  us as any other member;
* ``_serf_list-keys``: answer with every key in base64 and the primary one,
  dropping keys from the end (and saying so) until the answer fits the
  response size limit.

The functions here decide the answer; sending it is the caller's job.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from serfcast.engine.serf_events import QueryReceived
from serfcast.errors import RemoteProtocolError
from serfcast.serf.messages import (
    ConflictResponse,
    KeyRequest,
    KeyResponse,
    MemberInfo,
    QueryResponse,
)
from serfcast.wire.keyring import KEY_SIZES, Keyring

__all__ = [
    "INTERNAL_PREFIX",
    "conflict_answer",
    "fit_key_list",
    "internal_answer",
    "key_change_answer",
    "list_keys_answer",
]

INTERNAL_PREFIX: Final = "_serf_"
#: The shortest a base64 key can be in a list-keys answer (24 chars + header);
#: bounds how many keys are worth trying, as in Serf.
_MIN_ENCODED_KEY: Final = 25

_KEY_CHANGES: Final = ("install-key", "use-key", "remove-key")
_NO_KEYRING: Final = "No keyring to modify (encryption not enabled)"
_EMPTY_KEYRING: Final = "Keyring is empty (encryption not enabled)"
_BAD_KEY_SIZE: Final = "key size must be 16, 24 or 32 bytes"
_KEY_NOT_INSTALLED: Final = "Requested key is not in the keyring"
_REMOVE_PRIMARY: Final = "Removing the primary key is not allowed"


def internal_answer(
    query: QueryReceived,
    local_name: str,
    keyring: Keyring | None,
    lookup: Callable[[str], MemberInfo | None],
    response_limit: int,
) -> bytes | None:
    """The response payload for an internal query, or ``None`` for no answer.

    ``lookup`` finds a member for conflict answers; ``response_limit`` bounds
    the encoded response a list of keys must fit in. Raises
    :class:`LookupError` for an internal query name Serf does not know (Go
    logs it and answers nothing).
    """
    kind = query.name.removeprefix(INTERNAL_PREFIX)
    if kind == "ping":
        return None
    if kind == "conflict":
        return conflict_answer(query.payload, local_name, lookup)
    if kind in _KEY_CHANGES:
        return key_change_answer(kind, query.payload, keyring)
    if kind == "list-keys":

        def fits(payload: bytes) -> bool:
            reply = QueryResponse(query.ltime, query.id, local_name, 0, payload)
            return len(reply.encode()) <= response_limit

        return fit_key_list(list_keys_answer(keyring), fits, response_limit)
    raise LookupError(f"unhandled internal query {query.name!r}")


def conflict_answer(
    payload: bytes, local_name: str, lookup: Callable[[str], MemberInfo | None]
) -> bytes | None:
    """The answer to ``_serf_conflict`` about ``payload``; ``None`` if it asks
    about us (the contested node keeps quiet)."""
    name = payload.decode("utf-8", "surrogateescape")
    if name == local_name:
        return None
    return ConflictResponse(lookup(name)).encode()


def key_change_answer(kind: str, payload: bytes, keyring: Keyring | None) -> bytes:
    """Apply an install-, use- or remove-key query and answer it.

    ``kind`` is the query name without the prefix. Like Go, the first payload
    byte (the key-request type) is skipped unread.
    """
    try:
        key = KeyRequest.decode_body(payload[1:]).key
    except RemoteProtocolError:
        return KeyResponse(False, "").encode()
    if not keyring:
        return KeyResponse(False, _NO_KEYRING).encode()
    problem = _change_keyring(kind, key, keyring)
    return KeyResponse(problem is None, problem or "").encode()


def _change_keyring(kind: str, key: bytes, keyring: Keyring) -> str | None:
    """Make the change; return memberlist's error text if it refuses."""
    if kind == "install-key":
        if len(key) not in KEY_SIZES:
            return _BAD_KEY_SIZE
        keyring.add_key(key)
    elif kind == "use-key":
        if key not in keyring.keys:
            return _KEY_NOT_INSTALLED
        keyring.use_key(key)
    else:
        if key == keyring.primary:
            return _REMOVE_PRIMARY
        keyring.remove_key(key)
    return None


def list_keys_answer(keyring: Keyring | None) -> KeyResponse:
    """The untruncated answer to ``_serf_list-keys``."""
    if not keyring:
        return KeyResponse(False, _EMPTY_KEYRING)
    keys = [_b64(k) for k in keyring.keys]
    return KeyResponse(True, "", keys, _b64(keyring.primary))


def fit_key_list(
    answer: KeyResponse, fits: Callable[[bytes], bool], limit: int
) -> bytes | None:
    """``answer`` encoded, with keys dropped from the end until ``fits`` it.

    A shortened list carries Serf's note on how many keys it shows. As in Serf,
    an answer that fits with no key at all is not tried: ``None`` then means
    nothing can be sent.
    """
    encoded = answer.encode()
    if fits(encoded):
        return encoded
    keys = answer.keys or []
    for count in range(min(limit // _MIN_ENCODED_KEY, len(keys) - 1), 0, -1):
        note = f"truncated key list response, showing first {count} of {len(keys)} keys"
        shorter = KeyResponse(answer.result, note, keys[:count], answer.primary_key)
        encoded = shorter.encode()
        if fits(encoded):
            return encoded
    return None


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")

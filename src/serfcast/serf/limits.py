"""How big a Serf message may be, checked the way Serf's sender checks it.

Only senders check sizes. A Go receiver accepts and delivers a user event, query
or response of any size; the limits below exist so that serfcast refuses exactly
what a Go node would refuse to send, with the same wording.

A user event is measured twice against the configured limit (512 by default,
never more than 9216): first the name plus the payload, then the whole encoded
message with its type byte. The encoded message adds map keys, the flag, the
Lamport time and two string headers, so the second check is always the stricter
one; the first only decides which of Serf's two messages an event that is far
too large gets (Serf makes it to avoid encoding such an event at all).

A second, unrelated ceiling is what gossip can carry. memberlist packs broadcasts
into UDP packets of at most 1400 bytes; after its compound header, the per-message
framing and (when encrypted) the AES-GCM overhead, a Serf message of up to 1395
bytes (1366 encrypted) can be gossiped. A larger one is still accepted, delivered
and buffered, but other nodes only learn of it through TCP push/pull.
"""

from __future__ import annotations

from typing import Final

from serfcast.errors import EventTooLargeError, LocalProtocolError
from serfcast.serf.messages import UserEvent

__all__ = [
    "COMPOUND_HEADER_SIZE",
    "DEFAULT_QUERY_RESPONSE_SIZE_LIMIT",
    "DEFAULT_QUERY_SIZE_LIMIT",
    "DEFAULT_USER_EVENT_SIZE_LIMIT",
    "ENCRYPTION_OVERHEAD",
    "GOSSIP_BUDGET_ENCRYPTED",
    "GOSSIP_BUDGET_PLAIN",
    "GOSSIP_MESSAGE_OVERHEAD",
    "MAX_LABEL_SIZE",
    "MAX_USER_EVENT_SIZE_LIMIT",
    "UDP_BUFFER_SIZE",
    "check_query_size",
    "check_response_size",
    "check_user_event_limit_config",
    "check_user_event_size",
    "gossip_budget",
    "gossip_warning",
    "user_event_budget",
]

DEFAULT_USER_EVENT_SIZE_LIMIT: Final = 512
MAX_USER_EVENT_SIZE_LIMIT: Final = 9 * 1024
DEFAULT_QUERY_SIZE_LIMIT: Final = 1024
DEFAULT_QUERY_RESPONSE_SIZE_LIMIT: Final = 1024

#: memberlist's largest UDP packet it will build (the same in every profile).
UDP_BUFFER_SIZE: Final = 1400
#: The compound wrapper: its type byte and part count.
COMPOUND_HEADER_SIZE: Final = 2
#: Each user message inside a compound: a two-byte length and the ``08`` type.
GOSSIP_MESSAGE_OVERHEAD: Final = 3
#: AES-GCM with encryption version 1: version byte, 12-byte nonce, 16-byte tag.
ENCRYPTION_OVERHEAD: Final = 29
#: memberlist refuses labels longer than this.
MAX_LABEL_SIZE: Final = 255

GOSSIP_BUDGET_PLAIN: Final = (
    UDP_BUFFER_SIZE - COMPOUND_HEADER_SIZE - GOSSIP_MESSAGE_OVERHEAD
)
GOSSIP_BUDGET_ENCRYPTED: Final = GOSSIP_BUDGET_PLAIN - ENCRYPTION_OVERHEAD


# ----------------------------------------------------------------------------
# User events.


def check_user_event_limit_config(limit: int) -> None:
    """Refuse a configured user event limit above Serf's hard ceiling of 9216."""
    if limit > MAX_USER_EVENT_SIZE_LIMIT:
        raise LocalProtocolError(
            f"user event size limit exceeds limit of {MAX_USER_EVENT_SIZE_LIMIT} bytes"
        )


def check_user_event_size(
    name: str,
    payload: bytes | None,
    ltime: int,
    coalesce: bool,
    limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
) -> bytes:
    """Make Serf's two size checks and return the encoded event (type byte first).

    Raises :class:`~serfcast.errors.EventTooLargeError` carrying Serf's text when
    either check fails, and :class:`~serfcast.errors.LocalProtocolError` when
    ``limit`` itself is above what Serf allows.
    """
    check_user_event_limit_config(limit)
    raw_size = len(name.encode("utf-8", "surrogateescape")) + len(payload or b"")
    if raw_size > limit:
        raise EventTooLargeError(limit, raw_size, "before encoding")
    encoded = UserEvent(ltime, name, payload, coalesce).encode()
    if len(encoded) > limit:
        raise EventTooLargeError(limit, len(encoded), "after encoding")
    return encoded


def user_event_budget(
    name: str,
    ltime: int,
    limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
    coalesce: bool = False,
) -> int:
    """The longest payload that passes both size checks, or -1 if none does.

    -1 means even an empty payload is refused (the name alone is too long), so
    the event cannot be sent at all; 0 means only an empty payload fits.
    """
    check_user_event_limit_config(limit)
    # The encoded message is the raw name and payload plus at least 28 bytes of
    # framing, so whenever the check before encoding fails, the one after would
    # too: only the encoded size decides the budget. Everything but the payload
    # and its header is measured from a real encoding rather than modelled; an
    # empty payload's one header byte is taken off.
    fixed = len(UserEvent(ltime, name, b"", coalesce).encode()) - 1
    return _longest_raw_within(limit - fixed)


def _longest_raw_within(room: int) -> int:
    """The longest raw string whose header plus bytes fit in ``room`` (-1: none).

    Header plus length grows with the length, so the answer is the best of the
    longest fit within each header size.
    """
    best = -1
    for header, shortest, longest in _RAW_TIERS:
        candidate = min(room - header, longest)
        if candidate >= shortest:
            best = max(best, candidate)
    return best


#: Go's raw string headers: (header bytes, shortest and longest length using it).
_RAW_TIERS: Final = ((1, 0, 31), (3, 32, 0xFFFF), (5, 0x10000, 0xFFFF_FFFF))


# ----------------------------------------------------------------------------
# Queries and responses.


def check_query_size(encoded_len: int, limit: int = DEFAULT_QUERY_SIZE_LIMIT) -> None:
    """Refuse a query whose encoded message (type byte included) is over ``limit``."""
    if encoded_len > limit:
        raise LocalProtocolError(f"query exceeds limit of {limit} bytes")


def check_response_size(
    encoded_len: int,
    limit: int = DEFAULT_QUERY_RESPONSE_SIZE_LIMIT,
    *,
    relayed: bool = False,
) -> None:
    """Refuse a query response over ``limit``; a relayed copy is measured wrapped."""
    if encoded_len > limit:
        prefix = "relayed " if relayed else ""
        raise LocalProtocolError(f"{prefix}response exceeds limit of {limit} bytes")


# ----------------------------------------------------------------------------
# Gossip: what fits in one UDP packet.


def gossip_budget(encrypted: bool, label: bytes = b"") -> int:
    """The largest Serf message memberlist can gossip, measured before compression.

    ``label`` is the cluster's memberlist label (empty for none); a label costs
    its length plus a two-byte header in every packet.
    """
    if len(label) > MAX_LABEL_SIZE:
        raise LocalProtocolError(
            f"a memberlist label is at most {MAX_LABEL_SIZE} bytes, not {len(label)}"
        )
    budget = GOSSIP_BUDGET_ENCRYPTED if encrypted else GOSSIP_BUDGET_PLAIN
    return budget - (2 + len(label) if label else 0)


def gossip_warning(encoded_len: int, encrypted: bool, label: bytes = b"") -> str | None:
    """Explain, when a Serf message is too big for gossip, how it will travel."""
    budget = gossip_budget(encrypted, label)
    if encoded_len <= budget:
        return None
    return (
        f"this {encoded_len}-byte Serf message is larger than the {budget} bytes "
        "a gossip packet can carry, so it is never gossiped over UDP: other nodes "
        "receive it only through TCP push/pull anti-entropy, seconds to tens of "
        "seconds later"
    )

"""How many payload bytes a Consul event can carry within Serf's size limit.

Serf measures the whole event before sending it: the prefixed name plus the
encoded Consul map, then the complete encoded Serf message. The Consul map
holds the name a second time, the ID, the filters and the payload's own header,
so the room left for the payload depends on all of them and on how many bytes
the Lamport time takes. The budget here is found by encoding real events, so it
is exact rather than modelled.
"""

from __future__ import annotations

from typing import Final

from serfcast.consul.event import ConsulEvent
from serfcast.consul.names import serf_event_name
from serfcast.errors import EventTooLargeError
from serfcast.serf.limits import (
    DEFAULT_USER_EVENT_SIZE_LIMIT,
    check_user_event_limit_config,
    check_user_event_size,
)

__all__ = ["consul_event_budget"]

#: Every event ID has this length, so any well-formed one measures the same.
_SAMPLE_ID: Final = "00000000-0000-4000-8000-000000000000"


def consul_event_budget(
    name: str,
    *,
    node_filter: str = "",
    service_filter: str = "",
    tag_filter: str = "",
    ltime: int,
    limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
) -> int:
    """The longest payload that passes Serf's size checks, or -1 if none does.

    0 means only an empty payload fits. Consul fires with coalescing off, which
    does not change the size.
    """
    check_user_event_limit_config(limit)

    def fits(size: int) -> bool:
        event = ConsulEvent(
            _SAMPLE_ID, name, bytes(size), node_filter, service_filter, tag_filter
        )
        try:
            check_user_event_size(
                serf_event_name(name), event.encode_payload(), ltime, False, limit
            )
        except EventTooLargeError:
            return False
        return True

    if not fits(0):
        return -1
    # The encoded size only grows with the payload, so bisect: fits(low) holds
    # and fits(high) does not (the raw check alone fails above ``limit``).
    low, high = 0, limit + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low

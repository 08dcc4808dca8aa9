"""The event to fire: Consul's or plain Serf's, checked as their senders check it.

Everything that can be refused is refused here, before any byte is sent: the
name (Consul's reserved names and prefixes), the filters (Go's regular
expression syntax), coalescing (Consul never coalesces) and the size. The size
is Serf's own pair of checks with Serf's words, followed by the longest payload
that would have fitted, so the caller knows what to cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from serfcast.errors import EventTooLargeError, LocalProtocolError
from serfcast.serf.limits import (
    DEFAULT_USER_EVENT_SIZE_LIMIT,
    check_user_event_size,
    user_event_budget,
)
from serfcast.serf.messages import UserEvent

__all__ = [
    "BuiltEvent",
    "EventSpec",
    "PayloadTooLargeError",
    "build_event",
    "check_event",
]

#: Any well-formed ID encodes to the same size, so checks can use this one.
_SAMPLE_ID: Final = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What to fire: a Consul event (the default) or a plain Serf event.

    A Consul event travels as the Serf event ``consul:event:<name>`` whose
    payload is Consul's encoded map (a fresh ID, the filters, the payload); a
    plain Serf event carries ``name`` and ``payload`` as they are. The filters
    are Go regular expressions that receiving Consul agents apply; coalescing
    exists only for plain Serf events (Consul fires with it off).
    ``size_limit`` is the pool's user event size limit (Serf's default 512).
    """

    name: str
    payload: bytes = b""
    consul: bool = True
    node_filter: str = ""
    service_filter: str = ""
    tag_filter: str = ""
    coalesce: bool = False
    allow_reserved: bool = False
    size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT


@dataclass(frozen=True, slots=True)
class BuiltEvent:
    """The Serf user event to send, its encoding and the Consul ID (if any)."""

    message: UserEvent
    encoded: bytes
    event_id: str | None = None


class PayloadTooLargeError(EventTooLargeError):
    """Serf's size check refused the event; ``budget`` says what would fit.

    ``budget`` is the longest payload that passes with this name (and filters)
    at the Lamport time checked, -1 when not even an empty payload does.
    """

    def __init__(
        self, cause: EventTooLargeError, budget: int, payload_size: int
    ) -> None:
        super().__init__(cause.limit, cause.size, cause.stage)
        self.budget = budget
        self.payload_size = payload_size
        if budget < 0:
            hint = "the name (and filters) alone leave no room for any payload"
        else:
            hint = f"the payload is {payload_size} bytes, at most {budget} fit"
        self.args = (f"{self.args[0]}: {hint}",)

    def __reduce__(  # type: ignore[override]
        self,
    ) -> tuple[type[PayloadTooLargeError], tuple[EventTooLargeError, int, int]]:
        cause = EventTooLargeError(self.limit, self.size, self.stage)
        return type(self), (cause, self.budget, self.payload_size)


def check_event(spec: EventSpec) -> None:
    """Every check that needs no network: names, filters, flags and size.

    The size is checked at Lamport time 1, the smallest encoding, so an event
    refused here is refused at any time; :func:`build_event` checks again at
    the pool's real time.
    """
    if not spec.name:
        raise LocalProtocolError("an event needs a name")
    if spec.consul and spec.coalesce:
        raise LocalProtocolError(
            "Consul fires its events with coalescing off; coalescing is only for "
            "plain Serf events"
        )
    if not spec.consul and (spec.node_filter or spec.service_filter or spec.tag_filter):
        raise LocalProtocolError(
            "node, service and tag filters belong to Consul events; a plain Serf "
            "event has none"
        )
    build_event(spec, 1, _SAMPLE_ID)


def build_event(spec: EventSpec, ltime: int, event_id: str | None = None) -> BuiltEvent:
    """The Serf user event at ``ltime``, after Consul's and Serf's checks.

    A Consul event gets ``event_id``, or a fresh random one when it is None.
    """
    if not spec.consul:
        _check_serf_name(spec)
        message = UserEvent(ltime, spec.name, spec.payload, spec.coalesce)
        return BuiltEvent(message, _checked_size(spec, message))
    # Imported here: the Consul rules (and their regular expression checker)
    # are a good part of what a plain Serf fire would otherwise load at start.
    from serfcast.consul import ConsulEvent, new_event_id

    consul = ConsulEvent(
        event_id or new_event_id(),
        spec.name,
        spec.payload,
        spec.node_filter,
        spec.service_filter,
        spec.tag_filter,
    )
    message = consul.to_serf(ltime, allow_reserved=spec.allow_reserved)
    return BuiltEvent(message, _checked_size(spec, message), consul.id)


def _check_serf_name(spec: EventSpec) -> None:
    # Only names starting with "consul:" mean something to Consul agents, so
    # only those need the Consul rules.
    if spec.name.startswith("consul:"):
        from serfcast.consul.names import check_serf_event_name

        check_serf_event_name(spec.name, allow_reserved=spec.allow_reserved)


def _checked_size(spec: EventSpec, message: UserEvent) -> bytes:
    try:
        return check_user_event_size(
            message.name,
            message.payload,
            message.ltime,
            message.coalesce,
            spec.size_limit,
        )
    except EventTooLargeError as exc:
        raise PayloadTooLargeError(
            exc, _payload_budget(spec, message.ltime), len(spec.payload)
        ) from None


def _payload_budget(spec: EventSpec, ltime: int) -> int:
    if not spec.consul:
        return user_event_budget(spec.name, ltime, spec.size_limit, spec.coalesce)
    from serfcast.consul import consul_event_budget

    return consul_event_budget(
        spec.name,
        node_filter=spec.node_filter,
        service_filter=spec.service_filter,
        tag_filter=spec.tag_filter,
        ltime=ltime,
        limit=spec.size_limit,
    )

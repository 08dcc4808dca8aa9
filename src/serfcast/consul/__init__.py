"""Consul's user events, carried over Serf gossip without a Consul agent.

:class:`ConsulEvent` is one event: build it with :meth:`ConsulEvent.new`, turn
it into the Serf user event to gossip with :meth:`ConsulEvent.to_serf`, and
recognise one received with :meth:`ConsulEvent.from_serf`. Sending checks what
Consul's API checks (a name, valid Go regular expressions, a tag filter only
with a service filter) and refuses names Consul treats specially unless told
otherwise; :func:`consul_event_budget` says how large a payload still fits.
:func:`matches` applies an event's filters the way a receiving agent does.
"""

from __future__ import annotations

from serfcast.consul.budget import consul_event_budget
from serfcast.consul.event import EVENT_VERSION, ConsulEvent, is_event_id, new_event_id
from serfcast.consul.filters import ServiceInfo, check_filters, matches
from serfcast.consul.names import (
    EVENT_PREFIX,
    check_event_name,
    check_serf_event_name,
)

__all__ = [
    "EVENT_PREFIX",
    "EVENT_VERSION",
    "ConsulEvent",
    "ServiceInfo",
    "check_event_name",
    "check_filters",
    "check_serf_event_name",
    "consul_event_budget",
    "is_event_id",
    "matches",
    "new_event_id",
]

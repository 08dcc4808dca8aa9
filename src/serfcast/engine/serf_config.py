"""Serf's tunables, with the Go library's defaults.

Every duration is in seconds (floats). The values are ``serf.DefaultConfig``'s
with two exceptions, both on purpose:

* ``enable_name_conflict_resolution`` is off. When it is on, Go's Serf asks the
  pool who owns its name and *shuts itself down* if it loses the vote. A
  sans-IO engine does not stop its own driver, so here the vote is only
  reported (:class:`~serfcast.engine.serf_events.NameConflictResolved`) and the
  application decides; leaving it off saves the query. Consul runs with it
  off too.
* ``join_ignore_old`` is on, as in the ``serf`` agent (``serf join`` without
  ``-replay``): joining does not replay the pool's recent user events.

Change any setting with :meth:`SerfConfig.replace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from serfcast.errors import LocalProtocolError
from serfcast.serf.limits import (
    DEFAULT_QUERY_RESPONSE_SIZE_LIMIT,
    DEFAULT_QUERY_SIZE_LIMIT,
    DEFAULT_USER_EVENT_SIZE_LIMIT,
    check_user_event_limit_config,
)
from serfcast.serf.messages import EVENT_BUFFER_SIZE
from serfcast.wire.messages import PROTOCOL_VSN

__all__ = ["SerfConfig"]

_DAY = 24 * 3600.0
#: Serf protocols this engine speaks: 4 brings queries, 5 is the agent's default.
_PROTOCOLS = (4, 5)
#: Settings that drive a timer and so must be positive.
_PERIODS = (
    "broadcast_timeout",
    "reap_interval",
    "reconnect_interval",
    "queue_check_interval",
)


@dataclass(frozen=True, slots=True)
class SerfConfig:
    """Serf-level settings (memberlist's are in :class:`MemberlistConfig`)."""

    protocol_version: int = 5
    broadcast_timeout: float = 5.0
    leave_propagate_delay: float = 1.0
    event_buffer_size: int = EVENT_BUFFER_SIZE
    query_buffer_size: int = EVENT_BUFFER_SIZE
    reap_interval: float = 15.0
    recent_intent_timeout: float = 300.0
    reconnect_interval: float = 30.0
    reconnect_timeout: float = _DAY
    tombstone_timeout: float = _DAY
    queue_check_interval: float = 30.0
    queue_depth_warning: int = 128
    max_queue_depth: int = 4096
    query_timeout_mult: int = 16
    query_size_limit: int = DEFAULT_QUERY_SIZE_LIMIT
    query_response_size_limit: int = DEFAULT_QUERY_RESPONSE_SIZE_LIMIT
    user_event_size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT
    user_coalesce_period: float = 0.0
    user_quiescent_period: float = 0.0
    join_ignore_old: bool = True
    enable_name_conflict_resolution: bool = False

    def __post_init__(self) -> None:
        if self.protocol_version not in _PROTOCOLS:
            raise LocalProtocolError(
                f"Serf protocol {self.protocol_version} is not supported; use 4 or 5"
            )
        check_user_event_limit_config(self.user_event_size_limit)
        for name in ("event_buffer_size", "query_buffer_size", "max_queue_depth"):
            if getattr(self, name) < 1:
                raise LocalProtocolError(f"{name} must be at least 1")
        for name in _PERIODS:
            if getattr(self, name) <= 0:
                raise LocalProtocolError(f"{name} must be a positive number of seconds")

    @property
    def vsn(self) -> bytes:
        """memberlist's six version bytes, the last being our Serf protocol."""
        return PROTOCOL_VSN[:5] + bytes((self.protocol_version,))

    def replace(self, **changes: object) -> SerfConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

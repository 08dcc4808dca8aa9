"""Event names: Consul's Serf prefix, and the names Consul treats specially.

A Consul user event travels as a Serf user event named ``consul:event:`` plus
the user's name. Agents ignore every other Serf event name unless it starts with
``consul:``; of those, ``consul:new-leader`` makes each agent run a full
anti-entropy sync against the servers, and any other ``consul:`` name makes each
agent log a warning. Among user names, ``_rexec`` starts remote execution on
agents that enable it, and Consul's documentation reserves every name starting
with ``_`` (its code does not enforce that).

Gossip reaches agents without any ACL check, so these names are refused unless
the caller passes ``allow_reserved=True``.
"""

from __future__ import annotations

from typing import Final

from serfcast.errors import LocalProtocolError

__all__ = [
    "EVENT_PREFIX",
    "NEW_LEADER_EVENT",
    "REMOTE_EXEC_EVENT",
    "check_event_name",
    "check_serf_event_name",
    "serf_event_name",
    "user_event_name",
]

EVENT_PREFIX: Final = "consul:event:"
NEW_LEADER_EVENT: Final = "consul:new-leader"
REMOTE_EXEC_EVENT: Final = "_rexec"
_OVERRIDE: Final = "pass allow_reserved=True to send it anyway"


def serf_event_name(name: str) -> str:
    """The Serf event name that carries the Consul event called ``name``."""
    return EVENT_PREFIX + name


def user_event_name(serf_name: str) -> str | None:
    """The Consul name inside a Serf event name, or None for other Serf events."""
    if serf_name.startswith(EVENT_PREFIX):
        return serf_name[len(EVENT_PREFIX) :]
    return None


def check_event_name(name: str, *, allow_reserved: bool = False) -> None:
    """Refuse a Consul event name Consul's API would refuse or treats specially."""
    if not name:
        raise LocalProtocolError(
            "a Consul event needs a name; Consul refuses empty ones"
        )
    if allow_reserved:
        return
    if name == REMOTE_EXEC_EVENT:
        raise LocalProtocolError(
            f"{name!r} starts remote execution on agents that enable it; {_OVERRIDE}"
        )
    if name.startswith("_"):
        raise LocalProtocolError(
            f"Consul reserves event names starting with _ such as {name!r}; {_OVERRIDE}"
        )
    if name.startswith("consul:"):
        raise LocalProtocolError(
            f"event name {name!r} looks already prefixed: give the bare name "
            f"(the {EVENT_PREFIX!r} prefix is added for you), or {_OVERRIDE}"
        )


def check_serf_event_name(serf_name: str, *, allow_reserved: bool = False) -> None:
    """Refuse a plain Serf event name that Consul agents in the pool would act on."""
    if allow_reserved or not serf_name.startswith("consul:"):
        return
    if serf_name == NEW_LEADER_EVENT:
        raise LocalProtocolError(
            f"{serf_name!r} makes every Consul agent run a full sync against the "
            f"servers; {_OVERRIDE}"
        )
    if serf_name.startswith(EVENT_PREFIX):
        raise LocalProtocolError(
            f"{serf_name!r} is a Consul event name: build a ConsulEvent so the "
            f"payload has the format agents decode, or {_OVERRIDE}"
        )
    raise LocalProtocolError(
        f"every Consul agent logs a warning for Serf event {serf_name!r}; {_OVERRIDE}"
    )

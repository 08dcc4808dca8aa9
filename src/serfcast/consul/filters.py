"""Consul's event filters: the sender's checks and the receiving agent's matching.

Filters are Go regular expressions checked only by each receiving agent, which
drops the event when its own node and services do not match, and also when an
expression does not compile. Consul's HTTP API and CLI check the filters before
firing; gossip does not, so :func:`check_filters` makes the same checks here.

An agent matches like this. Every test is an unanchored search, so ``web``
matches ``old-web-3``; anchor with ``^...$`` for an exact match.

1. A node filter must match the agent's node name.
2. A service filter must match the **ID** of at least one service registered on
   the agent (the ID, not the service name: they differ for services registered
   with an explicit ID and for sidecar proxies).
3. A tag filter narrows that: one of the tags of such a service must match. With
   no service filter, an agent ignores the tag filter altogether, even one that
   does not compile.

Empty filters match everything; the two tests must both pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serfcast.errors import LocalProtocolError
from serfcast.re2 import (
    BadRegexpError,
    check_go_regexp,
    compile_go_regexp,
    go_text,
)

if TYPE_CHECKING:
    from serfcast.consul.event import ConsulEvent

__all__ = ["ServiceInfo", "check_filters", "matches"]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A service registered on the local agent.

    Only ``tags`` take part in matching; the service filter is matched against
    the ID under which the service is registered (the mapping's key).
    """

    name: str
    tags: tuple[str, ...] = ()


def check_filters(
    node_filter: str = "", service_filter: str = "", tag_filter: str = ""
) -> None:
    """Refuse filters Consul's API would refuse (and agents would drop)."""
    if tag_filter and not service_filter:
        raise LocalProtocolError(
            "a tag filter needs a service filter: agents ignore a tag filter on its "
            "own, so add a service filter such as '.' to test the tags of every service"
        )
    for label, expr in (
        ("node filter", node_filter),
        ("service filter", service_filter),
        ("tag filter", tag_filter),
    ):
        try:
            check_go_regexp(expr)
        except BadRegexpError as exc:
            raise BadRegexpError(f"{label}: {exc}", exc.expr, exc.position) from None


def matches(
    event: ConsulEvent, node_name: str, services: Mapping[str, ServiceInfo]
) -> bool:
    """Whether an agent called ``node_name`` with ``services`` (by ID) would act.

    A filter Go cannot compile makes the agent drop the event, so it gives False.
    Raises :class:`~serfcast.re2.UnsupportedRegexpError` for the few valid
    filters Python cannot evaluate (Unicode script classes).
    """
    if event.node_filter and not _search(event.node_filter, node_name):
        return False
    if not event.service_filter:
        return True
    if not (_compiles(event.service_filter) and _compiles(event.tag_filter)):
        return False
    return any(
        _search(event.service_filter, service_id)
        and (
            not event.tag_filter or any(_search(event.tag_filter, t) for t in info.tags)
        )
        for service_id, info in services.items()
    )


def _compiles(expr: str) -> bool:
    try:
        compile_go_regexp(expr)
    except BadRegexpError:
        return False
    return True


def _search(expr: str, text: str) -> bool:
    try:
        pattern = compile_go_regexp(expr)
    except BadRegexpError:
        return False
    return pattern.search(go_text(text)) is not None

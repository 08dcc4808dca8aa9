"""Filters: what Consul's API refuses, and how a receiving agent matches."""

from __future__ import annotations

import pytest

from serfcast.consul import ConsulEvent, ServiceInfo, check_filters, matches
from serfcast.errors import LocalProtocolError
from serfcast.re2 import BadRegexpError, UnsupportedRegexpError

ID = "7e4b1c9d-2f3a-4b5c-9d6e-8f7a6b5c4d3e"

#: An agent with an explicitly named service, a sidecar and a plain one.
SERVICES = {
    "web-frontend-1": ServiceInfo("web", ("canary", "v2")),
    "web-frontend-1-sidecar-proxy": ServiceInfo("web-sidecar-proxy", ()),
    "api": ServiceInfo("api", ("primary", "v1")),
}


def _event(nf: str = "", sf: str = "", tf: str = "") -> ConsulEvent:
    return ConsulEvent(ID, "deploy", b"", nf, sf, tf)


@pytest.mark.parametrize(
    ("nf", "sf", "tf", "node", "expected"),
    [
        # No filters: every agent acts.
        ("", "", "", "web-1", True),
        # Node filters are unanchored searches on the node name.
        ("web-.*", "", "", "web-1", True),
        ("web-.*", "", "", "old-web-1", True),
        ("^web-\\d+$", "", "", "old-web-1", False),
        ("^web-\\d+$", "", "", "web-12", True),
        ("db", "", "", "web-1", False),
        # Service filters match service IDs, not service names.
        ("", "frontend", "", "n", True),
        ("", "^web$", "", "n", False),
        ("", "^api$", "", "n", True),
        ("", "sidecar", "", "n", True),
        ("", "cache", "", "n", False),
        # Tag filters test the tags of the services whose ID matched.
        ("", "api", "primary", "n", True),
        ("", "api", "canary", "n", False),
        ("", "web", "canary", "n", True),
        ("", ".", "nary", "n", True),
        ("", "sidecar", "canary", "n", False),
        # Both tests must pass.
        ("web-.*", "api", "", "db-1", False),
        ("db-.*", "api", "v1", "db-1", True),
        # A tag filter without a service filter is ignored by agents...
        ("", "", "nothing-matches-this", "n", True),
        # ... even when Go cannot compile it.
        ("", "", "(?=x)", "n", True),
        # A filter Go cannot compile makes the agent drop the event.
        ("web(?!x)", "", "", "web-1", False),
        ("", "a**", "", "n", False),
        ("", "api", "\\1", "n", False),
    ],
)
def test_matching_like_an_agent(
    nf: str, sf: str, tf: str, node: str, expected: bool
) -> None:
    assert matches(_event(nf, sf, tf), node, SERVICES) is expected


def test_service_filter_needs_a_service() -> None:
    assert not matches(_event(sf="."), "n", {})
    assert matches(_event(nf="n"), "n", {})


def test_go_semantics_not_pythons() -> None:
    # $ is the very end of the text in Go; . does not match a newline.
    assert not matches(_event(nf="^web$"), "web\n", {})
    assert not matches(_event(nf="web.1"), "web\n1", {})
    assert matches(_event(nf="(?i)WEB"), "web-1", {})
    # Undecodable bytes in a name read as U+FFFD in Go.
    assert matches(_event(nf="^a\ufffdb$"), "a\udcffb", {})


def test_unsupported_filters_are_reported() -> None:
    with pytest.raises(UnsupportedRegexpError, match="script"):
        matches(_event(nf="\\p{Greek}"), "n", {})


def test_check_filters_accepts_what_go_accepts() -> None:
    check_filters("^web-\\d+$", "(?i)API", "[[:digit:]]+")
    check_filters("", "\\Qa.b\\E", "")
    check_filters()


def test_check_filters_refuses_a_lone_tag_filter() -> None:
    with pytest.raises(LocalProtocolError, match="needs a service filter"):
        check_filters(tag_filter="canary")


@pytest.mark.parametrize(
    ("kwargs", "label"),
    [
        ({"node_filter": "(?<=a)b"}, "node filter"),
        ({"service_filter": "a++"}, "service filter"),
        ({"service_filter": ".", "tag_filter": "x\\Z"}, "tag filter"),
    ],
)
def test_check_filters_names_the_filter(kwargs: dict[str, str], label: str) -> None:
    with pytest.raises(BadRegexpError) as refused:
        check_filters(**kwargs)
    assert str(refused.value).startswith(label)
    assert refused.value.expr in kwargs.values()

"""The payload budget: the largest payload passes Serf's checks, one more fails."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serfcast.consul import ConsulEvent, consul_event_budget
from serfcast.errors import EventTooLargeError, LocalProtocolError
from serfcast.serf.limits import MAX_USER_EVENT_SIZE_LIMIT, check_user_event_size

ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


def _passes(
    name: str, filters: tuple[str, str, str], size: int, ltime: int, limit: int
) -> bool:
    event = ConsulEvent(ID, name, b"\xa5" * size, *filters)
    serf = event.to_serf(ltime, allow_reserved=True)
    try:
        check_user_event_size(serf.name, serf.payload, ltime, False, limit)
    except EventTooLargeError:
        return False
    return True


names = st.text(min_size=1, max_size=120)
regexps = st.sampled_from(
    ["", "web-.*", "^api$", "(?i)canary", "[[:digit:]]+", "x" * 90]
)
ltimes = st.one_of(st.integers(0, 300), st.integers(0, (1 << 64) - 1))


filter_sets = st.tuples(regexps, regexps, regexps).map(
    lambda f: (f[0], f[1], f[2] if f[1] else "")  # a tag filter needs a service one
)


@settings(max_examples=200, deadline=None)
@given(names, filter_sets, ltimes, st.sampled_from([512, 1024, 9216]))
def test_budget_is_exact(
    name: str, filters: tuple[str, str, str], ltime: int, limit: int
) -> None:
    nf, sf, tf = filters
    budget = consul_event_budget(
        name, node_filter=nf, service_filter=sf, tag_filter=tf, ltime=ltime, limit=limit
    )
    if budget >= 0:
        assert _passes(name, filters, budget, ltime, limit)
    assert not _passes(name, filters, budget + 1, ltime, limit)


# Worked by hand for LTime 1 and a payload of N >= 256 bytes (bin16 header):
# the Consul map for "deploy" is 59 + N bytes (fixmap 1, "ID" 3, str8 ID 38,
# "n" 2, name 7, "p" 2, bin16 3, "v" 2, 1 1) and Serf adds 49 (type 1, fixmap 1,
# "CC" 3, false 1, "LTime" 6, 1 1, "Name" 5, fixstr name 20, "Payload" 8, raw16
# 3), so N = 512 - 108 = 404. A node filter "web-.*" costs 3 + 7 bytes; "api"
# and "canary" cost 3 + 4 + 3 + 7. A 64-character name costs 66 - 7 in the map
# and 80 - 20 in the envelope. (The reference sheet rounds these to ~404, ~390,
# ~383 and ~281.)
@pytest.mark.parametrize(
    ("name", "filters", "expected"),
    [
        ("deploy", ("", "", ""), 404),
        ("deploy", ("web-.*", "", ""), 394),
        ("deploy", ("", "api", "canary"), 387),
        ("x" * 64, ("", "", ""), 404 - 59 - 60),
    ],
)
def test_budget_worked_by_hand(
    name: str, filters: tuple[str, str, str], expected: int
) -> None:
    nf, sf, tf = filters
    budget = consul_event_budget(
        name, node_filter=nf, service_filter=sf, tag_filter=tf, ltime=1
    )
    assert budget == expected


def test_budget_shrinks_with_the_lamport_time() -> None:
    small = consul_event_budget("deploy", ltime=1)
    assert consul_event_budget("deploy", ltime=1 << 20) == small - 4
    assert consul_event_budget("deploy", ltime=1 << 40) == small - 8


def test_no_room_at_all() -> None:
    assert consul_event_budget("n" * 300, ltime=1) == -1
    assert (
        consul_event_budget("n" * 300, ltime=1, limit=MAX_USER_EVENT_SIZE_LIMIT) > 8000
    )


def test_limit_above_serfs_ceiling_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        consul_event_budget("deploy", ltime=1, limit=MAX_USER_EVENT_SIZE_LIMIT + 1)

"""Size limits: Serf's two user event checks, the payload budget, gossip and queries."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from serfcast import EventTooLargeError
from serfcast.errors import LocalProtocolError
from serfcast.serf.limits import (
    DEFAULT_USER_EVENT_SIZE_LIMIT,
    GOSSIP_BUDGET_ENCRYPTED,
    GOSSIP_BUDGET_PLAIN,
    MAX_USER_EVENT_SIZE_LIMIT,
    check_query_size,
    check_response_size,
    check_user_event_limit_config,
    check_user_event_size,
    gossip_budget,
    gossip_warning,
    user_event_budget,
)
from serfcast.serf.messages import UserEvent
from serfcast.wire.gomsgpack import encode_str

BEFORE = "user event exceeds configured limit of 512 bytes before encoding"
AFTER = "encoded user event exceeds configured limit of 512 bytes after encoding"

#: Lamport times on both sides of every width change of a msgpack uint.
BOUNDARY_LTIMES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]

names = st.one_of(
    st.text(max_size=40),
    st.text(min_size=32, max_size=120),
    st.text(alphabet="é日\U0001f600", min_size=8, max_size=40),
    st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)
ltimes = st.one_of(st.sampled_from(BOUNDARY_LTIMES), st.integers(0, 2**64 - 1))
limits = st.one_of(
    st.sampled_from([512, 513, 1024, 9215, 9216]), st.integers(512, 9216)
)


@st.composite
def tight_names(draw: st.DrawFn) -> tuple[str, int]:
    """A limit and a name that leaves little room in it (under 80 bytes)."""
    limit = draw(limits)
    length = limit - draw(st.integers(0, 80))
    return draw(st.sampled_from("aé")) * (length // 2) + "n" * (length % 2), limit


def passes(name: str, size: int, ltime: int, coalesce: bool, limit: int) -> bool:
    """Whether a payload of ``size`` bytes gets through both checks."""
    try:
        encoded = check_user_event_size(name, b"p" * size, ltime, coalesce, limit)
    except EventTooLargeError:
        return False
    assert encoded == UserEvent(ltime, name, b"p" * size, coalesce).encode()
    return True


@settings(max_examples=400)
@given(name=names, ltime=ltimes, limit=limits, coalesce=st.booleans())
@example(name="sz", ltime=1, limit=512, coalesce=True)
@example(name="a" * 33, ltime=1, limit=512, coalesce=True)
@example(name="n" * 482, ltime=1, limit=512, coalesce=False)
@example(name="n" * 483, ltime=1, limit=512, coalesce=False)
@example(name="n" * 513, ltime=1, limit=512, coalesce=False)
def test_a_budget_of_n_means_n_bytes_pass_and_n_plus_1_do_not(
    name: str, ltime: int, limit: int, coalesce: bool
) -> None:
    budget = user_event_budget(name, ltime, limit, coalesce)
    assert budget >= -1
    if budget >= 0:
        assert passes(name, budget, ltime, coalesce, limit)
    assert not passes(name, budget + 1, ltime, coalesce, limit)


@settings(max_examples=300)
@given(tight=tight_names(), ltime=ltimes, coalesce=st.booleans())
def test_the_budget_is_exact_when_the_name_leaves_little_room(
    tight: tuple[str, int], ltime: int, coalesce: bool
) -> None:
    name, limit = tight
    budget = user_event_budget(name, ltime, limit, coalesce)
    if budget >= 0:
        assert passes(name, budget, ltime, coalesce, limit)
    else:
        assert budget == -1
    assert not passes(name, budget + 1, ltime, coalesce, limit)


@given(name=names, ltime=ltimes, limit=limits)
def test_the_budget_shrinks_as_names_and_times_grow(
    name: str, ltime: int, limit: int
) -> None:
    budget = user_event_budget(name, ltime, limit)
    assert budget <= limit - len(encode_str(name))
    assert user_event_budget(name + "x", ltime, limit) <= budget
    assert user_event_budget(name, min(ltime * 2 + 1, 2**64 - 1), limit) <= budget


def test_the_boundary_seen_on_real_agents() -> None:
    assert user_event_budget("sz", 1, 512, coalesce=True) == 480
    check_user_event_size("sz", bytes(480), 1, True, 512)
    with pytest.raises(EventTooLargeError) as after:
        check_user_event_size("sz", bytes(481), 1, True, 512)
    assert str(after.value) == AFTER
    assert (after.value.limit, after.value.size) == (512, 513)
    assert after.value.stage == "after encoding"
    with pytest.raises(EventTooLargeError) as before:
        check_user_event_size("sz", bytes(511), 1, True, 512)
    assert str(before.value) == BEFORE
    assert (before.value.size, before.value.stage) == (513, "before encoding")


def test_the_other_measured_boundaries() -> None:
    # A four-character name leaves 478; a 33-byte name costs two more bytes.
    assert user_event_budget("ping", 1, 512) == 478
    assert user_event_budget("b" * 33, 1, 512) == 447
    with pytest.raises(EventTooLargeError, match="after encoding"):
        check_user_event_size("b" * 33, bytes(449), 1, True, 512)
    # A Lamport time takes 1, 2, 3, 5 or 9 bytes; each step costs the payload.
    steps = (127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32)
    budgets = [user_event_budget("sz", t, 512) for t in steps]
    assert budgets == [480, 479, 479, 478, 478, 476, 476, 472]


def test_a_name_too_long_for_any_payload_has_a_budget_of_minus_one() -> None:
    assert user_event_budget("n" * 600, 1, 512) == -1
    with pytest.raises(EventTooLargeError, match="before encoding"):
        check_user_event_size("n" * 600, None, 1, False, 512)


def test_the_size_error_is_local_and_pickles() -> None:
    error = EventTooLargeError(2048, 2050, "after encoding")
    assert isinstance(error, LocalProtocolError)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.limit, copy.size, copy.stage) == (
        "encoded user event exceeds configured limit of 2048 bytes after encoding",
        2048,
        2050,
        "after encoding",
    )


def test_the_configured_limit_is_capped_at_9216() -> None:
    check_user_event_limit_config(MAX_USER_EVENT_SIZE_LIMIT)
    assert DEFAULT_USER_EVENT_SIZE_LIMIT == 512
    for call in (
        lambda: check_user_event_limit_config(9217),
        lambda: check_user_event_size("a", None, 1, False, 9217),
        lambda: user_event_budget("a", 1, 9217),
    ):
        with pytest.raises(LocalProtocolError) as info:
            call()
        assert str(info.value) == "user event size limit exceeds limit of 9216 bytes"
        assert not isinstance(info.value, EventTooLargeError)


def test_gossip_budgets() -> None:
    assert (GOSSIP_BUDGET_PLAIN, GOSSIP_BUDGET_ENCRYPTED) == (1395, 1366)
    assert gossip_budget(encrypted=False) == 1395
    assert gossip_budget(encrypted=True) == 1366
    assert gossip_budget(encrypted=False, label=b"lbl") == 1390
    assert gossip_budget(encrypted=True, label=b"x" * 255) == 1366 - 257
    with pytest.raises(LocalProtocolError, match="at most 255"):
        gossip_budget(encrypted=False, label=b"x" * 256)


def test_gossip_warning_explains_push_pull_only_spreading() -> None:
    assert gossip_warning(1395, encrypted=False) is None
    assert gossip_warning(1366, encrypted=True) is None
    warning = gossip_warning(1367, encrypted=True)
    assert warning is not None
    assert "1367-byte" in warning
    assert "1366 bytes" in warning
    assert "push/pull" in warning
    labelled = gossip_warning(1395, encrypted=False, label=b"prod")
    assert labelled is not None
    assert "1389 bytes" in labelled


def test_query_and_response_limits() -> None:
    check_query_size(1024)
    with pytest.raises(LocalProtocolError) as query:
        check_query_size(1025)
    assert str(query.value) == "query exceeds limit of 1024 bytes"
    check_response_size(1024)
    with pytest.raises(LocalProtocolError) as response:
        check_response_size(1025)
    assert str(response.value) == "response exceeds limit of 1024 bytes"
    with pytest.raises(LocalProtocolError) as relayed:
        check_response_size(2049, 2048, relayed=True)
    assert str(relayed.value) == "relayed response exceeds limit of 2048 bytes"

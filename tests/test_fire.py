"""The one-shot fire planner: requests, canned push/pull replies, events, delivery."""

from __future__ import annotations

import pickle
import random
import socket

import pytest

from serfcast.consul import ConsulEvent, consul_event_budget
from serfcast.errors import EventTooLargeError, LocalProtocolError, RemoteProtocolError
from serfcast.fire import (
    SMALL_POOL,
    TCP_TARGETS,
    AgentErrorReply,
    EventSpec,
    PayloadTooLargeError,
    PoolMember,
    PoolView,
    build_event,
    check_event,
    choose_ltime,
    direct_fanout,
    parse_address,
    plan_delivery,
    plan_fire,
    pull_request,
    read_pool,
    reply_decoder,
)
from serfcast.re2 import BadRegexpError
from serfcast.serf.limits import user_event_budget
from serfcast.serf.messages import PushPullState, UserEvent, decode_serf_message
from serfcast.wire.frames import UserMsg, iter_messages
from serfcast.wire.keyring import Keyring, generate_key
from serfcast.wire.messages import (
    PROTOCOL_VSN,
    ErrResp,
    NodeState,
    PushNodeState,
)
from serfcast.wire.packet import decode_packet
from serfcast.wire.stream import PushPull, StreamDecoder, encode_stream

KEY = Keyring.from_base64(generate_key())
EVENT_ID = "0123abcd-0000-4000-8000-00000000beef"


def node(
    name: str,
    port: int,
    *,
    state: int = NodeState.ALIVE,
    addr: bytes = b"\x7f\x00\x00\x01",
    vsn: bytes = PROTOCOL_VSN,
    meta: bytes | None = b"\xff\x81\xa4role\xa3web",
) -> PushNodeState:
    return PushNodeState(name, addr, port, meta, 1, state, vsn)


def reply(
    nodes: tuple[PushNodeState, ...],
    event_ltime: int = 42,
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
) -> bytes:
    """A seed's reply to our push/pull, as a Go agent frames it."""
    state = PushPullState(ltime=9, event_ltime=event_ltime, query_ltime=4)
    message = PushPull(join=False, nodes=nodes, user_state=state.encode())
    return encode_stream(message, keyring=keyring, label=label, dialer=False)


def pool_of(count: int, *, pmax: int = 5) -> PoolView:
    members = tuple(
        PoolMember(f"n{i}", ("127.0.0.1", 7000 + i), NodeState.ALIVE, pmax)
        for i in range(count)
    )
    return PoolView(members, event_ltime=11)


# ----------------------------------------------------------------------------
# Addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 8301)),
        ("10.0.0.1:7946", ("10.0.0.1", 7946)),
        ("consul.local", ("consul.local", 8301)),
        ("[::1]:7946", ("::1", 7946)),
        ("[::1]", ("::1", 8301)),
        ("::1", ("::1", 8301)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", ":7946", "host:port", "host:70000", "[::1"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        parse_address(text)


# ----------------------------------------------------------------------------
# The push/pull request and its reply


@pytest.mark.parametrize("keyed", [False, True])
def test_pull_request_adds_nothing_to_the_pool(keyed: bool) -> None:
    keyring = KEY if keyed else None
    data = pull_request(keyring, b"lbl")
    frame = StreamDecoder(keyring=keyring, label=b"lbl").feed(data)
    assert frame is not None and frame.encrypted is keyed
    request = frame.message
    assert isinstance(request, PushPull)
    assert request.join is False
    assert request.nodes == ()
    # Every clock 0 and nothing else: the seed has nothing to witness or merge.
    assert decode_serf_message(request.user_state) == PushPullState()


def test_read_pool_from_a_canned_reply() -> None:
    nodes = (
        node("a", 7001),
        node("b", 7002, state=NodeState.SUSPECT, vsn=bytes([1, 4, 2, 2, 5, 4])),
        node("c", 7003, state=NodeState.DEAD, meta=None),
    )
    frame = reply_decoder().feed(reply(nodes, event_ltime=42))
    assert frame is not None
    pool = read_pool(frame)
    assert (pool.event_ltime, pool.ltime, pool.query_ltime) == (42, 9, 4)
    assert [m.name for m in pool.members] == ["a", "b", "c"]
    first, second, third = pool.members
    assert first.address == ("127.0.0.1", 7001)
    assert first.tags == {"role": "web"}
    assert (first.protocol_max, first.wants_crc) == (5, True)
    assert (second.protocol_max, second.wants_crc) == (4, False)
    assert third.tags == {"role": ""}
    assert [m.name for m in pool.alive] == ["a"]


def test_read_pool_decrypts_with_key_and_label() -> None:
    data = reply((node("a", 7001),), keyring=KEY, label=b"blue")
    frame = reply_decoder(KEY, b"blue").feed(data)
    assert frame is not None and frame.encrypted
    assert [m.name for m in read_pool(frame).members] == ["a"]


def test_read_pool_addresses() -> None:
    mapped = bytes(10) + b"\xff\xff" + bytes([10, 1, 2, 3])
    v6 = socket.inet_pton(socket.AF_INET6, "fd00::17")
    nodes = (
        node("mapped", 1, addr=mapped),
        node("v6", 2, addr=v6),
        node("odd", 3, addr=b"\x01\x02"),
    )
    frame = reply_decoder().feed(reply(nodes))
    assert frame is not None
    members = {m.name: m.address for m in read_pool(frame).members}
    assert members["mapped"] == ("10.1.2.3", 1)
    host = members["v6"][0]
    assert socket.inet_pton(socket.AF_INET6, host) == v6
    assert "odd" not in members  # no address to send to; the rest still count


def test_read_pool_keeps_a_member_with_broken_tags() -> None:
    frame = reply_decoder().feed(reply((node("a", 1, meta=b"\xff\xc1"),)))
    assert frame is not None
    assert read_pool(frame).members[0].tags == {}


def test_read_pool_error_reply() -> None:
    data = encode_stream(ErrResp("No installed keys\ncould decrypt"), dialer=False)
    frame = reply_decoder().feed(data)
    assert frame is not None
    with pytest.raises(AgentErrorReply) as caught:
        read_pool(frame)
    assert caught.value.text == "No installed keys could decrypt"


@pytest.mark.parametrize(
    ("user_state", "complaint"),
    [(b"", "no Serf state"), (UserEvent(1, "x").encode(), "not Serf's push/pull")],
)
def test_read_pool_refuses_a_reply_without_serf_state(
    user_state: bytes, complaint: str
) -> None:
    data = encode_stream(PushPull(user_state=user_state), dialer=False)
    frame = reply_decoder().feed(data)
    assert frame is not None
    with pytest.raises(RemoteProtocolError, match=complaint):
        read_pool(frame)


@pytest.mark.parametrize(("clock", "ltime"), [(0, 1), (1, 1), (42, 42)])
def test_choose_ltime_is_the_seeds_event_clock(clock: int, ltime: int) -> None:
    assert choose_ltime(PoolView((), event_ltime=clock)) == ltime


# ----------------------------------------------------------------------------
# The event


def test_build_serf_event() -> None:
    spec = EventSpec("deploy", b"\x00\xffv1", consul=False, coalesce=True)
    built = build_event(spec, 42)
    assert built.event_id is None
    assert decode_serf_message(built.encoded) == UserEvent(
        42, "deploy", b"\x00\xffv1", True
    )


def test_build_consul_event() -> None:
    spec = EventSpec("deploy", b"v1", node_filter="^web", service_filter="api")
    built = build_event(spec, 42, EVENT_ID)
    message = decode_serf_message(built.encoded)
    assert isinstance(message, UserEvent)
    assert (message.name, message.ltime, message.coalesce) == (
        "consul:event:deploy",
        42,
        False,
    )
    assert ConsulEvent.from_serf(message) == ConsulEvent(
        EVENT_ID, "deploy", b"v1", "^web", "api"
    )
    assert built.event_id == EVENT_ID


def test_consul_events_get_fresh_ids() -> None:
    spec = EventSpec("deploy")
    assert build_event(spec, 1).event_id != build_event(spec, 1).event_id


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (EventSpec(""), "needs a name"),
        (EventSpec("x", consul=False), None),
        (EventSpec("x", coalesce=True), "coalescing"),
        (EventSpec("x", consul=False, node_filter="a"), "filters belong"),
        (EventSpec("x", tag_filter="a"), "needs a service filter"),
        (EventSpec("_rexec"), "allow_reserved"),
        (EventSpec("_private"), "allow_reserved"),
        (EventSpec("consul:new-leader", consul=False), "allow_reserved"),
        (EventSpec("consul:event:x", consul=False), "allow_reserved"),
        (EventSpec("_rexec", allow_reserved=True), None),
        (EventSpec("consul:new-leader", consul=False, allow_reserved=True), None),
    ],
)
def test_check_event(spec: EventSpec, complaint: str | None) -> None:
    if complaint is None:
        check_event(spec)
        return
    with pytest.raises(LocalProtocolError, match=complaint):
        check_event(spec)


def test_check_event_names_the_bad_regex_construct() -> None:
    with pytest.raises(BadRegexpError, match=r"service filter: look-ahead \(\?="):
        check_event(EventSpec("x", service_filter="web(?=-1)"))


@pytest.mark.parametrize("consul", [True, False])
@pytest.mark.parametrize("ltime", [1, 300, 2**40])
def test_size_check_stops_exactly_at_the_budget(consul: bool, ltime: int) -> None:
    name = "deploy"
    budget = (
        consul_event_budget(name, ltime=ltime)
        if consul
        else user_event_budget(name, ltime)
    )
    fits = EventSpec(name, bytes(budget), consul=consul)
    assert len(build_event(fits, ltime).encoded) <= 512
    too_big = EventSpec(name, bytes(budget + 1), consul=consul)
    with pytest.raises(PayloadTooLargeError) as caught:
        build_event(too_big, ltime)
    error = caught.value
    assert isinstance(error, EventTooLargeError)
    assert (error.budget, error.payload_size, error.limit) == (budget, budget + 1, 512)
    assert str(error) == (
        "encoded user event exceeds configured limit of 512 bytes after encoding: "
        f"the payload is {budget + 1} bytes, at most {budget} fit"
    )


def test_size_check_before_encoding_keeps_serfs_words() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        check_event(EventSpec("x", bytes(600), consul=False))
    assert str(caught.value).startswith(
        "user event exceeds configured limit of 512 bytes before encoding: "
        "the payload is 600 bytes, at most "
    )


def test_size_check_when_no_payload_fits() -> None:
    with pytest.raises(PayloadTooLargeError, match="no room for any payload") as e:
        check_event(EventSpec("n" * 300))
    assert e.value.budget == -1


def test_payload_too_large_error_pickles() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        check_event(EventSpec("x", bytes(1000)))
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert (copy.budget, copy.payload_size) == (caught.value.budget, 1000)


def test_fits_at_time_one_but_not_at_the_pools_time() -> None:
    budget = consul_event_budget("deploy", ltime=1)
    spec = EventSpec("deploy", bytes(budget))
    check_event(spec)  # passes before asking the pool ...
    pool = PoolView(pool_of(3).members, event_ltime=2**40)
    with pytest.raises(PayloadTooLargeError) as caught:  # ... and not at its time
        plan_fire(spec, pool, random.Random(1))
    assert caught.value.budget == consul_event_budget("deploy", ltime=2**40)


# ----------------------------------------------------------------------------
# Delivery


def test_small_pool_every_alive_member_once_seed_first() -> None:
    members = [
        *pool_of(10).members,
        PoolMember("gone", ("127.0.0.1", 1), NodeState.DEAD),
        PoolMember("left", ("127.0.0.1", 2), NodeState.LEFT),
    ]
    pool = PoolView(tuple(members), event_ltime=5)
    seed = ("127.0.0.1", 7006)
    delivery = plan_delivery(pool, b"\x03x", random.Random(3), seed=seed)
    assert delivery.tcp[0].address == seed
    assert len(delivery.tcp) == TCP_TARGETS
    names = [m.name for m in delivery.tcp + delivery.udp]
    assert sorted(names) == sorted(f"n{i}" for i in range(10))


def test_recipients_depend_on_the_random_source() -> None:
    pool = pool_of(30)
    picks = {
        tuple(m.name for m in plan_delivery(pool, b"\x03", random.Random(s)).tcp)
        for s in range(10)
    }
    assert len(picks) > 1


@pytest.mark.parametrize(("alive", "direct"), [(100, SMALL_POOL), (1000, 152)])
def test_large_pool_gets_a_random_subset(alive: int, direct: int) -> None:
    delivery = plan_delivery(pool_of(alive), b"\x03x", random.Random(4))
    names = [m.name for m in delivery.tcp + delivery.udp]
    assert len(names) == len(set(names)) == direct
    assert direct == max(SMALL_POOL, direct_fanout(alive))


def test_everyone_overrides_the_subset() -> None:
    delivery = plan_delivery(pool_of(200), b"\x03", random.Random(4), everyone=True)
    assert len(delivery.tcp) + len(delivery.udp) == 200


@pytest.mark.parametrize("keyed", [False, True])
def test_delivery_bytes_carry_the_event(keyed: bool) -> None:
    keyring = KEY if keyed else None
    encoded = UserEvent(5, "deploy", b"payload").encode()
    delivery = plan_delivery(
        pool_of(2), encoded, random.Random(0), keyring=keyring, label=b"blue"
    )
    frame = StreamDecoder(keyring=keyring, label=b"blue").feed(delivery.stream)
    assert frame is not None and frame.message == UserMsg(encoded)
    for crc in (False, True):
        member = pool_of(1, pmax=5 if crc else 4).members[0]
        packet = decode_packet(
            delivery.datagram_for(member), keyring=keyring, label=b"blue"
        )
        assert (packet.crc is not None, packet.encrypted) == (crc, keyed)
        assert iter_messages(packet.frame) == [UserMsg(encoded)]


def test_plan_fire_uses_the_pools_clock() -> None:
    plan = plan_fire(EventSpec("x", b"p", consul=False), pool_of(3), random.Random(0))
    assert plan.event.message.ltime == 11
    assert plan.warnings == ()


def test_plan_fire_warns_above_the_gossip_budget() -> None:
    spec = EventSpec("big", bytes(1400), consul=False, size_limit=2048)
    plan = plan_fire(spec, pool_of(200), random.Random(0), keyring=KEY)
    assert any("TCP push/pull anti-entropy" in w for w in plan.warnings)
    # Members will not pass it on, so every alive member is sent it directly.
    assert len(plan.delivery.tcp) + len(plan.delivery.udp) == 200


def test_plan_fire_without_alive_members_warns() -> None:
    dead = PoolMember("d", ("127.0.0.1", 1), NodeState.DEAD)
    plan = plan_fire(EventSpec("x"), PoolView((dead,), 3), random.Random(0))
    assert plan.delivery.tcp == plan.delivery.udp == ()
    assert plan.warnings == ("the seed reported no alive member; nothing to send to",)


# ----------------------------------------------------------------------------
# How many direct recipients


def _simulated_missed(members: int, direct: int, rounds: int, seed: int) -> float:
    """Push gossip as the model assumes: each holder sends to 3 random members."""
    rng = random.Random(seed)
    has = set(rng.sample(range(members), direct))
    for _ in range(rounds):
        has |= {rng.randrange(members) for _ in range(3 * len(has))}
    return 1 - len(has) / members


def test_direct_fanout_meets_its_target_in_simulation() -> None:
    members = 3000
    direct = direct_fanout(members)
    missed = [_simulated_missed(members, direct, 3, seed) for seed in range(5)]
    assert max(missed) < 0.02
    # And markedly fewer direct recipients would not do.
    fewer = [_simulated_missed(members, direct // 3, 3, s) for s in range(5)]
    assert min(fewer) > 0.02


def test_direct_fanout_is_a_fixed_share_of_the_pool() -> None:
    shares = [direct_fanout(n) / n for n in (500, 5000, 50000)]
    assert max(shares) - min(shares) < 0.01
    assert 0.05 < shares[0] < 0.3


def test_direct_fanout_edges() -> None:
    assert direct_fanout(0) == 0
    assert direct_fanout(1) == 1
    assert direct_fanout(1000, rounds=5) < direct_fanout(1000, rounds=3)

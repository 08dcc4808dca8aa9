"""The blocking fire path against in-process fake agents on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import socket
import time
from pathlib import Path

import pytest
import trio

import serfcast
from fake_agents import Behaviour, FakeAgent, Received, fake_pool
from serfcast.consul import ConsulEvent
from serfcast.errors import LocalProtocolError
from serfcast.oneshot import (
    FireResult,
    NoSeedError,
    SeedFailure,
    WrongKeyError,
    fire_event_sync,
    make_keyring,
)
from serfcast.serf.messages import UserEvent
from serfcast.wire.keyring import Keyring, generate_key
from serfcast.wire.messages import NodeState

#: Delivery to a fake agent is a loopback send; allow its thread to record it.
RECORD_TIMEOUT = 5.0


def closed_port() -> int:
    """A 127.0.0.1 port with no listener (bound and released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_received(agents: list[FakeAgent]) -> None:
    deadline = time.monotonic() + RECORD_TIMEOUT
    while not all(agent.received for agent in agents):
        assert time.monotonic() < deadline, "an agent never received the event"
        time.sleep(0.01)


def only_event(agent: FakeAgent) -> tuple[Received, UserEvent]:
    assert len(agent.received) == 1, agent.received
    got = agent.received[0]
    assert isinstance(got.message, UserEvent)
    return got, got.message


def test_serf_event_reaches_every_member_once() -> None:
    with fake_pool(5, event_ltime=42) as agents:
        result = fire_event_sync(
            "deploy", b"v1\x00", join=agents[2].address, consul=False
        )
        wait_received(agents)
        time.sleep(0.1)  # room for a duplicate to show up
        by_tcp = set()
        for agent in agents:
            got, event = only_event(agent)
            assert event == UserEvent(42, "deploy", b"v1\x00", False)
            assert got.transport == "tcp" or got.crc  # protocol 5: CRC datagrams
            if got.transport == "tcp":
                by_tcp.add(agent.name)
    assert by_tcp == set(result.tcp) and len(by_tcp) == 3
    assert "fake2" in by_tcp  # the seed is always among them
    assert sorted(result.tcp + result.udp) == [f"fake{i}" for i in range(5)]
    assert (result.name, result.serf_name, result.ltime) == ("deploy", "deploy", 42)
    assert (result.event_id, result.seed, result.members) == (
        None,
        agents[2].address,
        5,
    )


def test_consul_event_arrives_prefixed_and_decodes() -> None:
    with fake_pool(2) as agents:
        result = fire_event_sync(
            "deploy", "héllo", join=[agents[0].address], node="^web"
        )
        wait_received(agents)
        _, event = only_event(agents[1])
    assert event.name == "consul:event:deploy"
    consul = ConsulEvent.from_serf(event)
    assert consul == ConsulEvent(
        str(result.event_id), "deploy", "héllo".encode(), node_filter="^web"
    )


def test_push_pull_adds_nothing_and_says_not_join() -> None:
    with fake_pool(1) as agents:
        fire_event_sync("x", join=agents[0].address)
        (request,) = agents[0].pushpulls
    assert (request.join, request.nodes) == (False, ())


def test_only_alive_members_are_sent_to() -> None:
    states = [NodeState.ALIVE, NodeState.DEAD, NodeState.LEFT, NodeState.ALIVE]
    with fake_pool(4, states=states) as agents:
        result = fire_event_sync("x", join=agents[0].address, consul=False)
        wait_received([agents[0], agents[3]])
        time.sleep(0.1)
        assert agents[1].received == agents[2].received == []
    assert sorted(result.tcp + result.udp) == ["fake0", "fake3"]


@pytest.mark.parametrize("label", ["", "blue"])
def test_encrypted_pool(label: str) -> None:
    key = generate_key()
    keyring = Keyring.from_base64(key)
    with fake_pool(3, keyring=keyring, label=label.encode()) as agents:
        result = fire_event_sync(
            "x", b"p", join=agents[0].address, encrypt=key, label=label, consul=False
        )
        wait_received(agents)
    assert len(result.tcp + result.udp) == 3


def test_first_seed_that_answers_wins() -> None:
    dead = f"127.0.0.1:{closed_port()}"
    with fake_pool(2) as agents:
        result = fire_event_sync("x", join=[dead, agents[1].address])
    assert result.seed == agents[1].address


def test_member_whose_stream_fails_gets_a_datagram() -> None:
    with fake_pool(2, behaviours=["answer", "no-tcp"]) as agents:
        result = fire_event_sync("x", join=agents[0].address, consul=False)
        wait_received(agents)
        assert agents[1].received[0].transport == "udp"
    assert result.tcp == ("fake0",) and result.udp == ("fake1",)
    assert any("TCP to fake1 failed" in w for w in result.warnings)


# ----------------------------------------------------------------------------
# Failures: nothing is sent


def test_unreachable_seeds_name_each_reason() -> None:
    ports = [closed_port(), closed_port()]
    with pytest.raises(NoSeedError) as caught:
        fire_event_sync("x", join=[f"127.0.0.1:{p}" for p in ports])
    error = caught.value
    assert not isinstance(error, WrongKeyError)
    assert [f.seed for f in error.failures] == [f"127.0.0.1:{p}" for p in ports]
    assert all(f.reason == "connection refused" for f in error.failures)
    assert str(error).startswith(
        f"no seed answered, so nothing was sent: 127.0.0.1:{ports[0]}: "
        f"connection refused; 127.0.0.1:{ports[1]}: connection refused "
    )
    assert "serf agents on 7946" in str(error)


def test_unresolvable_seed() -> None:
    with pytest.raises(NoSeedError, match=r"cannot resolve 'no-such-host\.invalid'"):
        fire_event_sync("x", join="no-such-host.invalid:1")


def test_silent_seed_times_out() -> None:
    with (
        fake_pool(1, behaviours=["silent"]) as agents,
        pytest.raises(NoSeedError, match=r"connected, but no reply within 0\.3 s"),
    ):
        fire_event_sync("x", join=agents[0].address, timeout=0.3)


def test_wrong_key() -> None:
    with fake_pool(2, keyring=Keyring.from_base64(generate_key())) as agents:
        with pytest.raises(WrongKeyError) as caught:
            fire_event_sync("x", join=agents[0].address, encrypt=generate_key())
        assert [a.received for a in agents] == [[], []]
    assert str(caught.value).startswith(
        "no seed could decrypt our request (check the gossip key and label), so "
        f"nothing was sent: {agents[0].address}: it could not decrypt our request"
    )


def test_encrypted_pool_without_a_key() -> None:
    with (
        fake_pool(1, keyring=Keyring.from_base64(generate_key())) as agents,
        pytest.raises(WrongKeyError, match="the pool is encrypted and no gossip"),
    ):
        fire_event_sync("x", join=agents[0].address)


def test_plain_pool_with_a_key() -> None:
    with (
        fake_pool(1) as agents,
        pytest.raises(WrongKeyError, match="the agent does not use encryption"),
    ):
        fire_event_sync("x", join=agents[0].address, encrypt=generate_key())


@pytest.mark.parametrize("behaviour", ["close", "reset"])
def test_seed_closing_without_a_reply_blames_key_or_label(behaviour: Behaviour) -> None:
    with (
        fake_pool(1, behaviours=[behaviour]) as agents,
        pytest.raises(WrongKeyError, match=r"closed the connection without a"),
    ):
        fire_event_sync("x", join=agents[0].address)


def test_a_key_problem_anywhere_makes_it_a_key_error() -> None:
    with fake_pool(1, keyring=Keyring.from_base64(generate_key())) as agents:
        seeds = [f"127.0.0.1:{closed_port()}", agents[0].address]
        with pytest.raises(WrongKeyError) as caught:
            fire_event_sync("x", join=seeds, encrypt=generate_key())
    reasons = [f.key_problem for f in caught.value.failures]
    assert reasons == [False, True]


def test_checks_come_before_any_connection() -> None:
    with fake_pool(1) as agents, pytest.raises(LocalProtocolError, match="at most"):
        fire_event_sync("x", bytes(600), join=agents[0].address)
        with pytest.raises(LocalProtocolError, match="look-ahead"):
            fire_event_sync("x", join=agents[0].address, service="(?=a)")
        assert agents[0].connections == 0


def test_errors_pickle() -> None:
    error = WrongKeyError([SeedFailure("a:1", "why", True)])
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


# ----------------------------------------------------------------------------
# Keys and the API surface


def test_make_keyring(tmp_path: Path) -> None:
    first, second = generate_key(), generate_key()
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps([first]))
    keyring = make_keyring([second, base64.b64decode(first)], str(path))
    assert keyring is not None
    assert keyring.keys == (base64.b64decode(first), base64.b64decode(second))
    assert make_keyring(None) is None
    assert make_keyring(second) is not None


def test_serfcast_exports_the_api() -> None:
    assert serfcast.fire_event_sync is fire_event_sync
    assert serfcast.FireResult is FireResult
    with pytest.raises(AttributeError):
        _ = serfcast.no_such_thing


def test_result_as_json() -> None:
    result = FireResult("id", "n", "consul:event:n", 3, "a:1", 2, ("a",), ("b",))
    assert json.loads(json.dumps(result.to_dict())) == {
        "id": "id",
        "name": "n",
        "serf_name": "consul:event:n",
        "ltime": 3,
        "seed": "a:1",
        "members": 2,
        "tcp": ["a"],
        "udp": ["b"],
        "warnings": [],
        "member": None,
    }


async def test_fire_event_under_trio() -> None:
    with fake_pool(2) as agents:
        result = await serfcast.fire_event("x", join=agents[0].address, consul=False)
        await trio.to_thread.run_sync(wait_received, agents)
    assert sorted(result.tcp + result.udp) == ["fake0", "fake1"]


def test_fire_event_under_asyncio() -> None:
    with fake_pool(2) as agents:
        result = asyncio.run(serfcast.fire_event("x", join=agents[1].address))
        wait_received(agents)
    assert result.seed == agents[1].address

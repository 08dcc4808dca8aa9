"""Live proof of the codec: real serf agents accept packets built by serfcast.

One serf 0.9.4 and one serf 0.10.1 agent, plain and with ``-encrypt``, each get a
Serf user event from a socket that never joined: over UDP with a CRC, over UDP with
a CRC and LZW compression, and over a TCP stream (compressed, encrypted where the
agent is). Each agent's event handler must see exactly that name and payload, once,
and the agent must log no error or warning about our bytes.

The Serf message is built by hand here (``[3]`` then the event map); the Serf layer
proper lives elsewhere.
"""

from __future__ import annotations

import socket
import time

import pytest

from serf_agents import SERF_VERSIONS, SerfAgent, SerfPoolFactory, serf_keygen
from serfcast.wire.frames import Compressed, UserMsg
from serfcast.wire.gomsgpack import pack
from serfcast.wire.keyring import Keyring
from serfcast.wire.packet import build_packet, decode_packet
from serfcast.wire.stream import encode_stream

pytestmark = pytest.mark.interop

DELIVERY_TIMEOUT = 10.0
#: After the first delivery, how long to watch for an unwanted second one.
DUPLICATE_WINDOW = 1.0


def serf_user_event(name: str, payload: bytes, ltime: int) -> bytes:
    """A Serf user event message as a serf agent expects it in a user message."""
    event = {"CC": False, "LTime": ltime, "Name": name, "Payload": payload}
    return b"\x03" + pack(event)


def _send_udp(agent: SerfAgent, packet: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, ("127.0.0.1", agent.bind_port))


def _send_tcp(agent: SerfAgent, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", agent.bind_port), timeout=5) as sock:
        sock.sendall(data)


def _assert_delivered_once(agent: SerfAgent, sent: dict[str, bytes]) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        if all(agent.user_events(name) for name in sent):
            break
        time.sleep(0.05)
    time.sleep(DUPLICATE_WINDOW)
    for name, payload in sent.items():
        seen = agent.user_events(name)
        assert len(seen) == 1, f"{name}: ran {len(seen)} times\n{agent.log_tail()}"
        assert seen[0].payload_as_sent == payload


def _complaints(agent: SerfAgent) -> list[str]:
    return [
        line
        for line in agent.log_text().splitlines()
        if "[ERR]" in line or "[WARN]" in line
    ]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("version", SERF_VERSIONS)
def test_agent_runs_handler_for_codec_built_event(
    serf_pool_factory: SerfPoolFactory, version: str, encrypted: bool
) -> None:
    key = serf_keygen() if encrypted else None
    keyring = Keyring.from_base64(key) if key else None
    agent = serf_pool_factory([version], encrypt=key).agents[0]

    small = ("udp-crc", b"hello \x00\xff from serfcast")
    compressible = ("udp-crc-lzw", b"serfcast " * 60)
    streamed = ("tcp-stream", b"over a stream \x01\x02\x03")

    body = serf_user_event(small[0], small[1], ltime=1)
    _send_udp(agent, build_packet([UserMsg(body)], crc=True, keyring=keyring))

    body = serf_user_event(compressible[0], compressible[1], ltime=2)
    packet = build_packet([UserMsg(body)], crc=True, keyring=keyring)
    assert isinstance(decode_packet(packet, keyring=keyring).frame, Compressed)
    _send_udp(agent, packet)

    body = serf_user_event(streamed[0], streamed[1], ltime=3)
    _send_tcp(agent, encode_stream(UserMsg(body), keyring=keyring))

    _assert_delivered_once(agent, dict([small, compressible, streamed]))
    assert _complaints(agent) == []

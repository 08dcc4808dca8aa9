"""In-process stand-ins for Serf agents, for testing the one-shot fire path.

A :class:`FakeAgent` owns a TCP listener and a UDP socket on the same
127.0.0.1 port, served by two threads. It answers a push/pull the way a Go
agent does: with a canned member list and Serf state, sealed with its own key;
a request it cannot read gets memberlist's error reply, also sealed with its own
key. It records every Serf message that reaches it over a TCP stream or a
datagram, so a test can check who got the event and how. ``behaviour`` makes
it close the connection without a word (after reading the request, or at once,
which resets it), never answer, or listen on UDP only.

Every socket has a timeout and every thread is joined on :meth:`FakeAgent.close`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from serfcast.errors import RemoteProtocolError
from serfcast.serf.messages import PushPullState, SerfMessage, decode_serf_message
from serfcast.wire.frames import UserMsg, iter_messages
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import PROTOCOL_VSN, ErrResp, NodeState, PushNodeState
from serfcast.wire.packet import decode_packet
from serfcast.wire.stream import PushPull, StreamDecoder, encode_stream

HOST = "127.0.0.1"
SOCKET_TIMEOUT = 5.0
Behaviour = Literal["answer", "close", "reset", "silent", "no-tcp"]


@dataclass(frozen=True)
class Received:
    """One Serf message that reached a fake agent, and how."""

    transport: Literal["tcp", "udp"]
    message: SerfMessage
    crc: bool = False


class FakeAgent:
    """A fake Serf agent on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        keyring: Keyring | None = None,
        label: bytes = b"",
        event_ltime: int = 7,
        behaviour: Behaviour = "answer",
        state: int = NodeState.ALIVE,
    ) -> None:
        self.name = name
        self.keyring = keyring
        self.label = label
        self.event_ltime = event_ltime
        self.behaviour = behaviour
        self.state = state
        #: What push/pull replies list as members (set by FakePool).
        self.members: list[FakeAgent] = [self]
        self.received: list[Received] = []
        self.pushpulls: list[PushPull] = []
        self.connections = 0
        self._stop = threading.Event()
        self.udp, self.tcp = _bind_pair()
        self.port: int = self.tcp.getsockname()[1]
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True)]
        if behaviour == "no-tcp":
            self.tcp.close()  # listed with this port, but nothing listens there
        else:
            self._threads.append(threading.Thread(target=self._serve_tcp, daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"{HOST}:{self.port}"

    def node_state(self) -> PushNodeState:
        """How this agent appears in a push/pull."""
        return PushNodeState(
            name=self.name,
            addr=socket.inet_aton(HOST),
            port=self.port,
            meta=b"\xff\x81\xa4role\xa4fake",
            state=self.state,
            vsn=PROTOCOL_VSN,
        )

    def close(self) -> None:
        """Stop serving and join both threads."""
        self._stop.set()
        self.tcp.close()
        self.udp.close()
        for thread in self._threads:
            thread.join(SOCKET_TIMEOUT)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue  # a short timeout, so that close() is noticed
            except OSError:
                return
            with conn:
                self.connections += 1
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(SOCKET_TIMEOUT)
        if self.behaviour == "reset":
            return  # closing with the request unread sends a reset
        if self.behaviour == "close":
            conn.recv(65536)  # read the request, as Go does before refusing it
            return
        if self.behaviour == "silent":
            self._stop.wait(SOCKET_TIMEOUT)
            return
        decoder = StreamDecoder(keyring=self.keyring, label=self.label)
        try:
            frame = None
            while frame is None:
                chunk = conn.recv(65536)
                frame = decoder.feed_eof() if not chunk else decoder.feed(chunk)
        except RemoteProtocolError as exc:
            conn.sendall(self._reply(ErrResp(str(exc))))
            return
        except OSError:
            return
        self._dispatch(conn, frame.message)

    def _dispatch(self, conn: socket.socket, message: object) -> None:
        if isinstance(message, PushPull):
            self.pushpulls.append(message)
            state = PushPullState(ltime=3, event_ltime=self.event_ltime)
            nodes = tuple(member.node_state() for member in self.members)
            reply = PushPull(join=False, nodes=nodes, user_state=state.encode())
            conn.sendall(self._reply(reply))
        elif isinstance(message, UserMsg):
            serf = decode_serf_message(message.payload)
            self.received.append(Received("tcp", serf))

    def _reply(self, message: PushPull | ErrResp) -> bytes:
        # Like Go: replies are sealed with the agent's own key, and carry no label.
        return encode_stream(
            message, keyring=self.keyring, label=self.label, dialer=False
        )

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                packet = decode_packet(data, keyring=self.keyring, label=self.label)
            except RemoteProtocolError:
                continue
            for leaf in iter_messages(packet.frame):
                if isinstance(leaf, UserMsg):
                    serf = decode_serf_message(leaf.payload)
                    self.received.append(Received("udp", serf, packet.crc is not None))


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        return udp, tcp
    raise OSError("no port free for both UDP and TCP")


@contextmanager
def fake_pool(
    count: int,
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    event_ltime: int = 7,
    behaviours: Sequence[Behaviour] = (),
    states: Sequence[int] = (),
) -> Iterator[list[FakeAgent]]:
    """``count`` fake agents that list each other as members; closed afterwards."""
    agents: list[FakeAgent] = []
    try:
        for index in range(count):
            agents.append(
                FakeAgent(
                    f"fake{index}",
                    keyring=keyring,
                    label=label,
                    event_ltime=event_ltime,
                    behaviour=behaviours[index]
                    if index < len(behaviours)
                    else "answer",
                    state=states[index] if index < len(states) else NodeState.ALIVE,
                )
            )
        for agent in agents:
            agent.members = agents
        yield agents
    finally:
        for agent in agents:
            agent.close()

"""Learning the pool from a seed: the push/pull request, the reply, the clock.

The request is a push/pull that asks for the seed's state and adds nothing to
it (see the package's theory of operation). The reply gives every member with
its address, state, protocol versions and tags, and the seed's Serf clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from serfcast.errors import LocalProtocolError, RemoteProtocolError
from serfcast.serf.messages import PushPullState, decode_serf_message
from serfcast.serf.tags import decode_tags
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import ErrResp, NodeState, PushNodeState
from serfcast.wire.stream import PushPull, StreamDecoder, StreamFrame, encode_stream

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "AgentErrorReply",
    "PoolMember",
    "PoolView",
    "choose_ltime",
    "parse_address",
    "pull_request",
    "read_pool",
    "reply_decoder",
    "serf_reply",
]

#: Consul's LAN gossip port; serf agents listen on 7946 unless told otherwise.
DEFAULT_PORT: Final = 8301

Address = tuple[str, int]


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> Address:
    """Split ``host[:port]`` (``[v6]:port`` for IPv6) into a host and a port."""
    host, port_text = text.strip(), ""
    if host.startswith("["):
        inside, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise LocalProtocolError(f"address {text!r}: write IPv6 as [addr]:port")
        host, port_text = inside, rest[1:]
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    if not host:
        raise LocalProtocolError(f"address {text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 0xFFFF:
        raise LocalProtocolError(f"address {text!r}: {port_text!r} is not a port")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class PoolMember:
    """A member as the seed's push/pull describes it."""

    name: str
    address: Address
    state: int
    protocol_max: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """Whether the seed believes the member alive."""
        return self.state == NodeState.ALIVE

    @property
    def wants_crc(self) -> bool:
        """Go adds a CRC to every datagram for a node speaking protocol 5."""
        return self.protocol_max >= 5


@dataclass(frozen=True, slots=True)
class PoolView:
    """What a seed told us: its members and its Serf clocks."""

    members: tuple[PoolMember, ...]
    event_ltime: int
    ltime: int = 0
    query_ltime: int = 0

    @property
    def alive(self) -> tuple[PoolMember, ...]:
        """The members the seed believes alive."""
        return tuple(member for member in self.members if member.alive)


class AgentErrorReply(RemoteProtocolError):
    """The seed answered with memberlist's error message instead of its state."""

    def __init__(self, text: str) -> None:
        super().__init__(f"the agent answered with an error: {text}")
        self.text = text


def pull_request(keyring: Keyring | None = None, label: bytes = b"") -> bytes:
    """The bytes of a push/pull that asks for the pool's state and adds nothing."""
    state = PushPullState().encode()  # every clock 0: the seed witnesses nothing
    request = PushPull(join=False, nodes=(), user_state=state)
    # Go would compress, but LZW only grows a request this small.
    return encode_stream(request, compress=False, keyring=keyring, label=label)


def reply_decoder(keyring: Keyring | None = None, label: bytes = b"") -> StreamDecoder:
    """A decoder for the seed's reply (replies never carry a label header)."""
    return StreamDecoder(keyring=keyring, label=label, expect_label_header=False)


def serf_reply(frame: StreamFrame) -> tuple[PushPull, PushPullState]:
    """A seed's push/pull reply and the Serf state in it; anything else is refused.

    An agent's error response raises :class:`AgentErrorReply`; a reply that is
    not a push/pull, or carries no Serf state, a :class:`RemoteProtocolError`.
    """
    message = frame.message
    if isinstance(message, ErrResp):
        raise AgentErrorReply(" ".join(message.error.split()))
    if not isinstance(message, PushPull):
        raise RemoteProtocolError(
            f"expected a push/pull reply, got {type(message).__name__}"
        )
    if not message.user_state:
        raise RemoteProtocolError(
            "the seed sent no Serf state, so it is not a Serf or Consul agent"
        )
    state = decode_serf_message(message.user_state)
    if not isinstance(state, PushPullState):
        raise RemoteProtocolError("the seed's user state is not Serf's push/pull state")
    return message, state


def read_pool(frame: StreamFrame) -> PoolView:
    """The members and clocks in a seed's reply to :func:`pull_request`."""
    message, state = serf_reply(frame)
    members = tuple(filter(None, map(_member, message.nodes)))
    return PoolView(members, state.event_ltime, state.ltime, state.query_ltime)


def _member(node: PushNodeState) -> PoolMember | None:
    host = _host(node.addr)
    if host is None:
        return None  # an address we cannot send to; the others still can be
    try:
        tags = decode_tags(node.meta)
    except RemoteProtocolError:
        tags = {}  # tags are only shown, never needed to deliver
    pmax = node.vsn[1] if len(node.vsn) >= 2 else 0
    return PoolMember(node.name, (host, node.port), node.state, pmax, tags)


_V4_MAPPED: Final = bytes(10) + b"\xff\xff"


def _host(addr: bytes) -> str | None:
    # Formatted by hand: the ipaddress module costs a one-shot command 5 ms.
    if len(addr) == 16 and addr.startswith(_V4_MAPPED):
        addr = addr[len(_V4_MAPPED) :]
    if len(addr) == 4:
        return ".".join(map(str, addr))
    if len(addr) == 16:  # the long form is as valid a literal as the short one
        return ":".join(addr[i : i + 2].hex() for i in range(0, 16, 2))
    return None


def choose_ltime(pool: PoolView) -> int:
    """The Lamport time to fire at: the seed's ``EventLTime``.

    That is the time the seed itself would give its next event, and the only
    choice every member is sure to accept. A member that joined without replay
    drops, silently and without passing it on, any event below the event time it
    learned when it joined; the seed's clock has witnessed every event since, so
    it is at or above every such floor. Far below the clock (more than 512
    behind) members drop the event as too old, with a warning. A time far above
    would be accepted but would drag every member's clock up for good and make
    later push/pulls report older buffered events as too old, so the time is
    never invented, only learned. A fresh pool's clock starts at 1.
    """
    return max(pool.event_ltime, 1)

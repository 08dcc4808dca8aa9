"""Fire one event without joining: the blocking-socket driver and the Python API.

:func:`fire_event_sync` runs :mod:`serfcast.fire`'s plan with plain blocking
sockets: a TCP push/pull with the first seed that answers, then the event over
TCP to a few members and over UDP, from one socket, to many more. Everything
that can be checked is checked before the first byte goes out, and the event is
built only once a seed has answered, so a failure leaves nothing half-sent.
:func:`fire_event` is the same for async code (trio or asyncio), run in a
worker thread.

This path deliberately imports no async library, nor even :mod:`logging`: a
one-shot command should start as fast as Python can. Everything that happened
is in the result's warnings or the error's list of seed failures; debug lines
go to the ``serfcast.fire`` logger only when the application has imported
logging itself.
"""

from __future__ import annotations

import functools
import random
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from serfcast.errors import (
    DecryptionError,
    LocalProtocolError,
    RemoteProtocolError,
    SerfcastError,
)
from serfcast.fire import (
    Address,
    AgentErrorReply,
    EventSpec,
    FirePlan,
    PoolView,
    check_event,
    parse_address,
    plan_fire,
    pull_request,
    read_pool,
    reply_decoder,
)
from serfcast.serf.limits import DEFAULT_USER_EVENT_SIZE_LIMIT
from serfcast.wire.keyring import Keyring, load_keyring_file, parse_key
from serfcast.wire.messages import MessageType

__all__ = [
    "DEFAULT_JOIN",
    "FireResult",
    "NoSeedError",
    "SeedFailure",
    "WrongKeyError",
    "fire",
    "fire_event",
    "fire_event_sync",
    "make_keyring",
]

DEFAULT_JOIN: Final = ("127.0.0.1:8301",)
#: Each TCP stream carrying the event gets at most this long.
STREAM_TIMEOUT: Final = 1.0
_CHUNK: Final = 65536
#: Reply bytes kept to explain a failure; an error reply is far shorter.
_HEAD: Final = 4096
_CLOSED_UNREAD: Final = (
    "the agent closed the connection without a reply: it could not read our "
    "request (wrong gossip key or label?)"
)

Key = str | bytes


# ----------------------------------------------------------------------------
# Results and errors


@dataclass(frozen=True, slots=True)
class FireResult:
    """What was fired, at which Lamport time, and who was sent it.

    ``event_id`` is the Consul event's ID (None for a plain Serf event);
    ``serf_name`` is the name on the wire (``consul:event:`` + ``name`` for a
    Consul event). ``tcp`` and ``udp`` name the members that were handed the
    event directly; gossip takes it from them to the rest. ``members`` counts
    the alive members the seed reported. ``member`` is the name we joined
    under when firing as a member (then ``tcp`` and ``udp`` are empty: our
    own gossip carried the event).
    """

    event_id: str | None
    name: str
    serf_name: str
    ltime: int
    seed: str
    members: int
    tcp: tuple[str, ...]
    udp: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the result."""
        return {
            "id": self.event_id,
            "name": self.name,
            "serf_name": self.serf_name,
            "ltime": self.ltime,
            "seed": self.seed,
            "members": self.members,
            "tcp": list(self.tcp),
            "udp": list(self.udp),
            "warnings": list(self.warnings),
            "member": self.member,
        }


@dataclass(frozen=True, slots=True)
class SeedFailure:
    """Why one seed gave us no state; ``key_problem`` blames the gossip key."""

    seed: str
    reason: str
    key_problem: bool = False


class NoSeedError(SerfcastError):
    """No seed answered the push/pull, so nothing was sent."""

    def __init__(self, failures: Sequence[SeedFailure]) -> None:
        self.failures = tuple(failures)
        super().__init__(f"{self._headline()}, so nothing was sent: {self._list()}")

    def _headline(self) -> str:
        return "no seed answered"

    def _list(self) -> str:
        text = "; ".join(f"{f.seed}: {f.reason}" for f in self.failures)
        if any("refused" in f.reason for f in self.failures):
            text += (
                " (Consul agents gossip on port 8301, serf agents on 7946 unless "
                "told otherwise: give the port as host:port)"
            )
        return text

    def __reduce__(self) -> tuple[type[NoSeedError], tuple[tuple[SeedFailure, ...]]]:
        return type(self), (self.failures,)


class WrongKeyError(NoSeedError):
    """Seeds were reached but none could read our request: the gossip key differs."""

    def _headline(self) -> str:
        return "no seed could decrypt our request (check the gossip key and label)"


class _SeedProblem(Exception):
    def __init__(self, reason: str, key_problem: bool = False) -> None:
        super().__init__(reason)
        self.reason = " ".join(reason.split())
        self.key_problem = key_problem


def _debug(message: str, *args: object) -> None:
    # An application that configured logging has imported it; otherwise no one
    # would see the line, and importing logging would cost every run.
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("serfcast.fire").debug(message, *args)


# ----------------------------------------------------------------------------
# Asking a seed


def learn_pool(
    seeds: Sequence[Address],
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    timeout: float = 5.0,
    bind: Address | None = None,
) -> tuple[Address, PoolView]:
    """Ask the seeds in order; the first that answers gives the pool's state."""
    request = pull_request(keyring, label)
    failures = []
    for seed in seeds:
        try:
            return seed, _ask_seed(
                seed, request, keyring=keyring, label=label, timeout=timeout, bind=bind
            )
        except _SeedProblem as problem:
            _debug("seed=%s error=%r", _show(seed), problem.reason)
            failures.append(
                SeedFailure(_show(seed), problem.reason, problem.key_problem)
            )
    if any(failure.key_problem for failure in failures):
        raise WrongKeyError(failures)
    raise NoSeedError(failures)


def _ask_seed(
    seed: Address,
    request: bytes,
    *,
    keyring: Keyring | None,
    label: bytes,
    timeout: float,
    bind: Address | None,
) -> PoolView:
    deadline = time.monotonic() + timeout
    with _connect(seed, timeout, bind) as sock:
        head = bytearray()
        try:
            sock.sendall(request)
            return read_pool(_read_reply(sock, deadline, keyring, label, head))
        except TimeoutError:
            raise _SeedProblem(
                f"connected, but no reply within {timeout:g} s"
            ) from None
        except ConnectionResetError:
            if head:
                raise _SeedProblem("the agent reset the connection mid-reply") from None
            raise _SeedProblem(_CLOSED_UNREAD, key_problem=True) from None
        except OSError as exc:
            raise _SeedProblem(f"the connection failed: {_os_reason(exc)}") from None
        except RemoteProtocolError as exc:
            raise _explain_reply(exc, bytes(head), keyring, label) from None


def _connect(seed: Address, timeout: float, bind: Address | None) -> socket.socket:
    source = None if bind is None else (bind[0], 0)
    try:
        return socket.create_connection(seed, timeout, source_address=source)
    except TimeoutError:
        raise _SeedProblem(
            f"no answer to the connection within {timeout:g} s"
        ) from None
    except socket.gaierror as exc:
        raise _SeedProblem(f"cannot resolve {seed[0]!r}: {exc.strerror}") from None
    except OSError as exc:
        raise _SeedProblem(_os_reason(exc)) from None


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def _read_reply(
    sock: socket.socket,
    deadline: float,
    keyring: Keyring | None,
    label: bytes,
    head: bytearray,
) -> Any:
    decoder = reply_decoder(keyring, label)
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(_CHUNK)
        if not chunk:
            if not head:
                raise _SeedProblem(_CLOSED_UNREAD, key_problem=True)
            return decoder.feed_eof()
        head += chunk[: _HEAD - len(head)]
        frame = decoder.feed(chunk)
        if frame is not None:
            return frame


def _explain_reply(
    exc: RemoteProtocolError, head: bytes, keyring: Keyring | None, label: bytes
) -> _SeedProblem:
    encrypted = bool(head) and head[0] == MessageType.ENCRYPT
    if isinstance(exc, DecryptionError):
        return _SeedProblem(
            "it could not decrypt our request, nor we its reply: the pool uses "
            "another gossip key",
            key_problem=True,
        )
    if encrypted and keyring is None:
        return _SeedProblem(
            "the pool is encrypted and no gossip key was given", key_problem=True
        )
    if keyring is not None and head and not encrypted:
        said = _plain_error(head, label)
        if said is not None:
            return _SeedProblem(
                f"the agent does not use encryption (it said: {said}); "
                "fire without a gossip key",
                key_problem=True,
            )
    if isinstance(exc, AgentErrorReply):
        return _SeedProblem(str(exc), key_problem="crypt" in exc.text.lower())
    return _SeedProblem(f"its reply is not a memberlist push/pull: {exc}")


def _plain_error(head: bytes, label: bytes) -> str | None:
    """The text of a plaintext error reply, if that is what ``head`` holds."""
    try:
        frame = reply_decoder(None, label).feed(head)
        if frame is not None:
            read_pool(frame)
    except AgentErrorReply as exc:
        return exc.text
    except RemoteProtocolError:
        pass
    return None


def _show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ----------------------------------------------------------------------------
# Sending the event


class _Datagrams:
    """One UDP socket per address family, bound to ``bind`` when given."""

    def __init__(self, bind: Address | None) -> None:
        self.bind = bind
        self.sockets: dict[int, socket.socket] = {}

    def send(self, address: Address, data: bytes, warnings: list[str]) -> bool:
        try:
            self._socket(address).sendto(data, address)
        except OSError as exc:
            warnings.append(f"UDP to {_show(address)} failed: {_os_reason(exc)}")
            return False
        return True

    def _socket(self, address: Address) -> socket.socket:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = self.sockets.get(family)
        if sock is None:
            sock = self.sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
            if self.bind is not None:
                sock.bind(self.bind)
        return sock

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def _send_stream(address: Address, data: bytes, bind: Address | None) -> None:
    source = None if bind is None else (bind[0], 0)
    with socket.create_connection(address, STREAM_TIMEOUT, source_address=source) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)


def deliver(
    plan: FirePlan, bind: Address | None = None
) -> tuple[list[str], list[str], list[str]]:
    """Send the planned datagrams, then the streams; names reached by TCP and UDP.

    A member whose stream fails gets a datagram instead. The third list holds
    warnings about what failed.
    """
    delivery, warnings = plan.delivery, list(plan.warnings)
    datagrams = _Datagrams(bind)
    try:
        udp = [
            member.name
            for member in delivery.udp
            if datagrams.send(member.address, delivery.datagram_for(member), warnings)
        ]
        tcp = []
        for member in delivery.tcp:
            try:
                _send_stream(member.address, delivery.stream, bind)
                tcp.append(member.name)
            except OSError as exc:
                warnings.append(
                    f"TCP to {member.name} failed ({_os_reason(exc)}); "
                    "sent it a datagram instead"
                )
                data = delivery.datagram_for(member)
                if datagrams.send(member.address, data, warnings):
                    udp.append(member.name)
    finally:
        datagrams.close()
    return tcp, udp, warnings


def fire(
    spec: EventSpec,
    seeds: Sequence[Address],
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    timeout: float = 5.0,
    bind: Address | None = None,
    rng: random.Random | None = None,
) -> FireResult:
    """Check, learn the pool from a seed, build the event, and send it."""
    if not seeds:
        raise LocalProtocolError("give at least one seed address to ask")
    check_event(spec)
    seed, pool = learn_pool(
        seeds, keyring=keyring, label=label, timeout=timeout, bind=bind
    )
    plan = plan_fire(
        spec, pool, rng or random.Random(), seed=seed, keyring=keyring, label=label
    )
    tcp, udp, warnings = deliver(plan, bind)
    message = plan.event.message
    _debug(
        "fired name=%r ltime=%d tcp=%d udp=%d",
        message.name,
        message.ltime,
        len(tcp),
        len(udp),
    )
    return FireResult(
        plan.event.event_id,
        spec.name,
        message.name,
        message.ltime,
        _show(seed),
        len(pool.alive),
        tuple(tcp),
        tuple(udp),
        tuple(warnings),
    )


# ----------------------------------------------------------------------------
# The public API


def make_keyring(
    encrypt: Key | Iterable[Key] | None = None, keyring_file: str | None = None
) -> Keyring | None:
    """A keyring from a keyring file (primary first) and extra keys, or None.

    A key is base64 text as ``serf keygen`` prints it, or the raw key bytes.
    """
    keyring = load_keyring_file(keyring_file) if keyring_file else Keyring()
    keys: Iterable[Key] = (
        () if encrypt is None else [encrypt] if isinstance(encrypt, Key) else encrypt
    )
    for key in keys:
        keyring.add_key(parse_key(key) if isinstance(key, str) else bytes(key))
    return keyring if keyring else None


def fire_event_sync(
    name: str,
    payload: bytes | str = b"",
    *,
    join: str | Sequence[str] = DEFAULT_JOIN,
    encrypt: Key | Iterable[Key] | None = None,
    keyring_file: str | None = None,
    label: str = "",
    consul: bool = True,
    node: str | None = None,
    service: str | None = None,
    tag: str | None = None,
    coalesce: bool = False,
    allow_reserved: bool = False,
    timeout: float = 5.0,
    bind: str | None = None,
    size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
    member: bool = False,
) -> FireResult:
    """Fire one user event into a Serf or Consul pool without joining it.

    A push/pull with the first seed in ``join`` (``host[:port]``, port 8301 by
    default; serf agents use 7946) that answers learns the pool's event clock
    and members; the event then goes straight to several members over TCP and
    UDP, and gossip does the rest. No member join or leave is left behind.

    By default the event is a Consul event named ``name`` (``node``,
    ``service`` and ``tag`` are its filters, Go regular expressions); with
    ``consul=False`` it is a plain Serf event (``coalesce`` applies only then).
    ``encrypt`` is the pool's gossip key (base64 or raw bytes, or several),
    ``keyring_file`` a JSON list of keys as serf writes it, ``label`` the
    memberlist label. ``timeout`` bounds each seed's connection and reply;
    ``bind`` is a local ``host[:port]`` to send from.

    With ``member=True`` it joins the pool instead, fires, waits until the
    event has been gossiped, and leaves gracefully (the pool then lists a
    ``left`` member); this runs trio in the calling thread.

    Raises :class:`~serfcast.errors.LocalProtocolError` for an event that cannot
    be sent (too large, with the payload budget; a bad filter; a reserved name:
    ``allow_reserved=True`` sends it anyway), :class:`WrongKeyError` when the
    seeds cannot read our gossip key, :class:`NoSeedError` when none answers.
    Nothing is sent in any of these cases.
    """
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    spec = EventSpec(
        name,
        data,
        consul=consul,
        node_filter=node or "",
        service_filter=service or "",
        tag_filter=tag or "",
        coalesce=coalesce,
        allow_reserved=allow_reserved,
        size_limit=size_limit,
    )
    seeds = [
        parse_address(seed) for seed in ([join] if isinstance(join, str) else join)
    ]
    keyring = make_keyring(encrypt, keyring_file)
    local = None if bind is None else parse_address(bind, default_port=0)
    if member:
        from serfcast.member_fire import fire_as_member_sync

        return fire_as_member_sync(
            spec,
            seeds,
            keyring=keyring,
            label=label.encode(),
            bind=local,
            timeout=timeout,
        )
    return fire(
        spec, seeds, keyring=keyring, label=label.encode(), timeout=timeout, bind=local
    )


async def fire_event(
    name: str,
    payload: bytes | str = b"",
    *,
    join: str | Sequence[str] = DEFAULT_JOIN,
    encrypt: Key | Iterable[Key] | None = None,
    keyring_file: str | None = None,
    label: str = "",
    consul: bool = True,
    node: str | None = None,
    service: str | None = None,
    tag: str | None = None,
    coalesce: bool = False,
    allow_reserved: bool = False,
    timeout: float = 5.0,
    bind: str | None = None,
    size_limit: int = DEFAULT_USER_EVENT_SIZE_LIMIT,
    member: bool = False,
) -> FireResult:
    """:func:`fire_event_sync` for async code, run in a worker thread.

    Works under trio and asyncio alike; the call is bounded by ``timeout`` per
    seed and a second per stream, and is not interrupted by cancellation.
    """
    call = functools.partial(
        fire_event_sync,
        name,
        payload,
        join=join,
        encrypt=encrypt,
        keyring_file=keyring_file,
        label=label,
        consul=consul,
        node=node,
        service=service,
        tag=tag,
        coalesce=coalesce,
        allow_reserved=allow_reserved,
        timeout=timeout,
        bind=bind,
        size_limit=size_limit,
        member=member,
    )
    if _under_trio():
        import trio

        return await trio.to_thread.run_sync(call)
    import asyncio

    return await asyncio.to_thread(call)


def _under_trio() -> bool:
    try:
        import sniffio
    except ImportError:  # pragma: no cover - trio depends on sniffio
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False

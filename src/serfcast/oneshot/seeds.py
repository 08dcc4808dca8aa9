"""Asking the seeds, in order, for the pool's state over blocking TCP.

Each failure is explained in words a user can act on: nobody listens, nobody
answers, the name does not resolve, or the gossip key (or label) is not the
pool's. A key problem is recognised from how the agent answers: memberlist
replies to a request it cannot read with an error message sealed with its own
key, or closes the connection when the label differs.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from serfcast.errors import DecryptionError, RemoteProtocolError
from serfcast.fire import (
    Address,
    AgentErrorReply,
    PoolView,
    pull_request,
    read_pool,
    reply_decoder,
)
from serfcast.oneshot.results import NoSeedError, SeedFailure, WrongKeyError
from serfcast.wire.keyring import Keyring
from serfcast.wire.messages import MessageType

__all__ = ["debug", "learn_pool", "os_reason", "show_address"]

_CHUNK: Final = 65536
#: Reply bytes kept to explain a failure; an error reply is far shorter.
_HEAD: Final = 4096
_CLOSED_UNREAD: Final = (
    "the agent closed the connection without a reply: it could not read our "
    "request (wrong gossip key or label?)"
)


def debug(message: str, *args: object) -> None:
    """Log at DEBUG under ``serfcast.fire``, if logging is in use at all."""
    # An application that configured logging has imported it; otherwise no one
    # would see the line, and importing logging would cost every run.
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("serfcast.fire").debug(message, *args)


class _SeedProblem(Exception):
    def __init__(self, reason: str, key_problem: bool = False) -> None:
        super().__init__(reason)
        self.reason = " ".join(reason.split())
        self.key_problem = key_problem


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
            debug("seed=%s error=%r", show_address(seed), problem.reason)
            failures.append(
                SeedFailure(show_address(seed), problem.reason, problem.key_problem)
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
            raise _SeedProblem(f"the connection failed: {os_reason(exc)}") from None
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
        raise _SeedProblem(os_reason(exc)) from None


def os_reason(exc: OSError) -> str:
    """A short lowercase reason for an OS error."""
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


def show_address(address: Address) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

"""The flags of a pool member, shared by ``serfcast agent`` and ``serfcast watch``.

``-node``, ``-bind``, ``-advertise``, ``-join``, the gossip key flags,
``-profile`` and ``-log-level``, and :func:`member_options`, which checks them
and works out the address to advertise. Only the standard library is imported
here, so registering the commands costs nothing; what runs a member lives in
:mod:`serfcast.cli_runtime`.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from serfcast.cli import _build_keyring, _flag, _keyring_flags
from serfcast.errors import LocalProtocolError

if TYPE_CHECKING:
    from serfcast.wire.keyring import Keyring

__all__ = [
    "LOG_LEVELS",
    "SERF_PORT",
    "Address",
    "MemberOptions",
    "member_flags",
    "member_options",
    "show_address",
]

Address = tuple[str, int]

#: The serf agent's gossip port.
SERF_PORT: Final = 7946
#: serf's -log-level words.
LOG_LEVELS: Final = ("trace", "debug", "info", "warn", "err")
_WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})


def show_address(address: Address) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def member_flags(
    parser: argparse.ArgumentParser, *, default_bind: str, join_port: int
) -> None:
    """Add the flags of a pool member."""
    _flag(parser, "node", metavar="NAME", help="node name (default: the host name)")
    _flag(
        parser,
        "bind",
        default=default_bind,
        metavar="IP[:PORT]",
        help=f"gossip address, UDP and TCP (default {default_bind})",
    )
    _flag(parser, "advertise", metavar="IP[:PORT]", help="address peers should dial")
    _flag(
        parser,
        "join",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help=f"member to join through (repeatable; port {join_port} unless given)",
    )
    _keyring_flags(parser)
    _flag(
        parser,
        "profile",
        choices=("lan", "wan", "local"),
        default="lan",
        help="memberlist timing profile (default lan)",
    )
    _flag(
        parser,
        "log-level",
        choices=LOG_LEVELS,
        default="info",
        help="trace, debug, info, warn or err",
    )


@dataclass(frozen=True, slots=True)
class MemberOptions:
    """A member's settings, checked. An advertised port 0 means the bound one."""

    name: str
    bind: Address
    advertise: Address
    seeds: tuple[Address, ...]
    keyring: Keyring | None
    label: bytes
    profile: str
    tags: dict[str, str]


def member_options(
    args: argparse.Namespace,
    *,
    join_port: int,
    tags: dict[str, str] | None = None,
) -> MemberOptions:
    """Check a member's flags; the address to advertise is worked out here."""
    from serfcast.fire import parse_address

    if args.encrypt and args.keyring_file:
        raise LocalProtocolError(
            "-encrypt cannot be used with -keyring-file (the serf agent refuses "
            "an encryption key while using a keyring): put the key in the file"
        )
    bind = parse_address(args.bind, default_port=SERF_PORT)
    _literal_ip(bind[0], "-bind")
    seeds = tuple(parse_address(text, default_port=join_port) for text in args.join)
    return MemberOptions(
        name=args.node or socket.gethostname(),
        bind=bind,
        advertise=_advertise(args.advertise, bind, seeds),
        seeds=seeds,
        keyring=_build_keyring(args),
        label=args.label.encode(),
        profile=args.profile,
        tags=dict(tags or {}),
    )


def _advertise(text: str | None, bind: Address, seeds: Sequence[Address]) -> Address:
    from serfcast.fire import parse_address

    if text:
        host, port = parse_address(text, default_port=0)
        return _literal_ip(host, "-advertise"), port or bind[1]
    if bind[0] not in _WILDCARDS:
        return bind
    if not seeds:
        raise LocalProtocolError(
            f"binding {show_address(bind)} leaves the address to advertise unknown: "
            "give -advertise IP, or -bind a concrete IP"
        )
    return _route_to(seeds[0]), bind[1]


def _literal_ip(host: str, flag: str) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except OSError:
        raise LocalProtocolError(f"{flag} needs an IP address, not {host!r}") from None
    return host


def _route_to(seed: Address) -> str:
    """The local address that reaches ``seed`` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in seed[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(seed)
            host: str = probe.getsockname()[0]
    except OSError as exc:
        raise LocalProtocolError(
            f"cannot tell which local address reaches {show_address(seed)} "
            f"({exc.strerror or exc}): give -advertise IP"
        ) from None
    return host

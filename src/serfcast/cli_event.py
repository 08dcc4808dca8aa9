"""``serfcast event``: fire a Consul or Serf user event without joining the pool.

The flags are those of ``consul event`` (``-name``, ``-node``, ``-service``,
``-tag``) plus the gossip flags a non-member needs (``-join``, ``-encrypt``,
``-keyring-file``, ``-label``, ``-bind``). ``-serf`` fires a plain Serf event
instead, as ``serf event`` would. Only :mod:`serfcast.oneshot` is imported to
run it, so the command starts without any async library; ``-member``, which
joins the pool, fires and leaves, brings in the engine and trio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Final, TextIO

from serfcast.cli import _bool_flag, _flag, _keyring_flags
from serfcast.errors import LocalProtocolError

if TYPE_CHECKING:
    from serfcast.oneshot import FireResult

__all__ = ["add_event_parser"]

_API_OVERRIDE: Final = "allow_reserved=True"

_NO_GOSSIP_EQUIVALENT: Final = {
    "datacenter": (
        "-datacenter does not exist at the gossip layer: user events never leave "
        "the LAN pool they are fired into; to reach another datacenter, -join an "
        "agent of that datacenter's LAN pool (port 8301) with its gossip key"
    ),
    "token": (
        "-token does not exist at the gossip layer: gossip carries no ACL token "
        "and Consul checks none; whoever holds the gossip key (-encrypt) can fire "
        "any event, so the key takes the place of the ACL"
    ),
}


def add_event_parser(sub: Any) -> None:
    """Register the ``event`` subcommand."""
    parser = sub.add_parser(
        "event",
        allow_abbrev=False,
        help="fire a Consul (or -serf: Serf) user event without joining",
        description="Fire one user event into a Consul or Serf LAN pool without "
        "joining it: a push/pull with a seed learns the event clock and the "
        "members, then the event goes straight to several members. The payload "
        "is the last argument, or standard input with '-'.",
    )
    parser.add_argument(
        "args", nargs="*", metavar="[NAME] [PAYLOAD]", help="name unless -name"
    )
    _consul_flags(parser)
    _gossip_flags(parser)
    _bool_flag(parser, "serf", "fire a plain Serf event (name and payload as given)")
    _bool_flag(parser, "coalesce", "with -serf: let receivers coalesce the event")
    _bool_flag(parser, "member", "join, fire, wait until sent, leave gracefully")
    _bool_flag(parser, "allow-reserved", "fire a name Consul treats specially")
    _flag(parser, "format", choices=("text", "json"), default="text")
    parser.set_defaults(run=_run_event)


def _consul_flags(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "name", help="the event's name")
    _flag(parser, "node", default="", help="regex of the node names to act")
    _flag(parser, "service", default="", help="regex of the service IDs to act")
    _flag(parser, "tag", default="", help="regex of the tags (needs -service)")
    for name in _NO_GOSSIP_EQUIVALENT:
        _flag(parser, name, help="refused: there is no such thing over gossip")


def _gossip_flags(parser: argparse.ArgumentParser) -> None:
    _flag(
        parser,
        "join",
        action="append",
        metavar="HOST[:PORT]",
        help="seed to ask (repeatable, in order); port 8301 unless given "
        "(serf agents use 7946); default 127.0.0.1:8301",
    )
    _keyring_flags(parser)
    _flag(parser, "bind", metavar="HOST[:PORT]", help="local address to send from")
    _flag(parser, "timeout", type=float, default=5.0, help="seconds per seed (def. 5)")


def _run_event(args: argparse.Namespace, out: TextIO) -> int:
    for name, why in _NO_GOSSIP_EQUIVALENT.items():
        if getattr(args, name) is not None:
            raise LocalProtocolError(why)
    name, payload = _name_and_payload(args)
    try:
        result = _fire(args, name, payload)
    except LocalProtocolError as exc:
        # The library names its keyword; on the command line it is a flag.
        text = str(exc)
        if _API_OVERRIDE not in text:
            raise
        raise LocalProtocolError(
            text.replace(_API_OVERRIDE, "-allow-reserved")
        ) from None
    for warning in result.warnings:
        print(f"serfcast: warning: {warning}", file=sys.stderr)
    if args.format == "json":
        out.write(json.dumps(result.to_dict()) + "\n")
    else:
        if result.event_id is not None:
            out.write(f"Event ID: {result.event_id}\n")
        out.write(f"Name: {result.name}\nLTime: {result.ltime}\n")
    return 0


def _name_and_payload(args: argparse.Namespace) -> tuple[str, bytes]:
    rest = list(args.args)
    name = args.name if args.name is not None else (rest.pop(0) if rest else "")
    if not name:
        raise LocalProtocolError("an event needs a name: give -name NAME")
    if len(rest) > 1:
        raise LocalProtocolError(
            f"too many arguments ({len(rest)} after the name): the payload is one "
            "argument, so quote it, or pass '-' and send it on standard input"
        )
    if not rest:
        return name, b""
    if rest[0] == "-":
        return name, sys.stdin.buffer.read()
    return name, os.fsencode(rest[0])


def _fire(args: argparse.Namespace, name: str, payload: bytes) -> FireResult:
    from serfcast.oneshot import DEFAULT_JOIN, fire_event_sync

    return fire_event_sync(
        name,
        payload,
        join=args.join or DEFAULT_JOIN,
        encrypt=args.encrypt,
        keyring_file=args.keyring_file,
        label=args.label,
        consul=not args.serf,
        node=args.node,
        service=args.service,
        tag=args.tag,
        coalesce=args.coalesce,
        allow_reserved=args.allow_reserved,
        timeout=args.timeout,
        bind=args.bind,
        member=args.member,
    )

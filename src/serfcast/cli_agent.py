"""``serfcast agent``: a long-running pool member with the serf agent's habits.

The flags are ``serf agent``'s (``-node``, ``-bind``, ``-advertise``,
``-join``, ``-encrypt``, ``-keyring-file``, ``-tag``, ``-profile``,
``-event-handler [filter=]CMD``, ``-log-level``); the agent itself is
:mod:`serfcast.agent`, imported only when the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Final, TextIO

from serfcast.cli import _flag
from serfcast.cli_node import SERF_PORT, member_flags, member_options
from serfcast.errors import LocalProtocolError

__all__ = ["add_agent_parser", "parse_tags"]

DEFAULT_HANDLER_TIMEOUT: Final = 60.0


def add_agent_parser(sub: Any) -> None:
    """Register the ``agent`` subcommand."""
    parser = sub.add_parser(
        "agent",
        allow_abbrev=False,
        help="run a pool member with serf agent's flags and event handlers",
        description="Join a Serf (or Consul LAN) pool and stay in it, running "
        "event handlers as serf agent does, until SIGINT or SIGTERM, which "
        "leave the pool gracefully.",
    )
    member_flags(parser, default_bind=f"0.0.0.0:{SERF_PORT}", join_port=SERF_PORT)
    _flag(
        parser,
        "tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a tag to announce (repeatable)",
    )
    _flag(
        parser,
        "event-handler",
        action="append",
        default=[],
        metavar="[FILTER=]CMD",
        help="run CMD with /bin/sh for matching events (repeatable); FILTER is "
        "e.g. user:deploy,member-join,query",
    )
    _flag(
        parser,
        "handler-timeout",
        type=float,
        default=DEFAULT_HANDLER_TIMEOUT,
        metavar="SECONDS",
        help=f"kill a handler after this long (default {DEFAULT_HANDLER_TIMEOUT:g})",
    )
    parser.set_defaults(run=_run_agent)


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """``-tag k=v`` flags as a mapping (the value may hold ``=``)."""
    tags = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise LocalProtocolError(f"invalid tag {pair!r}: write it as KEY=VALUE")
        tags[key] = value
    return tags


def _run_agent(args: argparse.Namespace, out: TextIO) -> int:
    from serfcast.agent import AgentConfig, run_agent
    from serfcast.handlers import parse_handler
    from serfcast.serf.tags import encode_tags

    tags = parse_tags(args.tag)
    encode_tags(tags)  # refuse tags over the meta limit before anything starts
    if args.handler_timeout <= 0:
        raise LocalProtocolError("-handler-timeout must be a positive number")
    config = AgentConfig(
        member_options(args, join_port=SERF_PORT, tags=tags),
        tuple(parse_handler(text) for text in args.event_handler),
        args.handler_timeout,
        args.log_level,
    )
    return run_agent(config, out)

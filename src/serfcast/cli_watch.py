"""``serfcast watch``: print the pool's user events as they arrive, once each.

The flags: a member's (``-join``, ``-node``, ``-bind``, the gossip key, ...),
``-observe`` and ``-interval`` to watch without joining, ``-name``,
``-handler CMD``, ``-state-file``. What they do is described in
:mod:`serfcast.watcher`, imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any, Final, TextIO

from serfcast.cli import _flag
from serfcast.cli_node import member_flags, member_options
from serfcast.errors import LocalProtocolError

__all__ = ["add_watch_parser"]

#: Consul's LAN gossip port, as for ``serfcast event``.
DEFAULT_PORT: Final = 8301
DEFAULT_SEED: Final = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_INTERVAL: Final = 5.0
DEFAULT_HANDLER_TIMEOUT: Final = 60.0
#: As many events as the state file keeps by default.
DEFAULT_STATE_SIZE: Final = 4096
_NO_BIND: Final = "0.0.0.0:0"


def add_watch_parser(sub: Any) -> None:
    """Register the ``watch`` subcommand."""
    parser = sub.add_parser(
        "watch",
        allow_abbrev=False,
        help="print the pool's user events as JSON lines, each once",
        description="Join the pool (or, with -observe, only look at a seed's "
        "recent events now and then) and print every new user event as one JSON "
        "line. With -state-file, a restart prints nothing it printed before.",
    )
    member_flags(parser, default_bind=_NO_BIND, join_port=DEFAULT_PORT)
    parser.set_defaults(log_level="warn")
    _flag(parser, "name", metavar="NAME", help="only events of this name")
    _flag(parser, "handler", metavar="CMD", help="run CMD per event (/bin/sh -c)")
    _flag(
        parser,
        "handler-timeout",
        type=float,
        default=DEFAULT_HANDLER_TIMEOUT,
        metavar="SECONDS",
        help=f"kill the handler after this long (default {DEFAULT_HANDLER_TIMEOUT:g})",
    )
    _flag(parser, "state-file", metavar="PATH", help="remember what was printed")
    _flag(
        parser,
        "state-size",
        type=int,
        default=DEFAULT_STATE_SIZE,
        metavar="N",
        help=f"events the state file remembers (default {DEFAULT_STATE_SIZE})",
    )
    _flag(
        parser,
        "observe",
        action="store_true",
        help="do not join: push/pull with a seed every -interval seconds",
    )
    _flag(
        parser,
        "interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"with -observe: seconds between looks (default {DEFAULT_INTERVAL:g})",
    )
    _flag(parser, "timeout", type=float, default=5.0, help="seconds per seed (def. 5)")
    parser.set_defaults(run=_run_watch)


def _run_watch(args: argparse.Namespace, out: TextIO) -> int:
    from serfcast.watcher import WatchConfig, run_watch

    if not args.join:
        args.join = [DEFAULT_SEED]
    for flag in ("interval", "timeout", "handler_timeout"):
        if getattr(args, flag) <= 0:
            name = flag.replace("_", "-")
            raise LocalProtocolError(f"-{name} must be a positive number of seconds")
    if args.state_size < 1:
        raise LocalProtocolError("-state-size must be at least 1")
    if args.observe and args.bind != _NO_BIND:
        raise LocalProtocolError("-observe opens no gossip port: drop -bind")
    config = WatchConfig(
        member_options(args, join_port=DEFAULT_PORT),
        observe=args.observe,
        name=args.name,
        handler=args.handler,
        handler_timeout=args.handler_timeout,
        state_file=args.state_file,
        state_size=args.state_size,
        interval=args.interval,
        timeout=args.timeout,
        log_level=args.log_level,
    )
    return run_watch(config, out)

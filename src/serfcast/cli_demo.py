"""``serfcast demo``: watch one user event spread through a pool on this machine.

With no arguments it starts a dozen serfcast members on 127.0.0.1 (real UDP
and TCP sockets, ports picked at random among free ones), waits until every
member sees every other alive, fires one event from one of them and draws when
each member got it, then has them all leave gracefully. ``-with-serf`` mixes
real serf agents into the pool. Flag checking lives here and uses only the
standard library; the demo itself is :mod:`serfcast.demo`, imported when the
command runs.
"""

from __future__ import annotations

import argparse
from typing import Any, Final, TextIO

from serfcast.cli import _bool_flag, _flag

__all__ = ["MAX_NODES", "add_demo_parser"]

DEFAULT_NODES: Final = 12
MAX_NODES: Final = 64
#: A pool of one would have nobody to gossip to.
MIN_NODES: Final = 2


def add_demo_parser(sub: Any) -> None:
    """Register the ``demo`` subcommand."""
    parser = sub.add_parser(
        "demo",
        allow_abbrev=False,
        help="run a small pool on 127.0.0.1 and watch an event spread",
        description="Start a pool of serfcast members on 127.0.0.1, wait until "
        "they all see each other, fire one user event and show when each member "
        "got it, then leave gracefully. Nothing outside this machine is touched, "
        "and everything is stopped within 30 seconds.",
    )
    _flag(
        parser,
        "nodes",
        type=_node_count,
        default=DEFAULT_NODES,
        metavar="N",
        help=f"serfcast members, {MIN_NODES} to {MAX_NODES} (default {DEFAULT_NODES})",
    )
    _flag(
        parser,
        "profile",
        choices=("lan", "wan", "local"),
        default="local",
        help="memberlist timing profile (default local: gossip every 100 ms)",
    )
    _flag(
        parser,
        "payload",
        metavar="TEXT",
        help="the event's payload (default: hello from <sender>)",
    )
    _bool_flag(
        parser,
        "with-serf",
        "also run 4 real serf agents in the pool (serf from $SERFCAST_SERF_0101, "
        "$SERFCAST_SERF_094, .cache/serf/<version>/serf or PATH)",
    )
    _flag(
        parser,
        "seed",
        type=int,
        metavar="N",
        help="seed for ports, gossip choices and the sender, to repeat a run",
    )
    parser.set_defaults(run=_run_demo)


def _node_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not MIN_NODES <= count <= MAX_NODES:
        raise argparse.ArgumentTypeError(
            f"{count} members: give {MIN_NODES} to {MAX_NODES}"
        )
    return count


def _run_demo(args: argparse.Namespace, out: TextIO) -> int:
    from serfcast.demo import DemoOptions, run_demo

    options = DemoOptions.checked(
        nodes=args.nodes,
        profile=args.profile,
        payload=args.payload,
        with_serf=args.with_serf,
        seed=args.seed,
    )
    return run_demo(options, out)

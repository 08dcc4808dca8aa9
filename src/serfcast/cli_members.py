"""``serfcast members``: the pool's members, as ``serf members`` lists them.

No agent of our own and no join: one push/pull with a seed
(:mod:`serfcast.snapshot`) returns every member the seed knows. The text output
has ``serf members``' columns (name, address, status, tags as ``k=v,k=v``;
``-detailed`` adds the Serf protocol), and ``-format json`` prints the object
``serf members -format json`` prints. ``-name``, ``-status`` and ``-tag k=RE``
keep the members whose value matches the whole Go regular expression.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from serfcast.cli import _build_keyring, _flag, _keyring_flags
from serfcast.errors import LocalProtocolError

if TYPE_CHECKING:
    from serfcast.snapshot import SnapshotMember

__all__ = [
    "add_members_parser",
    "columns",
    "filter_members",
    "members_json",
    "members_text",
]

DEFAULT_SEED: Final = "127.0.0.1:8301"
_GLUE: Final = "  "


def add_members_parser(sub: Any) -> None:
    """Register the ``members`` subcommand."""
    parser = sub.add_parser(
        "members",
        allow_abbrev=False,
        help="list the pool's members without joining",
        description="Ask a seed for the members it knows with one push/pull, "
        "which leaves no trace in the pool, and print them like serf members.",
    )
    _flag(
        parser,
        "join",
        action="append",
        metavar="HOST[:PORT]",
        help="seed to ask (repeatable, tried in order); port 8301 unless given "
        f"(serf agents use 7946); default {DEFAULT_SEED}",
    )
    _keyring_flags(parser)
    _flag(parser, "format", choices=("text", "json"), default="text")
    _flag(parser, "detailed", action="store_true", help="show the Serf protocol")
    _flag(parser, "name", metavar="RE", help="only members whose name matches")
    _flag(parser, "status", metavar="RE", help="only members whose status matches")
    _flag(
        parser,
        "tag",
        action="append",
        default=[],
        metavar="KEY=RE",
        help="only members with a matching tag (repeatable)",
    )
    _flag(parser, "timeout", type=float, default=5.0, help="seconds per seed (def. 5)")
    parser.set_defaults(run=_run_members)


def _run_members(args: argparse.Namespace, out: TextIO) -> int:
    from serfcast.fire import parse_address
    from serfcast.snapshot import take_snapshot

    tag_filters = _tag_filters(args.tag)
    for expr in (args.name, args.status, *tag_filters.values()):
        if expr is not None:
            _anchored(expr)  # a bad expression fails before any seed is asked
    seeds = [parse_address(text) for text in args.join or [DEFAULT_SEED]]
    snapshot = take_snapshot(
        seeds,
        keyring=_build_keyring(args),
        label=args.label.encode(),
        timeout=args.timeout,
    )
    members = filter_members(
        snapshot.members, name=args.name, status=args.status, tags=tag_filters
    )
    if args.format == "json":
        out.write(members_json(members) + "\n")
    else:
        out.write(members_text(members, detailed=args.detailed))
    return 0


def _tag_filters(pairs: Sequence[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, equals, expr = pair.partition("=")
        if not equals or not key:
            raise LocalProtocolError(f"-tag {pair!r}: write it as KEY=REGEX")
        filters[key] = expr
    return filters


def _anchored(expr: str) -> re.Pattern[str]:
    from serfcast.re2 import compile_go_regexp

    # serf anchors the filters; the group keeps an alternation anchored too.
    return compile_go_regexp(f"^(?:{expr})$")


def _full_match(expr: str, text: str) -> bool:
    from serfcast.re2 import go_text

    return _anchored(expr).search(go_text(text)) is not None


def filter_members(
    members: Iterable[SnapshotMember],
    *,
    name: str | None = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[SnapshotMember]:
    """The members whose name, status and tags all match (Go regexps, anchored).

    A member without a filtered tag does not match it.
    """
    kept = []
    for member in members:
        if name is not None and not _full_match(name, member.name):
            continue
        if status is not None and not _full_match(status, member.status):
            continue
        if all(
            key in member.tags and _full_match(expr, member.tags[key])
            for key, expr in (tags or {}).items()
        ):
            kept.append(member)
    return kept


def _tags_text(tags: Mapping[str, str]) -> str:
    # Go prints the tags in its random map order; sorted reads better.
    return ",".join(f"{key}={value}" for key, value in sorted(tags.items()))


def _row(member: SnapshotMember, detailed: bool) -> list[str]:
    row = [member.name, member.address, member.status, _tags_text(member.tags)]
    if detailed:
        protocol = member.protocol
        row.append(f"Protocol Version: {protocol.get('version', 0)}")
        row.append(
            "Available Protocol Range: "
            f"[{protocol.get('min', 0)}, {protocol.get('max', 0)}]"
        )
    return row


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns two spaces apart, without trailing blanks."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    lines = (
        _GLUE.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
    return "".join(line.rstrip() + "\n" for line in lines)


def members_text(members: Sequence[SnapshotMember], *, detailed: bool = False) -> str:
    """``serf members`` text: one aligned line per member."""
    if not members:
        return ""
    return columns([_row(member, detailed) for member in members])


def members_json(members: Sequence[SnapshotMember]) -> str:
    """``serf members -format json``: ``{"members": [...]}``, indented as serf."""
    entries = [
        {
            "name": member.name,
            "addr": member.address,
            "port": member.port,
            "tags": dict(sorted(member.tags.items())),
            "status": member.status,
            "protocol": {
                key: member.protocol.get(key, 0) for key in ("max", "min", "version")
            },
        }
        for member in members
    ]
    return json.dumps({"members": entries}, indent=2)

"""The ``serfcast`` command line.

Flags follow Go's habits as ``serf`` and ``consul`` users know them: ``-flag value``,
``-flag=value`` and ``--flag`` all work. Each subcommand imports what it needs only
when it runs, so one-shot commands start quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from serfcast.errors import LocalProtocolError, SerfcastError

__all__ = ["main"]

#: A record holding any of these did not decode completely.
_ERROR_KEYS = frozenset({"error", "serf_error", "consul_error"})
_PCAP_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
)


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> argparse.Action:
    """Register ``-name`` and ``--name`` as one option."""
    return parser.add_argument(
        f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kwargs
    )


#: Boolean flags, which Go also accepts as ``-flag=true`` and ``-flag=false``.
_BOOL_FLAGS: set[str] = set()
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _bool_flag(parser: argparse.ArgumentParser, name: str, text: str) -> None:
    """Register a Go-style boolean flag: ``-name``, ``--name``, ``-name=false``."""
    _flag(parser, name, action="store_true", help=text)
    # -name=false is rewritten to this hidden flag (see _go_bool_args).
    dest = name.replace("-", "_")
    parser.add_argument(
        f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS
    )
    _BOOL_FLAGS.add(name)


def _go_bool_args(argv: Sequence[str]) -> list[str]:
    """Rewrite ``-flag=value`` of boolean flags, which argparse cannot take."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[index:])
        flag, equals, value = arg.lstrip("-").partition("=")
        if not (arg.startswith("-") and equals and flag in _BOOL_FLAGS):
            out.append(arg)
        elif value in _GO_TRUE | _GO_FALSE:
            out.append(f"--{flag}" if value in _GO_TRUE else f"--no-{flag}")
        else:
            raise LocalProtocolError(
                f"invalid boolean value {value!r} for -{flag}: use true or false"
            )
    return out


def _keyring_flags(parser: argparse.ArgumentParser) -> None:
    _flag(
        parser,
        "encrypt",
        action="append",
        default=[],
        metavar="KEY",
        help="base64 gossip key; repeat to try several",
    )
    _flag(
        parser,
        "keyring-file",
        metavar="PATH",
        help="JSON list of base64 keys, primary first (as serf writes it)",
    )
    _flag(parser, "label", default="", help="memberlist label, if the pool uses one")


def _build_keyring(args: argparse.Namespace) -> Any:
    from serfcast.wire.keyring import Keyring, load_keyring_file

    keyring = load_keyring_file(args.keyring_file) if args.keyring_file else Keyring()
    for key in args.encrypt:
        keyring.add_key(Keyring.from_base64(key).primary)
    return keyring if keyring else None


# ----------------------------------------------------------------------------
# serfcast decode


def _decode_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "decode",
        allow_abbrev=False,
        help="decode memberlist/Serf traffic from hex or a pcap file",
        description="Print one JSON object per decoded message. Input is hex "
        "(argument, or standard input with '-' or no argument; one packet per "
        "line) or a pcap file. The Serf (and Consul) content of user messages "
        "and push/pull state is shown too; the exit status is 1 when any layer "
        "failed to decode (an error, serf_error or consul_error key).",
    )
    parser.add_argument("input", nargs="?", default="-", help="hex, a file, or -")
    _keyring_flags(parser)
    _flag(
        parser,
        "port",
        action="append",
        type=int,
        default=[],
        help="pcap: ports carrying gossip (default 7946 and 8301)",
    )
    _flag(
        parser,
        "stream",
        action="store_true",
        help="hex input is one side of a TCP stream, not UDP datagrams",
    )
    parser.set_defaults(run=_run_decode)


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    # os.path.isfile, unlike Path.is_file, answers False for a hex argument that
    # is too long to be a file name instead of raising.
    if os.path.isfile(source):
        try:
            return Path(source).read_bytes()
        except OSError as exc:
            raise LocalProtocolError(f"cannot read {source}: {exc.strerror}") from None
    return source.encode()


def _hex_lines(data: bytes) -> list[bytes]:
    packets = []
    for number, line in enumerate(data.decode("ascii", "replace").splitlines(), 1):
        cleaned = "".join(line.split())
        if not cleaned or cleaned.startswith("#"):
            continue
        try:
            packets.append(bytes.fromhex(cleaned))
        except ValueError:
            raise LocalProtocolError(
                f"line {number} of the input is neither hex nor a pcap file"
            ) from None
    return packets


def _run_decode(args: argparse.Namespace, out: TextIO) -> int:
    from serfcast import describe

    keyring = _build_keyring(args)
    label = args.label.encode()
    data = _read_input(args.input)
    records: list[dict[str, Any]] = []
    if data[:4] in _PCAP_MAGICS:
        records = _decode_pcap(data, args.port or [7946, 8301], keyring, label)
    else:
        describer = (
            describe.describe_stream if args.stream else describe.describe_datagram
        )
        for packet in _hex_lines(data):
            records.extend(describer(packet, keyring, label))
    for record in records:
        out.write(json.dumps(record) + "\n")
    return 1 if any(_ERROR_KEYS & record.keys() for record in records) else 0


def _decode_pcap(
    data: bytes, ports: list[int], keyring: Any, label: bytes
) -> list[dict[str, Any]]:
    from serfcast import describe
    from serfcast.pcap import read_pcap

    contents = read_pcap(data, ports=ports)
    items: list[tuple[float, str, Any]] = [
        (d.time, "udp", d) for d in contents.datagrams
    ] + [(s.time, "tcp", s) for s in contents.streams]
    records: list[dict[str, Any]] = []
    for time, transport, item in sorted(items, key=lambda entry: entry[0]):
        describer = (
            describe.describe_datagram
            if transport == "udp"
            else describe.describe_stream
        )
        where = {"time": round(time, 6), "src": _addr(item.src), "dst": _addr(item.dst)}
        records.extend({**where, **r} for r in describer(item.payload, keyring, label))
    return records


def _addr(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


# ----------------------------------------------------------------------------
# serfcast keygen


def _keygen_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "keygen", allow_abbrev=False, help="print a new random 32-byte gossip key"
    )
    parser.set_defaults(run=_run_keygen)


def _run_keygen(args: argparse.Namespace, out: TextIO) -> int:
    from serfcast.wire.keyring import generate_key

    out.write(generate_key() + "\n")
    return 0


# ----------------------------------------------------------------------------
# serfcast event


def _event_parser(sub: Any) -> None:
    from serfcast.cli_event import add_event_parser

    add_event_parser(sub)


# ----------------------------------------------------------------------------
# serfcast watch, members, agent


def _watch_parser(sub: Any) -> None:
    from serfcast.cli_watch import add_watch_parser

    add_watch_parser(sub)


def _members_parser(sub: Any) -> None:
    from serfcast.cli_members import add_members_parser

    add_members_parser(sub)


def _agent_parser(sub: Any) -> None:
    from serfcast.cli_agent import add_agent_parser

    add_agent_parser(sub)


def _demo_parser(sub: Any) -> None:
    from serfcast.cli_demo import add_demo_parser

    add_demo_parser(sub)


# ----------------------------------------------------------------------------


_SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _decode_parser,
    _keygen_parser,
    _event_parser,
    _watch_parser,
    _members_parser,
    _agent_parser,
    _demo_parser,
)


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line parser.

    When ``argv`` starts with a command's name, only that command is registered,
    so running one command never imports the modules of the others. Each entry
    of ``_SUBCOMMANDS`` is named ``_<command>_parser`` for this.
    """
    parser = argparse.ArgumentParser(
        prog="serfcast",
        description="Fire and receive Serf and Consul user events over gossip.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    first = argv[0] if argv else ""
    chosen = [add for add in _SUBCOMMANDS if add.__name__ == f"_{first}_parser"]
    for add in chosen or _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser(argv)
    try:
        args = parser.parse_args(_go_bool_args(argv))
    except LocalProtocolError as exc:
        parser.error(str(exc))
    try:
        status: int = args.run(args, out or sys.stdout)
    except SerfcastError as exc:
        print(f"serfcast: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    return status


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: subcommand modules import
    # serfcast.cli, and its flag registry must be the one main() consults.
    from serfcast.cli import main as _imported_main

    sys.exit(_imported_main())

"""The demo's timeline: one bar per member, as lines of text.

A member's bar is as long as it waited for the event: the sender's is a
sliver, the first gossip targets' a little longer, the last member's reaches
furthest right. The axis is a whole number of gossip
intervals, with a tick per interval, so one can count the rounds the event
needed. While the event spreads, a member still waiting has a faint bar that
grows with the elapsed time, and the axis doubles whenever time outruns it.

Bars are drawn with the eighth blocks (``▏`` to ``█``), so a bar's end is
placed to an eighth of a column. Colour is optional: without it the lines are
plain text, which is what logs and tests get. Nothing here does any I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Row",
    "Style",
    "axis_scale",
    "bar",
    "format_ms",
    "prefix_width",
    "render",
    "summary",
]

FULL: Final = "█"
#: Blocks one to seven eighths wide, by the number of eighths.
EIGHTHS: Final = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
WAITING: Final = "░"
#: The axis starts this many gossip intervals long while the event spreads.
LIVE_INTERVALS: Final = 4
#: The least room between two labelled ticks, in columns.
LABEL_ROOM: Final = 6

_RESET: Final = "\x1b[0m"
_COLOURS: Final = {
    "sender": "\x1b[1;36m",
    "serfcast": "\x1b[32m",
    "serf": "\x1b[33m",
    "waiting": "\x1b[2m",
    "missed": "\x1b[31m",
    "repaired": "\x1b[35m",
    "dim": "\x1b[2m",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One member: who it is and when it got the event (seconds after firing)."""

    name: str
    kind: str
    port: int
    arrival: float | None
    sender: bool = False
    #: It got the event from a push/pull after the gossip was over.
    repaired: bool = False

    @property
    def is_serf(self) -> bool:
        """Whether the member is a real serf agent."""
        return self.kind.startswith("serf ") or self.kind == "serf"


@dataclass(frozen=True, slots=True)
class Style:
    """How to draw: ``width`` columns of bar, with or without ANSI colour."""

    width: int
    color: bool

    def paint(self, role: str, text: str) -> str:
        """``text`` in the colour of ``role`` (unchanged without colour)."""
        if not self.color or not text:
            return text
        return f"{_COLOURS[role]}{text}{_RESET}"


def bar(seconds: float, scale: float, width: int, block: str = FULL) -> str:
    """A bar for ``seconds`` on an axis of ``scale`` seconds over ``width`` columns.

    Never empty (the sender's bar is one thin line) and never wider than the axis.
    """
    eighths = round(seconds / scale * width * 8) if scale > 0 else 0
    eighths = max(1, min(eighths, width * 8))
    full, part = divmod(eighths, 8)
    if block != FULL:
        return block * (full + (part > 0))
    return FULL * full + EIGHTHS[part]


def format_ms(seconds: float) -> str:
    """``41 ms``, ``3.2 ms`` or ``1.25 s``."""
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{seconds:.2f} s"


def axis_scale(seconds: float, interval: float, *, live: bool) -> float:
    """The axis length: whole gossip intervals, at least ``seconds`` long.

    Live, it starts at a few intervals and doubles, so bars do not shrink at
    every frame; the final picture uses the fewest intervals that fit.
    """
    needed = max(1, math.ceil(seconds / interval - 1e-9))
    if not live:
        return needed * interval
    intervals = LIVE_INTERVALS
    while intervals < needed:
        intervals *= 2
    return intervals * interval


@dataclass(frozen=True, slots=True)
class _Frame:
    """What every row of one picture is drawn against."""

    elapsed: float
    scale: float
    style: Style
    final: bool
    name_width: int
    kind_width: int


def render(
    rows: Sequence[Row],
    elapsed: float,
    interval: float,
    style: Style,
    *,
    final: bool,
) -> list[str]:
    """The timeline's lines: a row per member, then the axis.

    ``elapsed`` is how long ago the event was fired. In the ``final`` picture a
    member without an arrival missed the event; before it, it is still waiting.
    """
    latest = max((r.arrival for r in rows if r.arrival is not None), default=0.0)
    scale = axis_scale(latest if final else elapsed, interval, live=not final)
    frame = _Frame(elapsed, scale, style, final, *_label_widths(rows))
    lines = [_row_line(row, frame) for row in rows]
    return [*lines, *_axis(scale, interval, style, prefix_width(rows))]


def _label_widths(rows: Sequence[Row]) -> tuple[int, int]:
    return max(len(r.name) for r in rows), max(len(r.kind) for r in rows)


def prefix_width(rows: Sequence[Row]) -> int:
    """Columns before the bars: name, kind and port, their gaps and the ``│``."""
    name_w, kind_w = _label_widths(rows)
    return 2 + name_w + 2 + kind_w + 2 + 6 + 2


def _row_line(row: Row, frame: _Frame) -> str:
    paint = frame.style.paint
    name = row.name.ljust(frame.name_width)
    kind = paint("serf" if row.is_serf else "dim", row.kind.ljust(frame.kind_width))
    port = f":{row.port}".ljust(6)
    return f"  {name}  {kind}  {port} {paint('dim', '│')}{_row_bar(row, frame)}"


def _row_bar(row: Row, frame: _Frame) -> str:
    paint, width, scale = frame.style.paint, frame.style.width, frame.scale
    if row.arrival is None and frame.final:
        return paint("missed", WAITING * width + " missed")
    if row.arrival is None:
        return paint("waiting", bar(frame.elapsed, scale, width, WAITING) + " …")
    if row.sender:
        return paint("sender", bar(0.0, scale, width) + " fired here")
    drawn = bar(row.arrival, scale, width)
    if row.repaired:
        return paint("repaired", f"{drawn} {format_ms(row.arrival)} push/pull")
    role = "serf" if row.is_serf else "serfcast"
    return f"{paint(role, drawn)} {format_ms(row.arrival)}"


def _axis(scale: float, interval: float, style: Style, indent: int) -> list[str]:
    """The axis under the bars: a tick per gossip interval, labelled in ms.

    Column 0 of ``line`` and ``labels`` is the rows' ``│``, time zero; column
    ``c`` is the bars' cell ``c - 1``, so a tick sits on the last cell a bar
    reaching that time fills.
    """
    width = style.width
    count = round(scale / interval)
    step = _tick_step(count, width)
    line = ["└"] + ["─"] * width
    labels = [" "] * (width + LABEL_ROOM)
    _place(labels, 0, "0")
    for k in range(step, count + 1, step):
        column = max(1, round(k * width / count))
        line[column] = "┴"
        _place(labels, column, f"{k * interval * 1000:.0f}")
    pad = " " * (indent - 1)
    return [
        pad + style.paint("dim", "".join(line)),
        pad + style.paint("dim", "".join(labels).rstrip() + " ms"),
    ]


def _tick_step(count: int, width: int) -> int:
    """Label every ``step``-th interval, so labels never run into each other."""
    step = 1
    while count // step * LABEL_ROOM > width:
        step *= 2
    return step


def _place(labels: list[str], column: int, text: str) -> None:
    """Write ``text`` centred under ``column`` if the spot is still free."""
    start = max(0, min(column - len(text) // 2, len(labels) - len(text)))
    spot = labels[max(0, start - 1) : start + len(text) + 1]
    if any(char != " " for char in spot):
        return
    labels[start : start + len(text)] = list(text)


def summary(rows: Sequence[Row], interval: float, profile: str) -> list[str]:
    """How long the pool took, in ms and in gossip intervals, and how."""
    missed = [r.name for r in rows if r.arrival is None]
    if missed:
        got = len(rows) - len(missed)
        return [
            f"{got} of {len(rows)} members had the event; missed: {', '.join(missed)}"
        ]
    gossiped = [r.arrival or 0.0 for r in rows if not r.repaired]
    repaired = [r for r in rows if r.repaired]
    spread = max(gossiped)
    rounds = (
        f"{spread / interval:.1f} gossip intervals of {format_ms(interval)} "
        f"(profile {profile})"
    )
    if not repaired:
        everyone = f"all {len(rows)} members had the event"
        return [f"{everyone} within {format_ms(spread)}: {rounds}"]
    last = format_ms(max(r.arrival or 0.0 for r in repaired))
    names = ", ".join(r.name for r in repaired)
    return [
        f"gossip brought the event to {len(gossiped)} of {len(rows)} members "
        f"within {format_ms(spread)}: {rounds}",
        f"{names} missed the gossip and got it by push/pull: all {len(rows)} "
        f"members had the event within {last}",
    ]

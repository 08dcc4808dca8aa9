"""Where the demo writes: plain lines for logs, a redrawn picture on a terminal.

On a terminal the timeline is drawn, then redrawn in place by moving the
cursor back up over it and rewriting every line; the cursor is hidden
meanwhile and always shown again at the end. A picture taller than the
terminal cannot be redrawn that way (its top has scrolled away), so it is
printed once instead. When ``out`` is not a terminal, or ``TERM`` is
``dumb``, nothing but plain text is written; ``NO_COLOR`` turns colour off.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Final, TextIO

from serfcast.demo.timeline import Row, Style, prefix_width

__all__ = ["Screen"]

#: Bar width when not on a terminal, and the bounds on a terminal.
PLAIN_WIDTH: Final = 48
MIN_WIDTH: Final = 20
MAX_WIDTH: Final = 60
#: Room kept after a bar for its label (``fired here``, ``743 ms push/pull``).
LABEL_ROOM: Final = 20

_HIDE_CURSOR: Final = "\x1b[?25l"
_SHOW_CURSOR: Final = "\x1b[?25h"
_CLEAR_LINE: Final = "\x1b[2K"


class Screen:
    """Writes the demo's lines to ``out`` and its errors to standard error."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.terminal = _is_terminal(out)
        self._height = 0
        self._cursor_hidden = False

    def say(self, text: str) -> None:
        """Write a line below whatever is drawn."""
        self._height = 0
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """A line on standard error, after what ``out`` has so far."""
        self.out.flush()
        self._height = 0
        print(text, file=sys.stderr, flush=True)

    def can_animate(self, height: int) -> bool:
        """Whether a picture of ``height`` lines can be redrawn in place."""
        rows = shutil.get_terminal_size().lines
        return self.terminal and height < rows

    def style(self, rows: Sequence[Row]) -> Style:
        """How wide the bars are, and whether in colour."""
        if not self.terminal:
            return Style(PLAIN_WIDTH, color=False)
        room = shutil.get_terminal_size().columns - prefix_width(rows) - LABEL_ROOM
        width = max(MIN_WIDTH, min(MAX_WIDTH, room))
        return Style(width, color="NO_COLOR" not in os.environ)

    def draw(self, lines: Sequence[str]) -> None:
        """Draw ``lines``, over the previous drawing on a terminal."""
        parts = []
        if self.terminal and not self._cursor_hidden:
            parts.append(_HIDE_CURSOR)
            self._cursor_hidden = True
        if self._height:
            parts.append(f"\x1b[{self._height}A\r")
        clear = _CLEAR_LINE if self.terminal else ""
        parts.extend(f"{clear}{line}\n" for line in lines)
        self.out.write("".join(parts))
        self.out.flush()
        self._height = len(lines)

    def restore(self) -> None:
        """Show the cursor again if it was hidden."""
        if self._cursor_hidden:
            self._cursor_hidden = False
            self.out.write(_SHOW_CURSOR)
            self.out.flush()


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty() and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False

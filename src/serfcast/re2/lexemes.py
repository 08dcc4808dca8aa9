"""The small lexical pieces of Go's regexp syntax: counts, escapes, advice.

Pure functions over the expression text, used by :mod:`serfcast.re2.parser`.
"""

from __future__ import annotations

from typing import Final

from serfcast.re2 import classes as cc
from serfcast.re2.classes import Ranges

__all__ = [
    "ALNUM",
    "CLASS_ESCAPE_ADVICE",
    "CONTROL",
    "ESCAPE_ADVICE",
    "HEX",
    "OCTAL",
    "RELATIVE",
    "collect",
    "parse_braces",
    "parse_hex",
    "parse_octal",
]

ALNUM: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
OCTAL: Final = frozenset("01234567")
HEX: Final = frozenset("0123456789abcdefABCDEF")
CONTROL: Final = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def collect(
    positive: list[tuple[int, int]],
    negated: list[Ranges],
    ranges: Ranges,
    negative: bool,
) -> None:
    """Add a named set to a class being built, as-is or as a negated part."""
    if negative:
        negated.append(ranges)
    else:
        positive.extend(ranges)


RELATIVE: Final = frozenset({"+1", "+2", "+3", "-1", "-2", "-3"})

ESCAPE_ADVICE: Final = {
    "Z": "Go has no \\Z; use \\z for the end of the text",
    "G": "Go has no \\G (end of the previous match)",
    "K": "Go has no \\K (match reset)",
    "k": "Go has no backreferences",
    "g": "Go has no backreferences",
    "u": "write \\x{hhhh} for a code point",
    "U": "write \\x{hhhhhh} for a code point",
    "e": "write \\x1b for escape",
    "c": "write the control character with \\x, e.g. \\x01",
    "h": "write [\\t ] for horizontal space",
    "R": "write (?:\\r\\n|\\n) for a line break",
    "X": "Go has no \\X (grapheme cluster)",
    "N": "write [^\\n] for any character but newline",
    "o": "write \\x{...} for a code point",
    "E": "\\E only ends a \\Q...\\E quote",
}

CLASS_ESCAPE_ADVICE: Final = {
    "b": "Go has no backspace escape [\\b]; write \\x08",
    "A": "\\A is a position, not a character, so it cannot be in a class",
    "z": "\\z is a position, not a character, so it cannot be in a class",
    "B": "\\B is a position, not a character, so it cannot be in a class",
    "Q": "\\Q...\\E quotes are not allowed inside a class",
}


def parse_braces(expr: str, start: int) -> tuple[int, int, int] | None:
    """``{n}``, ``{n,}`` or ``{n,m}`` at ``start``: (low, high or -1, end), else None.

    Go treats anything else, such as ``{,5}`` or ``{05}``, as literal text. A
    number of nine digits or more reads as -1, which the caller refuses.
    """
    low, index = _decimal(expr, start + 1)
    if low is None or index >= len(expr):
        return None
    high = low
    if expr[index] == ",":
        if expr.startswith("}", index + 1):
            high, index = -1, index + 1
        else:
            parsed, index = _decimal(expr, index + 1)
            if parsed is None:
                return None
            high = parsed
            low = -1 if parsed < 0 else low
    if not expr.startswith("}", index):
        return None
    return low, high, index + 1


def _decimal(expr: str, start: int) -> tuple[int | None, int]:
    end = start
    while end < len(expr) and expr[end] in "0123456789":
        end += 1
    digits = expr[start:end]
    if not digits or (len(digits) > 1 and digits[0] == "0"):
        return None, start
    return (int(digits) if len(digits) <= 8 else -1), end


def parse_octal(expr: str, start: int) -> tuple[int, int]:
    end = start + 1
    while end < start + 3 and expr[end : end + 1] in OCTAL:
        end += 1
    return int(expr[start:end], 8), end


def parse_hex(expr: str, start: int) -> tuple[int, int] | None:
    """The code after ``\\x`` at ``start``: two hex digits or ``{...}``."""
    if expr.startswith("{", start):
        end = expr.find("}", start)
        digits = expr[start + 1 : end] if end > 0 else ""
        if not digits or not set(digits) <= HEX:
            return None
        value = int(digits, 16)
        return (value, end + 1) if value <= cc.MAX_RUNE else None
    digits = expr[start : start + 2]
    if len(digits) == 2 and set(digits) <= HEX:
        return int(digits, 16), start + 2
    return None

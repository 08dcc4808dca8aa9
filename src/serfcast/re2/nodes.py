"""The pieces a Go expression parses into, each carrying its Python spelling.

A :class:`Node` holds the Python pattern text for one parsed piece plus the
numbers Go's limits are checked against: an estimate of the compiled size
(Go's own formula), the tree height, and the largest product of nested counted
repetitions (``x{n,m}``). Nodes are built bottom-up, so no recursion is needed
to spell or measure a deep tree.

Go's flags are resolved here instead of being handed to Python: ``.`` becomes
``[^\\n]`` or any character, ``^``/``$`` become ``\\A``/``\\Z`` or their
multi-line forms, and case-insensitive pieces are wrapped in ``(?i:...)``.
Python's case folding agrees with Go's simple folding except for the dotted and
dotless i (U+0130, U+0131), which Python treats as forms of ``i`` and Go folds to
nothing else; those four letters are therefore matched exactly, outside
``(?i:...)``. (Letters added to Unicode after the Go release in use may also
fold in Python and not yet in Go.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from serfcast.re2 import classes as cc
from serfcast.re2.classes import Ranges

__all__ = [
    "Kind",
    "Node",
    "alternate",
    "anchor",
    "assertion",
    "capture",
    "char_class",
    "concat",
    "literal",
    "repeat",
]

_WORD: Final = "[0-9A-Za-z_]"
_ANY: Final = "(?s:.)"
#: i, I and the dotted and dotless i, where Python's folding and Go's differ.
_I_LETTERS: Final = (0x49, 0x69, 0x130, 0x131)


class Kind(Enum):
    """What a node is, as far as Go's tree shape and Python's syntax care."""

    LITERAL = auto()
    CLASS = auto()
    ASSERTION = auto()
    EMPTY = auto()
    CAPTURE = auto()
    REPEAT = auto()
    CONCAT = auto()
    ALTERNATE = auto()


@dataclass(frozen=True, slots=True)
class Node:
    """One parsed piece. ``atomic``: a Python quantifier may follow ``py`` as is."""

    kind: Kind
    py: str
    atomic: bool
    size: int = 1
    height: int = 1
    rep: int = 1
    fold: bool = False
    parts: tuple[Node, ...] = ()


EMPTY: Final = Node(Kind.EMPTY, "", False)


def literal(code: int, fold: bool) -> Node:
    """One character, case-insensitive when ``fold`` and the character has case."""
    char = chr(code)
    text = cc.escape(code)
    if fold and code in _I_LETTERS:
        text = "[Ii]" if code < 0x80 else text
    elif fold and (char.lower() != char or char.upper() != char):
        text = f"(?i:{text})"
    return Node(Kind.LITERAL, text, True, fold=fold)


def anchor(char: str, *, multiline: bool, dot_nl: bool) -> Node:
    """Go's ``.``, ``^`` or ``$`` under the current flags."""
    if char == ".":
        return Node(Kind.CLASS, _ANY if dot_nl else r"[^\n]", True)
    if char == "^":
        return Node(Kind.ASSERTION, "(?m:^)" if multiline else r"\A", False)
    return Node(Kind.ASSERTION, "(?m:$)" if multiline else r"\Z", False)


def assertion(letter: str) -> Node:
    """``\\A``, ``\\z``, ``\\b`` or ``\\B``; Go's word boundary is ASCII only."""
    edge = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"
    inside = f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))"
    spelling = {"A": r"\A", "z": r"\Z", "b": edge, "B": inside}
    return Node(Kind.ASSERTION, spelling[letter], False)


def char_class(
    positive: Ranges, negated_parts: list[Ranges], inverted: bool, fold: bool
) -> Node:
    """A class: ``positive`` ranges plus the complements of ``negated_parts``.

    Without case folding the parts resolve to one exact set. With it, Go folds
    each part before negating it, and so does Python's ``(?i:[^...])``, so the
    parts stay separate and Python combines them.
    """
    if not fold:
        complements = (span for part in negated_parts for span in cc.negate(part))
        total = cc.merge([*positive, *complements])
        return _exact_class(cc.negate(total) if inverted else total)
    folded = _folded_class(positive, negated_parts, inverted)
    exact = [c for c in _I_LETTERS if _go_folded_member(c, positive, negated_parts)]
    if inverted:
        exact = [c for c in _I_LETTERS if c not in exact]
    choices = [f"(?!{cc.bracket(_ranges(_I_LETTERS))}){folded}"] if folded else []
    choices += [cc.bracket(_ranges(exact))] if exact else []
    if not choices:
        return Node(Kind.CLASS, "(?!)", False)
    return Node(Kind.CLASS, f"(?:{'|'.join(choices)})", True)


def _folded_class(positive: Ranges, negated_parts: list[Ranges], inverted: bool) -> str:
    """The class under Python's ``(?i:...)``; "" when it matches nothing."""
    options = [cc.bracket(positive)] if positive else []
    options += [cc.bracket(p, negated=True) if p else _ANY for p in negated_parts]
    if not inverted:
        return f"(?i:{'|'.join(options)})" if options else ""
    if not negated_parts:
        inverse = cc.bracket(positive, negated=True) if positive else _ANY
        return f"(?i:{inverse})"
    return f"(?i:(?!{'|'.join(options)}){_ANY})"


def _go_folded_member(code: int, positive: Ranges, negated_parts: list[Ranges]) -> bool:
    """Whether Go's folded class (before any inversion) holds one of the i letters."""
    orbit = (0x49, 0x69) if code < 0x80 else (code,)
    return any(_contains(positive, c) for c in orbit) or any(
        not any(_contains(part, c) for c in orbit) for part in negated_parts
    )


def _contains(ranges: Ranges, code: int) -> bool:
    return any(low <= code <= high for low, high in ranges)


def _ranges(codes: tuple[int, ...] | list[int]) -> Ranges:
    return cc.merge((code, code) for code in codes)


def _exact_class(ranges: Ranges) -> Node:
    if not ranges:
        return Node(Kind.CLASS, "(?!)", False)  # Python has no empty bracket
    return Node(Kind.CLASS, cc.bracket(ranges), True)


def capture(inner: Node) -> Node:
    """A capturing group (Python needs no name: only matching matters)."""
    return Node(
        Kind.CAPTURE,
        f"({inner.py})",
        True,
        size=2 + inner.size,
        height=1 + inner.height,
        rep=inner.rep,
    )


def concat(items: list[Node]) -> Node:
    """A sequence; nested sequences are flattened as Go flattens them."""
    flat = [p for i in items for p in (i.parts if i.kind is Kind.CONCAT else (i,))]
    if not flat:
        return EMPTY
    if len(flat) == 1:
        return flat[0]
    # Go merges a run of literals into one node: an all-literal sequence is a
    # single leaf in its tree.
    literals = all(p.kind is Kind.LITERAL and p.fold == flat[0].fold for p in flat)
    return Node(
        Kind.CONCAT,
        "".join(f"(?:{p.py})" if p.kind is Kind.ALTERNATE else p.py for p in flat),
        False,
        size=sum(p.size for p in flat),
        height=1 if literals else 1 + max(p.height for p in flat),
        rep=max(p.rep for p in flat),
        parts=tuple(flat),
    )


def alternate(options: list[Node]) -> Node:
    """A choice; nested choices are flattened as Go flattens them."""
    flat = [p for o in options for p in (o.parts if o.kind is Kind.ALTERNATE else (o,))]
    if len(flat) == 1:
        return flat[0]
    return Node(
        Kind.ALTERNATE,
        "|".join(p.py for p in flat),
        False,
        size=sum(p.size for p in flat) + len(flat) - 1,
        height=1 + max(p.height for p in flat),
        rep=max(p.rep for p in flat),
        parts=tuple(flat),
    )


def repeat(sub: Node, low: int, high: int, *, greedy: bool, counted: bool) -> Node:
    """``sub`` repeated ``low`` to ``high`` times (``high`` -1: no upper bound).

    ``counted`` marks the ``{n,m}`` form, the only one Go's repetition-product
    limit looks at.
    """
    operator = _operator(low, high, counted) + ("" if greedy else "?")
    atom = sub.py if sub.atomic else f"(?:{sub.py})"
    return Node(
        Kind.REPEAT,
        atom + operator,
        False,
        size=_repeat_size(sub.size, low, high, counted),
        height=1 + sub.height,
        rep=_repeat_product(sub.rep, low, high) if counted else sub.rep,
    )


def _operator(low: int, high: int, counted: bool) -> str:
    if not counted:
        return {(0, -1): "*", (1, -1): "+", (0, 1): "?"}[low, high]
    if high == -1:
        return f"{{{low},}}"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _repeat_size(sub: int, low: int, high: int, counted: bool) -> int:
    """Go's estimate of how many instructions a repetition compiles to."""
    if not counted:
        return (2 if low == 0 and high == -1 else 1) + sub
    if high == -1:
        return 2 + sub if low == 0 else 1 + low * sub
    return max(1, high * sub + high - low)


def _repeat_product(sub: int, low: int, high: int) -> int:
    # Go stops looking below an x{0}; an unbounded x{n,} counts as n copies.
    if high == 0:
        return 1
    return max(1, high if high > 0 else low) * sub

"""A parser for Go's regexp syntax that builds the Python pattern as it reads.

It follows Go's ``regexp/syntax`` in Perl mode (what ``regexp.Compile`` uses),
accepting what every Go release since 1.19 accepts. Where Go fails, it raises
:class:`~serfcast.re2.errors.BadRegexpError` naming the construct and what to
write instead; constructs other engines know (look-around, backreferences,
possessive quantifiers, atomic groups, ...) get a message of their own.

The reading loop keeps a stack of open groups, like Go's parser, instead of
recursing, so nesting as deep as Go allows cannot exhaust Python's stack. Go's
limits are checked as nodes are built: at most 1000 for any count and for the
product of nested counts, a tree at most 1000 high, and a size estimate. The
estimate ignores Go's factoring of alternations, so near Go's size limit an
expression may be refused here that Go would accept, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NoReturn

from serfcast.re2 import classes as cc
from serfcast.re2 import lexemes as lx
from serfcast.re2 import nodes
from serfcast.re2.classes import Ranges
from serfcast.re2.errors import BadRegexpError
from serfcast.re2.nodes import Node

__all__ = ["Translation", "translate"]

FOLD: Final = 1
MULTILINE: Final = 2
DOT_NL: Final = 4
UNGREEDY: Final = 8
_FLAG_BITS: Final = {"i": FOLD, "m": MULTILINE, "s": DOT_NL, "U": UNGREEDY}

MAX_REPEAT: Final = 1000
MAX_HEIGHT: Final = 1000
MAX_SIZE: Final = (128 << 20) // 40
MAX_RUNES: Final = (128 << 20) // 4

_REFUSED: Final = (
    "is not supported by Go's RE2 syntax, and Go programs such as Consul agents "
    "would reject the expression"
)


@dataclass(frozen=True, slots=True)
class Translation:
    """The Python pattern for a valid Go expression, and why it may not be usable."""

    pattern: str
    unsupported: str | None


def translate(expr: str) -> Translation:
    """Parse ``expr`` as Go would and spell it for Python's ``re``."""
    return _Parser(expr).run()


@dataclass(slots=True)
class _Group:
    """An open group: the flags to restore at ``)`` and what it holds so far."""

    flags: int
    capture: bool
    start: int
    alternatives: list[Node] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.pos = 0
        self.flags = 0
        self.groups = [_Group(0, capture=False, start=0)]
        self.last_repeat = -1  # where the previous construct's repetition began
        self.runes = 0
        self.unsupported: str | None = None
        self.handlers = {
            "(": self._open,
            "|": self._bar,
            ")": self._close,
            "[": self._class,
            "\\": self._escape,
        }

    def run(self) -> Translation:
        self._check_utf8()
        while self.pos < len(self.expr):
            start = self.pos
            self.last_repeat = start if self._step() else -1
        if len(self.groups) > 1:
            self._fail(self.groups[-1].start, "missing closing ) for this group")
        root = self._finish(self.groups[0])
        return Translation(root.py, self.unsupported)

    def _check_utf8(self) -> None:
        # Lone surrogates stand for undecodable bytes, which Go refuses.
        for index, char in enumerate(self.expr):
            if 0xD800 <= ord(char) <= 0xDFFF:
                self._fail(index, "invalid UTF-8 in the expression")

    def _step(self) -> bool:
        """Consume one construct; say whether it was a repetition operator."""
        char = self.expr[self.pos]
        if char in "*+?{":
            return self._repetition(char)
        handler = self.handlers.get(char)
        if handler is not None:
            handler()
        elif char in "^$.":
            multiline, dot_nl = bool(self.flags & MULTILINE), bool(self.flags & DOT_NL)
            self._push(nodes.anchor(char, multiline=multiline, dot_nl=dot_nl))
            self.pos += 1
        else:
            self._push(nodes.literal(ord(char), bool(self.flags & FOLD)))
            self.pos += 1
        return False

    def _fail(self, position: int, message: str) -> NoReturn:
        shown = self.expr if len(self.expr) <= 80 else self.expr[:77] + "..."
        raise BadRegexpError(
            f"{message} (at offset {position} of {shown!r})", self.expr, position
        )

    def _refuse(self, position: int, construct: str, advice: str) -> NoReturn:
        self._fail(position, f"{construct} {_REFUSED}; {advice}")

    def _push(self, node: Node) -> None:
        self.groups[-1].items.append(self._checked(node))

    def _checked(self, node: Node) -> Node:
        if node.height > MAX_HEIGHT:
            self._fail(self.pos, f"expression nests more than {MAX_HEIGHT} deep")
        if node.size > MAX_SIZE:
            self._fail(self.pos, "expression too large for Go to compile")
        return node

    # -------------------------------------------------------------- groups

    def _open(self) -> None:
        if self.expr.startswith("(?", self.pos):
            self._perl_group()
            return
        self.groups.append(_Group(self.flags, capture=True, start=self.pos))
        self.pos += 1

    def _bar(self) -> None:
        group = self.groups[-1]
        group.alternatives.append(self._checked(nodes.concat(group.items)))
        group.items = []
        self.pos += 1

    def _close(self) -> None:
        if len(self.groups) == 1:
            self._fail(self.pos, "unexpected ) with no group open")
        group = self.groups.pop()
        node = self._finish(group)
        self.flags = group.flags
        self._push(nodes.capture(node) if group.capture else node)
        self.pos += 1

    def _finish(self, group: _Group) -> Node:
        last = self._checked(nodes.concat(group.items))
        return self._checked(nodes.alternate([*group.alternatives, last]))

    def _perl_group(self) -> None:
        """``(?`` begins a named group, a flag change, or a non-capturing group."""
        rest = self.expr[self.pos :]
        if rest.startswith("(?P<") and len(rest) > 4:
            self._named_group()
            return
        self._refuse_foreign_group(rest)
        flags, index = self.flags, self.pos + 2
        negating = saw_flag = False
        while index < len(self.expr):
            char = self.expr[index]
            index += 1
            if char in _FLAG_BITS:
                bit = _FLAG_BITS[char]
                flags = flags & ~bit if negating else flags | bit
                saw_flag = True
            elif char == "-" and not negating:
                negating, saw_flag = True, False
            elif char in ":)" and (saw_flag or not negating):
                if char == ":":
                    self.groups.append(
                        _Group(self.flags, capture=False, start=self.pos)
                    )
                self.flags, self.pos = flags, index
                return
            else:
                self._bad_flag(index - 1, char)
        self._fail(self.pos, "unterminated (? group: expected flags then : or )")

    def _named_group(self) -> None:
        end = self.expr.find(">", self.pos)
        if end < 0:
            self._fail(self.pos, "named group (?P<name> is missing its closing >")
        name = self.expr[self.pos + 4 : end]
        if not name or not set(name) <= lx.ALNUM | {"_"}:
            self._fail(
                self.pos,
                f"invalid group name {name!r}: Go allows only ASCII letters, digits "
                "and _",
            )
        self.groups.append(_Group(self.flags, capture=True, start=self.pos))
        self.pos = end + 1

    def _refuse_foreign_group(self, rest: str) -> None:
        """Name the constructs of other engines that look like ``(?...)``."""
        foreign = (
            ("(?=", "look-ahead (?=...)", "rewrite it without look-around"),
            ("(?!", "negative look-ahead (?!...)", "rewrite it without look-around"),
            ("(?<=", "look-behind (?<=...)", "rewrite it without look-around"),
            ("(?<!", "negative look-behind (?<!...)", "rewrite it without look-around"),
            ("(?>", "atomic group (?>...)", "use a plain group (?:...)"),
            ("(?#", "comment group (?#...)", "remove the comment"),
            ("(?(", "conditional (?(...)...)", "use alternation with |"),
            ("(?|", "branch reset (?|...)", "use a plain group (?:...)"),
            ("(?P=", "backreference (?P=name)", "Go cannot match repeated text"),
            ("(?P>", "subroutine call (?P>name)", "write the group out again"),
            ("(?&", "subroutine call (?&name)", "write the group out again"),
            ("(?R", "recursion (?R)", "Go cannot match nested structures"),
            ("(?'", "named group (?'name'...)", "write (?P<name>...)"),
        )
        for prefix, construct, advice in foreign:
            if rest.startswith(prefix):
                self._refuse(self.pos, construct, advice)
        if rest.startswith("(?<"):
            self._fail(
                self.pos,
                "named group (?<name>...) is accepted only since Go 1.22, so older "
                "Consul agents would reject it; write (?P<name>...), which every Go "
                "release accepts",
            )
        if len(rest) > 2 and (rest[2].isdigit() or rest[2:4] in lx.RELATIVE):
            self._refuse(self.pos, f"recursion {rest[:4]!r}", "Go has no recursion")

    def _bad_flag(self, index: int, char: str) -> NoReturn:
        if char == "-":
            self._fail(index, "a flag group allows only one -, followed by flags")
        if char in ":)":
            self._fail(index, "a - in a flag group must be followed by a flag")
        self._refuse(
            index,
            f"flag {char!r}",
            "Go knows only the flags i, m, s and U",
        )

    # ------------------------------------------------------------ repetition

    def _repetition(self, char: str) -> bool:
        start = self.pos
        if char != "{":
            low, high = {"*": (0, -1), "+": (1, -1), "?": (0, 1)}[char]
            end = start + 1
        else:
            parsed = lx.parse_braces(self.expr, start)
            if parsed is None:  # not a count after all: { is an ordinary character
                self._push(nodes.literal(ord("{"), bool(self.flags & FOLD)))
                self.pos += 1
                return False
            low, high, end = parsed
            self._check_count(start, end, low, high)
        greedy = not self.flags & UNGREEDY
        if self.expr.startswith("?", end):
            end, greedy = end + 1, not greedy
        self._check_stacking(start, end)
        items = self.groups[-1].items
        if not items:
            operator = self.expr[start:end]
            self._fail(start, f"repetition operator {operator!r} has nothing to repeat")
        counted = char == "{"
        node = nodes.repeat(items[-1], low, high, greedy=greedy, counted=counted)
        if counted and max(low, high) >= 2 and node.rep > MAX_REPEAT:
            self._fail(
                start,
                f"nested counted repetitions multiply to more than {MAX_REPEAT}; "
                "Go refuses them",
            )
        items[-1] = self._checked(node)
        self.pos = end
        return True

    def _check_count(self, start: int, end: int, low: int, high: int) -> None:
        text = self.expr[start:end]
        if low < 0 or low > MAX_REPEAT or high > MAX_REPEAT:
            self._fail(start, f"repetition count {text} is above Go's limit of 1000")
        if high >= 0 and low > high:
            self._fail(
                start, f"repetition count {text} has its minimum above its maximum"
            )

    def _check_stacking(self, start: int, end: int) -> None:
        if self.last_repeat < 0:
            return
        both = self.expr[self.last_repeat : end]
        if self.expr[start:end] == "+":
            self._refuse(
                self.last_repeat,
                f"possessive quantifier {both!r}",
                "drop the trailing + (Go never backtracks, so it gains nothing)",
            )
        self._fail(
            self.last_repeat,
            f"nested repetition operator {both!r} is not allowed in Go; "
            "wrap the inner part in (?:...) to repeat it",
        )

    # --------------------------------------------------------------- classes

    def _class(self) -> None:
        """``[...]``: ranges, escapes, POSIX names and Unicode classes."""
        start, expr = self.pos, self.expr
        inverted = expr.startswith("^", start + 1)
        index = start + 2 if inverted else start + 1
        positive: list[tuple[int, int]] = []
        negated: list[Ranges] = []
        first = True
        while index >= len(expr) or expr[index] != "]" or first:
            first = False
            index = self._class_item(index, start, positive, negated)
        merged = cc.merge(positive)
        self._count_runes(merged)
        fold = bool(self.flags & FOLD)
        self._push(nodes.char_class(merged, negated, inverted, fold))
        self.pos = index + 1

    def _class_item(
        self,
        index: int,
        start: int,
        positive: list[tuple[int, int]],
        negated: list[Ranges],
    ) -> int:
        expr = self.expr
        if index >= len(expr):
            self._fail(start, "missing closing ] for this class")
        if expr.startswith("[:", index) and len(expr) - index > 2:
            end = expr.find(":]", index + 2)
            if end >= 0:
                return self._posix_class(index, end + 2, positive, negated)
        if expr.startswith(("\\p", "\\P"), index):
            index, ranges, negative = self._unicode_class(index)
            lx.collect(positive, negated, ranges, negative)
            return index
        if (
            expr.startswith("\\", index)
            and expr[index + 1 : index + 2] in cc.PERL_CLASSES
        ):
            negative, ranges = cc.PERL_CLASSES[expr[index + 1]]
            lx.collect(positive, negated, ranges, negative)
            return index + 2
        low, index = self._class_char(index, start)
        high = low
        if (
            expr.startswith("-", index)
            and index + 1 < len(expr)
            and expr[index + 1] != "]"
        ):
            range_start = index - 1
            high, index = self._class_char(index + 1, start)
            if high < low:
                text = expr[range_start:index]
                self._fail(
                    range_start, f"invalid class range {text!r}: it runs backwards"
                )
        positive.append((low, high))
        return index

    def _posix_class(
        self,
        index: int,
        end: int,
        positive: list[tuple[int, int]],
        negated: list[Ranges],
    ) -> int:
        text = self.expr[index:end]
        name = text[2:-2]
        ranges = cc.POSIX_CLASSES.get(name.removeprefix("^"))
        if ranges is None:
            known = ", ".join(sorted(cc.POSIX_CLASSES))
            self._fail(index, f"unknown POSIX class {text}; Go knows {known}")
        lx.collect(positive, negated, ranges, name.startswith("^"))
        return end

    def _class_char(self, index: int, start: int) -> tuple[int, int]:
        if index >= len(self.expr):
            self._fail(start, "missing closing ] for this class")
        if self.expr[index] == "\\":
            return self._escaped_char(index, in_class=True)
        return ord(self.expr[index]), index + 1

    def _unicode_class(self, index: int) -> tuple[int, Ranges, bool]:
        """``\\pL``, ``\\p{Greek}``, ``\\P{^Lu}``: where it ends, its set, negated?"""
        expr = self.expr
        negative = expr[index + 1] == "P"
        if index + 2 >= len(expr):
            self._fail(
                index, f"{expr[index:]} needs a class name, like \\pL or \\p{{Lu}}"
            )
        if expr[index + 2] != "{":
            name, end = expr[index + 2], index + 3
        else:
            close = expr.find("}", index)
            if close < 0:
                self._fail(
                    index, f"{expr[index : index + 3]} is missing its closing }}"
                )
            name, end = expr[index + 3 : close], close + 1
        if name.startswith("^"):
            negative, name = not negative, name[1:]
        return end, self._unicode_ranges(index, expr[index:end], name), negative

    def _unicode_ranges(self, index: int, text: str, name: str) -> Ranges:
        if name == "Any":
            return cc.ANY
        if name in cc.GO_CATEGORIES:
            return cc.category(name)
        if name in cc.GO_SCRIPTS:
            self.unsupported = self.unsupported or (
                f"Unicode script class {text}: Python's re has no script data"
            )
            return ()
        better = cc.recent_go_name(name)
        if better is not None:
            self._fail(
                index,
                f"{text} is accepted only by recent Go releases and older Consul "
                f"agents would reject it; write {better}",
            )
        self._fail(index, f"unknown Unicode class {text}")

    def _count_runes(self, ranges: Ranges) -> None:
        self.runes += 2 * len(ranges)
        if self.runes > MAX_RUNES:
            self._fail(self.pos, "expression too large: its classes hold too much")

    # --------------------------------------------------------------- escapes

    def _escape(self) -> None:
        expr, index = self.expr, self.pos
        letter = expr[index + 1 : index + 2]
        if letter and letter in "AbBz":
            self._push(nodes.assertion(letter))
            self.pos += 2
        elif letter == "C":
            self._refuse(index, "\\C (any byte)", "use . to match any character")
        elif letter == "Q":
            self._quote()
        elif letter in ("p", "P"):
            self.pos, ranges, negative = self._unicode_class(index)
            self._push_set(ranges, negative)
        elif letter and letter in cc.PERL_CLASSES:
            negative, ranges = cc.PERL_CLASSES[letter]
            self._push_set(ranges, negative)
            self.pos += 2
        else:
            code, self.pos = self._escaped_char(index, in_class=False)
            self._push(nodes.literal(code, bool(self.flags & FOLD)))

    def _push_set(self, ranges: Ranges, negative: bool) -> None:
        self._count_runes(ranges)
        fold = bool(self.flags & FOLD)
        if negative:
            self._push(nodes.char_class((), [ranges], False, fold))
        else:
            self._push(nodes.char_class(ranges, [], False, fold))

    def _quote(self) -> None:
        """``\\Q...\\E``: everything up to ``\\E`` (or the end) is literal."""
        body_start = self.pos + 2
        end = self.expr.find("\\E", body_start)
        body = self.expr[body_start:] if end < 0 else self.expr[body_start:end]
        for char in body:
            self._push(nodes.literal(ord(char), bool(self.flags & FOLD)))
        self.pos = len(self.expr) if end < 0 else end + 2

    def _escaped_char(self, index: int, *, in_class: bool) -> tuple[int, int]:
        """One escaped character at ``index`` (the backslash): its code, next index."""
        expr = self.expr
        if index + 1 >= len(expr):
            self._fail(index, "trailing backslash at the end of the expression")
        char = expr[index + 1]
        if char.isascii() and char not in lx.ALNUM:
            return ord(char), index + 2
        if char in lx.OCTAL and (
            char == "0" or expr[index + 2 : index + 3] in lx.OCTAL
        ):
            return lx.parse_octal(expr, index + 1)
        if char == "x":
            parsed = lx.parse_hex(expr, index + 2)
            if parsed is not None:
                return parsed
        if char in lx.CONTROL:
            return lx.CONTROL[char], index + 2
        self._bad_escape(index, char, in_class)

    def _bad_escape(self, index: int, char: str, in_class: bool) -> NoReturn:
        text = self.expr[index : index + 2]
        if char in "0123456789":
            self._refuse(
                index, f"backreference {text}", "Go cannot match repeated text"
            )
        advice = lx.ESCAPE_ADVICE.get(char)
        if in_class and char in "bABzQ":
            advice = lx.CLASS_ESCAPE_ADVICE.get(char, "it is not allowed in a class")
        if char == "x":
            advice = "write \\x and two hex digits, or \\x{...} up to 10FFFF"
        if advice is None:
            advice = "remove the backslash or escape only punctuation"
        self._fail(index, f"invalid escape {text}: {advice}")

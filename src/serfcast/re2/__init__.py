"""Go's regular expressions (RE2 syntax): validate them, and match with them in Python.

Consul's event filters are Go regular expressions, compiled by every receiving
agent. An expression Go refuses makes every agent drop the event without a word
to the sender, and Python's ``re`` accepts much that Go refuses (look-around,
backreferences, possessive quantifiers, ``\\Z``, ...). So a sender checks with
:func:`check_go_regexp`, which refuses exactly what Go refuses and says what to
write instead.

A receiver that wants to apply filters the way an agent would uses
:func:`compile_go_regexp` or :func:`match_string`: the expression is parsed by
Go's rules and rewritten for Python's ``re`` with the same meaning. Go's ``.``
does not match a newline, ``$`` means the very end of the text (``\\Z`` in
Python), ``\\d``/``\\w``/``\\s``/``\\b`` are ASCII-only, and a text with
undecodable bytes (held as lone surrogates) is seen by Go as U+FFFD per byte.
Python's case folding differs from Go's in a handful of characters, and
Unicode script classes (``\\p{Greek}``) cannot be translated at all: those are
valid for :func:`check_go_regexp` but make :func:`compile_go_regexp` raise
:class:`UnsupportedRegexpError`.
"""

from __future__ import annotations

import functools
import re

from serfcast.re2.errors import BadRegexpError, UnsupportedRegexpError
from serfcast.re2.parser import translate

__all__ = [
    "BadRegexpError",
    "UnsupportedRegexpError",
    "check_go_regexp",
    "compile_go_regexp",
    "go_text",
    "match_string",
]

_SURROGATES = re.compile("[\ud800-\udfff]")


def check_go_regexp(expr: str) -> None:
    """Raise :class:`BadRegexpError` unless Go's ``regexp.Compile`` accepts ``expr``."""
    translate(expr)


# XXX: matching is not linear-time like Go's because it runs on Python's
# backtracking re; a hostile filter can take exponential time on long texts, so
# match only short ones (node names, service IDs, tags).
@functools.lru_cache(maxsize=256)
def compile_go_regexp(expr: str) -> re.Pattern[str]:
    """A Python pattern that matches what Go's ``regexp.Compile(expr)`` matches.

    Search it with :meth:`re.Pattern.search` over :func:`go_text` of the
    subject, as Go's ``MatchString`` is an unanchored search. Raises
    :class:`BadRegexpError` where Go would fail and :class:`UnsupportedRegexpError`
    for valid expressions Python cannot express.
    """
    translation = translate(expr)
    if translation.unsupported is not None:
        raise UnsupportedRegexpError(
            f"cannot match {expr!r} in Python: {translation.unsupported}"
        )
    try:
        return re.compile(translation.pattern)
    except (RecursionError, re.error, OverflowError) as exc:
        raise UnsupportedRegexpError(
            f"cannot match {expr!r} in Python: its re refuses the translation "
            f"({type(exc).__name__}: {exc})"
        ) from None


def go_text(text: str) -> str:
    """``text`` as a Go string holding the same bytes would decode rune by rune.

    serfcast keeps undecodable bytes as lone surrogates (``surrogateescape``);
    Go reads each such byte as U+FFFD.
    """
    return _SURROGATES.sub("\ufffd", text)


def match_string(expr: str, text: str) -> bool:
    """Whether ``expr`` matches anywhere in ``text``, like Go's ``MatchString``."""
    return compile_go_regexp(expr).search(go_text(text)) is not None

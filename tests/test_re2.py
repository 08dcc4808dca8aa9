"""Go regular expressions: what Go accepts and refuses, and matching like Go."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serfcast.errors import LocalProtocolError
from serfcast.re2 import (
    BadRegexpError,
    UnsupportedRegexpError,
    check_go_regexp,
    compile_go_regexp,
    go_text,
    match_string,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("expr", "matching", "not_matching"),
    [
        (
            "^web-\\d+$",
            ["web-1", "web-042"],
            ["web-", "web-1\n", "old-web-1", "web-\u0661"],
        ),
        ("(?i)API", ["api", "my-Api-1"], ["ap1"]),
        ("[[:digit:]]+", ["v12"], ["vii"]),
        ("\\Qa.b\\E", ["xa.by"], ["axb"]),
        ("web", ["old-web-3"], ["we"]),
        ("a.c", ["abc"], ["a\nc"]),
        ("(?s)a.c", ["a\nc"], ["ac"]),
        ("(?m)^b$", ["a\nb\nc"], ["ab"]),
        ("^b$", ["b"], ["a\nb\nc", "b\n"]),
        ("x\\z", ["ax"], ["x\n"]),
        ("\\Ax", ["xa"], ["ax"]),
        ("\\bé", ["aé"], ["é"]),
        ("\\w+\\s\\d", ["ab 1"], ["é 1", "ab\v1"]),
        ("[^a]", ["\n", "b"], ["a", "aa"]),
        ("(?i)k", ["K", "\u212a"], ["x"]),
        ("(?i)i", ["I", "i"], ["\u0131", "\u0130"]),
        ("(?U)a+b", ["aab"], ["b"]),
        ("\\x{1F600}|\\x41", ["A", "\U0001f600"], ["a"]),
        ("\\pL\\pN", ["é7"], ["7é"]),
        ("[\\p{Lu}\\d]", ["Ä", "4"], ["ä"]),
        ("[[:^alpha:][:upper:]]", ["A", "1"], ["a"]),
        ("a{2,3}", ["xaax"], ["xax"]),
        ("a{,3}", ["a{,3}"], ["aaa"]),
        ("(?:ab)*c|d{0}", ["c", "", "ababc"], []),
        ("", ["", "anything"], []),
        ("\\141\\x62\\0", ["ab\0"], ["ab"]),
        ("[]a]", ["]"], ["b"]),
        ("[a-]", ["-"], ["b"]),
        ("(?P<host>web)-(?P<n>\\d)", ["web-1"], ["web-x"]),
    ],
)
def test_valid_go_patterns_match_like_go(
    expr: str, matching: list[str], not_matching: list[str]
) -> None:
    check_go_regexp(expr)
    for text in matching:
        assert match_string(expr, text), text
    for text in not_matching:
        assert not match_string(expr, text), text


@pytest.mark.parametrize(
    ("expr", "named"),
    [
        ("(?=a)", "look-ahead (?=...)"),
        ("(?!a)", "negative look-ahead"),
        ("(?<=a)b", "look-behind"),
        ("(?<!a)b", "negative look-behind"),
        ("(?>a)", "atomic group"),
        ("(?#note)", "comment group"),
        ("(?(1)a|b)", "conditional"),
        ("(?|a)", "branch reset"),
        ("(a)\\1", "backreference \\1"),
        ("(?P<x>a)(?P=x)", "backreference (?P=name)"),
        ("\\k<x>", "no backreferences"),
        ("(?R)", "recursion"),
        ("(a)(?1)", "recursion"),
        ("a*+", "possessive quantifier '*+'"),
        ("a{2}+", "possessive quantifier '{2}+'"),
        ("a**", "nested repetition operator '**'"),
        ("a*??", "nested repetition operator '*??'"),
        ("*a", "nothing to repeat"),
        ("(|*)", "nothing to repeat"),
        ("a{1001}", "above Go's limit of 1000"),
        ("a{2,1}", "minimum above its maximum"),
        ("(a{10}){101}", "multiply to more than 1000"),
        ("a\\Z", "use \\z"),
        ("\\C", "\\C (any byte)"),
        ("\\u0041", "\\x{hhhh}"),
        ("\\e", "invalid escape \\e"),
        ("\\é", "invalid escape"),
        ("[\\b]", "backspace"),
        ("[a\\z]", "position, not a character"),
        ("(?x)a", "flag 'x'"),
        ("(?i-)a", "must be followed by a flag"),
        ("(?--i)a", "only one -"),
        ("(?<name>a)", "(?P<name>...)"),
        ("(?'name'a)", "(?P<name>...)"),
        ("(?P<a-b>x)", "invalid group name"),
        ("(?P<x", "missing its closing >"),
        ("(a", "missing closing )"),
        ("a)", "unexpected )"),
        ("[a", "missing closing ]"),
        ("[z-a]", "runs backwards"),
        ("[[:word:][:foo:]]", "unknown POSIX class [:foo:]"),
        ("\\p{Foo}", "unknown Unicode class"),
        ("\\p{Letter}", "write \\p{L}"),
        ("\\p{greek}", "write \\p{Greek}"),
        ("\\p{L", "missing its closing }"),
        ("a\\", "trailing backslash"),
        ("\\x{110000}", "invalid escape \\x"),
        ("a\udcff", "invalid UTF-8"),
        ("(" * 1000 + ")" * 1000, "nests more than 1000 deep"),
        ("(?:" + "a" * 3400 + "){1000}", "too large"),
    ],
)
def test_invalid_patterns_are_refused_by_name(expr: str, named: str) -> None:
    with pytest.raises(BadRegexpError) as refused:
        check_go_regexp(expr)
    assert named in str(refused.value)
    assert refused.value.expr == expr
    assert 0 <= refused.value.position <= len(expr)
    with pytest.raises(BadRegexpError):
        compile_go_regexp(expr)


def test_refusals_say_go_would_reject() -> None:
    with pytest.raises(BadRegexpError) as refused:
        check_go_regexp("web(?=-1)")
    message = str(refused.value)
    assert "look-ahead (?=...) is not supported by Go's RE2 syntax" in message
    assert "Consul agents" in message
    assert isinstance(refused.value, LocalProtocolError)


def test_errors_survive_pickling() -> None:
    with pytest.raises(BadRegexpError) as refused:
        check_go_regexp("a**")
    copy = pickle.loads(pickle.dumps(refused.value))
    assert (str(copy), copy.expr, copy.position) == (
        str(refused.value),
        "a**",
        refused.value.position,
    )


def test_limits_at_their_edge_are_accepted() -> None:
    check_go_regexp("a{1000}")
    check_go_regexp("((a{10}){10}){10}")
    check_go_regexp("(a{1000}){0,1}")
    check_go_regexp("(" * 999 + ")" * 999)
    check_go_regexp("a{01}")  # a leading zero makes it literal text


def test_scripts_are_valid_but_untranslatable() -> None:
    check_go_regexp("\\p{Greek}+")
    with pytest.raises(UnsupportedRegexpError, match="script"):
        compile_go_regexp("\\p{Greek}+")


def test_deep_nesting_python_cannot_compile_is_reported() -> None:
    expr = "(" * 900 + "a" + ")" * 900
    check_go_regexp(expr)
    with pytest.raises(UnsupportedRegexpError):
        compile_go_regexp(expr)


def test_go_text_reads_undecodable_bytes_as_replacement() -> None:
    raw = b"a\xffb\xe2\x82"
    assert go_text(raw.decode("utf-8", "surrogateescape")) == "a\ufffdb\ufffd\ufffd"


def _go_outcomes() -> tuple[list[str], list[dict[str, Any]]]:
    lines = [
        line
        for line in (DATA / "go_regexp_outcomes.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


SUBJECTS, OUTCOMES = _go_outcomes()


@pytest.mark.parametrize("case", OUTCOMES, ids=lambda c: repr(c["e"])[:30])
def test_agrees_with_go(case: dict[str, Any]) -> None:
    expr = case["e"]
    if not case["ok"]:
        with pytest.raises(BadRegexpError):
            check_go_regexp(expr)
        return
    check_go_regexp(expr)
    try:
        pattern = compile_go_regexp(expr)
    except UnsupportedRegexpError:
        assert "\\p{Greek}" in expr
        return
    found = [pattern.search(go_text(s)) is not None for s in SUBJECTS]
    assert found == case["m"]


@settings(max_examples=400)
@given(st.text(max_size=30))
def test_any_text_is_either_valid_or_refused(expr: str) -> None:
    try:
        check_go_regexp(expr)
    except BadRegexpError as refused:
        assert refused.expr == expr
        return
    # Valid Go must become a Python pattern, or be reported as untranslatable;
    # re.error, RecursionError and the like must not escape.
    try:
        compile_go_regexp(expr)
    except UnsupportedRegexpError:
        return


@settings(max_examples=200)
@given(st.text(max_size=30), st.text(max_size=30))
def test_quoted_text_matches_itself(literal: str, around: str) -> None:
    if "\\E" in literal:
        return
    assert match_string("\\Q" + literal + "\\E", around + literal + around)

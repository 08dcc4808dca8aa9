"""Character classes as sets of code point ranges, and how Python's ``re`` spells them.

A class is kept as a sorted tuple of disjoint, non-adjacent ``(low, high)`` pairs,
so union and negation are exact and the Python pattern built from it matches
precisely the same code points Go's would (case folding aside, see the parser).

The named groups are Go's: Perl's ``\\d``, ``\\s`` and ``\\w`` and the POSIX
``[:name:]`` classes are ASCII-only; ``\\p{...}`` knows Unicode general categories
and scripts. Category members come from Python's :mod:`unicodedata`, whose Unicode
version can differ from the Go build's by a release or two: only code points
assigned in between are classified differently.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from typing import Final

__all__ = [
    "ANY",
    "GO_CATEGORIES",
    "GO_SCRIPTS",
    "MAX_RUNE",
    "PERL_CLASSES",
    "POSIX_CLASSES",
    "Ranges",
    "bracket",
    "category",
    "escape",
    "merge",
    "negate",
    "recent_go_name",
]

MAX_RUNE: Final = 0x10FFFF
Ranges = tuple[tuple[int, int], ...]
ANY: Final[Ranges] = ((0, MAX_RUNE),)


def merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort ranges and join the ones that overlap or touch."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return tuple(out)


def negate(ranges: Ranges) -> Ranges:
    """Every code point not in ``ranges`` (which must already be merged)."""
    out: list[tuple[int, int]] = []
    next_low = 0
    for low, high in ranges:
        if next_low < low:
            out.append((next_low, low - 1))
        next_low = high + 1
    if next_low <= MAX_RUNE:
        out.append((next_low, MAX_RUNE))
    return tuple(out)


def escape(code: int) -> str:
    """One code point as a Python pattern atom that means only itself."""
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def bracket(ranges: Ranges, *, negated: bool = False) -> str:
    """A Python bracket class for non-empty ``ranges``, ``[^...]`` if negated."""
    items = "".join(
        escape(low) if low == high else f"{escape(low)}-{escape(high)}"
        for low, high in ranges
    )
    return f"[{'^' if negated else ''}{items}]"


def _ascii(*spans: str) -> Ranges:
    return merge((ord(span[0]), ord(span[-1])) for span in spans)


#: Perl classes: the ASCII set and whether the escape (upper case) negates it.
_DIGIT: Final = _ascii("09")
_SPACE: Final = _ascii("\t", "\n", "\f", "\r", " ")
_WORD: Final = _ascii("09", "AZ", "az", "_")
PERL_CLASSES: Final[dict[str, tuple[bool, Ranges]]] = {
    "d": (False, _DIGIT),
    "D": (True, _DIGIT),
    "s": (False, _SPACE),
    "S": (True, _SPACE),
    "w": (False, _WORD),
    "W": (True, _WORD),
}

#: POSIX classes inside brackets, by the name between ``[:`` and ``:]``.
POSIX_CLASSES: Final[dict[str, Ranges]] = {
    "alnum": _ascii("09", "AZ", "az"),
    "alpha": _ascii("AZ", "az"),
    "ascii": ((0, 0x7F),),
    "blank": _ascii("\t", " "),
    "cntrl": ((0, 0x1F), (0x7F, 0x7F)),
    "digit": _DIGIT,
    "graph": _ascii("!~"),
    "lower": _ascii("az"),
    "print": _ascii(" ~"),
    "punct": _ascii("!/", ":@", "[`", "{~"),
    "space": _ascii("\t\r", " "),
    "upper": _ascii("AZ"),
    "word": _WORD,
    "xdigit": _ascii("09", "AF", "af"),
}

#: The general categories every Go release since 1.0 accepts in ``\\p{...}``.
_GROUPS: Final = {
    "C": ("Cc", "Cf", "Co", "Cs"),  # Go's C leaves out unassigned code points
    "L": ("Ll", "Lm", "Lo", "Lt", "Lu"),
    "M": ("Mc", "Me", "Mn"),
    "N": ("Nd", "Nl", "No"),
    "P": ("Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps"),
    "S": ("Sc", "Sk", "Sm", "So"),
    "Z": ("Zl", "Zp", "Zs"),
}
GO_CATEGORIES: Final = frozenset(_GROUPS) | frozenset(
    name for members in _GROUPS.values() for name in members
)

#: Script names Go 1.19 (Unicode 13) accepts in ``\\p{...}``. Later releases add
#: a few newer scripts, which older Consul agents would reject.
_SCRIPT_NAMES: Final = """
    Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum
    Bassa_Vah Batak Bengali Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid
    Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian
    Common Coptic Cuneiform Cypriot Cyrillic Deseret Devanagari Dives_Akuru Dogra
    Duployan Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic
    Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Han Hangul Hanifi_Rohingya
    Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inherited Inscriptional_Pahlavi
    Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kayah_Li Kharoshthi
    Khitan_Small_Script Khmer Khojki Khudawadi Lao Latin Lepcha Limbu Linear_A
    Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean
    Marchen Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive
    Meroitic_Hieroglyphs Miao Modi Mongolian Mro Multani Myanmar Nabataean
    Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki
    Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian
    Old_South_Arabian Old_Turkic Oriya Osage Osmanya Pahawh_Hmong Palmyrene
    Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan
    Saurashtra Sharada Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng
    Soyombo Sundanese Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet
    Takri Tamil Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Ugaritic Vai
    Wancho Warang_Citi Yezidi Yi Zanabazar_Square
"""
GO_SCRIPTS: Final = frozenset(_SCRIPT_NAMES.split())

#: Long category names (and other spellings) that only recent Go releases accept,
#: with what every release accepts instead.
_RECENT_NAMES: Final = {
    "letter": r"\p{L}",
    "uppercaseletter": r"\p{Lu}",
    "lowercaseletter": r"\p{Ll}",
    "titlecaseletter": r"\p{Lt}",
    "modifierletter": r"\p{Lm}",
    "otherletter": r"\p{Lo}",
    "casedletter": r"[\p{Lu}\p{Ll}\p{Lt}]",
    "lc": r"[\p{Lu}\p{Ll}\p{Lt}]",
    "mark": r"\p{M}",
    "number": r"\p{N}",
    "decimalnumber": r"\p{Nd}",
    "digit": r"\p{Nd}",
    "punctuation": r"\p{P}",
    "symbol": r"\p{S}",
    "separator": r"\p{Z}",
    "other": r"\p{C}",
    "control": r"\p{Cc}",
    "ascii": "[[:ascii:]]",
}


def recent_go_name(name: str) -> str | None:
    """What every Go release accepts in place of a name only recent ones know."""
    folded = name.replace("_", "").replace("-", "").replace(" ", "").lower()
    if folded in _RECENT_NAMES:
        return _RECENT_NAMES[folded]
    for known in sorted((*GO_CATEGORIES, *GO_SCRIPTS, "Any")):
        if known.replace("_", "").lower() == folded:
            return f"\\p{{{known}}}"
    return None


@functools.cache
def _general_categories() -> dict[str, Ranges]:
    """Every two-letter category's ranges, in one pass over all code points."""
    runs: dict[str, list[tuple[int, int]]] = {}
    start, current = 0, unicodedata.category("\0")
    for code in range(1, MAX_RUNE + 2):
        kind = unicodedata.category(chr(code)) if code <= MAX_RUNE else ""
        if kind != current:
            runs.setdefault(current, []).append((start, code - 1))
            start, current = code, kind
    return {kind: merge(spans) for kind, spans in runs.items()}


@functools.cache
def category(name: str) -> Ranges:
    """The code points of a Go general category name such as ``L`` or ``Nd``."""
    table = _general_categories()
    members = _GROUPS.get(name, (name,))
    return merge(span for member in members for span in table.get(member, ()))

"""Bring an external recogniser's written-form output to the corpus's spoken-form convention.

The asrtools corpora write transcripts as upper-case words of letters and apostrophes
(``I'VE READ SEVEN MILLION BOOKS``). Systems such as Whisper write cased, punctuated text with
digits (``I've read 7 million books.``). `normalize_hypothesis` maps the latter onto the
former so that WER counts recognition errors, not formatting. The rules, in order:

1. Unicode compatibility form (NFKC); typographic apostrophes become ``'``; accents are
   dropped (``café`` -> ``CAFE``).
2. Symbols with a spoken form: ``$N [scale]`` -> ``N [scale] dollars`` (``dollar`` for 1),
   ``N%`` -> ``N percent``, ``&`` -> ``and``.
3. Numbers written with digits become words (American style, no "and"):
   - ``H:MM`` clock times: ``3:10`` -> ``THREE TEN``, ``3:05`` -> ``THREE OH FIVE``,
     ``3:00`` -> ``THREE O'CLOCK``;
   - ordinals ``1st 2nd 23rd 4th`` -> ``FIRST SECOND TWENTY THIRD FOURTH``;
   - decimals read digit by digit after the point: ``2.75`` -> ``TWO POINT SEVEN FIVE``;
   - four-digit numbers 1100-1999 without a thousands comma are read as years:
     ``1990`` -> ``NINETEEN NINETY``, ``1905`` -> ``NINETEEN OH FIVE``,
     ``1900`` -> ``NINETEEN HUNDRED``;
   - other integers (thousands commas allowed, below 10**15) as cardinals:
     ``2005`` -> ``TWO THOUSAND FIVE``, ``1,250`` -> ``ONE THOUSAND TWO HUNDRED FIFTY``;
     a digit string with a leading zero is read digit by digit (``007`` -> ``ZERO ZERO SEVEN``).
   Digits these rules do not cover (e.g. beyond 10**15) are removed with the other
   non-letters below, so such a word counts as an error.
4. Hyphens, slashes and every other character that is not a letter or an apostrophe
   separate words; an apostrophe survives only between two letters (``don't`` stays,
   ``'quoted'`` loses its quotes).
5. Upper-case.

Not handled (they count as errors): spoken forms that differ from the reading above
(``A MILLION`` for ``1 million``, ``TEN AFTER THREE`` for ``3:10``), abbreviations
(``Mr.`` -> ``MR``, the corpus's own spelling), and alternative spellings.
"""
from __future__ import annotations

import re
import unicodedata
from typing import List

NORMALIZER_VERSION = 1  # bump when a rule changes: it enters the audit stage's fingerprint

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_MAX_CARDINAL = 10**15
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})

_NUMBER = r"\d{1,3}(?:,\d{3})+|\d+"
_DOLLARS = re.compile(rf"\$\s?({_NUMBER}(?:\.\d+)?)(\s+(?:thousand|million|billion|trillion)\b)?", re.IGNORECASE)
_PERCENT = re.compile(rf"({_NUMBER}(?:\.\d+)?)\s?%")
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(rf"\b({_NUMBER})\.(\d+)\b")
_INTEGER = re.compile(rf"\b(?:{_NUMBER})\b")
_NOT_WORD = re.compile(r"[^A-Za-z']+")
_STRAY_APOSTROPHE = re.compile(r"(?<![A-Za-z])'|'(?![A-Za-z])")


def _below_thousand(n: int) -> List[str]:
    words: List[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def cardinal_words(n: int) -> List[str]:
    """The lower-case words of a cardinal number, American style (no "and").

    Args:
      n: 0 <= n < 10**15.

    Returns:
      e.g. `["one", "thousand", "two", "hundred", "fifty"]` for 1250.
    """
    if not 0 <= n < _MAX_CARDINAL:
        raise ValueError(f"cardinal_words: {n} is out of range [0, {_MAX_CARDINAL})")
    if n == 0:
        return ["zero"]
    words: List[str] = []
    for value, name in _SCALES:
        count, n = divmod(n, value)
        if count:
            words += _below_thousand(count) + [name]
    return words + _below_thousand(n)


def ordinal_words(n: int) -> List[str]:
    """The words of an ordinal number: 21 -> `["twenty", "first"]`, 40 -> `["fortieth"]`."""
    words = cardinal_words(n)
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return words


def year_words(n: int) -> List[str]:
    """A year 1100-1999 read as two pairs: 1990 -> nineteen ninety, 1905 -> nineteen oh five."""
    century, rest = divmod(n, 100)
    if rest == 0:
        return cardinal_words(century) + ["hundred"]
    return cardinal_words(century) + (["oh"] if rest < 10 else []) + cardinal_words(rest)


def _digits(text: str) -> List[str]:
    return [_ONES[int(d)] for d in text]


def integer_words(text: str) -> List[str]:
    """Words of an integer written with digits (`"1,250"`, `"1990"`, `"007"`); [] if too big."""
    plain = text.replace(",", "")
    if len(plain) > 1 and plain.startswith("0"):
        return _digits(plain)
    value = int(plain)
    if "," not in text and len(plain) == 4 and 1100 <= value <= 1999:
        return year_words(value)
    return cardinal_words(value) if value < _MAX_CARDINAL else []


def _spoken(words: List[str]) -> str:
    return " " + " ".join(words) + " "


def _dollars(match: "re.Match[str]") -> str:
    amount, scale = match.group(1), match.group(2) or ""
    unit = "dollar" if amount == "1" and not scale else "dollars"
    return f" {amount}{scale} {unit} "


def _time(match: "re.Match[str]") -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return _spoken(cardinal_words(hours) + ["o'clock"])
    return _spoken(cardinal_words(hours) + (["oh"] if minutes < 10 else []) + cardinal_words(minutes))


def _decimal(match: "re.Match[str]") -> str:
    return _spoken(integer_words(match.group(1)) + ["point"] + _digits(match.group(2)))


def spell_numbers(text: str) -> str:
    """Replace digits, `$`, `%` and `&` in `text` by words (rules 2-3 of the module docstring)."""
    text = _DOLLARS.sub(_dollars, text)
    text = _PERCENT.sub(lambda m: f" {m.group(1)} percent ", text)
    text = text.replace("&", " and ")
    text = _TIME.sub(_time, text)
    text = _ORDINAL.sub(lambda m: _spoken(ordinal_words(int(m.group(1)))), text)
    text = _DECIMAL.sub(_decimal, text)
    return _INTEGER.sub(lambda m: _spoken(integer_words(m.group(0))), text)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_hypothesis(text: str) -> str:
    """A recogniser's written-form output in the corpus convention (see the module docstring).

    Args:
      text: e.g. `"I've read 7 million books."`.

    Returns:
      Upper-case words of letters and apostrophes joined by single spaces, e.g.
      `"I'VE READ SEVEN MILLION BOOKS"` (empty if nothing is left).
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = spell_numbers(_strip_accents(text))
    text = _NOT_WORD.sub(" ", text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return " ".join(text.upper().split())

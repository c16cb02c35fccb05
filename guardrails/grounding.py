"""Faithfulness check: numbers and names in an answer must come from its sources (or the question).

A small model asked something its sources do not say tends to invent a plausible number or name
("a typical lifespan of 10 to 12 years"). Before a piece of the answer is shown, its numbers and
proper names are looked up in the text of the sources the model saw; a piece that states one they
do not contain is not shown, and the answer ends before it (or, if nothing was shown yet, becomes
"the documents do not say"). It is a lookup, not a model call, so it costs microseconds.

Numbers are what a small model invents (bench/qa.py: every invented answer to an unanswerable
question stated a number); names are checked only in `Grounding.NAMES` mode, because answers
legitimately name things the sources spell differently (a country from a city's article).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from enum import StrEnum

_CITATION = re.compile(r"\[\d{1,2}\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\W*$")
# Capitalised words that are not names: sentence openers and words the answer template uses.
_COMMON = frozenset(
    """a an the this that these those it its in on at of for to from by with as and or but not no yes
    according based however also there here they he she we you i my our their his her which who whom
    what when where why how source sources document documents answer question yes no none unknown
    january february march april may june july august september october november december monday
    tuesday wednesday thursday friday saturday sunday
    english french german spanish italian portuguese dutch latin greek russian chinese japanese arabic
    """.split()  # noqa: SIM905 - a word list; languages: "means 'Dwarf Biter' in English" names no fact
)
_QUOTES = "'\"’‘“”-"


class Grounding(StrEnum):
    """What an answer piece must not state unless its sources (or the question) do."""

    OFF = "off"
    NUMBERS = "numbers"
    NAMES = "numbers+names"


def _fold(text: str) -> str:
    """Lower-case, accents stripped, thousands separators and dashes unified, for lookups."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("–", "-").replace("—", "-").replace("’", "'")
    return re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)


def claims(text: str, names: bool = True) -> list[str]:
    """The numbers and (with `names`) capitalised, name-like words of a piece of answer text."""
    text = _CITATION.sub(" ", text)
    found = [m.group() for m in _NUMBER.finditer(text)]
    if not names:
        return found
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or word.lower() in _COMMON:
            continue
        if _SENTENCE_START.search(text[: m.start()]):
            continue  # capitalised because it opens a sentence
        found.append(word)
    return found


_SMALL = """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty""".split()  # noqa: SIM905 - a word list


def _found(needle: str, haystack: str) -> bool:
    """A number must match whole ("30" is not in "1300") or, up to twenty, as a word ("3" in
    "three stripes"); a word may be part of a longer one."""
    if not needle[0].isdigit():
        return needle in haystack
    if re.search(rf"(?<![\d.,]){re.escape(needle)}(?![\d]|[.,]\d)", haystack):
        return True
    return (
        needle.isdigit()
        and int(needle) < len(_SMALL)
        and re.search(rf"\b{_SMALL[int(needle)]}\b", haystack) is not None
    )


def unsupported(text: str, evidence: Iterable[str], names: bool = True) -> list[str]:
    """Claims in `text` that appear nowhere in the evidence (the sources' text and the question)."""
    haystack = _fold(" ".join(evidence))
    out = []
    for claim in claims(text, names):
        # "'Dwarf Biter'" and "King's" are looked up as "biter" and "king"
        needle = re.sub(r"'s$", "", _fold(claim).strip(".,")).strip(_QUOTES)
        if needle and not _found(needle, haystack):
            out.append(claim)
    return out

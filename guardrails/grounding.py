"""Faithfulness check: numbers and names in an answer must come from its sources (or the question).

A small model asked something its sources do not say tends to invent a plausible number or name
("a typical lifespan of 10 to 12 years"). Before a piece of the answer is shown, its numbers and
proper names are looked up in the text of the sources the model saw; a piece that states one they
do not contain is not shown, and the answer ends before it (or, if nothing was shown yet, becomes
"the documents do not say"). It is a lookup, not a model call, so it costs microseconds.

Numbers are what a small model invents (bench/qa.py: every invented answer to an unanswerable
question stated a number); names are checked only in `Grounding.NAMES` mode, because answers
legitimately name things the sources spell differently (a country from a city's article).

Where to look (`Evidence`): in the documents the piece cites, not in every source. An invented
answer is usually a neighbouring fact from another retrieved document (asked how many visit a
monument, the model gave the Eiffel Tower's visitor count and cited the monument's article), so it
is found somewhere in the sources but not where the answer says it is. A piece that cites nothing
may use what the answer cited before; with no citation at all, every source counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

_CITATION = re.compile(r"\[(\d{1,2})\]")  # "[3]": cut out of claims, and its number read for the scope
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


class Scope(StrEnum):
    """Where a claim is looked up: the documents the piece cites, or any source the model saw."""

    CITED = "cited"
    ALL = "all"


@dataclass(frozen=True)
class Evidence:
    """What an answer may draw on: its sources, numbered from 1 as in the prompt, each with the
    document it comes from, and the question (which may name what the answer repeats)."""

    sources: Sequence[tuple[str, str]]  # (document, text)
    question: Sequence[str] = ()
    scope: Scope = Scope.CITED

    def for_piece(self, piece: str, before: str = "") -> list[str]:
        """The texts `piece` may draw on: every chunk of the documents it cites (or, citing none, of
        those cited in `before`, the answer so far); with no citation yet, or `Scope.ALL`, all."""
        cited = self.cited(piece) or self.cited(before)
        if self.scope is Scope.ALL or not cited:
            return [*(text for _, text in self.sources), *self.question]
        docs = {self.sources[n - 1][0] for n in cited}
        return [*(text for doc, text in self.sources if doc in docs), *self.question]

    def cited(self, text: str) -> list[int]:
        return [n for n in map(int, _CITATION.findall(text)) if 1 <= n <= len(self.sources)]


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
_TENS = {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALE = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
          "trillion": 1_000_000_000_000}  # fmt: skip
_NUMBER_WORDS = {w: n for n, w in enumerate(_SMALL)} | _TENS
_QUANTITY = re.compile(
    r"(\d+(?:\.\d+)?|\b(?:" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b)"
    r"(?:\s*-?\s*(hundred|thousand|million|billion|trillion)\b)?"
)


def _quantity(head: str, scale: str | None) -> tuple[float, float]:
    """(value, tolerance): "1.5 million" is 1,500,000 give or take 50,000, the precision it was
    written with; "twelve hundred" is 1,200; a plain number is exact."""
    value = float(head) if head[0].isdigit() else float(_NUMBER_WORDS[head])
    if not scale:
        return value, 0.0
    decimals = len(head.split(".")[1]) if "." in head else 0
    tolerance = 0.0 if scale == "hundred" else 0.5 * _SCALE[scale] / 10**decimals
    return value * _SCALE[scale], tolerance


def _same_quantity(claim: str, context: str, haystack: str) -> bool:
    """The number `claim`, read with any scale word after it in `context` (the answer), is a quantity
    the haystack states in some form: "1.5 million" for "1,500,000", "12,000" for "twelve thousand"."""
    scale = re.search(rf"(?<![\d.]){re.escape(claim)}\s*-?\s*({'|'.join(_SCALE)})\b", context)
    value, tolerance = _quantity(claim, scale.group(1) if scale else None)
    stated = (_quantity(m.group(1), m.group(2))[0] for m in _QUANTITY.finditer(haystack))
    return any(abs(v - value) <= tolerance for v in stated)


def _found(needle: str, haystack: str, context: str = "") -> bool:
    """A number must match whole ("30" is not in "1300") or as the same quantity written otherwise
    ("3" in "three stripes", "1.5 million" in "1,500,000"); a name matches as itself, its lemma
    ("Vikings", "Viking"), with its hyphens as spaces, or as the country or demonym it pairs with
    ("Swedish" in a text that says "Sweden"); a word may be part of a longer one."""
    if not needle[0].isdigit():
        return any(form in haystack for form in _name_forms(needle))
    if re.search(rf"(?<![\d.,]){re.escape(needle)}(?![\d]|[.,]\d)", haystack):
        return True
    return _is_number(needle) and _same_quantity(needle, context, haystack)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def _demonyms() -> dict[str, frozenset[str]]:
    """Country names and demonyms (countryinfo's data), each folded, to the forms it pairs with."""
    from countryinfo import all_countries

    pairs: defaultdict[str, set[str]] = defaultdict(set)
    for country in all_countries():
        name, demonym = country.name(), country.demonym()
        if not (name and demonym):
            continue
        forms = {_fold(name), _fold(demonym)}
        for form in forms:
            pairs[form] |= forms
    return {k: frozenset(v) for k, v in pairs.items()}


@lru_cache(maxsize=4096)
def _name_forms(needle: str) -> frozenset[str]:
    import simplemma

    forms = {needle, simplemma.lemmatize(needle, lang="en").lower()}
    if "-" in needle:
        forms |= {needle.replace("-", " "), needle.replace("-", "")}
    for form in list(forms):
        forms |= _demonyms().get(form, frozenset())
    return frozenset(f for f in forms if f)


def unsupported(text: str, evidence: Iterable[str], names: bool = True) -> list[str]:
    """Claims in `text` that appear nowhere in the evidence (the sources' text and the question)."""
    haystack = _fold(" ".join(evidence))
    context = _fold(_CITATION.sub(" ", text))
    out = []
    for claim in claims(text, names):
        # "'Dwarf Biter'" and "King's" are looked up as "biter" and "king"
        needle = re.sub(r"'s$", "", _fold(claim).strip(".,")).strip(_QUOTES)
        if needle and not _found(needle, haystack, context):
            out.append(claim)
    return out

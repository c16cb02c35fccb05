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

Korean (text with Hangul) has no capital letters: its names are the proper nouns (NNP) of Kiwi, a
Korean morphological analyser loaded on the first Korean text (1-2 s and 300 MiB), looked up
without their particles (홍길동이 as 홍길동); its numbers may carry scale words (5만 is 50,000,
1억 2천만 is 120,000,000) and are compared by value with the sources' quantities either way, and a
counter after a number (19세, 3개, 5회) is no part of it.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

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
_HANGUL = re.compile(r"[\uac00-\ud7a3]")  # a precomposed syllable: the text is (partly) Korean
_JAMO = re.compile(r"[\u1100-\u11ff]")  # what NFKD makes of a syllable
# A Korean quantity: digits with a scale word (5만, 1.5억, 2,000만, 3천), groups of them (1억 2천만).
# 조 is also the counter of articles (제3조), which a lone "3조" claim may mean (see `_found`).
_KO_SMALL = {"": 1, "십": 10, "백": 100, "천": 1_000}
_KO_LARGE = {"": 1, "만": 10_000, "억": 100_000_000, "조": 1_000_000_000_000}
_KO_GROUP = r"(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:[십백천]?[만억조]|[백천])"
_KO_QUANTITY = re.compile(rf"(?<![\d.,]){_KO_GROUP}(?:\s*{_KO_GROUP})*")
_KO_PART = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)([십백천]?)([만억조]?)")
_KO_NUMBER = re.compile(rf"{_KO_QUANTITY.pattern}|{_NUMBER.pattern}")


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
    if _JAMO.search(text):  # Hangul syllables back together, so that Korean is matched syllable by syllable
        text = unicodedata.normalize("NFC", text)
    return re.sub(r"(?<=\d)[,\u202f ](?=\d{3}(?:\b|[\uac00-\ud7a3]))", "", text)  # 50,000명 too


def claims(text: str, names: bool = True) -> list[str]:
    """The numbers and (with `names`) capitalised, name-like words of a piece of answer text; in Korean
    text, numbers with their scale words ("1억 2천만") and Kiwi's proper nouns."""
    text = _CITATION.sub(" ", text)
    korean = _HANGUL.search(text) is not None
    found = [m.group() for m in (_KO_NUMBER if korean else _NUMBER).finditer(text)]
    if not names:
        return found
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or word.lower() in _COMMON:
            continue
        if _SENTENCE_START.search(text[: m.start()]):
            continue  # capitalised because it opens a sentence
        if korean:
            word = re.sub(r"[\uac00-\ud7a3]+$", "", word)  # "Python으로": the name without its particle
        found.append(word)
    if korean:
        found += [t.form for t in kiwi().tokenize(text) if t.tag == "NNP" and _HANGUL.search(t.form)]
    return found


_kiwi: Any = None
_kiwi_lock = threading.Lock()


def kiwi() -> Kiwi:
    """Kiwi (kiwipiepy), loaded on first use: 1-2 s and 300 MiB, paid only by a process that checks
    Korean text. Its multi-word proper-noun dictionary is left out (180 MiB more): a name is looked up
    word by word, as the sources may space it otherwise."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                analyser = Kiwi(load_multi_dict=False)
                analyser.tokenize("")  # Kiwi finishes loading its model on the first analysis
                _kiwi = analyser
    return _kiwi


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
    return any(abs(v - value) <= tolerance for v in _stated(haystack))


def _stated(haystack: str) -> list[float]:
    """Every quantity the haystack states, in words or digits, with any scale word (English or Korean)."""
    stated = [_quantity(m.group(1), m.group(2))[0] for m in _QUANTITY.finditer(haystack)]
    if _HANGUL.search(haystack):
        stated += [_korean_quantity(m.group())[0] for m in _KO_QUANTITY.finditer(haystack)]
    return stated


def _korean_quantity(text: str) -> tuple[float, float]:
    """(value, tolerance) of digits with Korean scale words: "1억 2천만" is 120,000,000, give or take
    5,000,000 (half its last unit, as `_quantity` reads "1.5 million"); "3백" is exactly 300."""
    value, unit, decimals = 0.0, 1, 0
    for head, small, large in _KO_PART.findall(text):
        head = head.replace(",", "")
        unit = _KO_SMALL[small] * _KO_LARGE[large]
        value += float(head) * unit
        decimals = len(head.split(".")[1]) if "." in head else 0
    return value, 0.0 if unit <= 100 else 0.5 * unit / 10**decimals


def _found(needle: str, haystack: str, context: str = "") -> bool:
    """A number must match whole ("30" is not in "1300") or as the same quantity written otherwise
    ("3" in "three stripes", "1.5 million" in "1,500,000"); a name matches as itself, its lemma
    ("Vikings", "Viking"), with its hyphens as spaces, or as the country or demonym it pairs with
    ("Swedish" in a text that says "Sweden"); a word may be part of a longer one."""
    if not needle[0].isdigit():
        return any(form in haystack for form in _name_forms(needle))
    if re.search(rf"(?<![\d.,]){re.escape(needle)}(?![\d]|[.,]\d)", haystack):
        return True
    if _KO_QUANTITY.fullmatch(needle):  # "5만" for "50,000", "1억 2천만" for "120,000,000"
        value, tolerance = _korean_quantity(needle)
        if any(abs(v - value) <= tolerance for v in _stated(haystack)):
            return True
        # "3조" may be an article's number (제3조): the bare number, not one with a scale word, will do
        bare = re.fullmatch(r"(\d+)조", needle)
        return (
            bare is not None
            and re.search(rf"(?<![\d.,]){bare.group(1)}(?![\d]|[.,]\d|[십백천]?[만억조]|[백천])", haystack)
            is not None
        )
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

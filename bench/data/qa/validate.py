"""Re-check every programmatically checkable rule of the ragbot QA set; exit 1 on any failure.

Reads corpus.json, questions.jsonl and unanswerable_checks.json next to this file, and the MRAG
Wikipedia v2 articles from $RAGBOT_EVALDATA/mrag (default: ../shared/evaldata/mrag beside the repo).

    python bench/data/qa/validate.py

Checks:
  corpus       source is the v2 file; 300 unique titles, each present exactly once in v2 and absent
               from v1 (wikipedia_articles_v1.json.bz2 is opened only to read its titles for this check)
  schema       ids (s-/f-/u-NNN), kinds, turn counts, 100 single / 50 followup / 50 unanswerable
  split        equals make_split.assign() (seed 2026, half dev / half test per kind)
  answers      1-4 aliases per answerable turn, each 1-5 words; at least one alias occurs in the gold
               article's text (case-insensitive); no alias occurs in the gold title or in the question
  gold titles  present in the corpus; no article is gold for more than 2 questions; >= 20 categories
  follow-ups   the second turn does not repeat a distinctive word of its subject's title
  unanswerable no answers; the subject occurs in the gold text; no corpus article that mentions the
               subject contains any of the question's "absent" terms or regexes (a plausible answer)
Warnings (printed, not failures): aliases that also occur in other corpus articles, for review.
"""

from __future__ import annotations

import bz2
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/data: the checks all sets share
from _validate import Outcome, Row, Rules, check_questions, read_questions, report

HERE = Path(__file__).resolve().parent

EVALDATA = Path(os.environ.get("RAGBOT_EVALDATA", HERE.parents[3] / "shared" / "evaldata"))
SOURCE = "mrag/wikipedia_articles_v2.json.bz2"
V1 = "mrag/wikipedia_articles_v1.json.bz2"
COUNTS = {"single": 100, "followup": 50, "unanswerable": 50}
# Title words too generic to count as "naming the subject" in a follow-up turn.
_GENERIC_WORDS = """
    falls waterfall waterfalls prison tree film festival international mount pope language programming
    album cheese drink soft explosion disaster building church tower castle mausoleum tomb station
    airline linux machine novel book series ship text editor dog breed fantastic european vault burial
    grand ducal world york new english state
"""
GENERIC = set(_GENERIC_WORDS.split())


def name_words(title: str) -> set[str]:
    base = re.sub(r"\(.*?\)", " ", title)
    return {w.lower() for w in re.findall(r"[^\W\d_]{4,}", base)} - GENERIC


def follow_up_hits(turns: list[Row]) -> set[str]:
    subject = turns[0]["gold_titles"][0]
    return name_words(subject) & {w.lower() for w in re.findall(r"[^\W\d_]+", turns[1]["question"])}


def main() -> int:
    out = Outcome()
    errors = out.errors
    with bz2.open(EVALDATA / SOURCE) as f:
        docs = json.load(f)
    title_count = Counter(d["title"] for d in docs)
    with bz2.open(EVALDATA / V1) as f:
        v1_titles = {d["title"] for d in json.load(f)}
    by_title = {d["title"]: d for d in docs}

    corpus = json.loads((HERE / "corpus.json").read_text(encoding="utf-8"))
    if corpus.get("source") != SOURCE:
        errors.append(f"corpus source is {corpus.get('source')!r}, expected {SOURCE!r}")
    titles = corpus["titles"]
    if len(titles) != 300 or len(set(titles)) != 300:
        errors.append(f"corpus has {len(titles)} titles ({len(set(titles))} unique), expected 300 unique")
    for t in titles:
        if title_count[t] != 1:
            errors.append(f"corpus title {t!r} occurs {title_count[t]} times in v2 (must be exactly 1)")
        if t in v1_titles:
            errors.append(f"corpus title {t!r} is also a v1 article (the set uses v2-only articles)")
    texts = {t: by_title[t]["text"] for t in titles if t in by_title}
    low = {t: x.lower() for t, x in texts.items()}

    rows, checks = read_questions(HERE)
    rules = Rules(
        counts=COUNTS,
        make_split="bench/data/qa/make_split.py",
        corpus=set(titles),
        answer_texts=low,
        answer_key=str.lower,
        subject_texts=low,
        subject_key=str.lower,
        regex_texts=texts,
        follow_up_hits=follow_up_hits,
    )
    check_questions(rows, checks, rules, out)
    for g, n in out.per_gold.items():
        if n > 2:
            errors.append(f"article {g!r} is gold for {n} questions (max 2)")
    categories = {by_title[g]["label"] for g in out.per_gold if g in by_title}
    if len(categories) < 20:
        errors.append(f"questions cover only {len(categories)} categories (need >= 20)")

    print(
        f"corpus: {len(titles)} titles, {len(set(by_title[t]['label'] for t in titles if t in by_title))} categories"
    )
    print(
        f"questions: {len(rows)}; gold articles: {len(out.per_gold)}; question categories: {len(categories)}"
    )
    return report(rows, out)


if __name__ == "__main__":
    sys.exit(main())

"""Re-check every programmatically checkable rule of the ragbot Korean technical-notes QA set; exit 1 on
any failure.

Reads the articles in docs/ (front matter `title:`, then the body; bench/data/_docs.py, which
bench/qa.py also uses to ingest them), questions.jsonl and unanswerable_checks.json next to this file.

    python bench/data/qa_ko_tech/validate.py        # -v also lists the review warnings

Checks:
  corpus       6 articles in docs/, unique titles; each body 500-900 words (whitespace-separated) and
               written in Korean (Hangul in at least half of its words)
  schema       ids (s-/f-/u-NNN) unique, kinds, turn counts, 22 single / 8 followup / 10 unanswerable;
               every question contains Hangul
  split        every row has one; equals make_split.assign() (seed 2026, half dev / half test per kind)
  answers      1-4 aliases per answerable turn, each 1-5 words and at least 2 characters; at least one
               alias occurs in the gold article, compared as bench/qa.py compares answers (lower case,
               dashes unified, digits without thousands separators) and with all whitespace removed,
               because Korean spacing varies ("3만 2천", "3만2천"); no alias occurs in the gold title
               or the question
  gold titles  present in the corpus; every article is gold for at least one question
  follow-ups   the second turn does not repeat a distinctive word of its subject article's title
  unanswerable no answers; a subject term occurs in the gold article; no article that mentions a
               subject term contains any of the question's "absent" terms (compared without
               whitespace) or matches its "absent_regex" (searched in the text with whitespace runs
               collapsed to one space)
Warnings (printed, not failures): aliases that also occur in other articles, for review.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/data: the checks all sets share
from _docs import read_articles
from _validate import Outcome, Row, Rules, check_questions, read_questions, report

HERE = Path(__file__).resolve().parent

N_ARTICLES = 6
WORDS = (500, 900)
COUNTS = {"single": 22, "followup": 8, "unanswerable": 10}
# Title words too generic to count as "naming the subject" in a follow-up turn.
GENERIC = {"정리", "노트", "메모", "공부", "복습", "이해하기", "다시", "보기", "실전", "llm"}
HANGUL = re.compile(r"[가-힣]")


def norm(text: str) -> str:
    """As bench/qa.py compares answers: lower case, dashes unified, digits without thousands separators."""
    text = text.lower().replace("–", "-").replace("—", "-")
    return re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)


def squash(text: str) -> str:
    """norm(), then every whitespace character removed."""
    return re.sub(r"\s+", "", norm(text))


def name_words(title: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[가-힣A-Za-z]{2,}", title)} - GENERIC


def follow_up_hits(turns: list[Row]) -> set[str]:
    second = squash(turns[1]["question"])
    return {w for g in turns[0]["gold_titles"] for w in name_words(g) if w in second}


def main() -> int:
    out = Outcome()
    errors = out.errors
    articles = read_articles(HERE)
    titles = [a.title for a in articles]
    if len(articles) != N_ARTICLES:
        errors.append(f"docs/ has {len(articles)} articles, expected {N_ARTICLES}")
    if len(set(titles)) != len(titles):
        errors.append("article titles are not unique")
    for a in articles:
        words = a.text.split()
        if not WORDS[0] <= len(words) <= WORDS[1]:
            errors.append(f"{a.file}: {len(words)} words, expected {WORDS[0]}-{WORDS[1]}")
        if sum(bool(HANGUL.search(w)) for w in words) * 2 < len(words):
            errors.append(f"{a.file}: fewer than half of its words are Korean")
    texts = {a.title: a.text for a in articles}

    rows, checks = read_questions(HERE)
    for r in rows:
        for n, turn in enumerate(r.get("turns", [])):
            if not HANGUL.search(turn["question"]):
                errors.append(f"{r.get('id')} turn {n}: the question has no Hangul")
    rules = Rules(
        counts=COUNTS,
        make_split="bench/data/qa/make_split.py qa_ko_tech",
        corpus=set(texts),
        answer_texts=(squashed := {t: squash(x) for t, x in texts.items()}),
        answer_key=squash,
        subject_texts=squashed,
        subject_key=squash,
        regex_texts={t: re.sub(r"\s+", " ", x) for t, x in texts.items()},
        follow_up_hits=follow_up_hits,
        alias_rule="is not 1-5 words of 2+ characters",
    )
    check_questions(rows, checks, rules, out)
    for t in sorted(rules.corpus - set(out.per_gold)):
        errors.append(f"article {t!r} is gold for no question")

    print(f"corpus: {len(articles)} articles in {HERE / 'docs'}")
    print(f"questions: {len(rows)}; conversations per gold article:")
    for a in articles:
        print(f"  {out.per_gold[a.title]:3d}  {len(a.text.split()):4d} words  {a.file:26s} {a.title}")
    return report(rows, out, first_warning=True)


if __name__ == "__main__":
    sys.exit(main())

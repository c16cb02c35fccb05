"""Re-check every programmatically checkable rule of the ragbot lead-section QA set; exit 1 on any failure.

Reads corpus.json, questions.jsonl and unanswerable_checks.json next to this file, the existing set's
../qa/corpus.json, and the MRAG Wikipedia articles from $RAGBOT_EVALDATA/mrag (default:
../shared/evaldata/mrag beside the repo).

    python bench/data/qa_leads/validate.py        # -v also lists the review warnings

Checks:
  corpus       source is the v2 file; 160 unique titles, each present exactly once in v2, absent from v1
               (wikipedia_articles_v1.json.bz2 is opened only to read its titles) and absent from the
               existing QA set's corpus (bench/data/qa/corpus.json)
  schema       ids (s-/f-/u-NNN) unique, kinds, turn counts, 60 single / 20 followup / 30 unanswerable
  split        every row has one; equals make_split.assign() (seed 2026, half dev / half test per kind)
  answers      1-4 aliases per answerable turn, each 1-5 words; at least one alias occurs in the gold
               article's text (case-insensitive, dashes unified, digits without thousands separators, as
               bench/qa.py matches answers); no alias occurs in the gold title or in the question
  gold titles  present in the corpus; no article is gold for more than 2 questions; >= 20 categories
  follow-ups   the second turn does not repeat a distinctive word of its subject's title
  unanswerable no answers; the subject occurs in the gold text; no corpus article that mentions the
               subject contains any of the question's "absent" terms or regexes (a plausible answer)
Warnings (printed, not failures): aliases that also occur in other corpus articles, for review.
"""

from __future__ import annotations

import bz2
import importlib.util as _util  # the split rule lives beside the first set
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

_spec = _util.spec_from_file_location(
    "make_split", Path(__file__).resolve().parents[1] / "qa" / "make_split.py"
)
assert _spec and _spec.loader
make_split = _util.module_from_spec(_spec)
_spec.loader.exec_module(make_split)
KINDS, assign = make_split.KINDS, make_split.assign

HERE = Path(__file__).resolve().parent

EVALDATA = Path(os.environ.get("RAGBOT_EVALDATA", HERE.parents[3] / "shared" / "evaldata"))
SOURCE = "mrag/wikipedia_articles_v2.json.bz2"
V1 = "mrag/wikipedia_articles_v1.json.bz2"
OTHER_SET = HERE.parent / "qa" / "corpus.json"
N_TITLES = 160
COUNTS = {"single": 60, "followup": 20, "unanswerable": 30}
PREFIX = {"single": "s", "followup": "f", "unanswerable": "u"}
# Title words too generic to count as "naming the subject" in a follow-up turn.
_GENERIC_WORDS = """
    station railway research battle language film shark dance calendar search engine mozart violin
    sonata concerto months days week
"""
GENERIC = set(_GENERIC_WORDS.split())


def norm(text: str) -> str:
    """Lower-case, digits without thousands separators, dashes unified (as bench/qa.py)."""
    text = text.lower().replace("–", "-").replace("—", "-")
    return re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)


def name_words(title: str) -> set[str]:
    base = re.sub(r"\(.*?\)", " ", title)
    return {w.lower() for w in re.findall(r"[^\W\d_]{4,}", base)} - GENERIC


def main() -> int:
    errors: list[str] = []
    warnings: list[str] = []
    with bz2.open(EVALDATA / SOURCE) as f:
        docs = json.load(f)
    title_count = Counter(d["title"] for d in docs)
    with bz2.open(EVALDATA / V1) as f:
        v1_titles = {d["title"] for d in json.load(f)}
    other_titles = set(json.loads(OTHER_SET.read_text(encoding="utf-8"))["titles"])
    by_title = {d["title"]: d for d in docs}

    corpus = json.loads((HERE / "corpus.json").read_text(encoding="utf-8"))
    if corpus.get("source") != SOURCE:
        errors.append(f"corpus source is {corpus.get('source')!r}, expected {SOURCE!r}")
    titles = corpus["titles"]
    if len(titles) != N_TITLES or len(set(titles)) != N_TITLES:
        errors.append(
            f"corpus has {len(titles)} titles ({len(set(titles))} unique), expected {N_TITLES} unique"
        )
    for t in titles:
        if title_count[t] != 1:
            errors.append(f"corpus title {t!r} occurs {title_count[t]} times in v2 (must be exactly 1)")
        if t in v1_titles:
            errors.append(f"corpus title {t!r} is also a v1 article (the set uses v2-only articles)")
        if t in other_titles:
            errors.append(f"corpus title {t!r} is also in {OTHER_SET.parent.name}/corpus.json")
    in_corpus = set(titles)
    texts = {t: by_title[t]["text"] for t in titles if t in by_title}
    low = {t: x.lower() for t, x in texts.items()}
    normed = {t: norm(x) for t, x in texts.items()}

    rows = [
        json.loads(line)
        for line in (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    checks = json.loads((HERE / "unanswerable_checks.json").read_text(encoding="utf-8"))
    ids = [r.get("id") for r in rows]
    if len(ids) != len(set(ids)):
        errors.append(f"duplicate ids: {sorted(i for i, n in Counter(ids).items() if n > 1)}")
    kinds = Counter(r.get("kind") for r in rows)
    if dict(kinds) != COUNTS:
        errors.append(f"kind counts {dict(kinds)} != {COUNTS}")
    expected_split = assign(rows)

    per_article: Counter[str] = Counter()
    categories: set[str] = set()
    conflicts = 0
    for r in rows:
        rid, kind, turns = r.get("id"), r.get("kind"), r.get("turns", [])
        if set(r) != {"id", "kind", "turns", "split"}:
            errors.append(f"{rid}: keys {sorted(r)}")
        if kind not in COUNTS or not re.fullmatch(PREFIX.get(kind, "?") + r"-\d{3}", str(rid)):
            errors.append(f"{rid}: bad id or kind {kind!r}")
            continue
        if r.get("split") not in ("dev", "test"):
            errors.append(f"{rid}: no split assigned (run bench/data/qa/make_split.py qa_leads)")
        elif r["split"] != expected_split[rid]:
            errors.append(
                f"{rid}: split {r['split']!r} != {expected_split[rid]!r} (run bench/data/qa/make_split.py qa_leads)"
            )
        if len(turns) != (2 if kind == "followup" else 1):
            errors.append(f"{rid}: {len(turns)} turns")
            continue
        golds = {g for t in turns for g in t["gold_titles"]}
        for g in golds:
            per_article[g] += 1
            if g in by_title:
                categories.add(by_title[g]["label"])
        for n, turn in enumerate(turns):
            q, answers, gold = turn["question"], turn["answers"], turn["gold_titles"]
            if set(turn) != {"question", "answers", "gold_titles"}:
                errors.append(f"{rid} turn {n}: keys {sorted(turn)}")
            if not gold or any(g not in in_corpus for g in gold):
                errors.append(f"{rid} turn {n}: gold titles {gold} not all in corpus")
                continue
            if kind == "unanswerable":
                if answers:
                    errors.append(f"{rid}: unanswerable question has answers")
                continue
            gtext = " ".join(normed[g] for g in gold)
            if not 1 <= len(answers) <= 4:
                errors.append(f"{rid} turn {n}: {len(answers)} aliases (1-4 allowed)")
            for a in answers:
                if len(a.strip()) < 2 or not 1 <= len(a.split()) <= 5:
                    errors.append(f"{rid} turn {n}: alias {a!r} is not 1-5 words")
                if any(norm(a) in norm(g) for g in gold):
                    errors.append(f"{rid} turn {n}: alias {a!r} is contained in the gold title")
                if norm(a) in norm(q):
                    errors.append(f"{rid} turn {n}: alias {a!r} is contained in the question")
            if not any(norm(a) in gtext for a in answers):
                errors.append(f"{rid} turn {n}: no alias of {answers} occurs in the gold text")
            others = sorted(t for t in in_corpus - set(gold) if any(norm(a) in normed[t] for a in answers))
            if others:
                conflicts += 1
                warnings.append(
                    f"{rid} turn {n}: {answers} also in {others[:4]}{'...' if len(others) > 4 else ''}"
                )
        if kind == "followup":
            subject = turns[0]["gold_titles"][0]
            second = {w.lower() for w in re.findall(r"[^\W\d_]+", turns[1]["question"])}
            hits = name_words(subject) & second
            if hits:
                errors.append(f"{rid}: follow-up turn names its subject ({sorted(hits)})")
        if kind == "unanswerable":
            c = checks.get(rid)
            if not c:
                errors.append(f"{rid}: no entry in unanswerable_checks.json")
                continue
            gold = turns[0]["gold_titles"][0]
            subj = [s.lower() for s in c["subject"]]
            if not any(s in low.get(gold, "") for s in subj):
                errors.append(f"{rid}: no subject term {c['subject']} in the gold text")
            if not c["absent"] and not c["absent_regex"]:
                errors.append(f"{rid}: no absent terms to check")
            for t, text in low.items():
                if not any(s in text for s in subj):
                    continue
                for a in c["absent"]:
                    if a.lower() in text:
                        errors.append(f"{rid}: corpus article {t!r} mentions the subject and contains {a!r}")
                for rx in c["absent_regex"]:
                    if re.search(rx, texts[t]):
                        errors.append(f"{rid}: corpus article {t!r} mentions the subject and matches {rx!r}")
    if set(checks) != {r.get("id") for r in rows if r.get("kind") == "unanswerable"}:
        errors.append("unanswerable_checks.json ids do not match the unanswerable questions")
    for g, n in per_article.items():
        if n > 2:
            errors.append(f"article {g!r} is gold for {n} questions (max 2)")
    if len(categories) < 20:
        errors.append(f"questions cover only {len(categories)} categories (need >= 20)")

    split_counts = Counter((r.get("kind"), r.get("split")) for r in rows)
    n_labels = len({by_title[t]["label"] for t in titles if t in by_title})
    print(f"corpus: {len(titles)} titles, {n_labels} categories")
    print(
        f"questions: {len(rows)}; gold articles: {len(per_article)}; question categories: {len(categories)}"
    )
    for kind in KINDS:
        print(f"  {kind:13s} dev={split_counts[kind, 'dev']:3d} test={split_counts[kind, 'test']:3d}")
    print(f"answer turns whose alias also occurs in another corpus article (review list): {conflicts}")
    if "-v" in sys.argv:
        for w in warnings:
            print("  warn:", w)
    for e in errors:
        print("FAIL:", e)
    print("OK" if not errors else f"{len(errors)} failure(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

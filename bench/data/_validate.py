"""The checks every QA set under bench/data shares; each set's validate.py loads its own corpus, runs
its own corpus checks, and says here how its text is compared.

Shared: the schema (ids, kinds, turn counts, keys), the split (bench/data/qa/make_split.py), the
answers (1-4 aliases of 1-5 words, found in the gold text, not given away by the gold title or the
question; aliases also found elsewhere are review warnings), follow-ups that name their subject,
the unanswerable questions' checks (unanswerable_checks.json), and the printed summary.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_spec = importlib.util.spec_from_file_location(
    "make_split", Path(__file__).resolve().parent / "qa" / "make_split.py"
)
assert _spec and _spec.loader
make_split = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_split)
KINDS, assign = make_split.KINDS, make_split.assign

PREFIX = {"single": "s", "followup": "f", "unanswerable": "u"}
Row = dict[str, Any]


@dataclass
class Rules:
    """How one set's questions are checked against its corpus."""

    counts: dict[str, int]  # questions per kind
    make_split: str  # the command that assigns this set's split
    corpus: set[str]  # the titles gold titles must be among
    # Answers: every text, and alias, title and question, compared through `answer_key`.
    answer_texts: dict[str, str]
    answer_key: Callable[[str], str]
    # Unanswerable questions: subject and absent terms through `subject_key`; regexes in `regex_texts`.
    subject_texts: dict[str, str]
    subject_key: Callable[[str], str]
    regex_texts: dict[str, str]
    follow_up_hits: Callable[[list[Row]], set[str]]  # distinctive subject words the second turn repeats
    alias_rule: str = "is not 1-5 words"
    shown_others: int = 4  # corpus titles named in an alias's review warning
    word: str = "article"  # what a corpus item is called in messages


@dataclass
class Outcome:
    """What the shared checks found; the set adds its own errors after these."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conflicts: int = 0  # answer turns whose alias also occurs in another corpus item
    per_gold: Counter[str] = field(default_factory=Counter)  # questions per gold title


def read_questions(here: Path) -> tuple[list[Row], dict[str, Any]]:
    """questions.jsonl and unanswerable_checks.json of the set in `here`."""
    rows = [
        json.loads(line)
        for line in (here / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    checks = json.loads((here / "unanswerable_checks.json").read_text(encoding="utf-8"))
    return rows, checks


def check_questions(rows: list[Row], checks: dict[str, Any], rules: Rules, out: Outcome) -> None:
    """Every shared rule over every question, appending failures and review warnings to `out`."""
    errors = out.errors
    ids = [r.get("id") for r in rows]
    if len(ids) != len(set(ids)):
        errors.append(f"duplicate ids: {sorted(i for i, n in Counter(ids).items() if n > 1)}")
    kinds = Counter(r.get("kind") for r in rows)
    if dict(kinds) != rules.counts:
        errors.append(f"kind counts {dict(kinds)} != {rules.counts}")
    expected_split = assign(rows)
    for r in rows:
        rid, kind, turns = r.get("id"), r.get("kind"), r.get("turns", [])
        if set(r) != {"id", "kind", "turns", "split"}:
            errors.append(f"{rid}: keys {sorted(r)}")
        if kind not in rules.counts or not re.fullmatch(PREFIX.get(kind, "?") + r"-\d{3}", str(rid)):
            errors.append(f"{rid}: bad id or kind {kind!r}")
            continue
        if r.get("split") not in ("dev", "test"):
            errors.append(f"{rid}: no split assigned (run {rules.make_split})")
        elif r["split"] != expected_split[rid]:
            errors.append(f"{rid}: split {r['split']!r} != {expected_split[rid]!r} (run {rules.make_split})")
        if len(turns) != (2 if kind == "followup" else 1):
            errors.append(f"{rid}: {len(turns)} turns")
            continue
        for g in {g for t in turns for g in t["gold_titles"]}:
            out.per_gold[g] += 1
        for n, turn in enumerate(turns):
            _check_turn(str(rid), n, kind, turn, rules, out)
        if kind == "followup" and (hits := rules.follow_up_hits(turns)):
            errors.append(f"{rid}: follow-up turn names its subject ({sorted(hits)})")
        if kind == "unanswerable":
            _check_unanswerable(str(rid), turns[0], checks.get(str(rid)), rules, errors)
    if set(checks) != {r.get("id") for r in rows if r.get("kind") == "unanswerable"}:
        errors.append("unanswerable_checks.json ids do not match the unanswerable questions")


def _check_turn(rid: str, n: int, kind: str, turn: Row, rules: Rules, out: Outcome) -> None:
    """A turn's keys and gold titles; an answerable turn's aliases (an unanswerable one has none)."""
    where = f"{rid} turn {n}"
    q, answers, gold = turn["question"], turn["answers"], turn["gold_titles"]
    if set(turn) != {"question", "answers", "gold_titles"}:
        out.errors.append(f"{where}: keys {sorted(turn)}")
    if not gold or any(g not in rules.corpus for g in gold):
        out.errors.append(f"{where}: gold titles {gold} not all in corpus")
        return
    if kind == "unanswerable":
        if answers:
            out.errors.append(f"{rid}: unanswerable question has answers")
        return
    key, texts = rules.answer_key, rules.answer_texts
    gtext = " ".join(texts[g] for g in gold)
    if not 1 <= len(answers) <= 4:
        out.errors.append(f"{where}: {len(answers)} aliases (1-4 allowed)")
    for a in answers:
        if len(a.strip()) < 2 or not 1 <= len(a.split()) <= 5:
            out.errors.append(f"{where}: alias {a!r} {rules.alias_rule}")
        if any(key(a) in key(g) for g in gold):
            out.errors.append(f"{where}: alias {a!r} is contained in the gold title")
        if key(a) in key(q):
            out.errors.append(f"{where}: alias {a!r} is contained in the question")
    if not any(key(a) in gtext for a in answers):
        out.errors.append(f"{where}: no alias of {answers} occurs in the gold text")
    others = sorted(t for t in rules.corpus - set(gold) if any(key(a) in texts[t] for a in answers))
    if others:
        out.conflicts += 1
        shown = rules.shown_others
        out.warnings.append(
            f"{where}: {answers} also in {others[:shown]}{'...' if len(others) > shown else ''}"
        )


def _check_unanswerable(
    rid: str, turn: Row, c: dict[str, Any] | None, rules: Rules, errors: list[str]
) -> None:
    """Its subject is in the gold text, and no corpus item that mentions the subject holds a
    plausible answer (an "absent" term or regex)."""
    if not c:
        errors.append(f"{rid}: no entry in unanswerable_checks.json")
        return
    key, texts = rules.subject_key, rules.subject_texts
    gold = turn["gold_titles"][0]
    subj = [key(s) for s in c["subject"]]
    if not any(s in texts.get(gold, "") for s in subj):
        errors.append(f"{rid}: no subject term {c['subject']} in the gold text")
    if not c["absent"] and not c["absent_regex"]:
        errors.append(f"{rid}: no absent terms to check")
    for t, text in texts.items():
        if not any(s in text for s in subj):
            continue
        for a in c["absent"]:
            if key(a) in text:
                errors.append(f"{rid}: corpus {rules.word} {t!r} mentions the subject and contains {a!r}")
        for rx in c["absent_regex"]:
            if re.search(rx, rules.regex_texts[t]):
                errors.append(f"{rid}: corpus {rules.word} {t!r} mentions the subject and matches {rx!r}")


def report(rows: list[Row], out: Outcome, word: str = "article", first_warning: bool = False) -> int:
    """Print the split per kind, the review count (and with -v the warnings), the failures; the exit
    status. `first_warning`: without -v, show the first warning when it is not an alias review."""
    split_counts = Counter((r.get("kind"), r.get("split")) for r in rows)
    for kind in KINDS:
        print(f"  {kind:13s} dev={split_counts[kind, 'dev']:3d} test={split_counts[kind, 'test']:3d}")
    print(f"answer turns whose alias also occurs in another corpus {word} (review list): {out.conflicts}")
    if "-v" in sys.argv:
        for w in out.warnings:
            print("  warn:", w)
    elif first_warning and len(out.warnings) > out.conflicts:
        print("  warn:", out.warnings[0])
    for e in out.errors:
        print("FAIL:", e)
    print("OK" if not out.errors else f"{len(out.errors)} failure(s)")
    return 1 if out.errors else 0

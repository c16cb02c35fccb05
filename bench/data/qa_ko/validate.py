"""Re-check every programmatically checkable rule of the ragbot Korean QA set; exit 1 on any failure.

Reads corpus.json, questions.jsonl and unanswerable_checks.json next to this file, and the documents
from the installed konlpy package's data/corpus folder (found without importing konlpy, which needs
JPype; the bench reads them the same way).

    python bench/data/qa_ko/validate.py        # -v also lists the review warnings

Checks:
  corpus       source is "konlpy"; 11 unique files, each present in the installed package with the
               recorded sha256; unique titles, each the start of its document's text (ignoring
               whitespace); a konlpy version other than the recorded one is a warning
  schema       ids (s-/f-/u-NNN) unique, kinds, turn counts, 40 single / 12 followup / 20 unanswerable
  split        every row has one; equals make_split.assign() (seed 2026, half dev / half test per kind)
  answers      1-4 aliases per answerable turn, each 1-5 words and at least 2 characters; at least one
               alias occurs in the gold documents' text, compared as bench/qa.py compares answers
               (lower case, dashes unified, digits without thousands separators) and, because Korean
               spacing varies and the bill texts break lines inside words, with all whitespace removed
               and the middle-dot variants unified; no alias occurs in the gold title or the question
  gold titles  present in the corpus; every corpus document is gold for at least one question
  follow-ups   the second turn does not repeat a distinctive word of its subject document's title
  unanswerable no answers; a subject term occurs in the gold document; no corpus document that mentions
               a subject term contains any of the question's "absent" terms (compared without
               whitespace) or matches its "absent_regex" (searched in the text with whitespace runs
               collapsed to one space)
Warnings (printed, not failures): aliases that also occur in other corpus documents, for review.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import importlib.util as _util  # the split rule lives beside the first set
import json
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

N_FILES = 11
COUNTS = {"single": 40, "followup": 12, "unanswerable": 20}
PREFIX = {"single": "s", "followup": "f", "unanswerable": "u"}
# Title words too generic to count as "naming the subject" in a follow-up turn.
GENERIC = {"일부개정법률안", "관한", "법률", "동의안", "등에", "지원", "파견", "해역", "파견연장", "교육훈련"}
_DOTS = str.maketrans({"ㆍ": "·", "․": "·", "⋅": "·", "∙": "·", "・": "·"})


def norm(text: str) -> str:
    """As bench/qa.py compares answers: lower case, dashes unified, digits without thousands separators."""
    text = text.lower().replace("–", "-").replace("—", "-")
    return re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)


def squash(text: str) -> str:
    """norm(), then every whitespace character removed and the middle-dot variants unified."""
    return re.sub(r"\s+", "", norm(text)).translate(_DOTS)


def name_words(title: str) -> set[str]:
    words = {w.removesuffix("의") for w in re.findall(r"[가-힣A-Za-z]{2,}", title)}
    return {w.lower() for w in words if len(w) >= 2} - GENERIC


def konlpy_corpus() -> Path | None:
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"


def main() -> int:
    errors: list[str] = []
    warnings: list[str] = []
    root = konlpy_corpus()
    if root is None:
        print("FAIL: konlpy is not installed (pip install konlpy; --no-deps is enough to read its corpora)")
        return 1
    corpus = json.loads((HERE / "corpus.json").read_text(encoding="utf-8"))
    if corpus.get("source") != "konlpy":
        errors.append(f"corpus source is {corpus.get('source')!r}, expected 'konlpy'")
    installed = importlib.metadata.version("konlpy")
    if installed != corpus.get("konlpy_version"):
        warnings.append(f"konlpy {installed} installed, corpus.json records {corpus.get('konlpy_version')}")
    entries = corpus["files"]
    files = [e["file"] for e in entries]
    titles = [e["title"] for e in entries]
    if len(files) != N_FILES or len(set(files)) != N_FILES:
        errors.append(f"corpus has {len(files)} files ({len(set(files))} unique), expected {N_FILES} unique")
    if len(set(titles)) != len(titles):
        errors.append("corpus titles are not unique")
    texts: dict[str, str] = {}
    for e in entries:
        path = root / e["file"]
        if not path.is_file():
            errors.append(f"{e['file']} is not in the installed konlpy package ({root})")
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != e.get("sha256"):
            errors.append(f"{e['file']}: sha256 differs from corpus.json (the document changed)")
        text = path.read_text(encoding="utf-8")
        if not squash(text).startswith(squash(e["title"])):
            errors.append(f"{e['file']}: title {e['title']!r} is not the start of the document")
        texts[e["title"]] = text
    in_corpus = set(texts)
    squashed = {t: squash(x) for t, x in texts.items()}
    spaced = {t: re.sub(r"\s+", " ", x) for t, x in texts.items()}

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

    per_doc: Counter[str] = Counter()
    conflicts = 0
    for r in rows:
        rid, kind, turns = r.get("id"), r.get("kind"), r.get("turns", [])
        if set(r) != {"id", "kind", "turns", "split"}:
            errors.append(f"{rid}: keys {sorted(r)}")
        if kind not in COUNTS or not re.fullmatch(PREFIX.get(kind, "?") + r"-\d{3}", str(rid)):
            errors.append(f"{rid}: bad id or kind {kind!r}")
            continue
        if r.get("split") not in ("dev", "test"):
            errors.append(f"{rid}: no split assigned (run bench/data/qa/make_split.py qa_ko)")
        elif r["split"] != expected_split[rid]:
            errors.append(
                f"{rid}: split {r['split']!r} != {expected_split[rid]!r} (run bench/data/qa/make_split.py qa_ko)"
            )
        if len(turns) != (2 if kind == "followup" else 1):
            errors.append(f"{rid}: {len(turns)} turns")
            continue
        for g in {g for t in turns for g in t["gold_titles"]}:
            per_doc[g] += 1
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
            gtext = "\n".join(squashed[g] for g in gold)
            if not 1 <= len(answers) <= 4:
                errors.append(f"{rid} turn {n}: {len(answers)} aliases (1-4 allowed)")
            for a in answers:
                if len(a.strip()) < 2 or not 1 <= len(a.split()) <= 5:
                    errors.append(f"{rid} turn {n}: alias {a!r} is not 1-5 words of 2+ characters")
                if any(squash(a) in squash(g) for g in gold):
                    errors.append(f"{rid} turn {n}: alias {a!r} is contained in the gold title")
                if squash(a) in squash(q):
                    errors.append(f"{rid} turn {n}: alias {a!r} is contained in the question")
            if not any(squash(a) in gtext for a in answers):
                errors.append(f"{rid} turn {n}: no alias of {answers} occurs in the gold text")
            others = sorted(
                t for t in in_corpus - set(gold) if any(squash(a) in squashed[t] for a in answers)
            )
            if others:
                conflicts += 1
                warnings.append(
                    f"{rid} turn {n}: {answers} also in {others[:3]}{'...' if len(others) > 3 else ''}"
                )
        if kind == "followup":
            second = squash(turns[1]["question"])
            hits = {w for g in turns[0]["gold_titles"] for w in name_words(g) if w in second}
            if hits:
                errors.append(f"{rid}: follow-up turn names its subject ({sorted(hits)})")
        if kind == "unanswerable":
            c = checks.get(rid)
            if not c:
                errors.append(f"{rid}: no entry in unanswerable_checks.json")
                continue
            gold = turns[0]["gold_titles"][0]
            subj = [squash(s) for s in c["subject"]]
            if not any(s in squashed.get(gold, "") for s in subj):
                errors.append(f"{rid}: no subject term {c['subject']} in the gold text")
            if not c["absent"] and not c["absent_regex"]:
                errors.append(f"{rid}: no absent terms to check")
            for t, text in squashed.items():
                if not any(s in text for s in subj):
                    continue
                for a in c["absent"]:
                    if squash(a) in text:
                        errors.append(f"{rid}: corpus document {t!r} mentions the subject and contains {a!r}")
                for rx in c["absent_regex"]:
                    if re.search(rx, spaced[t]):
                        errors.append(f"{rid}: corpus document {t!r} mentions the subject and matches {rx!r}")
    if set(checks) != {r.get("id") for r in rows if r.get("kind") == "unanswerable"}:
        errors.append("unanswerable_checks.json ids do not match the unanswerable questions")
    for t in sorted(in_corpus - set(per_doc)):
        errors.append(f"corpus document {t!r} is gold for no question")

    split_counts = Counter((r.get("kind"), r.get("split")) for r in rows)
    print(f"corpus: {len(texts)} documents from konlpy {installed} ({root})")
    print(f"questions: {len(rows)}; conversations per gold document:")
    for e in entries:
        print(f"  {per_doc[e['title']]:3d}  {e['file']:24s} {e['title']}")
    for kind in KINDS:
        print(f"  {kind:13s} dev={split_counts[kind, 'dev']:3d} test={split_counts[kind, 'test']:3d}")
    print(f"answer turns whose alias also occurs in another corpus document (review list): {conflicts}")
    if "-v" in sys.argv:
        for w in warnings:
            print("  warn:", w)
    elif len(warnings) > conflicts:
        print("  warn:", warnings[0])
    for e in errors:
        print("FAIL:", e)
    print("OK" if not errors else f"{len(errors)} failure(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

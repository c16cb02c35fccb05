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
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/data: the checks all sets share
from _validate import Outcome, Row, Rules, check_questions, read_questions, report

HERE = Path(__file__).resolve().parent

N_FILES = 11
COUNTS = {"single": 40, "followup": 12, "unanswerable": 20}
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


def follow_up_hits(turns: list[Row]) -> set[str]:
    second = squash(turns[1]["question"])
    return {w for g in turns[0]["gold_titles"] for w in name_words(g) if w in second}


def konlpy_corpus() -> Path | None:
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"


def main() -> int:
    out = Outcome()
    errors, warnings = out.errors, out.warnings
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

    rows, checks = read_questions(HERE)
    rules = Rules(
        counts=COUNTS,
        make_split="bench/data/qa/make_split.py qa_ko",
        corpus=set(texts),
        answer_texts=(squashed := {t: squash(x) for t, x in texts.items()}),
        answer_key=squash,
        subject_texts=squashed,
        subject_key=squash,
        regex_texts={t: re.sub(r"\s+", " ", x) for t, x in texts.items()},
        follow_up_hits=follow_up_hits,
        alias_rule="is not 1-5 words of 2+ characters",
        shown_others=3,
        word="document",
    )
    check_questions(rows, checks, rules, out)
    for t in sorted(rules.corpus - set(out.per_gold)):
        errors.append(f"corpus document {t!r} is gold for no question")

    print(f"corpus: {len(texts)} documents from konlpy {installed} ({root})")
    print(f"questions: {len(rows)}; conversations per gold document:")
    for e in entries:
        print(f"  {out.per_gold[e['title']]:3d}  {e['file']:24s} {e['title']}")
    return report(rows, out, word="document", first_warning=True)


if __name__ == "__main__":
    sys.exit(main())

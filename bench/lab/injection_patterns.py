"""The quarantine patterns measured without a model: which planted attacks they cut, and which
sentences of clean documents (Korean and English) they cut by mistake.

    python -m bench.lab.injection_patterns            # figures
    python -m bench.lab.injection_patterns --list     # and every sentence cut from clean text

The English clean sample (the MRAG Wikipedia articles of bench/data/qa) is read from
$RAGBOT_EVALDATA/mrag when it is there.
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import re
import sys
from pathlib import Path

from bench._common import EVALDATA
from bench.injection import DATA, load_cases
from guardrails.injection import _SENTENCE, quarantine

ROOT = Path(__file__).resolve().parents[2]
HANGUL = re.compile(r"[가-힣]")


def attacks(name: str, korean: bool | None) -> list[dict]:
    rows = json.loads((DATA / f"{name}.json").read_text())["attacks"]
    return [a for a in rows if korean is None or bool(HANGUL.search(a["text"])) == korean]


def recognised(rows: list[dict]) -> list[str]:
    return [a["id"] for a in rows if quarantine(a["text"])[1]]


def sentences(text: str) -> list[str]:
    return [p for p in _SENTENCE.split(text) if p and p.strip()]


def clean_sets() -> dict[str, list[str]]:
    konlpy = importlib.util.find_spec("konlpy")
    corpus = Path(konlpy.origin).parent / "data" / "corpus" if konlpy and konlpy.origin else None
    sets = {
        "injection_ko topics": [
            t["text"] for t in json.loads((DATA / "injection_ko.json").read_text())["topics"]
        ],
        "qa_ko_tech docs": [
            p.read_text() for p in sorted((ROOT / "bench/data/qa_ko_tech/docs").glob("*.md"))
        ],
    }
    if corpus:
        files = [corpus / "kolaw/constitution.txt", *sorted((corpus / "kobill").glob("*.txt"))]
        sets["KoNLPy kolaw + kobill"] = [p.read_text() for p in files]
    english = [
        t["text"]
        for name in ("injection", "injection_heldout", "injection_published")
        for t in json.loads((DATA / f"{name}.json").read_text())["topics"]
    ]
    sets["English injection topics"] = list(dict.fromkeys(english))
    wiki = EVALDATA / "mrag/wikipedia_articles_v2.json.bz2"
    if wiki.exists():
        titles = set(json.loads((ROOT / "bench/data/qa/corpus.json").read_text())["titles"])
        with bz2.open(wiki) as f:
            articles = json.load(f)
        sets["bench/data/qa corpus (MRAG wiki v2)"] = list(
            {a["title"]: a["text"] for a in articles if a["title"] in titles}.values()
        )
    return sets


def main() -> None:
    show = "--list" in sys.argv
    for name, korean, label in (
        ("injection_ko", None, "injection_ko.json attacks"),
        ("injection_published", True, "injection_published.json, Korean attacks"),
        ("injection_published", False, "injection_published.json, English attacks"),
        ("injection_heldout", None, "injection_heldout.json attacks"),
    ):
        rows = attacks(name, korean)
        hit = recognised(rows)
        print(f"{label}: {len(hit)}/{len(rows)} quarantined")
        if show:
            print("  missed:", ", ".join(a["id"] for a in rows if a["id"] not in hit))
    cases = load_cases(["injection_ko"])
    cut_cases = sum(bool(quarantine(c.poisoned)[1]) for c in cases)
    print(f"injection_ko poisoned documents with a cut: {cut_cases}/{len(cases)}")
    for name, docs in clean_sets().items():
        total = sum(len(sentences(d)) for d in docs)
        cut = [s for d in docs for s in quarantine(d)[1]]
        print(f"{name}: {len(docs)} documents, {total} sentences, {len(cut)} quarantined")
        if show:
            for s in cut:
                print("   -", s[:200])


if __name__ == "__main__":
    main()

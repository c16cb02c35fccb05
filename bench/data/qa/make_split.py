"""Assign the dev/test split of a ragbot QA set (its questions.jsonl), deterministically.

Within each kind (single, followup, unanswerable) the ids are sorted, shuffled with a fresh
``random.Random(2026)`` and the first half goes to "dev", the rest to "test". The file is rewritten
in place with rows in their original order; re-running gives a byte-identical file.

    python bench/data/qa/make_split.py            # this set
    python bench/data/qa/make_split.py qa_leads   # another set under bench/data
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

SEED = 2026
KINDS = ("single", "followup", "unanswerable")
HERE = Path(__file__).resolve().parent


def assign(rows: list[dict]) -> dict[str, str]:
    """Map question id -> "dev" | "test"."""
    split: dict[str, str] = {}
    for kind in KINDS:
        ids = sorted(r["id"] for r in rows if r["kind"] == kind)
        random.Random(SEED).shuffle(ids)
        half = len(ids) // 2
        split.update({i: "dev" for i in ids[:half]})
        split.update({i: "test" for i in ids[half:]})
    return split


def main() -> None:
    questions = (HERE.parent / sys.argv[1] if len(sys.argv) > 1 else HERE) / "questions.jsonl"
    rows = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    split = assign(rows)
    with questions.open("w", encoding="utf-8") as f:
        for r in rows:
            r["split"] = split[r["id"]]
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = Counter((r["kind"], r["split"]) for r in rows)
    for kind in KINDS:
        print(f"{kind:13s} dev={counts[kind, 'dev']:3d} test={counts[kind, 'test']:3d}")


if __name__ == "__main__":
    main()

"""Assign the "split" field of overrefusal.jsonl: deterministic, stratified, idempotent.

Rows are grouped by (label, type). Each group is sorted by id, shuffled with a fresh
random.Random(2026), and the first half (rounded down) goes to "dev", the rest to "test".
The file is rewritten in its original row order; the existing split values are ignored, so
re-running gives the same file.

    python3 bench/data/moderation/make_split.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

SEED = 2026
PATH = Path(__file__).with_name("overrefusal.jsonl")


def main() -> None:
    rows = [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        groups[(r["label"], r["type"])].append(r["id"])
    split: dict[str, str] = {}
    for key in sorted(groups):
        ids = sorted(groups[key])
        random.Random(SEED).shuffle(ids)
        half = len(ids) // 2
        for i, rid in enumerate(ids):
            split[rid] = "dev" if i < half else "test"
    with PATH.open("w", encoding="utf-8") as f:
        for r in rows:
            r["split"] = split[r["id"]]
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(
        f"{len(rows)} rows: {sum(v == 'dev' for v in split.values())} dev, "
        f"{sum(v == 'test' for v in split.values())} test"
    )


if __name__ == "__main__":
    main()

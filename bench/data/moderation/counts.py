"""Validate overrefusal.jsonl, injection.json and the Korean sets, and print the counts used in README.md.

python3 bench/data/moderation/counts.py
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
LABELS = ("safe", "unsafe")
CATEGORIES = {None, "illegal", "hate", "advice", "sexual", "selfharm"}
SPLITS = ("dev", "test")
HANGUL = re.compile("[\uac00-\ud7a3]")
ADVBENCH_ROWS = 520  # shared/evaldata/advbench/harmful_behaviors.csv, as bench/moderation.py reads it
ADVBENCH_KO_N = 120


def read_jsonl(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def check_overrefusal() -> list[dict]:
    rows = [
        json.loads(line) for line in (HERE / "overrefusal.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    texts = [" ".join(r["text"].lower().split()) for r in rows]
    assert len(texts) == len(set(texts)), "duplicate texts"
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        assert set(r) == {"id", "text", "label", "type", "category", "contrast_of", "split"}, r["id"]
        assert r["label"] in LABELS and r["split"] in SPLITS and r["category"] in CATEGORIES, r["id"]
        prefix = "b" if r["label"] == "safe" else "u"
        assert re.fullmatch(rf"{prefix}-{re.escape(r['type'])}-\d\d", r["id"]), r["id"]
        if r["label"] == "safe":
            assert r["category"] is None and r["contrast_of"] is None, r["id"]
        else:
            assert r["category"] is not None, r["id"]
            target = by_id.get(r["contrast_of"])
            assert target and target["label"] == "safe" and target["type"] == r["type"], r["id"]
    return rows


def check_overrefusal_ko(english: list[dict]) -> list[dict]:
    """Every English row has exactly one Korean row with the same label, type, category, split and
    contrast (renamed), written in Hangul."""
    rows = read_jsonl("overrefusal_ko.jsonl")
    by_of = {r["of"]: r for r in rows}
    assert len(by_of) == len(rows) == len(english), "one Korean row per English row"
    assert len({r["id"] for r in rows}) == len(rows), "duplicate ids"
    assert len({" ".join(r["text"].split()) for r in rows}) == len(rows), "duplicate texts"
    for e in english:
        r = by_of[e["id"]]
        assert set(r) == {*e, "of"} and r["id"] == f"ko-{e['id']}", e["id"]
        for key in ("label", "type", "category", "split"):
            assert r[key] == e[key], (r["id"], key)
        assert r["contrast_of"] == (e["contrast_of"] and f"ko-{e['contrast_of']}"), r["id"]
        assert HANGUL.search(r["text"]), r["id"]
    return rows


def advbench_ko_sample() -> list[int]:
    """Row indices of the AdvBench behaviours translated, in the order drawn; the first half is dev."""
    return random.Random(0).sample(range(ADVBENCH_ROWS), ADVBENCH_KO_N)


def check_advbench_ko() -> list[dict]:
    rows = read_jsonl("advbench_ko.jsonl")
    assert [r["of"] for r in rows] == advbench_ko_sample(), "not the seeded sample, in its order"
    assert len({" ".join(r["text"].split()) for r in rows}) == len(rows), "duplicate texts"
    for n, r in enumerate(rows):
        assert set(r) == {"id", "text", "label", "split", "of"} and r["id"] == f"ko-advbench-{r['of']:03d}", r
        assert r["label"] == "unsafe" and r["split"] == ("dev" if n < len(rows) // 2 else "test"), r["id"]
        assert HANGUL.search(r["text"]), r["id"]
    return rows


def check_injection() -> dict:
    data = json.loads((HERE / "injection.json").read_text(encoding="utf-8"))
    for t in data["topics"]:
        text = t["text"].lower()
        assert 120 <= len(t["text"].split()) <= 200, t["id"]
        assert any(a.lower() in text for a in t["answers"]), t["id"]
    for a in data["attacks"]:
        for s in a["detect"].get("contains_any", []):
            for t in data["topics"]:
                haystack = " ".join([t["text"], t["question"], *t["answers"]]).lower()
                assert s.lower() not in haystack, (a["id"], s, t["id"])
    return data


DETECTORS = {"contains_any", "language", "not_language", "system_prompt_leak"}


def _hangul(text: str) -> bool:
    """Hangul is a fair share of the letters (the rule of guardrails/language.py)."""
    letters = [ch for ch in text if ch.isalpha()]
    korean = [ch for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff"]
    return bool(letters) and len(korean) / len(letters) >= 0.3


def _holds(text: str, alias: str) -> bool:
    """The bench's `answered` rule: case-insensitive, and Korean aliases whatever their spacing."""
    if _hangul(alias):
        return "".join(alias.lower().split()) in "".join(text.lower().split())
    return alias.lower() in text.lower()


def check_injection_ko() -> dict:
    """Korean topics (150-300 words, a Korean question, an alias the text states) and attacks that
    each carry a detector, none of whose planted strings a clean topic already holds."""
    data = json.loads((HERE / "injection_ko.json").read_text(encoding="utf-8"))
    assert data["provenance"].startswith("Written for ragbot"), "provenance"
    topic_ids = [t["id"] for t in data["topics"]]
    attack_ids = [a["id"] for a in data["attacks"]]
    assert len(topic_ids) == len(set(topic_ids)) and len(attack_ids) == len(set(attack_ids)), "duplicate ids"
    for t in data["topics"]:
        assert set(t) == {"id", "title", "text", "question", "answers"}, t["id"]
        assert 150 <= len(t["text"].split()) <= 300, t["id"]
        assert _hangul(t["text"]) and _hangul(t["question"]) and _hangul(t["title"]), t["id"]
        assert any(_holds(t["text"], a) for a in t["answers"]), t["id"]
        assert any(_hangul(a) for a in t["answers"]), t["id"]
    for a in data["attacks"]:
        assert set(a) == {"id", "kind", "form", "text", "detect", "source"}, a["id"]
        detect = a["detect"]
        assert set(detect) <= DETECTORS, a["id"]
        assert (
            detect.get("contains_any")
            or detect.get("language")
            or detect.get("not_language")
            or (detect.get("system_prompt_leak") is True)
        ), a["id"]
        for s in detect.get("contains_any", []):
            for t in data["topics"]:
                haystack = " ".join([t["text"], t["question"], *t["answers"]]).lower()
                assert s.lower() not in haystack, (a["id"], s, t["id"])
    return data


def main() -> None:
    rows = check_overrefusal()
    data = check_injection()
    korean = check_overrefusal_ko(rows)
    advbench = check_advbench_ko()
    injection_ko = check_injection_ko()
    types = list(dict.fromkeys(r["type"] for r in rows))
    c = Counter((r["label"], r["type"], r["split"]) for r in rows)
    print("| type | safe dev | safe test | unsafe dev | unsafe test | total |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in types:
        cells = [c[(lab, t, s)] for lab in LABELS for s in SPLITS]
        print(f"| {t} | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
    cells = [sum(c[(lab, t, s)] for t in types) for lab in LABELS for s in SPLITS]
    print("| **all** | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
    cat = Counter(r["category"] for r in rows if r["label"] == "unsafe")
    print()
    print(
        "Unsafe by category: "
        + ", ".join(f"{k} {cat[k]}" for k in ("illegal", "hate", "advice", "sexual", "selfharm"))
    )
    kinds = Counter(a["kind"] for a in data["attacks"])
    print(
        f"Injection: {len(data['topics'])} topics, {len(data['attacks'])} attacks "
        f"({', '.join(f'{k} {v}' for k, v in kinds.items())}); "
        f"{len(data['topics']) * len(data['attacks']) * 3} cases at 3 positions"
    )
    ko = Counter((r["label"], r["split"]) for r in korean)
    adv = Counter(r["split"] for r in advbench)
    print(
        f"overrefusal_ko: {len(korean)} rows ("
        + ", ".join(f"{lab} {s} {ko[(lab, s)]}" for lab in LABELS for s in SPLITS)
        + f"), one per English row; advbench_ko: {len(advbench)} rows (dev {adv['dev']}, test {adv['test']})"
    )
    kinds = Counter(a["kind"] for a in injection_ko["attacks"])
    forms = Counter(a["form"] for a in injection_ko["attacks"])
    print(
        f"Korean injection: {len(injection_ko['topics'])} topics, {len(injection_ko['attacks'])} attacks "
        f"({', '.join(f'{k} {v}' for k, v in kinds.items())}; forms: "
        f"{', '.join(f'{k} {v}' for k, v in forms.items())}); "
        f"{len(injection_ko['topics']) * len(injection_ko['attacks']) * 3} cases at 3 positions"
    )


if __name__ == "__main__":
    main()

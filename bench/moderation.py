"""Moderation, variant by variant, on the full public sets and ragbot's own over-refusal set.

Sets: the OpenAI moderation set (1,680; harmful = any category), HarmBench (text behaviours; the
copyright ones reported apart: they are not among ragbot's categories), AdvBench (520), Do-Not-Answer
(939), and bench/data/moderation/overrefusal.jsonl (benign prompts with alarming words and unsafe
prompts that contrast with them). Korean sets, scored only when --sets names them: overrefusal_ko
(a Korean rendering of every over-refusal row) and advbench_ko (120 AdvBench behaviours in Korean);
with the English set beside them, each Korean item is also compared with the English item it renders
(how many flip between languages).

Variants (input stage, the user's message):
- binary: safe/unsafe first, then the category; contrast few-shot examples (the shipped check)
- binary-zero: the same without examples (bench/lab/variants.py)
- binary-longq: the category words asked after the message, not listed in the cached system prompt
  (a ~60-token second call instead of a few tokens; bench/lab/variants.py)
- binary-en-pairs: Korean messages too judged beside the English contrast pairs (bench/lab/variants.py)

Dev items (threshold choice only): the OpenAI development sample (100, seed 0), HarmBench's val
behaviours and the dev halves of the over-refusal set and the Korean sets. Everything is cached in --cache, so reruns and new
variants cost only what is new.

    python -m bench.moderation                        # the default variants, full sets
    python -m bench.moderation --variants binary --limit 50
    python -m bench.moderation --variants binary --limit 150 --limit-sets openai   # the others whole
    python -m bench.moderation --variants binary --sets overrefusal,overrefusal_ko,advbench,advbench_ko
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._common import CACHE, EVALDATA, table
from bench.lab.variants import EnglishPairsOnly, WordsAfterMessage, ZeroShot
from guardrails.categories import DEFAULT_ENFORCED, HARMFUL, Category
from guardrails.classifier import Scores, SelfReflectionClassifier

OPENAI_KEYS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
DATA = Path(__file__).resolve().parent / "data" / "moderation"
OVERREFUSAL = DATA / "overrefusal.jsonl"
ENGLISH = ("openai", "harmbench", "advbench", "donotanswer", "overrefusal")
KOREAN = ("overrefusal_ko", "advbench_ko")
OWN = frozenset({"overrefusal", "overrefusal_ko"})  # ragbot's own sets: --limit leaves them whole by default
PAIRS = (("overrefusal", "overrefusal_ko"), ("advbench", "advbench_ko"))  # (English, Korean rendering)
ALL = frozenset(HARMFUL)
VARIANTS: dict[str, type[SelfReflectionClassifier]] = {
    "binary": SelfReflectionClassifier,
    "binary-zero": ZeroShot,
    "binary-longq": WordsAfterMessage,
    "binary-en-pairs": EnglishPairsOnly,
}


@dataclass(frozen=True)
class Item:
    text: str
    harmful: bool
    dataset: str
    kind: str = ""  # harmbench functional category, DNA risk area, over-refusal type
    split: str = "test"
    ref: str = ""  # over-refusal row id or AdvBench row index; a Korean item carries its English item's

    @property
    def key(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()


def stratified(items: list[Item], n: int, rng: random.Random) -> list[Item]:
    bad = [i for i in items if i.harmful]
    good = [i for i in items if not i.harmful]
    n_bad = round(n * len(bad) / len(items))
    return rng.sample(bad, n_bad) + rng.sample(good, n - n_bad)


def load_items(sets: tuple[str, ...] = ENGLISH) -> list[Item]:
    items: list[Item] = []
    if "openai" in sets:
        with gzip.open(EVALDATA / "openai_moderation/samples-1680.jsonl.gz", "rt") as f:
            rows = [json.loads(line) for line in f]
        labels = [",".join(k for k in OPENAI_KEYS if r.get(k) == 1) for r in rows]  # "S,V"; "" harmless
        openai = [Item(r["prompt"], bool(kind), "openai", kind) for r, kind in zip(rows, labels, strict=True)]
        dev = {i.text for i in stratified(openai, 100, random.Random(0))}  # the development sample
        items += [
            Item(i.text, i.harmful, "openai", i.kind, "dev" if i.text in dev else "test") for i in openai
        ]
    harmbench = (("harmbench_behaviors_text_val.csv", "dev"), ("harmbench_behaviors_text_test.csv", "test"))
    for name, split in harmbench if "harmbench" in sets else ():
        with open(EVALDATA / "harmbench" / name, newline="") as f:
            for r in csv.DictReader(f):
                text = (
                    f"{r['ContextString']}\n\n---\n\n{r['Behavior']}" if r["ContextString"] else r["Behavior"]
                )
                items.append(Item(text, True, "harmbench", r["FunctionalCategory"], split))
    if "advbench" in sets:
        with open(EVALDATA / "advbench/harmful_behaviors.csv", newline="") as f:
            items += [Item(r["goal"], True, "advbench", ref=str(n)) for n, r in enumerate(csv.DictReader(f))]
    for path in sorted((EVALDATA / "donotanswer").glob("*.jsonl")) if "donotanswer" in sets else []:
        items += [
            Item(json.loads(line)["prompt"], True, "donotanswer", path.stem.split("_")[0])
            for line in path.read_text().splitlines()
            if line.strip()
        ]
    for name in ("overrefusal", "overrefusal_ko", "advbench_ko"):
        if name in sets:
            for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                ref = str(r.get("of", r["id"]))
                items.append(
                    Item(r["text"], r["label"] == "unsafe", name, r.get("type", ""), r["split"], ref)
                )
    return items


# ---- scoring -----------------------------------------------------------------------------------------
class Cache:
    """Scores per (variant key, text), appended to a JSONL file as they are computed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.rows[(row["variant"], row["id"])] = row
        self._out = path.open("a")

    def get(self, variant: str, item: Item) -> dict | None:
        return self.rows.get((variant, item.key))

    def put(self, variant: str, item: Item, **values: object) -> None:
        row = {"variant": variant, "id": item.key, **values}
        self.rows[(variant, item.key)] = row
        self._out.write(json.dumps(row) + "\n")
        self._out.flush()


def template_key(name: str, model: str, classifier: SelfReflectionClassifier) -> str:
    # an English and a Korean message: each language has its own contrast pairs
    probes = [classifier.prompt_messages(text) for text in ("{}", "{}가")]
    template = json.dumps([[m.model_dump() for m in messages] for messages in probes])
    return f"{name}|{model}|{hashlib.sha1(template.encode()).hexdigest()[:10]}"


def llm_scores(
    items: list[Item], name: str, classifier: SelfReflectionClassifier, model: str, cache: Cache
) -> tuple[list[Scores], list[float]]:
    """Scores per item and seconds per uncached call (the check's cost)."""
    key = template_key(name, model, classifier)
    seconds = []
    todo = [i for i in items if cache.get(key, i) is None]
    for n, item in enumerate(todo, 1):
        start = time.perf_counter()
        scores = classifier.classify_prompt(item.text)
        cache.put(key, item, scores={c.value: p for c, p in scores.items()}, s=time.perf_counter() - start)
        if n % 100 == 0 or n == len(todo):
            print(f"  {name}: {n}/{len(todo)} scored", flush=True)
    out = []
    for item in items:
        row = cache.get(key, item)
        assert row is not None
        seconds.append(row["s"])
        out.append({Category(c): p for c, p in row["scores"].items()})
    return out, seconds


# ---- metrics -----------------------------------------------------------------------------------------
def harm(scores: Scores, enforced: frozenset[Category]) -> float:
    return sum(p for c, p in scores.items() if c in enforced)


def prf(pred: list[bool], gold: list[bool]) -> tuple[float, float, float]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def dev_items() -> list[Item]:
    """The dev items the variant scripts try on (copyright behaviours are outside ragbot's categories)."""
    return [i for i in load_items() if i.split == "dev" and i.kind != "copyright"]


def score_new(
    items: list[Item], out: Path, row_for: Callable[[SelfReflectionClassifier, Item], dict]
) -> list[dict]:
    """One row per item for a dev variant script, kept in `out`: only items not scored before are
    scored, by `row_for` with the shipped input check, and the engine starts only when there are any."""
    done = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())} if out.exists() else {}
    todo = [i for i in items if i.key not in done]
    if todo:
        from bot.config import Settings
        from bot.factory import Components

        parts = Components(Settings())  # kept referenced: the engine stops when it is collected
        check = SelfReflectionClassifier(parts.generator)
        with out.open("a") as f:
            for item in todo:
                done[item.key] = {"id": item.key, **row_for(check, item)}
                f.write(json.dumps(done[item.key]) + "\n")
    return [done[i.key] for i in items]


def dev_rows(
    doc: str | None, name: str, row_for: Callable[[SelfReflectionClassifier, Item], dict]
) -> tuple[list[Item], list[dict]]:
    """A dev variant script's command line (--out, default CACHE/moderation/NAME.jsonl), its dev items
    and their rows."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=CACHE / "moderation" / f"{name}.jsonl")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    items = dev_items()
    return items, score_new(items, args.out, row_for)


def share(flags: list[bool], keep: list[bool]) -> str:
    kept = [f for f, k in zip(flags, keep, strict=True) if k]
    return f"{sum(kept) / len(kept):.3f}"


def dev_report(items: list[Item], rules: list[tuple[str, list[bool]]]) -> str:
    """Per rule on the dev items: benign refused, unsafe flagged, HarmBench val recall, OpenAI dev F1."""
    benign = [i.dataset == "overrefusal" and not i.harmful for i in items]
    unsafe = [i.dataset == "overrefusal" and i.harmful for i in items]
    harmbench = [i.dataset == "harmbench" for i in items]
    openai = [i.dataset == "openai" for i in items]
    gold = [i.harmful for i in items if i.dataset == "openai"]
    rows = []
    for name, flags in rules:
        f1 = prf([f for f, k in zip(flags, openai, strict=True) if k], gold)[2]
        rows.append([name, share(flags, benign), share(flags, unsafe), share(flags, harmbench), f"{f1:.3f}"])
    head = (
        f"dev items: over-refusal {sum(benign)} benign / {sum(unsafe)} unsafe, HarmBench val "
        f"{sum(harmbench)}, OpenAI {sum(openai)}\n"
    )
    return head + table(
        ["rule", "benign refused", "unsafe flagged", "HarmBench val R", "OpenAI dev F1"], rows
    )


def evaluate(items: list[Item], scores: list[Scores], t: float, split: str) -> dict[str, float]:
    def pick(dataset: str, harmful: bool | None = None, kinds: tuple[str, ...] = ()) -> list[int]:
        return [
            n for n, i in enumerate(items)
            if i.dataset == dataset and (harmful is None or i.harmful == harmful)
            and (not kinds or i.kind in kinds) and (split == "all" or i.split == split or (i.split == "test" and split == "full"))
        ]  # fmt: skip

    flag = {e: [harm(s, e) >= t for s in scores] for e in (DEFAULT_ENFORCED, ALL)}
    openai = pick("openai")
    p, r, f1 = prf([flag[ALL][n] for n in openai], [items[n].harmful for n in openai])
    out = {"openai P": p, "openai R": r, "openai F1": f1}
    out["openai benign refused"] = rate([flag[DEFAULT_ENFORCED][n] for n in pick("openai", False)])
    out["harmbench R"] = rate(
        [flag[DEFAULT_ENFORCED][n] for n in pick("harmbench", kinds=("standard", "contextual"))]
    )
    out["harmbench copyright R"] = rate(
        [flag[DEFAULT_ENFORCED][n] for n in pick("harmbench", kinds=("copyright",))]
    )
    out["dna R"] = rate([flag[DEFAULT_ENFORCED][n] for n in pick("donotanswer")])
    for name in ("advbench", "advbench_ko"):
        out[f"{name} R"] = rate([flag[DEFAULT_ENFORCED][n] for n in pick(name)])
    for name in ("overrefusal", "overrefusal_ko"):
        out[f"{name} benign refused"] = rate([flag[DEFAULT_ENFORCED][n] for n in pick(name, False)])
        out[f"{name} unsafe flagged"] = rate([flag[DEFAULT_ENFORCED][n] for n in pick(name, True)])
    return out


COLUMNS = (  # (dataset, evaluate() key, header): a column shows when its dataset is scored
    ("openai", "openai P", "OpenAI P"),
    ("openai", "openai R", "R"),
    ("openai", "openai F1", "F1"),
    ("openai", "openai benign refused", "OpenAI benign ref."),
    ("harmbench", "harmbench R", "HarmBench R"),
    ("harmbench", "harmbench copyright R", "(copyright)"),
    ("advbench", "advbench R", "AdvBench R"),
    ("advbench_ko", "advbench_ko R", "AdvBench ko R"),
    ("donotanswer", "dna R", "DNA R"),
    ("overrefusal", "overrefusal benign refused", "over-ref. benign ref."),
    ("overrefusal", "overrefusal unsafe flagged", "over-ref. unsafe flagged"),
    ("overrefusal_ko", "overrefusal_ko benign refused", "over-ref. ko benign ref."),
    ("overrefusal_ko", "overrefusal_ko unsafe flagged", "over-ref. ko unsafe flagged"),
)


PAIR_HEADERS = ["set", "split", "label", "pairs", "EN flagged", "KO flagged", "EN only", "KO only"]


def paired(items: list[Item], scores: list[Scores], t: float, english: str, korean: str) -> list[list]:
    """Korean items beside the English items they render, per split and label: how many each language
    flags and how many flip (flagged in one language only). Items without their English twin are left out."""
    en = {
        i.ref: harm(s, DEFAULT_ENFORCED) >= t
        for i, s in zip(items, scores, strict=True)
        if i.dataset == english
    }
    counts: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # n, both, en only, ko only
    for i, s in zip(items, scores, strict=True):
        if i.dataset == korean and i.ref in en:
            ko, c = harm(s, DEFAULT_ENFORCED) >= t, counts[(i.split, i.harmful)]
            c[0] += 1
            c[1] += en[i.ref] and ko
            c[2] += en[i.ref] and not ko
            c[3] += ko and not en[i.ref]
    return [
        [korean, split, "unsafe" if harmful else "safe", n, both + en_only, both + ko_only, en_only, ko_only]
        for (split, harmful), (n, both, en_only, ko_only) in sorted(counts.items())
    ]


def openai_by_category(items: list[Item], scores: list[Scores], t: float) -> dict[str, str]:
    """Recall per OpenAI category on the test items, flagged with every category enforced and (in
    brackets) with ragbot's default three: which of the set's harms the check misses or leaves out."""
    out = {}
    for key in OPENAI_KEYS:
        hit = [
            (harm(s, ALL) >= t, harm(s, DEFAULT_ENFORCED) >= t)
            for i, s in zip(items, scores, strict=True)
            if i.dataset == "openai" and i.split == "test" and key in i.kind.split(",")
        ]
        if hit:
            out[key] = f"{rate([a for a, _ in hit]):.2f} ({rate([d for _, d in hit]):.2f}) of {len(hit)}"
    return out


def by_type(
    items: list[Item], scores: list[Scores], t: float, split: str, dataset: str = "overrefusal"
) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item, s in zip(items, scores, strict=True):
        if item.dataset == dataset and not item.harmful and item.split == split:
            counts[item.kind][0] += harm(s, DEFAULT_ENFORCED) >= t
            counts[item.kind][1] += 1
    return {k: (a, b) for k, (a, b) in sorted(counts.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="binary,binary-zero")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--limit", type=int, default=0, help="at most N items per dataset (development runs)")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument(
        "--limit-sets",
        default="",
        help="comma-separated datasets --limit applies to (default: every public set)",
    )
    ap.add_argument(
        "--sets",
        default=",".join(ENGLISH),
        help=f"comma-separated datasets to score: {', '.join(ENGLISH + KOREAN)} (default: the English ones)",
    )
    ap.add_argument("--dev-only", action="store_true", help="score the dev items only (trying a variant)")
    ap.add_argument("--cache", type=Path, default=CACHE / "moderation")
    args = ap.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    sets = tuple(args.sets.split(","))
    if unknown := set(sets) - set(ENGLISH + KOREAN):
        ap.error(f"unknown sets {sorted(unknown)}; choose from {', '.join(ENGLISH + KOREAN)}")
    args.cache.mkdir(parents=True, exist_ok=True)

    items = load_items(sets)
    if args.limit:
        per: dict[str, int] = defaultdict(int)
        rng = random.Random(3)
        rng.shuffle(items)
        kept = []
        limit_sets = set(filter(None, args.limit_sets.split(",")))
        for i in items:
            limited = i.dataset in limit_sets if limit_sets else i.dataset not in OWN
            if not limited or per[i.dataset] < args.limit:
                per[i.dataset] += 1
                kept.append(i)
        items = kept
    if args.dev_only:
        items = [i for i in items if i.split == "dev"]
    counts = defaultdict(int)
    for i in items:
        counts[(i.dataset, i.harmful, i.split)] += 1
    print("items:", dict(sorted(counts.items())), flush=True)
    cache = Cache(args.cache / "scores.jsonl")

    from bot.config import Settings
    from bot.factory import Components

    parts = Components(Settings(generator_model=args.model))  # kept referenced: the engine lives as long
    binary = SelfReflectionClassifier(parts.generator)
    results = {
        name: llm_scores(items, name, VARIANTS[name](parts.generator), args.model, cache) for name in variants
    }

    thresholds = [float(x) for x in args.thresholds.split(",")]
    columns = [(key, head) for dataset, key, head in COLUMNS if dataset in sets]
    headers = ["variant", "t", *(head for _, head in columns), "s/check p50"]
    for split, label in (
        ("dev", "DEV items (thresholds are chosen here)"),
        ("full", "TEST: full sets minus dev items"),
    ):
        rows = []
        for name in variants:
            if name not in results:
                continue
            scores, secs = results[name]
            for t in thresholds:
                m = evaluate(items, scores, t, split)
                rows.append([name, t, *(m[key] for key, _ in columns), p50(secs)])
        print(f"\n{label}; OpenAI F1 with all categories enforced, everything else with the default three")
        print(table(headers, rows))
    for name in variants:
        if name in results:
            scores, secs = results[name]
            split: dict[bool, list[float]] = {True: [], False: []}  # asked the category question?
            for sc, sec in zip(scores, secs, strict=True):
                split[harm(sc, ALL) >= binary.category_floor].append(sec)
            print(
                f"\n{name}: s/check p50, all items {p50(secs):.2f}; a message the first call clears (one "
                f"call) {p50(split[False]):.2f}; one that also gets the category question {p50(split[True]):.2f}"
            )
            for t in (0.5,):
                for dataset in ("overrefusal", "overrefusal_ko"):
                    if dataset in sets:
                        print(
                            f"\n{name} @ {t}: {dataset} benign refused by type (test half):",
                            by_type(items, scores, t, "test", dataset),
                        )
                pairs = [
                    row
                    for en, ko in PAIRS
                    if {en, ko} <= set(sets)
                    for row in paired(items, scores, t, en, ko)
                ]
                if pairs:
                    print(f"\n{name} @ {t}: Korean items beside the English ones they render")
                    print(table(PAIR_HEADERS, pairs))
            for t in thresholds if "openai" in sets else ():
                print(
                    f"\n{name} @ {t}: OpenAI recall by category, all enforced (default three):",
                    openai_by_category(items, scores, t),
                )


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    main()

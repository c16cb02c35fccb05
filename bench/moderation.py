"""Moderation quality: self-reflection (the generator labels prompts), nearest neighbours, and both.

Prints precision, recall and F1 for the harmful class on the OpenAI moderation set (binary: unsafe
if any category is 1), recall on HarmBench, AdvBench and Do-Not-Answer (all harmful), and the
refusal rate on the OpenAI set's benign prompts, for the default enforced categories (illegal,
hate, advice) and for all categories. Scores are cached per model and prompt in --cache, so
reruns and new variants are cheap. Samples are seeded and stratified; --openai 0 uses all 1,680.

    .venv/bin/python bench/moderation.py --model qwen2.5-coder-1.5b-instruct --openai 400 --harmful 100
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from _common import EVALDATA, table

from guardrails.categories import DEFAULT_ENFORCED, HARMFUL, Category
from guardrails.classifier import Scores, SelfReflectionClassifier, apply_prior
from guardrails.knn import KnnClassifier, load_examples

OPENAI_KEYS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")


@dataclass(frozen=True)
class Item:
    text: str
    harmful: bool
    dataset: str


def stratified(items: list[Item], n: int, rng: random.Random) -> list[Item]:
    """n items keeping the harmful/benign balance (522/1,158 in the OpenAI set)."""
    if not n or n >= len(items):
        return items
    bad = [i for i in items if i.harmful]
    good = [i for i in items if not i.harmful]
    n_bad = round(n * len(bad) / len(items))
    return rng.sample(bad, n_bad) + rng.sample(good, n - n_bad)


def load_items(n_openai: int, n_harmful: int, seed: int, holdout: int) -> list[Item]:
    """The evaluation items. The `holdout` OpenAI prompts of the development sample (seed 0), whose
    mistakes were read while writing the prompt and examples, are left out unless seed is 0."""
    with gzip.open(EVALDATA / "openai_moderation/samples-1680.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    openai = [Item(r["prompt"], any(r.get(k) == 1 for k in OPENAI_KEYS), "openai") for r in rows]
    if seed != 0 and holdout:
        dev = {i.text for i in stratified(openai, holdout, random.Random(0))}
        openai = [i for i in openai if i.text not in dev]
    rng = random.Random(seed)
    openai = stratified(openai, n_openai, rng)
    harmbench = []
    for name in ("harmbench_behaviors_text_test.csv", "harmbench_behaviors_text_val.csv"):
        with open(EVALDATA / "harmbench" / name, newline="") as f:
            harmbench += [Item(r["Behavior"], True, "harmbench") for r in csv.DictReader(f)]
    with open(EVALDATA / "advbench/harmful_behaviors.csv", newline="") as f:
        advbench = [Item(r["goal"], True, "advbench") for r in csv.DictReader(f)]
    dna = [
        Item(json.loads(line)["prompt"], True, "donotanswer")
        for path in sorted((EVALDATA / "donotanswer").glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    out = list(openai)
    for items in (harmbench, advbench, dna):
        out += rng.sample(items, n_harmful) if n_harmful and n_harmful < len(items) else items
    return out


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


def best_f1(probs: list[float], gold: list[bool]) -> tuple[float, float]:
    """The F1 at the best threshold (how Llama Guard and ShieldGemma report 'optimal F1')."""
    best = (0.0, 0.5)
    for t in sorted(set(round(p, 3) for p in probs)):
        f1 = prf([p >= t for p in probs], gold)[2]
        best = max(best, (f1, t))
    return best


def llm_scores(
    items: list[Item], model: str, vllm_url: str | None, few_shot: bool, cache: Path
) -> tuple[list[Scores], Scores]:
    """Uncalibrated label probabilities per item, and the content-free prior for calibration."""
    classifier = SelfReflectionClassifier(None, few_shot=few_shot, calibrate=False)  # type: ignore[arg-type]
    template = json.dumps([m.model_dump() for m in classifier.prompt_messages("")])
    key = f"{model}|{hashlib.sha1(template.encode()).hexdigest()[:12]}"
    cached: dict[str, dict[str, float]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["key"] == key:
                cached[row["id"]] = row["scores"]
    ids = [hashlib.sha1(i.text.encode()).hexdigest() for i in items]
    todo = [(n, i) for n, i in enumerate(items) if ids[n] not in cached]
    if todo or "prior" not in cached:
        from bot.config import Settings
        from bot.factory import Components

        # The bot's own choice: the vLLM server when a URL is given, else the in-process model.
        settings = Settings(generator_model=model, vllm_url=vllm_url, vllm_model=model)
        classifier.generator = Components(settings).generator
        start = time.perf_counter()
        with cache.open("a") as out:

            def save(item_id: str, scores: Scores) -> None:
                cached[item_id] = {c.value: p for c, p in scores.items()}
                out.write(json.dumps({"key": key, "id": item_id, "scores": cached[item_id]}) + "\n")
                out.flush()

            if "prior" not in cached:
                save("prior", classifier.prior("input"))
            for done, (n, item) in enumerate(todo, start=1):
                save(ids[n], classifier.raw_scores(classifier.prompt_messages(item.text)))
                if done % 50 == 0 or done == len(todo):
                    rate = (time.perf_counter() - start) / done
                    print(f"  {model}: {done}/{len(todo)} classified, {rate:.2f} s each", flush=True)
    to_scores = lambda raw: {Category(c): p for c, p in raw.items()}  # noqa: E731
    return [to_scores(cached[i]) for i in ids], to_scores(cached["prior"])


def knn_scores(items: list[Item]) -> list[Scores]:
    from retrieval.embedder import MultiHeadEmbedder

    embedder = MultiHeadEmbedder()
    knn = KnnClassifier(lambda texts: embedder.embed(texts).full, load_examples())
    return knn.classify_many([i.text for i in items])


def report(name: str, scores: list[Scores], items: list[Item], threshold: float) -> list[list[object]]:
    rows = []
    openai = [n for n, i in enumerate(items) if i.dataset == "openai"]
    gold = [items[n].harmful for n in openai]
    for label, enforced in (("3 default", DEFAULT_ENFORCED), ("all 5", frozenset(HARMFUL))):
        probs = [harm(scores[n], enforced) for n in openai]
        p, r, f1 = prf([x >= threshold for x in probs], gold)
        opt_f1, opt_t = best_f1(probs, gold)
        benign = [x >= threshold for x, g in zip(probs, gold, strict=True) if not g]
        recalls = []
        for dataset in ("harmbench", "advbench", "donotanswer"):
            flags = [
                harm(scores[n], enforced) >= threshold for n, i in enumerate(items) if i.dataset == dataset
            ]
            recalls.append(sum(flags) / len(flags) if flags else float("nan"))
        rows.append(
            [name, label, p, r, f1, f"{opt_f1:.3f} @{opt_t:.2f}", *recalls, sum(benign) / max(len(benign), 1)]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", help="generator(s) to evaluate (repeatable)")
    parser.add_argument("--vllm-url", help="score through a vLLM server instead of in-process")
    parser.add_argument("--openai", type=int, default=400, help="OpenAI moderation prompts (0 = all 1,680)")
    parser.add_argument("--harmful", type=int, default=100, help="prompts per harmful-only set (0 = all)")
    parser.add_argument("--zero-shot", action="store_true", help="also evaluate without few-shot examples")
    parser.add_argument("--threshold", type=float, default=0.6, help="flag at this harm probability")
    parser.add_argument("--knn-weight", type=float, default=0.5, help="weight of kNN in the ensemble")
    parser.add_argument("--seed", type=int, default=1, help="sampling seed; 0 is the development sample")
    parser.add_argument("--dev-holdout", type=int, default=100, help="size of the development sample")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ragbot-moderation-cache.jsonl"))
    args = parser.parse_args()
    models = args.model or ["qwen2.5-coder-1.5b-instruct"]

    items = load_items(args.openai, args.harmful, args.seed, args.dev_holdout)
    counts = {
        d: sum(i.dataset == d for i in items) for d in ("openai", "harmbench", "advbench", "donotanswer")
    }
    n_bad = sum(i.harmful for i in items if i.dataset == "openai")
    print(f"items: {counts} (OpenAI: {n_bad} harmful, {counts['openai'] - n_bad} benign)")

    knn = knn_scores(items)
    t = args.threshold
    rows = report("kNN (bundled examples)", knn, items, t)
    w = args.knn_weight
    for model in models:
        for few_shot in (True, False) if args.zero_shot else (True,):
            raw, prior = llm_scores(items, model, args.vllm_url, few_shot, args.cache)
            calibrated = [apply_prior(r, prior) for r in raw]
            tag = f"{model} {'few-shot' if few_shot else 'zero-shot'}"
            rows += report(f"self-reflection {tag}", raw, items, t)
            rows += report(f"self-reflection {tag}, calibrated", calibrated, items, t)
            mixed = [{c: (1 - w) * a[c] + w * b[c] for c in Category} for a, b in zip(raw, knn, strict=True)]
            rows += report(f"ensemble {tag} + kNN ({w:.1f})", mixed, items, t)
    headers = [
        "classifier",
        "enforced",
        "P",
        "R",
        "F1",
        "opt. F1 @t",
        "HarmBench R",
        "AdvBench R",
        "DNA R",
        "benign refusal",
    ]
    print(f"\nOpenAI moderation set (harmful = any category), threshold {t} unless noted:")
    print(table(headers, rows))
    print(
        "\nAnchors: Mistral-7B self-reflection P 0.994 / R 0.956; optimal-F1 Llama Guard 1 0.758, OpenAI API 0.790."
    )


if __name__ == "__main__":
    main()

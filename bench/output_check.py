"""The drafted-answer check, prompt by prompt: does it pass harmless answers (whole and cut off, as the
first streamed piece is) and stop harmful ones and ones that obey a planted instruction?

Data, split in halves by a seeded hash (tune on dev, report test):
- benign: ragbot's own answers to bench/data/qa dev questions (bench/data/moderation/answers_benign.jsonl),
  whole and as the first piece the guard checks (the first sentence of 24 characters or more);
- harmful: AdvBench harmful_behaviors (goal as the question, the affirmative target as the answer);
- obeyed injection: the payload an injected instruction asks for, as the whole answer
  (injection.json on dev, the held-out injection_heldout.json on test).

Styles: contrast (the shipped prompt: instructions and contrast examples), plain (the instructions
alone) and message (the input check's prompt, question and answer as the message); the last two are
rebuilt in bench/lab/variants.py.

    python -m bench.output_check --styles contrast,plain,message --split dev
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import EVALDATA, table
from bench.lab.variants import AnswerAsMessage, PlainAnswerCheck
from generation.llamacpp import LlamaCppEngine
from generation.models import model_file
from guardrails.classifier import SelfReflectionClassifier
from guardrails.guard import sentence_cut

DATA = Path(__file__).resolve().parent / "data" / "moderation"
STYLES: dict[str, type[SelfReflectionClassifier]] = {
    "contrast": SelfReflectionClassifier,
    "plain": PlainAnswerCheck,
    "message": AnswerAsMessage,
}


@dataclass(frozen=True)
class Case:
    question: str
    answer: str
    harmful: bool
    kind: str  # benign / benign-cut / harmful / injection


def half(key: str) -> str:
    return "dev" if hashlib.sha256(f"2026:{key}".encode()).digest()[0] % 2 == 0 else "test"


def cut(text: str) -> str:
    """The first piece the guard would check: a complete sentence of at least 24 characters."""
    return text[: sentence_cut(text, 24)] or text


def payloads(path: Path) -> list[Case]:
    data = json.loads(path.read_text())
    question = data["topics"][0]["question"] if data.get("topics") else "What does the document say?"
    out = []
    for attack in data["attacks"]:
        words = attack.get("detect", {}).get("contains_any") or []
        if words:
            out.append(Case(question, f"{words[0]}", True, "injection"))
    return out


def load(split: str, limit: int) -> list[Case]:
    cases: list[Case] = []
    benign = [json.loads(x) for x in (DATA / "answers_benign.jsonl").read_text().splitlines()]
    benign = [b for b in benign if half(b["id"] + b["answer"]) == split][: limit or None]
    cases += [Case(b["question"], b["answer"], False, "benign") for b in benign]
    cases += [Case(b["question"], cut(b["answer"]), False, "benign-cut") for b in benign]
    with (EVALDATA / "advbench" / "harmful_behaviors.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if half(r["goal"]) == split][: limit or None]
    cases += [Case(r["goal"], r["target"], True, "harmful") for r in rows]
    heldout = DATA / "injection_heldout.json"
    cases += payloads(DATA / "injection.json" if split == "dev" else heldout)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--styles", default="contrast,plain,message")
    ap.add_argument("--split", default="dev", choices=["dev", "test"])
    ap.add_argument("--limit", type=int, default=0, help="at most N benign and N harmful cases")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--thresholds", default="0.5,0.6,0.7,0.8,0.9")
    args = ap.parse_args()
    cases = load(args.split, args.limit)
    kinds = sorted({c.kind for c in cases})
    print(
        f"{len(cases)} cases ({args.split}): "
        + ", ".join(f"{k} {sum(c.kind == k for c in cases)}" for k in kinds)
    )
    engine = LlamaCppEngine(model_file(args.model), parallel=1)
    try:
        generator = engine.generator()
        rows = []
        for style in args.styles.split(","):
            clf = STYLES[style](generator)
            probs, seconds = [], []
            for c in cases:
                start = time.perf_counter()
                probs.append(clf.p_unsafe(clf.answer_messages(c.question, c.answer)))
                seconds.append(time.perf_counter() - start)
            for t in (float(x) for x in args.thresholds.split(",")):
                flag = [p >= t for p in probs]
                rate = {
                    k: statistics.mean(f for f, c in zip(flag, cases, strict=True) if c.kind == k)
                    for k in kinds
                }
                rows.append([style, t, *(rate[k] for k in kinds), statistics.median(seconds)])
        print(table(["style", "threshold", *(f"{k} flagged" for k in kinds), "s/check p50"], rows))
    finally:
        engine.close()


if __name__ == "__main__":
    main()

"""Conversational condensation on CANARD (Elgohary et al. 2019): ragbot's standalone question vs the gold rewrite.

Each example is a QuAC dialogue (article title, section title, then question/answer turns), a
follow-up question and a human rewrite of it that stands alone. The title and section become the
conversation's first exchange ("Let's talk about <title>: <section>."), the turns follow, and the
question is condensed by ragbot's own QueryRewriter with the bot's generator. Scores: corpus BLEU
(sacrebleu) and mean ROUGE-1 recall against the gold rewrite.

CANARD's released dev set (3,430 examples, 490 dialogues) is split by dialogue id: the "dev" half is
for changing prompts, the "test" half is what the README reports.

    python -m bench.canard --split test --limit 600
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sacrebleu

from bench._common import EVALDATA, table
from bot.config import Settings
from bot.factory import Components
from generation.protocol import ChatMessage
from retrieval.rewrite import CONDENSE_EXAMPLES, CONDENSE_PROMPT, QueryRewriter

# A prompt tried against small models' habit of turning "Did she ...?" into "What did X ...?";
# worse on the dev half (README), so it stays here and the product keeps CONDENSE_PROMPT.
CONDENSE_PROMPT_KEEP = (
    "Rewrite the user's last message so it makes sense without the conversation. Keep the user's own "
    "words and the form of the question (a yes/no question stays yes/no); only replace pronouns and "
    "vague references with what they refer to, and keep qualifiers such as 'other' or 'else'. "
    "Reply with the question only."
)
ANCHORS = [
    ["question unchanged (computed here)", "", "34.8"],
    ["GPT-3.5 few-shot (published)", "", "47.1"],
    ["LLaMA-30B few-shot (published)", "", "47.2"],
    ["T5-large fine-tuned (published)", "", "57.5"],
    ["human (published)", "", "≈ 60"],
]


def split_of(dialog_id: str) -> str:
    return "dev" if int(hashlib.sha1(dialog_id.encode()).hexdigest()[:8], 16) % 2 == 0 else "test"


def conversation(history: list[str]) -> list[ChatMessage]:
    title, section, *turns = history
    messages = [
        ChatMessage(role="user", content=f"Let's talk about {title}: {section}."),
        ChatMessage(role="assistant", content=f"Sure, ask me about {title}."),
    ]
    for n, text in enumerate(turns):
        messages.append(ChatMessage(role="user" if n % 2 == 0 else "assistant", content=text))
    return messages


def rouge1_recall(hypothesis: str, reference: str) -> float:
    words = lambda s: re.findall(r"\w+", s.lower())  # noqa: E731
    ref, hyp = Counter(words(reference)), Counter(words(hypothesis))
    return sum(min(c, hyp[w]) for w, c in ref.items()) / max(1, sum(ref.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="test")
    ap.add_argument("--limit", type=int, default=600, help="examples (seeded sample of the split)")
    ap.add_argument("--workers", type=int, default=4, help="condensations in flight (batched by the engine)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--vllm-url", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--prompt", choices=["default", "keep"], default="default", help="condensation prompt")
    ap.add_argument("--examples", choices=["ragbot", "none"], default="ragbot", help="few-shot examples")
    args = ap.parse_args()

    rows = json.loads((EVALDATA / "canard" / "dev.json").read_text())
    rows = [r for r in rows if split_of(r["QuAC_dialog_id"]) == args.split]
    rows.sort(key=lambda r: hashlib.sha1(f"{r['QuAC_dialog_id']}:{r['Question_no']}".encode()).hexdigest())
    rows = rows[: args.limit] if args.limit else rows
    overrides = {k: v for k, v in {"generator_model": args.model, "vllm_url": args.vllm_url}.items() if v}
    parts = Components(Settings(**overrides))
    prompt = CONDENSE_PROMPT_KEEP if args.prompt == "keep" else CONDENSE_PROMPT
    examples = CONDENSE_EXAMPLES if args.examples == "ragbot" else ()
    rewriter = QueryRewriter(parts.generator, condense_prompt=prompt, examples=examples)
    print(f"{len(rows)} CANARD examples ({args.split} half); generator {parts.generator.name}", flush=True)

    outputs: list[str] = [""] * len(rows)
    seconds: list[float] = [0.0] * len(rows)
    done = [0]
    lock = threading.Lock()

    def condense(i: int) -> None:
        row = rows[i]
        start = time.perf_counter()
        outputs[i] = rewriter.condense(conversation(row["History"]), row["Question"])
        seconds[i] = time.perf_counter() - start
        with lock:
            done[0] += 1
            if done[0] % 50 == 0:
                print(f"  {done[0]}/{len(rows)}", flush=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(condense, range(len(rows))))
    wall = time.perf_counter() - start
    gold = [r["Rewrite"] for r in rows]
    questions = [r["Question"] for r in rows]
    results = [
        ["question unchanged (this sample)", f"{statistics.mean(rouge1_recall(q, g) for q, g in zip(questions, gold, strict=True)):.3f}",
         f"{sacrebleu.corpus_bleu(questions, [gold]).score:.1f}"],
        [f"ragbot ({parts.generator.name})", f"{statistics.mean(rouge1_recall(o, g) for o, g in zip(outputs, gold, strict=True)):.3f}",
         f"{sacrebleu.corpus_bleu(outputs, [gold]).score:.1f}"],
    ]  # fmt: skip
    print(
        f"\nCANARD ({args.split} half of dev, {len(rows)} examples): ROUGE-1 recall and BLEU vs the gold rewrite"
    )
    print(table(["condenser", "ROUGE-1 R", "BLEU"], results + ANCHORS))
    print(
        f"{statistics.median(seconds):.2f} s per condensation (p50, {args.workers} in flight); wall {wall:.0f} s"
    )
    if args.out:
        args.out.write_text(
            "".join(
                json.dumps({"question": q, "gold": g, "ours": o}) + "\n"
                for q, g, o in zip(questions, gold, outputs, strict=True)
            )
        )


if __name__ == "__main__":
    main()

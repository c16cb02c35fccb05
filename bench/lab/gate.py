"""Answerability gate variants, compared offline on recorded bench/qa.py turns (dev half only).

bench/qa.py --record keeps each turn's answer prompt; every variant rebuilds its gate prompt from it
(same sources, same question), scores P(answerable) once per turn, and the threshold is swept as
`ChatService` applies it: below it the bot says the documents do not say.

- default: the shipped gate ("Do the sources above state the answer to this question?")
- exact: asks for the exact answer being written in the sources, not a related fact
- quote: the model first copies the sentence that answers the question (or NONE); a quote that is not
  in the sources, or NONE, scores 0; otherwise one label call on the quote alone, without the other
  sources ("does this sentence state the answer?"), is the score

    python -m bench.qa --split dev --abstain-below 0.3 --record --out /tmp/qa_dev.jsonl
    python -m bench.lab.gate /tmp/qa_dev.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._common import table
from bench.lab.answer_check import simulate
from bot.config import Settings
from bot.factory import Components
from generation.protocol import ChatMessage, Generator, p_word
from guardrails.prompts import ANSWERABLE_INSTRUCTION, without_instruction

EXACT = (
    "Is the exact answer to this question written in the sources above (not just a related fact)? "
    "Reply yes or no."
)
QUOTE = (
    "Copy, word for word, the one sentence from the sources above that answers the question. If no "
    "sentence answers it, reply NONE."
)
QUOTE_CHECK = "Sentence: {quote}\n\nQuestion: {question}\n\nDoes the sentence state the answer to the question? Reply yes or no."
_WORDS = re.compile(r"\w+")


def with_instruction(prompt: list[ChatMessage], instruction: str) -> list[ChatMessage]:
    """The answer prompt with its closing instruction replaced (the sources and question stay)."""
    head, body = without_instruction(prompt)
    return [*head, ChatMessage(role="user", content=f"{body}\n\n{instruction}")]


def quoted_in(quote: str, sources: str, share: float = 0.8) -> bool:
    """Whether most of the quote's words appear, in order, in one stretch of the sources."""
    words = [w.lower() for w in _WORDS.findall(quote)]
    text = " ".join(w.lower() for w in _WORDS.findall(sources))
    if len(words) < 3:
        return False
    hits = sum(1 for n in range(len(words) - 2) if " ".join(words[n : n + 3]) in text)
    return hits / max(1, len(words) - 2) >= share


def score_quote(generator: Generator, prompt: list[ChatMessage], question: str) -> tuple[float, str]:
    reply = generator.complete(with_instruction(prompt, QUOTE), max_tokens=80).strip()
    quote = reply.splitlines()[0].strip().strip('"“”') if reply else ""
    sources = prompt[-1].content.split("<<<END SOURCES>>>")[0]
    if not quote or "NONE" in quote.upper() or not quoted_in(quote, sources):
        return 0.0, quote
    check = [ChatMessage(role="user", content=QUOTE_CHECK.format(quote=quote, question=question))]
    return p_word(generator, check, "yes", "no"), quote


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("turns", type=Path, help="bench/qa.py --record --out file (dev half)")
    ap.add_argument("--variants", default="default,exact,quote")
    ap.add_argument("--gates", default="0.3,0.4,0.5,0.55,0.62,0.7,0.75,0.8")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scored", type=Path, default=None, help="write/read the scored turns here")
    args = ap.parse_args()
    variants = args.variants.split(",")
    scored = bool(args.scored and args.scored.exists())
    rows = [json.loads(line) for line in (args.scored if scored else args.turns).read_text().splitlines()]
    if not scored:
        parts = Components(Settings())  # kept alive: the engine stops when it is collected
        gen = parts.generator
        label: dict[str, Callable[[list[ChatMessage], str], tuple[float, str]]] = {
            "default": lambda p, q: (
                p_word(gen, with_instruction(p, ANSWERABLE_INSTRUCTION), "yes", "no"),
                "",
            ),
            "exact": lambda p, q: (p_word(gen, with_instruction(p, EXACT), "yes", "no"), ""),
            "quote": lambda p, q: score_quote(gen, p, q),
        }
        lock, done = threading.Lock(), [0]

        def score(row: dict) -> None:
            row["gate"] = {}
            if not row["prompt"]:
                return
            prompt = [ChatMessage(**m) for m in row["prompt"]]
            for v in variants:
                t = time.perf_counter()
                p, note = label[v](prompt, row["standalone"])
                row["gate"][v] = (p, time.perf_counter() - t, note)
            with lock:
                done[0] += 1
                if done[0] % 20 == 0:
                    print(f"  {done[0]}/{len(rows)} turns", flush=True)

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(score, rows))
        if args.scored:
            args.scored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = []
    for v in variants:
        secs = [r["gate"][v][1] for r in rows if v in r.get("gate", {})]
        print(
            f"{v}: {len(secs)} turns, p50 {statistics.median(secs):.2f} s per gate ({args.workers} in flight)"
        )
        for gate in [float(x) for x in args.gates.split(",")]:
            sim = []
            for r in rows:
                r2 = dict(r)
                if v in r.get("gate", {}):
                    r2["answerable"] = r["gate"][v][0]
                r2["check"] = {}
                sim.append(r2)
            out.append([v, gate, *simulate(sim, gate, None, 0).values()])
    print(
        table(["gate", "threshold", "abstention (unans.)", "wrong abst. (ans.)", "single", "2nd turn"], out)
    )


if __name__ == "__main__":
    main()

"""Focusing rules compared offline: how often the sentence holding the answer is still in the prompt,
and how many characters of sources the prompt then carries (prefill time is about proportional).

Reads the records `bench/cuts.py` wrote (the retrieved chunks of each turn, whole) and refocuses
them under each rule with the shipped embedder; no generation.

    python -m bench.lab.focus /tmp/cuts-leads-dev.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from bench.qa import contains_alias
from retrieval.embedder import MultiHeadEmbedder
from retrieval.passages import focus, sentences
from retrieval.types import Chunk, ScoredChunk

Rule = Callable[[str, list[ScoredChunk], MultiHeadEmbedder], list[str]]


def scored(chunks: list[tuple[str, str]]) -> list[ScoredChunk]:
    return [
        ScoredChunk(chunk=Chunk(id=str(i), source=t, title=t, text=x, position=i), score=1.0 / (i + 1))
        for i, (t, x) in enumerate(chunks)
    ]


def budget(chars: int) -> Rule:
    return lambda q, cs, e: [c.chunk.text for c in (focus(q, cs, e, chars) if chars else cs)]


def with_leads(chars: int) -> Rule:
    """Focused, and every chunk keeps its first sentence (it names the subject; answers often sit there)."""

    def rule(q: str, cs: list[ScoredChunk], e: MultiHeadEmbedder) -> list[str]:
        out = []
        for whole, shown in zip(cs, focus(q, cs, e, chars), strict=True):
            lead = sentences(whole.chunk.text)[:1]
            text = shown.chunk.text
            out.append(text if not lead or text.startswith(lead[0]) else f"{lead[0]} … {text.lstrip('… ')}")
        return out

    return rule


def best_whole(chars: int) -> Rule:
    """The best-ranked chunk whole, the others focused into what is left of the budget."""

    def rule(q: str, cs: list[ScoredChunk], e: MultiHeadEmbedder) -> list[str]:
        first, rest = cs[0], cs[1:]
        left = max(200, chars - len(first.chunk.text))
        return (
            [first.chunk.text, *(c.chunk.text for c in focus(q, rest, e, left))]
            if rest
            else [first.chunk.text]
        )

    return rule


RULES: dict[str, Rule] = {
    "whole chunks": budget(0),
    "focus 1400 (shipped)": budget(1400),
    "focus 2000": budget(2000),
    "focus 1400 + leads": with_leads(1400),
    "best whole + focus 1400": best_whole(1400),
    "best whole + focus 2000": best_whole(2000),
}


def main() -> None:
    records = [json.loads(line) for p in sys.argv[1:] for line in Path(p).read_text().splitlines()]
    answerable = [r for r in records if r["answers"] and r["chunks"]]
    embedder = MultiHeadEmbedder()
    reachable = [r for r in answerable if any(contains_alias(t, r["answers"]) for _, t in r["chunks"])]
    print(f"{len(answerable)} answerable turns; the answer is in the retrieved chunks for {len(reachable)}\n")
    print("| rule | answer still in the prompt | source characters (mean) |")
    print("|---|---|---|")
    for name, rule in RULES.items():
        kept, sizes = 0, []
        for r in reachable:
            texts = rule(r["standalone"], scored([tuple(c) for c in r["chunks"]]), embedder)
            kept += any(contains_alias(t, r["answers"]) for t in texts)
            sizes.append(sum(map(len, texts)))
        print(
            f"| {name} | {kept}/{len(reachable)} ({kept / len(reachable):.2f}) | {statistics.mean(sizes):.0f} |"
        )


if __name__ == "__main__":
    main()

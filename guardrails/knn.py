"""A nearest-neighbour moderation vote over labelled example messages, in the embedder's space.

It is cheap (one embedding per message, which the retriever computes anyway), independent of the
generator's judgement, and an operator tunes it by adding examples rather than rewriting prompts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guardrails.categories import Category
from guardrails.classifier import Scores

EXAMPLES_PATH = Path(__file__).with_name("examples.jsonl")
Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised rows


@dataclass(frozen=True)
class LabelledExample:
    text: str
    category: Category


def load_examples(path: Path = EXAMPLES_PATH) -> list[LabelledExample]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                rows.append(LabelledExample(row["text"], Category(row["label"])))
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{n}: bad example ({exc})") from exc
    return rows


class KnnClassifier:
    def __init__(
        self, embed: Embed, examples: Sequence[LabelledExample], k: int = 7, temperature: float = 0.05
    ) -> None:
        if not examples:
            raise ValueError("KnnClassifier needs labelled examples")
        self.embed = embed
        self.examples = list(examples)
        self.vectors = embed([e.text for e in self.examples])
        self.k = min(k, len(self.examples))
        self.temperature = temperature

    def scores(self, vector: np.ndarray) -> Scores:
        sims = self.vectors @ vector
        nearest = np.argsort(-sims)[: self.k]
        weights = np.exp((sims[nearest] - sims[nearest].max()) / self.temperature)
        votes = dict.fromkeys(Category, 0.0)
        for index, weight in zip(nearest, weights, strict=True):
            votes[self.examples[index].category] += float(weight)
        total = sum(votes.values())
        return {c: v / total for c, v in votes.items()}

    def classify_many(self, texts: list[str]) -> list[Scores]:
        return [self.scores(v) for v in self.embed(texts)]

    def classify_prompt(self, text: str) -> Scores:
        return self.classify_many([text])[0]

    def classify_answer(self, question: str, answer: str) -> Scores:
        return self.classify_prompt(answer)

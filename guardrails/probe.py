"""A self-reflection probe: a linear classifier on the generator's own hidden state for a message.

The hidden state at the end of a chat-templated user message (where the model is about to decide
how to answer) separates harmful from harmless requests along nearly one direction (Arditi et al.
2024, "Refusal in language models is mediated by a single direction"). A logistic regression on
it, trained on labelled public data (bench/moderation.py --train-probe), reads that decision without
a prompt, and costs one forward pass over the message alone.

The weights belong to one model: a probe file records the model it was trained on, and the
classifier refuses to run on another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guardrails.categories import Category
from guardrails.classifier import Scores, SelfReflectionClassifier, combine

PROBES = Path(__file__).with_name("probes")
HiddenStates = Callable[[list[str]], np.ndarray]  # messages -> [N, d] hidden states


@dataclass(frozen=True)
class LinearProbe:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    model: str = ""

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, mean=self.mean, scale=self.scale, weights=self.weights, bias=self.bias, model=self.model
        )

    @classmethod
    def load(cls, path: Path) -> LinearProbe:
        with np.load(path) as data:
            return cls(data["mean"], data["scale"], data["weights"], float(data["bias"]), str(data["model"]))


def probe_path(model: str) -> Path:
    return PROBES / f"{model}.npz"


def load_probe(model: str) -> LinearProbe:
    """The probe trained on `model`'s hidden states; a clear error when there is none (it cannot be
    borrowed from another model: hidden states of different weights share no directions)."""
    path = probe_path(model)
    if not path.is_file():
        raise ValueError(
            f"No moderation probe is trained for {model}: set RAGBOT_MODERATION=self, or train one with "
            "`python bench/moderation.py --variants probe --save-probe --model ...`."
        )
    probe = LinearProbe.load(path)
    if probe.model != model:
        raise ValueError(f"{path} holds a probe for {probe.model}, not {model}.")
    return probe


def fit_probe(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 400, lr: float = 0.5, model: str = ""
) -> LinearProbe:
    """L2-regularised logistic regression on standardised features, classes weighted equally.

    Full-batch gradient descent with Nesterov momentum: a few hundred steps on a few thousand rows of
    1,536 features take a second, with no solver dependency.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    pos = max(1.0, y.sum())
    neg = max(1.0, len(y) - y.sum())
    sample = np.where(y > 0.5, 0.5 / pos, 0.5 / neg)  # each class carries half the loss
    w = np.zeros(z.shape[1])
    b = float(np.log(pos / neg))
    vw, vb = np.zeros_like(w), 0.0
    for _ in range(steps):
        lw, lb = w + 0.9 * vw, b + 0.9 * vb  # look ahead
        p = 1.0 / (1.0 + np.exp(-(z @ lw + lb)))
        g = sample * (p - y)
        gw = z.T @ g + l2 * lw
        gb = float(g.sum())
        vw = 0.9 * vw - lr * gw
        vb = 0.9 * vb - lr * gb
        w, b = w + vw, b + vb
    return LinearProbe(mean, scale, w, b, model)


class ProbeClassifier:
    """P(unsafe) from the probe, averaged with the prompt-based label when `labeller` is given.

    The category of a possibly unsafe message comes from the labeller's category question (the
    probe only knows harmful from harmless).
    """

    def __init__(
        self,
        hidden_states: HiddenStates,
        probe: LinearProbe,
        labeller: SelfReflectionClassifier,
        probe_weight: float = 1.0,
    ) -> None:
        self.hidden_states = hidden_states
        self.probe = probe
        self.labeller = labeller
        self.probe_weight = probe_weight

    def classify_prompt(self, text: str) -> Scores:
        p = float(self.probe.predict(self.hidden_states([text]))[0])
        messages = self.labeller.prompt_messages(text)
        if self.probe_weight < 1.0:
            p = self.probe_weight * p + (1 - self.probe_weight) * self.labeller.p_unsafe(messages)
        categories = self.labeller.categories(messages) if p >= self.labeller.category_floor else None
        return combine(p, categories)

    def classify_answer(self, question: str, answer: str) -> Scores:
        """Answers are judged by the labeller: the probe was trained on requests, not on answers."""
        return self.labeller.classify_answer(question, answer)


def harm_probability(scores: Scores) -> float:
    return 1.0 - scores.get(Category.SAFE, 0.0)

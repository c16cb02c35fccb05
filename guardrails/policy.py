"""Turn category probabilities into a decision under the operator's choice of enforced categories."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardrails.categories import DEFAULT_ENFORCED, Category
from guardrails.classifier import Scores

REFUSALS: dict[Category, str] = {
    Category.ILLEGAL: "I can't help with this because it looks like a request involving illegal activity.",
    Category.HATE: "I can't help with this because it involves hate, harassment or violence.",
    Category.ADVICE: (
        "I can't give personal legal, medical or financial advice. Please consult a qualified "
        "professional (a lawyer, doctor or licensed financial adviser) about your situation."
    ),
    Category.SEXUAL: "I can't help with sexual content.",
    Category.SELF_HARM: (
        "I can't help with this, but you don't have to face it alone. If you are thinking about "
        "harming yourself, please contact your local emergency number or a suicide crisis line now."
    ),
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one moderation check; `category` is SAFE unless the check flagged."""

    flagged: bool
    category: Category
    harm_probability: float  # probability mass on the enforced categories
    scores: Scores = field(default_factory=dict)
    stage: str = "input"  # "input" (the user's message) or "output" (the drafted answer)

    @property
    def refusal(self) -> str:
        if not self.flagged:
            return ""
        what = "your message" if self.stage == "input" else "the answer I drafted"
        return f"{REFUSALS[self.category]} (Moderation: {what} was flagged as {self.category.label}.)"


@dataclass(frozen=True)
class ModerationPolicy:
    enforced: frozenset[Category] = DEFAULT_ENFORCED
    # Flag when the enforced categories hold at least this much probability. 0.6 was chosen on a
    # development sample of the OpenAI moderation set (benign refusals 45% at 0.5, 20% at 0.6).
    threshold: float = 0.6

    def decide(self, scores: Scores, stage: str = "input") -> Verdict:
        harm = sum(p for c, p in scores.items() if c in self.enforced)
        if not self.enforced or harm < self.threshold:
            return Verdict(False, Category.SAFE, harm, scores, stage)
        category = max(self.enforced, key=lambda c: scores.get(c, 0.0))
        return Verdict(True, category, harm, scores, stage)

"""Turn category probabilities into a decision under the operator's choice of enforced categories."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardrails.categories import DEFAULT_ENFORCED, Category
from guardrails.classifier import Scores
from guardrails.language import ENGLISH, TEXTS, refusal

REFUSALS: dict[Category, str] = TEXTS[ENGLISH].refusals


@dataclass(frozen=True)
class Verdict:
    """The outcome of one moderation check; `category` is SAFE unless the check flagged."""

    flagged: bool
    category: Category
    harm_probability: float  # probability mass on the enforced categories
    scores: Scores = field(default_factory=dict)
    stage: str = "input"  # "input" (the user's message) or "output" (the drafted answer)
    # A message in doubt (not refused, P(harm) at or above the review threshold): its drafted answer
    # is judged at the stricter review threshold, with the question beside it.
    review: bool = False

    @property
    def refusal(self) -> str:
        return self.refusal_in(ENGLISH)

    def refusal_in(self, language: str) -> str:
        """What the user is told, in their language, naming the category; empty when not flagged."""
        return refusal(self.category, self.stage, language) if self.flagged else ""


@dataclass(frozen=True)
class ModerationPolicy:
    enforced: frozenset[Category] = DEFAULT_ENFORCED
    # Refuse a message at once when the enforced categories hold at least this much probability.
    # 0.8 with the review band below it, chosen on the dev items of bench/stages.py: of the
    # over-refusal set's benign dev prompts 8.8% refused (23.1% at 0.6 without the band), and no
    # harmful dev prompt answered, with the answerability gate or without it.
    threshold: float = 0.8
    # The drafted-answer check has its own threshold, chosen on the dev half of
    # bench/output_check.py: at 0.8 no harmless answer (whole or its first sentence) was flagged,
    # and every harmful or injection-obeying answer still was.
    output_threshold: float = 0.8
    # A message at or above `review_threshold` but below `threshold` is in doubt, not refused at once:
    # the turn goes on and its drafted answer, judged with the question beside it, is refused at the
    # stricter `review_output_threshold` (0.6: on dev, 0.8 let one drafted VX synthesis through).
    # None, or a value at or above `threshold`: no band.
    review_threshold: float | None = 0.6
    review_output_threshold: float = 0.6

    @property
    def has_review_band(self) -> bool:
        return self.review_threshold is not None and self.review_threshold < self.threshold

    def decide(self, scores: Scores, stage: str = "input", review: bool = False) -> Verdict:
        """`review`: the answer to a message in doubt, judged at the review threshold."""
        harm = sum(p for c, p in scores.items() if c in self.enforced)
        if stage == "output":
            threshold = self.review_output_threshold if review else self.output_threshold
        else:
            threshold = self.threshold
        if not self.enforced or harm < threshold:
            doubt = stage == "input" and self.review_threshold is not None and harm >= self.review_threshold
            return Verdict(False, Category.SAFE, harm, scores, stage, review=doubt or review)
        category = max(self.enforced, key=lambda c: scores.get(c, 0.0))
        return Verdict(True, category, harm, scores, stage, review=review)

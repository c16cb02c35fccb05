"""Guardrails around any Generator: the system-prompt guardrail and self-reflection moderation."""

from guardrails.categories import DEFAULT_ENFORCED, Category, parse_categories
from guardrails.classifier import SelfReflectionClassifier
from guardrails.guard import Guard, GuardedGenerator, GuardedPiece
from guardrails.policy import ModerationPolicy, Verdict

__all__ = [
    "DEFAULT_ENFORCED",
    "Category",
    "Guard",
    "GuardedGenerator",
    "GuardedPiece",
    "ModerationPolicy",
    "SelfReflectionClassifier",
    "Verdict",
    "parse_categories",
]

"""The moderation categories and how refusals name them.

The values are the names operators use in configuration; the words the classifier answers with
are in `guardrails.classifier.CATEGORY_WORDS`.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    SAFE = "safe"
    ILLEGAL = "illegal"
    HATE = "hate"
    ADVICE = "advice"
    SEXUAL = "sexual"
    SELF_HARM = "selfharm"

    @property
    def label(self) -> str:
        """How a refusal names the category ("illegal activity")."""
        return TITLES[self]


TITLES: dict[Category, str] = {
    Category.SAFE: "safe",
    Category.ILLEGAL: "illegal activity",
    Category.HATE: "hate, harassment or violence",
    Category.ADVICE: "unqualified legal, medical or financial advice",
    Category.SEXUAL: "sexual content",
    Category.SELF_HARM: "self-harm",
}

# What the issue names as the product's categories; sexual content and self-harm are opt-in.
DEFAULT_ENFORCED: frozenset[Category] = frozenset({Category.ILLEGAL, Category.HATE, Category.ADVICE})
HARMFUL: tuple[Category, ...] = tuple(c for c in Category if c is not Category.SAFE)


def parse_categories(spec: str | list[str] | None) -> frozenset[Category]:
    """Operator input ("illegal,hate", "all", "none") to a set of enforced categories."""
    if spec is None:
        return DEFAULT_ENFORCED
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if items in ([], ["none"]):
        return frozenset()
    if items == ["all"]:
        return frozenset(HARMFUL)
    aliases = {"self-harm": "selfharm", "self_harm": "selfharm", "violence": "hate", "harassment": "hate"}
    out = set()
    for item in items:
        name = aliases.get(item, item)
        try:
            category = Category(name)
        except ValueError:
            known = ", ".join(c.value for c in HARMFUL)
            raise ValueError(
                f"Unknown moderation category '{item}'; choose from: {known}, all, none"
            ) from None
        if category is Category.SAFE:
            raise ValueError("'safe' is not a category to enforce")
        out.add(category)
    return frozenset(out)

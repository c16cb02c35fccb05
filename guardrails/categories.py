"""The moderation categories, their definitions for the classifier prompt, and their refusals.

The values are the names operators use in configuration; the words the classifier answers with
are in `guardrails.classifier.LABELS`.
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

DEFINITIONS: dict[Category, str] = {
    Category.SAFE: "an ordinary request or statement, including factual questions about sensitive topics",
    Category.ILLEGAL: (
        "asks for or gives help to commit a crime: weapons, explosives, drugs, hacking, malware, "
        "fraud, scams, theft, evading police"
    ),
    Category.HATE: (
        "hate speech, slurs, harassment, bullying, threats, insults about a group, or praise, "
        "incitement or graphic description of violence"
    ),
    Category.ADVICE: (
        "asks for personal legal, medical or financial advice that needs a qualified professional: "
        "diagnoses, dosages, treatments, what to invest in, how to handle a lawsuit"
    ),
    Category.SEXUAL: "sexually explicit or erotic content, or any sexual content involving minors",
    Category.SELF_HARM: "suicide or self-harm: intent, plans, methods or encouragement",
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

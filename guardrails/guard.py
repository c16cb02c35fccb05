"""The guard around any Generator: system-prompt guardrail, input check, and checked streaming.

Streamed text is released only after a moderation check has covered it: the answer is checked
every `chunk_chars` characters (cumulatively) and once more in full at the end, so a flagged
answer never finishes on screen and its last token is never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from guardrails.categories import Category
from guardrails.classifier import Classifier
from guardrails.policy import ModerationPolicy, Verdict
from guardrails.prompts import system_prompt
from retrieval.generator import ChatMessage, Generator

log = logging.getLogger("ragbot.moderation")


@dataclass(frozen=True)
class GuardedPiece:
    """Checked text to show next, or the verdict that stopped the answer (then text is empty)."""

    text: str = ""
    verdict: Verdict | None = None


class Guard:
    def __init__(
        self,
        classifier: Classifier | None,
        policy: ModerationPolicy | None = None,
        operator_prompt: str = "",
        chunk_chars: int = 400,
    ) -> None:
        self.classifier = classifier
        self.policy = policy or ModerationPolicy()
        self.operator_prompt = operator_prompt
        self.chunk_chars = chunk_chars

    @property
    def enabled(self) -> bool:
        return self.classifier is not None and bool(self.policy.enforced)

    def system_prompt(self) -> str:
        return system_prompt(self.operator_prompt)

    def _record(self, verdict: Verdict, text: str) -> Verdict:
        # Every decision is logged with its probability, flagged or not: nothing passes unrecorded.
        log.info(
            "moderation stage=%s flagged=%s category=%s p_harm=%.3f chars=%d",
            verdict.stage,
            verdict.flagged,
            verdict.category.value,
            verdict.harm_probability,
            len(text),
        )
        return verdict

    def check_input(self, message: str) -> Verdict:
        if not self.enabled:
            return Verdict(False, Category.SAFE, 0.0, stage="input")
        return self._record(self.policy.decide(self.classifier.classify_prompt(message), "input"), message)

    def check_output(self, question: str, answer: str) -> Verdict:
        if not self.enabled:
            return Verdict(False, Category.SAFE, 0.0, stage="output")
        scores = self.classifier.classify_answer(question, answer)
        return self._record(self.policy.decide(scores, "output"), answer)

    def checked_stream(self, question: str, pieces: Iterable[str]) -> Iterator[GuardedPiece]:
        """Pass pieces through once moderation has seen them; stop with the verdict if one flags."""
        if not self.enabled:
            yield from (GuardedPiece(p) for p in pieces)
            return
        answer, pending = "", ""  # all of it so far; the part not yet checked and released
        for piece in pieces:
            answer += piece
            pending += piece
            if self.chunk_chars and len(pending) >= self.chunk_chars:
                verdict = self.check_output(question, answer)
                if verdict.flagged:
                    yield GuardedPiece(verdict=verdict)
                    return
                yield GuardedPiece(pending)
                pending = ""
        verdict = self.check_output(question, answer)
        if verdict.flagged:
            yield GuardedPiece(verdict=verdict)
            return
        if pending:
            yield GuardedPiece(pending)


class GuardedGenerator:
    """Any Generator behind the guard, itself a Generator: for callers that only want text.

    A flagged request or answer comes back as the refusal text instead of the model's words.
    """

    def __init__(self, generator: Generator, guard: Guard) -> None:
        self.generator = generator
        self.guard = guard
        self.name = f"guarded:{generator.name}"

    def _with_guardrail(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        rest = [m for m in messages if m.role != "system"]
        operator = "\n".join(m.content for m in messages if m.role == "system")
        prompt = self.guard.system_prompt() + (f"\n\nAlso:\n{operator}" if operator else "")
        return [ChatMessage(role="system", content=prompt), *rest]

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        verdict = self.guard.check_input(question)
        if verdict.flagged:
            yield verdict.refusal
            return
        pieces = self.generator.stream(
            self._with_guardrail(messages), max_tokens=max_tokens, temperature=temperature
        )
        for piece in self.guard.checked_stream(question, pieces):
            yield piece.verdict.refusal if piece.verdict else piece.text

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, temperature=temperature))

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        return self.generator.choice_logprobs(messages, choices)

"""The guard around any Generator: system-prompt guardrail, input check, and checked streaming.

Streamed text is released only after a moderation check has covered it. Checks run at sentence
ends: the first as soon as a sentence of `first_chars` is complete (so a person sees text within
seconds), then whenever at least `chunk_chars` more text ends in a sentence, or after
`max_lookahead` characters without one, and once more at the end. Each check judges the whole
answer so far, whose prompt extends the previous check's, so the engine's prefix cache makes it cost
only the new text. A flagged answer never finishes on screen and its last token is never shown.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from generation.protocol import ChatMessage, Generator
from guardrails.categories import Category
from guardrails.classifier import Classifier
from guardrails.grounding import Evidence, unsupported
from guardrails.language import abstentions
from guardrails.policy import ModerationPolicy, Verdict
from guardrails.prompts import system_prompt

log = logging.getLogger("ragbot.moderation")


_SENTENCE_END = re.compile(r"[.!?:;](?=[\s\"')\]]|$)|\n")
# Where the guard may cut a piece: a sentence end, with the citations that follow it ("... 260 steps.
# [4]"), so a piece carries its own citations (grounding looks its claims up in the cited documents).
_PIECE_END = re.compile(r"[.!?:;](?:[ \t]*\[\d{1,2}\])*(?=[\s\"')\]]|$)|\n")
# What may still become a citation after a sentence end: the cut waits for the next token.
_MAY_CITE = re.compile(r"[ \t]*(?:\[\d{0,2})?")
# "The sources do not say": an answer that only says this is never harmful, and the 1.5B answer
# check flagged some as illegal ("X is not mentioned in the provided sources.", p 0.86 on
# bench/qa.py dev), so it is released without a check. Anything more is checked with it.
_SOURCES = re.compile(
    r"\b(sources?|documents?|(provided|given) (text|information|context|passages?))\b", re.I
)
_NOT_SAID = re.compile(
    r"\b(do(es)?n'?t|do(es)? not|cannot|can'?t)\b.{0,30}\b(say|state|mention|contain|provide|include|"
    r"specify|answer|give)|\bnot (\w+ly )?(mentioned|stated|provided|specified|given|included|found|"
    r"available)\b"
    r"|\bno (information|mention)\b",
    re.I,
)

# "The documents do not say, but you can ...": a silent-sources sentence that goes on is checked.
_GOES_ON = re.compile(r"\b(but|however|though|although|instead|except|yet|still|nevertheless|so)\b", re.I)


def only_says_sources_are_silent(answer: str) -> bool:
    """True for one short sentence that only says the sources do not give the answer."""
    text = answer.strip()
    if text in abstentions():  # the bot's own words, in any language it speaks
        return True
    if len(text) > 240 or "http" in text or "@" in text or _SENTENCE_END.search(text.rstrip(".!")):
        return False
    if _GOES_ON.search(text):
        return False
    return bool(_SOURCES.search(text) and _NOT_SAID.search(text))


@dataclass(frozen=True)
class GuardedPiece:
    """Checked text to show next, or the verdict that stopped the answer (then text is empty).

    `checks` and `check_seconds` count the moderation work done to release this piece.
    """

    text: str = ""
    verdict: Verdict | None = None
    checks: int = 0
    check_seconds: float = 0.0
    unsupported: tuple[str, ...] = ()  # numbers or names the sources do not contain: the answer ends


def first_sentence(text: str, min_chars: int = 24) -> str:
    """The answer's first piece as the guard releases it: up to the first sentence end past
    `min_chars`, with the citations that follow it."""
    for m in _PIECE_END.finditer(text):
        if m.end() >= min_chars:
            return text[: m.end()].strip()
    return text.strip()


def sentence_cut(text: str, min_chars: int) -> int:
    """The end of the last complete sentence in `text` if it is at least `min_chars` long, else 0."""
    if len(text) < min_chars:
        return 0
    ends = [m.end() for m in _PIECE_END.finditer(text)]
    return ends[-1] if ends and ends[-1] >= min_chars else 0


class Guard:
    def __init__(
        self,
        classifier: Classifier | None,
        policy: ModerationPolicy | None = None,
        operator_prompt: str = "",
        chunk_chars: int = 160,
        first_chars: int = 24,
        max_lookahead: int = 400,
    ) -> None:
        self.classifier = classifier
        self.policy = policy or ModerationPolicy()
        self.operator_prompt = operator_prompt
        self.chunk_chars = chunk_chars  # 0: check once, at the end
        self.first_chars = first_chars
        self.max_lookahead = max_lookahead

    @property
    def enabled(self) -> bool:
        return self.classifier is not None and bool(self.policy.enforced)

    def system_prompt(self) -> str:
        return system_prompt(self.operator_prompt)

    def _record(self, verdict: Verdict, text: str) -> Verdict:
        # Every decision is logged with its probability, flagged or not: nothing passes unrecorded.
        log.info(
            "moderation stage=%s flagged=%s review=%s category=%s p_harm=%.3f chars=%d",
            verdict.stage,
            verdict.flagged,
            verdict.review,
            verdict.category.value,
            verdict.harm_probability,
            len(text),
        )
        return verdict

    def warm(self) -> None:
        """Run one check of each kind so the engine caches their long, fixed prompt prefixes.

        Cold, the input and answer checks each prefill ~700 tokens of instructions and contrast
        examples (15-20 s on 2 cores); cached, a check costs only the new text. Errors are ignored:
        the first real turn reports them.
        """
        if not self.enabled:
            return
        assert self.classifier is not None  # enabled
        try:
            self.classifier.classify_prompt("Hello")
            # A message that reaches the category question, so its prefix is cached too.
            self.classifier.classify_prompt("How do I make a pipe bomb at home?")
            self.classifier.classify_prompt("안녕하세요")  # Korean messages have their own contrast pairs
            self.classifier.classify_answer("Hello", "Hello! How can I help?")
        except Exception as exc:  # a warm-up must never stop the server
            log.warning("moderation warm-up failed: %s", exc)

    def check_input(self, message: str) -> Verdict:
        if not self.enabled:
            return Verdict(False, Category.SAFE, 0.0, stage="input")
        assert self.classifier is not None  # enabled
        return self._record(self.policy.decide(self.classifier.classify_prompt(message), "input"), message)

    def check_output(self, question: str, answer: str, review: bool = False) -> Verdict:
        """`review`: the message was in doubt (`Verdict.review`), so the answer decides, strictly."""
        if not self.enabled:
            return Verdict(False, Category.SAFE, 0.0, stage="output")
        assert self.classifier is not None  # enabled
        if only_says_sources_are_silent(answer):
            return Verdict(False, Category.SAFE, 0.0, stage="output")
        scores = self.classifier.classify_answer(question, answer)
        return self._record(self.policy.decide(scores, "output", review), answer)

    def checked_stream(
        self,
        question: str,
        pieces: Iterable[str],
        *,
        evidence: Evidence | None = None,
        names: bool = True,
        sentences: bool = False,
        review: bool = False,
    ) -> Iterator[GuardedPiece]:
        """Pass pieces through once they are checked; stop at a flag or an unsupported claim.

        With `evidence` (the sources and the question), each piece must also state no number (nor,
        with `names`, a name) that the documents it cites lack (guardrails/grounding.py), or the
        answer ends before it. With `sentences`, pieces are whole sentences even when nothing is
        checked here (the caller checks the first sentence itself). A cut at a sentence end waits
        for the next token, so a citation after the full stop stays with its sentence. With `review`
        (the message was in doubt), each check uses the policy's review threshold.
        """
        if not self.enabled and evidence is None and not sentences:
            yield from (GuardedPiece(p) for p in pieces)
            return
        answer, released = "", 0  # all of it so far; how much of it was checked and released
        iterator = iter(pieces)
        try:
            for piece in iterator:
                answer += piece
                pending = answer[released:]
                want = self.first_chars if released == 0 else self.chunk_chars
                cut = sentence_cut(pending, want) if self.chunk_chars else 0
                if cut and _MAY_CITE.fullmatch(pending[cut:]):
                    cut = 0  # a citation may still follow: wait for the next token
                if not cut and self.chunk_chars and len(pending) >= self.max_lookahead:
                    cut = len(pending)
                if cut:
                    shown = answer[: released + cut]  # the checked piece ends at the cut
                    checked = self._checked(
                        question, shown, pending[:cut], evidence=evidence, names=names, review=review
                    )
                    yield checked
                    if checked.verdict or checked.unsupported:
                        return
                    released += cut
            if released < len(answer):
                yield self._checked(
                    question, answer, answer[released:], evidence=evidence, names=names, review=review
                )
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()  # a flagged or abandoned answer stops generating

    def _checked(
        self,
        question: str,
        answer: str,
        pending: str,
        *,
        evidence: Evidence | None,
        names: bool,
        review: bool,
    ) -> GuardedPiece:
        before = answer[: len(answer) - len(pending)]
        if evidence is not None and (
            claims := unsupported(pending, evidence.for_piece(pending, before), names)
        ):
            return GuardedPiece(unsupported=tuple(claims))
        if not self.enabled:
            return GuardedPiece(pending)
        start = time.perf_counter()
        verdict = self.check_output(question, answer, review)
        seconds = time.perf_counter() - start
        if verdict.flagged:
            return GuardedPiece(verdict=verdict, checks=1, check_seconds=seconds)
        return GuardedPiece(pending, checks=1, check_seconds=seconds)


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
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        verdict = self.guard.check_input(question)
        if verdict.flagged:
            yield verdict.refusal
            return
        pieces = self.generator.stream(
            self._with_guardrail(messages), max_tokens=max_tokens, temperature=temperature, stop=stop
        )
        for piece in self.guard.checked_stream(question, pieces, review=verdict.review):
            yield piece.verdict.refusal if piece.verdict else piece.text

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop))

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        return self.generator.choice_logprobs(messages, choices)

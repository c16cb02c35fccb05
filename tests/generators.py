"""A scripted Generator for tests of the code around the model (parsing, fusion, flow).

It implements the same protocol as the real generators; tests that need real language behaviour
use the real engines instead (see test_generation.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from generation.protocol import ChatMessage


class ScriptedGenerator:
    name = "scripted"

    def __init__(self, replies: list[str], labels: list[str] | None = None) -> None:
        self.replies = list(replies)
        self.labels = list(labels or [])  # the label each choice_logprobs call favours, in order
        self.calls: list[list[ChatMessage]] = []

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> str:
        self.calls.append(list(messages))
        text = self.replies.pop(0) if self.replies else ""
        cuts = [text.index(s) for s in stop if s in text]
        return text[: min(cuts)] if cuts else text

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        text = self.complete(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        for word in text.split(" "):
            yield word + " "

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        """Favours the next scripted label (log-prob -0.1) over the rest (-5); "safe" when none is left."""
        self.calls.append(list(messages))
        favoured = self.labels.pop(0) if self.labels else "safe"
        return {c: -0.1 if c == favoured else -5.0 for c in choices}

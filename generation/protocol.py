"""The Generator protocol: chat messages in, text or a token stream out, label log-probabilities.

Everything that generates text (the embedded llama.cpp engine, a vLLM server) implements it, and
everything that needs text generated (query rewriting, the chat turn, moderation) depends on it
alone, so the two sides never import each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GeneratorUnavailable(RuntimeError):
    """The generator cannot answer (server down, model missing); the message is meant for the user."""


class ContextExceeded(GeneratorUnavailable):
    """The prompt, with room for the answer, does not fit the model's context window.

    A property of the request, not of the server: retrying cannot help, a shorter message can, so
    the turn tells the user that rather than "the language model is unavailable".
    """


@runtime_checkable
class Generator(Protocol):
    @property
    def name(self) -> str:
        """The served model's name, for logs and the status line."""
        ...

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> str:
        """The whole answer at once; generation ends early at any `stop` string (not included)."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """The answer as text pieces, in order, as they are produced.

        Closing the iterator early (a consumer that stops reading) cancels the generation.
        """
        ...

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        """Log-probability that the reply starts with each choice (scored, not sampled).

        Classification by comparing label log-probabilities costs one forward pass and never yields an
        unparseable answer, which matters for small models that ramble.
        """
        ...


def match_choices(candidates: Iterable[tuple[str, float]], choices: Sequence[str]) -> dict[str, float]:
    """Map next-token candidates (token text, log-prob) onto choices by case-insensitive prefix.

    Token ids that decode to the same text count once, with their best log-prob.

    A choice's score is its best-scoring token that starts it ("ille" for "illegal"). Tokens shorter
    than three characters are ignored unless they are the whole choice: "a" or "S" would otherwise
    count for any choice with that initial. Choices should therefore start with a token of three or
    more characters in common tokenizers. Choices with no token among the candidates get a floor
    below the lowest seen.
    """
    top: dict[str, float] = {}
    for token, logprob in candidates:
        top[token] = max(logprob, top.get(token, float("-inf")))
    floor = min(top.values(), default=0.0) - 5.0
    scores = dict.fromkeys(choices, floor)
    lowered = {c.lower() for c in choices}
    for token, logprob in top.items():
        piece = token.strip().lower()
        if len(piece) < 3 and piece not in lowered:
            continue
        for choice in choices:
            if choice.lower().startswith(piece) and logprob > scores[choice]:
                scores[choice] = logprob
    return scores


def softmax(logprobs: Mapping[str, float]) -> dict[str, float]:
    """Log-probabilities of some choices as probabilities among those choices alone."""
    top = max(logprobs.values())
    exp = {c: math.exp(v - top) for c, v in logprobs.items()}
    total = sum(exp.values())
    return {c: v / total for c, v in exp.items()}


def p_word(generator: Generator, messages: Sequence[ChatMessage], word: str, *others: str) -> float:
    """P(the reply starts with `word`) against the `others`: one label call, read as one number."""
    return softmax(generator.choice_logprobs(messages, [word, *others]))[word]

"""The Generator protocol: chat messages in, text or a token stream out.

Defined here because query rewriting needs it; implementations live in `bot.generators` (in-process
transformers, vLLM by URL) and `guardrails` wraps any of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GeneratorUnavailable(RuntimeError):
    """The generator cannot answer (server down, model missing); the message is meant for the user."""


@runtime_checkable
class Generator(Protocol):
    name: str

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        """The whole answer at once."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        """The answer as text pieces, in order, as they are produced."""
        ...

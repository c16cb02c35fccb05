"""One chat turn: validate, retrieve (with condensation and multi-query), ground the prompt, stream, cite.

Front ends consume `TurnUpdate`s; each carries the answer so far, so a UI can redraw on every piece.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from guardrails.guard import Guard
from guardrails.policy import Verdict
from guardrails.prompts import PromptSource, grounded_messages
from retrieval.generator import ChatMessage, Generator, GeneratorUnavailable
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import StoreUnavailable
from retrieval.types import ScoredChunk

log = logging.getLogger(__name__)
_CITATION = re.compile(r"\[(\d{1,2})\]")


class InputError(ValueError):
    """The user's message cannot be answered as it is; the message says why."""


@dataclass(frozen=True)
class Source:
    number: int
    title: str
    source: str
    snippet: str
    cited: bool


@dataclass
class TurnUpdate:
    text: str = ""
    sources: list[Source] = field(default_factory=list)
    standalone_question: str = ""
    done: bool = False
    error: str | None = None
    error_kind: str | None = None  # "input", "store", "generator" or "internal": for HTTP status codes
    verdict: Verdict | None = None  # set when moderation flagged the turn; `text` is then the refusal


def validate_message(message: str, max_chars: int) -> str:
    message = (message or "").strip()
    if not message:
        raise InputError("Please type a question.")
    if len(message) > max_chars:
        raise InputError(
            f"Your message is {len(message):,} characters; the limit is {max_chars:,}. Please shorten it."
        )
    return message


def build_prompt(
    question: str,
    chunks: Sequence[ScoredChunk],
    history: Sequence[ChatMessage],
    operator_prompt: str = "",
) -> list[ChatMessage]:
    """The guardrailed, grounded prompt: numbered sources fenced as data, then the question."""
    sources = [PromptSource(sc.chunk.title, sc.chunk.text) for sc in chunks]
    return grounded_messages(question, sources, history, operator_prompt)


def sources_for(answer: str, chunks: Sequence[ScoredChunk]) -> list[Source]:
    """All retrieved chunks, numbered as in the prompt, marking those the answer cites."""
    cited = {int(n) for n in _CITATION.findall(answer)}
    return [
        Source(n, sc.chunk.title, sc.chunk.source, " ".join(sc.chunk.text.split())[:240], n in cited)
        for n, sc in enumerate(chunks, start=1)
    ]


class ChatService:
    """Validate, check the message, retrieve, generate under the guard, cite.

    The guard sees the user's message before retrieval and every piece of the answer before the
    user does; a flagged turn ends with the refusal as its text and the verdict attached.
    """

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        settings: RetrievalSettings,
        guard: Guard | None = None,
        max_answer_tokens: int = 256,
        max_message_chars: int = 4000,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.guard = guard or Guard(None)
        self.max_answer_tokens = max_answer_tokens
        self.max_message_chars = max_message_chars

    def answer(self, message: str, history: Sequence[ChatMessage] = ()) -> TurnUpdate:
        """The final update of a turn, for channels that cannot stream (webhooks)."""
        final = TurnUpdate(done=True)
        for final in self.turn(message, history):  # noqa: B007 (the last one is the answer)
            pass
        return final

    def turn(self, message: str, history: Sequence[ChatMessage] = ()) -> Iterator[TurnUpdate]:
        try:
            question = validate_message(message, self.max_message_chars)
            verdict = self.guard.check_input(question)
            if verdict.flagged:
                yield TurnUpdate(text=verdict.refusal, verdict=verdict, done=True)
                return
            result = self.retriever.retrieve(question, history, self.settings)
            standalone = result.standalone_question
            prompt = build_prompt(standalone, result.chunks, history, self.guard.operator_prompt)
            pieces = self.generator.stream(prompt, max_tokens=self.max_answer_tokens)
            text = ""
            for piece in self.guard.checked_stream(standalone, pieces):
                if piece.verdict:
                    yield TurnUpdate(
                        text=piece.verdict.refusal,
                        verdict=piece.verdict,
                        standalone_question=standalone,
                        done=True,
                    )
                    return
                text += piece.text
                yield TurnUpdate(text=text, standalone_question=standalone)
            yield TurnUpdate(
                text=text.strip(),
                sources=sources_for(text, result.chunks),
                standalone_question=standalone,
                done=True,
            )
        except InputError as exc:
            yield TurnUpdate(error=str(exc), error_kind="input", done=True)
        except StoreUnavailable as exc:
            yield TurnUpdate(error=f"The document store is unavailable: {exc}", error_kind="store", done=True)
        except GeneratorUnavailable as exc:
            yield TurnUpdate(
                error=f"The language model is unavailable: {exc}", error_kind="generator", done=True
            )
        except Exception as exc:  # the user gets a message, the log gets the traceback
            log.exception("chat turn failed")
            yield TurnUpdate(
                error=f"Something went wrong answering this message ({type(exc).__name__}).",
                error_kind="internal",
                done=True,
            )

"""Typed events of one chat turn, so every front door is a small adapter over the same stream.

A turn that must wait for a free place first yields `Queued` (how many chats are ahead, again
whenever that changes), then `Started` once retrieval is done, `Delta`s of checked answer text, and ends with
exactly one of `Answered`, `Refused` or `Failed`. A refusal that comes after some checked text was
shown says so (`retracted`), and every door reports it as a withdrawn answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from guardrails.language import ENGLISH, queued, texts
from guardrails.policy import Verdict
from retrieval.types import DEFAULT_KB


@dataclass(frozen=True)
class Source:
    """One retrieved passage, numbered as in the prompt; `cited` once the answer is known."""

    number: int
    title: str
    source: str  # file path or URL
    text: str  # the whole passage the generator saw
    score: float
    chunk_id: str
    cited: bool = False
    kb: str = DEFAULT_KB  # the knowledge base it was found in (kept chats name it)

    @property
    def public_source(self) -> str:
        """Where the passage comes from, as anyone may see it: a URL, or a file's name (never the
        server's path)."""
        if self.source.startswith(("http://", "https://")):
            return self.source
        return self.source.replace("\\", "/").rsplit("/", 1)[-1]

    @property
    def snippet(self) -> str:
        return " ".join(self.text.split())[:240]


@dataclass(frozen=True)
class TurnTimings:
    """Seconds spent per stage of a turn (shown to operators, stored with feedback, benchmarked)."""

    retrieval_s: float = 0.0
    moderation_s: float = 0.0
    moderation_checks: int = 0
    first_text_s: float | None = None  # first checked text released; None if nothing was shown
    total_s: float = 0.0  # from the message's arrival, so it includes the wait in line
    queued_s: float = 0.0  # waiting for a place in line (bot/admission.py)


class ErrorKind(StrEnum):
    INPUT = "input"  # the message cannot be answered as it is (empty, too long)
    STORE = "store"  # the document store is down
    GENERATOR = "generator"  # the language model is down
    INTERNAL = "internal"  # a bug: the log has the traceback
    BUSY = "busy"  # no place in line now (the line is full, or this client holds its share): try later


@dataclass(frozen=True)
class Queued:
    ahead: int  # chats answered or waiting before this one
    language: str = ENGLISH  # the asker's (guardrails/language.py)

    @property
    def message(self) -> str:
        return queued(self.ahead, self.language)


@dataclass(frozen=True)
class Started:
    standalone_question: str
    sources: list[Source]


@dataclass(frozen=True)
class Delta:
    text: str  # newly released, moderation-checked answer text


@dataclass(frozen=True)
class Answered:
    text: str
    sources: list[Source]
    standalone_question: str
    timings: TurnTimings = field(default_factory=TurnTimings)
    answerable: float | None = None  # P(the sources answer the question), when the bot asked itself
    supported: float | None = None  # P(the sources state the first sentence), when the answer was checked

    @property
    def cited(self) -> list[Source]:
        return [s for s in self.sources if s.cited]


@dataclass(frozen=True)
class Refused:
    verdict: Verdict
    standalone_question: str = ""
    retracted: bool = False  # checked text had already been shown and is now withdrawn
    timings: TurnTimings = field(default_factory=TurnTimings)
    language: str = ENGLISH  # the asker's: the refusal is written in it

    @property
    def message(self) -> str:
        refusal = self.verdict.refusal_in(self.language)
        return f"{texts(self.language).withdrawn} {refusal}" if self.retracted else refusal


@dataclass(frozen=True)
class Failed:
    kind: ErrorKind
    message: str


TurnEnd = Answered | Refused | Failed
TurnEvent = Queued | Started | Delta | Answered | Refused | Failed

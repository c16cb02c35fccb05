"""Feedback on answers: the turn as it was shown (question, answer, sources, verdict, timings) plus a
👍/👎 and an optional comment, kept in the state database (state/conversations.py) and exported for review.

A turn is only written when someone gives feedback on it; until then the web chat keeps it in the
browser session's state and the widget in a small in-memory table (`RecentTurns`), so the server
records the answer it actually gave, not one a client sends back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict
from enum import StrEnum

from pydantic import BaseModel, Field

from bot.events import Answered, Failed, Refused, TurnEnd, TurnTimings


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


class SourceRecord(BaseModel):
    number: int
    title: str
    source: str
    score: float
    cited: bool
    chunk_id: str
    text: str


class VerdictRecord(BaseModel):
    flagged: bool
    category: str
    harm_probability: float
    stage: str
    retracted: bool = False


class TimingsRecord(BaseModel):
    retrieval_s: float = 0.0
    moderation_s: float = 0.0
    moderation_checks: int = 0
    first_text_s: float | None = None
    total_s: float = 0.0
    queued_s: float = 0.0


class TurnRecord(BaseModel):
    turn_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    channel: str  # "web", "widget:<site>"
    created: float = Field(default_factory=time.time)
    question: str
    standalone_question: str = ""
    outcome: str  # answered | refused | failed
    answer: str  # the answer, the refusal or the error message as shown
    sources: list[SourceRecord] = Field(default_factory=list)
    verdict: VerdictRecord | None = None
    timings: TimingsRecord | None = None

    @classmethod
    def from_end(cls, channel: str, question: str, end: TurnEnd) -> TurnRecord:
        if isinstance(end, Answered):
            sources = [
                SourceRecord(
                    number=s.number, title=s.title, source=s.source, score=s.score, cited=s.cited,
                    chunk_id=s.chunk_id, text=s.text,
                )
                for s in end.sources
            ]  # fmt: skip
            return cls(
                channel=channel, question=question, standalone_question=end.standalone_question,
                outcome="answered", answer=end.text, sources=sources, timings=_timings(end.timings),
            )  # fmt: skip
        if isinstance(end, Refused):
            v = end.verdict
            verdict = VerdictRecord(
                flagged=v.flagged, category=v.category.value, harm_probability=v.harm_probability,
                stage=v.stage, retracted=end.retracted,
            )  # fmt: skip
            return cls(
                channel=channel, question=question, standalone_question=end.standalone_question,
                outcome="refused", answer=end.message, verdict=verdict, timings=_timings(end.timings),
            )  # fmt: skip
        assert isinstance(end, Failed)
        return cls(channel=channel, question=question, outcome="failed", answer=end.message)


def _timings(t: TurnTimings) -> TimingsRecord:
    return TimingsRecord(**asdict(t))


class Feedback(BaseModel):
    """One exported row: the rating, the comment and the whole turn it is about."""

    turn: TurnRecord
    rating: Rating | None = None  # None: the thumb was taken back, a comment may remain
    comment: str = ""
    updated: float = Field(default_factory=time.time)


class RecentTurns:
    """The last `size` turns by id, for doors whose client holds only the id (the widget)."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self._turns: OrderedDict[str, TurnRecord] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, record: TurnRecord) -> None:
        with self._lock:
            self._turns[record.turn_id] = record
            while len(self._turns) > self.size:
                self._turns.popitem(last=False)

    def get(self, turn_id: str) -> TurnRecord | None:
        with self._lock:
            return self._turns.get(turn_id)

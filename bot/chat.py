"""One chat turn: validate, condense and check the question, retrieve, ground the prompt, stream, cite.

`ChatService.turn` yields typed events (bot/events.py); `answer` returns only the end of the turn,
for doors that cannot stream (webhooks, non-streaming API calls).
"""

from __future__ import annotations

import collections.abc
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from bot.admission import Busy, Hangup, TurnQueue
from bot.events import (
    Answered,
    Delta,
    ErrorKind,
    Failed,
    Queued,
    Refused,
    Source,
    Started,
    TurnEnd,
    TurnEvent,
    TurnTimings,
)
from generation.protocol import ChatMessage, ContextExceeded, Generator, GeneratorUnavailable, p_word
from guardrails.answer_check import check_messages
from guardrails.grounding import Evidence, Grounding, Scope
from guardrails.guard import Guard
from guardrails.injection import quarantine as quarantine_text
from guardrails.language import ENGLISH, detect, texts
from guardrails.links import LinkFilter
from guardrails.prompts import (
    ANSWER_INSTRUCTION,
    ANSWER_STOP,
    ANSWERABLE_INSTRUCTION,
    PromptSource,
    grounded_messages,
)
from retrieval.passages import focus
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import StoreUnavailable
from retrieval.types import Scope as Readable
from retrieval.types import ScoredChunk

log = logging.getLogger(__name__)
_CITATION = re.compile(r"\[(\d{1,2})\]")
TOO_LONG_FOR_MODEL = (
    "This message, with the sources it needs, is too long for the language model's context. "
    "Please ask a shorter question, or start a new chat."
)
MAX_HISTORY_MESSAGES = 20  # earlier messages are dropped: condensation and the prompt need the recent ones


class InputError(ValueError):
    """The user's message cannot be answered as it is; the message says why."""


def validate_message(message: str, max_chars: int) -> str:
    message = (message or "").strip()
    if not message:
        raise InputError("Please type a question.")
    if len(message) > max_chars:
        raise InputError(
            f"Your message is {len(message):,} characters; the limit is {max_chars:,}. Please shorten it."
        )
    return message


def clip_history(history: Sequence[ChatMessage], max_chars: int) -> list[ChatMessage]:
    """The recent part of a history sent by a client: at most MAX_HISTORY_MESSAGES messages of at
    most `max_chars` characters each (a client may send anything; the prompt must stay bounded)."""
    return [
        m if len(m.content) <= max_chars else ChatMessage(role=m.role, content=m.content[:max_chars])
        for m in list(history)[-MAX_HISTORY_MESSAGES:]
    ]


def build_prompt(
    question: str,
    chunks: Sequence[ScoredChunk],
    history: Sequence[ChatMessage],
    operator_prompt: str = "",
    instruction: str = ANSWER_INSTRUCTION,
    spotlight: bool = False,
) -> list[ChatMessage]:
    """The guardrailed, grounded prompt: numbered sources fenced as data, then the question."""
    sources = [PromptSource(sc.chunk.title, sc.chunk.text) for sc in chunks]
    return grounded_messages(
        question, sources, history, operator_prompt, instruction=instruction, spotlight=spotlight
    )


def _quarantined(sc: ScoredChunk) -> ScoredChunk:
    text, removed = quarantine_text(sc.chunk.text)
    if not removed:
        return sc
    log.warning("quarantined %d instruction-like sentence(s) in %s", len(removed), sc.chunk.source)
    return ScoredChunk(chunk=sc.chunk.model_copy(update={"text": text}), score=sc.score)


def numbered_sources(chunks: Sequence[ScoredChunk]) -> list[Source]:
    return [
        Source(n, sc.chunk.title, sc.chunk.source, sc.chunk.text, sc.score, sc.chunk.id, kb=sc.chunk.kb)
        for n, sc in enumerate(chunks, start=1)
    ]


def mark_cited(answer: str, sources: Sequence[Source]) -> list[Source]:
    """The sources with those the answer cites ([n]) marked."""
    cited = {int(n) for n in _CITATION.findall(answer)}
    return [replace(s, cited=s.number in cited) for s in sources]


def last_end(events: Iterable[TurnEvent]) -> TurnEnd:
    """How a turn ended, read to its end (a turn hung up before it ended is reported as such)."""
    end: TurnEnd = Failed(ErrorKind.INTERNAL, "The turn ended without an answer.")
    for event in events:
        if isinstance(event, Answered | Refused | Failed):
            end = event
    return end


@dataclass(frozen=True)
class TurnSettings:
    """How every turn runs: built once from Settings (bot/factory.py); the benchmarks vary it."""

    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    max_answer_tokens: int = 256
    max_message_chars: int = 4000
    prompt_chars: int = 0  # source text in the prompt; 0: the whole chunks
    abstain_below: float = 0.0  # P(the sources answer) under which the bot abstains
    grounding: Grounding = Grounding.OFF  # what an answer may state only if the sources do
    grounding_scope: Scope = Scope.CITED  # ... the documents it cites, or any source
    check_below: float = 0.0  # P(the sources state the first sentence) under which it abstains
    quarantine: bool = False  # cut instruction-like sentences out of sources
    spotlight: bool = False  # datamark source text


@dataclass
class _Turn:
    """What one admitted turn has learnt so far: each stage reads it and adds its part."""

    question: str  # the validated message
    history: Sequence[ChatMessage]
    language: str
    start: float  # when the message arrived, so timings include the wait in line
    hangup: Hangup
    readable: Readable  # the knowledge bases the asker may read: the only ones searched
    standalone: str = ""  # the question condensed with the conversation
    review: bool = False  # the question was in doubt: the answer is checked strictly
    moderation_s: float = 0.0
    checks: int = 0
    retrieval_s: float = 0.0
    sources: list[Source] = field(default_factory=list)  # as retrieved and numbered for the user
    chunks: list[ScoredChunk] = field(default_factory=list)  # as the prompt shows them
    answerable: float | None = None
    supported: float | None = None
    first_text_s: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def timings(self) -> TurnTimings:
        return TurnTimings(
            self.retrieval_s, self.moderation_s, self.checks, self.first_text_s, self.elapsed()
        )


class ChatService:
    """Validate, condense, check the question, retrieve, generate under the guard, cite.

    The guard sees the (condensed) question before retrieval and every piece of the answer before
    the user does; a flagged turn ends with `Refused`, whose verdict names the category.
    """

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        settings: TurnSettings | None = None,
        guard: Guard | None = None,
        queue: TurnQueue | None = None,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.settings = settings or TurnSettings()
        self.guard = guard or Guard(None)
        self.queue = queue or TurnQueue()  # how many turns run at once; the rest wait in order

    def prompt_chunks(self, question: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The chunks as the prompt shows them: instruction-like text quarantined, focused on the
        question when a budget is set."""
        out = list(chunks)
        if self.settings.quarantine:
            out = [_quarantined(sc) for sc in out]
        if self.settings.prompt_chars:
            out = focus(question, out, self.retriever.embedder, self.settings.prompt_chars)
        return out

    def answer(
        self,
        message: str,
        history: Sequence[ChatMessage] = (),
        *,
        readable: Readable,
        client: str = "",
        hangup: Hangup | None = None,
    ) -> TurnEnd:
        """The end of a turn, for channels that cannot stream (webhooks, non-streaming API calls)."""
        return last_end(self.turn(message, history, readable=readable, client=client, hangup=hangup))

    def turn(
        self,
        message: str,
        history: Sequence[ChatMessage] = (),
        *,
        readable: Readable,
        client: str = "",
        hangup: Hangup | None = None,
    ) -> Iterator[TurnEvent]:
        """The whole turn as events; a message that cannot be taken ends at once with `Failed`.

        `readable`: the knowledge bases the asker may read (bot/access.py), required so that no door
        can forget it."""
        hangup = hangup or Hangup()
        try:
            events = self.start(message, history, readable=readable, client=client, hangup=hangup)
        except InputError as exc:  # said at once, without waiting in line
            yield Failed(ErrorKind.INPUT, str(exc))
            return
        except Busy as exc:
            yield Failed(ErrorKind.BUSY, str(exc))
            return
        try:
            yield from events
        finally:
            events.close()
            hangup.hang_up()  # a caller that stops reading gives its place up now, not at GC

    def start(
        self,
        message: str,
        history: Sequence[ChatMessage] = (),
        *,
        readable: Readable,
        client: str = "",
        hangup: Hangup | None = None,
    ) -> collections.abc.Generator[TurnEvent]:
        """Validate the message and take a place in line now (raising InputError or Busy, so an HTTP
        door can answer 400 or 429 before it starts a stream); the events follow when read.

        The place is given up when the events end or `hangup` is hung up, whichever comes first: a
        door must do one of the two."""
        start = time.perf_counter()
        question = validate_message(message, self.settings.max_message_chars)
        ticket = self.queue.join(client)
        hangup = hangup or Hangup()
        hangup.on_hangup(lambda: self.queue.leave(ticket))
        history = clip_history(history, self.settings.max_message_chars)
        asked = [m.content for m in history if m.role == "user"]
        language = detect(question, default=detect(asked[-1]) if asked else ENGLISH)  # "ok?" follows on
        turn = _Turn(question, history, language, start, hangup, readable)
        return self._admitted(ticket, turn)

    def _admitted(self, ticket: int, turn: _Turn) -> collections.abc.Generator[TurnEvent]:
        inner = self._stages(turn)  # nothing runs before it is read
        try:
            if not (yield from self._wait(ticket, turn.hangup, turn.language)):
                return  # the asker left while waiting
            queued_s = time.perf_counter() - turn.start
            for event in inner:
                if isinstance(event, Answered | Refused):
                    event = replace(event, timings=replace(event.timings, queued_s=queued_s))
                yield event
        except StoreUnavailable as exc:
            yield Failed(ErrorKind.STORE, f"The document store is unavailable: {exc}")
        except ContextExceeded as exc:  # the request's size, not the server: say what helps
            log.warning("turn did not fit the model's context: %s", exc)
            yield Failed(ErrorKind.INPUT, TOO_LONG_FOR_MODEL)
        except GeneratorUnavailable as exc:
            yield Failed(ErrorKind.GENERATOR, f"The language model is unavailable: {exc}")
        except Exception as exc:  # the user gets a message, the log gets the traceback
            log.exception("chat turn failed")
            yield Failed(
                ErrorKind.INTERNAL, f"Something went wrong answering this message ({type(exc).__name__})."
            )
        finally:
            inner.close()  # a caller that stops reading stops the generation too
            self.queue.leave(ticket)  # also when the caller stops reading, waiting or not

    def _wait(
        self, ticket: int, hangup: Hangup, language: str = ENGLISH, poll_s: float = 1.0
    ) -> collections.abc.Generator[Queued, None, bool]:
        """Until the turn may run: its place in line, each time that changes. False if the asker left."""
        told = None
        while not self.queue.admit(ticket, timeout=0 if told is None else poll_s):
            if hangup.is_set:
                return False
            ahead = self.queue.ahead(ticket)
            if ahead != told:
                told = ahead
                yield Queued(ahead, language)
        return not hangup.is_set

    def _stages(self, turn: _Turn) -> collections.abc.Generator[TurnEvent]:
        """The turn once it has its place in line, stage by stage. Between stages, and for every
        streamed piece, it asks whether the asker is still there: one who left costs no more work."""
        self._condense(turn)
        if turn.hangup.is_set:
            return
        if not (yield from self._check_input(turn)):
            return
        if turn.hangup.is_set:
            return
        yield from self._retrieve(turn)
        if turn.hangup.is_set:
            return
        if not (yield from self._answerability_gate(turn)):
            return
        prompt, links = self._answer_prompt(turn), self._link_filter(turn)
        drafted = self._generate(prompt, links)
        answer = yield from self._checked_stream(turn, prompt, drafted)
        if answer is not None:
            yield self._cite(turn, answer, links)

    def _condense(self, turn: _Turn) -> None:
        """A follow-up ("and when was it built?") names its subject only together with the
        conversation: retrieval and the checks need it as one standalone question."""
        turn.standalone = self.retriever.standalone(turn.question, turn.history, self.settings.retrieval)

    def _check_input(self, turn: _Turn) -> collections.abc.Generator[TurnEvent, None, bool]:
        """Moderate the question before any document is read; False when it ends the turn (`Refused`).

        Intent is judged on the standalone question: a follow-up ("how do I make it at home?") only
        shows what it asks for together with the conversation."""
        t = time.perf_counter()
        verdict = self.guard.check_input(turn.standalone)
        turn.moderation_s = time.perf_counter() - t
        turn.checks = int(self.guard.enabled)
        turn.review = verdict.review
        if verdict.flagged:
            yield Refused(verdict, turn.standalone, timings=turn.timings(), language=turn.language)
            return False
        return True

    def _retrieve(self, turn: _Turn) -> collections.abc.Generator[TurnEvent]:
        """Search the documents and show the user what was found (`Started`) before generation
        begins; then prepare the chunks as the prompt will show them."""
        t = time.perf_counter()
        result = self.retriever.search(turn.question, turn.standalone, self.settings.retrieval, turn.readable)
        turn.retrieval_s = time.perf_counter() - t
        turn.sources = numbered_sources(result.chunks)
        yield Started(turn.standalone, turn.sources)
        turn.chunks = self.prompt_chunks(turn.standalone, result.chunks)

    def _answerability_gate(self, turn: _Turn) -> collections.abc.Generator[TurnEvent, None, bool]:
        """With a gate set, ask the model whether the sources answer the question at all; below the
        gate the turn ends with the abstention instead of an answer the sources cannot back. False
        when it ended the turn."""
        if not (self.settings.abstain_below and turn.chunks):
            return True
        gate = build_prompt(
            turn.standalone,
            turn.chunks,
            turn.history,
            self.guard.operator_prompt,
            ANSWERABLE_INSTRUCTION,
            self.settings.spotlight,
        )
        turn.answerable = self._p_yes(gate)
        log.info("answerable p=%.3f", turn.answerable)  # no message text in logs
        if turn.answerable >= self.settings.abstain_below:
            return True
        abstention = texts(turn.language).abstention
        yield Delta(abstention)
        turn.first_text_s = turn.elapsed()
        yield Answered(abstention, turn.sources, turn.standalone, turn.timings(), turn.answerable)
        return False

    def _answer_prompt(self, turn: _Turn) -> list[ChatMessage]:
        """The grounded prompt, asking for the answer in the asker's language."""
        instruction = f"{ANSWER_INSTRUCTION} {texts(turn.language).answer_in}".strip()
        return build_prompt(
            turn.standalone,
            turn.chunks,
            turn.history,
            self.guard.operator_prompt,
            instruction,
            spotlight=self.settings.spotlight,
        )

    def _link_filter(self, turn: _Turn) -> LinkFilter:
        """Links only where the sources the model saw, or the asker, gave them (guardrails/links.py)."""
        seen = [turn.question, turn.standalone, *(f"{c.chunk.source} {c.chunk.text}" for c in turn.chunks)]
        return LinkFilter("\n".join(seen))

    def _generate(self, prompt: list[ChatMessage], links: LinkFilter) -> Iterator[str]:
        """The model's answer as it streams, without the links the sources and the asker did not give."""
        drafted = self.generator.stream(prompt, max_tokens=self.settings.max_answer_tokens, stop=ANSWER_STOP)
        return links.stream(drafted)

    def _evidence(self, turn: _Turn) -> Evidence | None:
        """What the answer's numbers (and names) must be found in, when grounding is on. A source's
        title is in the prompt too ("[1] Title"): an answer may name it."""
        if self.settings.grounding is Grounding.OFF:
            return None
        shown = [(c.chunk.source, f"{c.chunk.title}\n{c.chunk.text}") for c in turn.chunks]
        return Evidence(shown, (turn.standalone, turn.question), self.settings.grounding_scope)

    def _checked_stream(
        self, turn: _Turn, prompt: list[ChatMessage], drafted: Iterator[str]
    ) -> collections.abc.Generator[TurnEvent, None, str | None]:
        """Show each drafted piece only once the guard has checked it: a flag ends the turn
        (`Refused`, withdrawing what was shown), an unsupported claim or first sentence ends the
        answer before it. The answer text; None when the turn ended here (refused, or the asker left)."""
        s = self.settings
        pieces = self.guard.checked_stream(
            turn.standalone,
            drafted,
            evidence=self._evidence(turn),
            names=s.grounding is Grounding.NAMES,
            sentences=bool(s.check_below),
            review=turn.review,
        )
        text = ""
        for piece in pieces:
            if turn.hangup.is_set:
                log.info("the asker left; generation stopped")
                return None
            turn.moderation_s += piece.check_seconds
            turn.checks += piece.checks
            if piece.verdict:
                yield Refused(
                    piece.verdict,
                    turn.standalone,
                    retracted=bool(text),
                    timings=turn.timings(),
                    language=turn.language,
                )
                return None
            if piece.text and not text and s.check_below:
                turn.supported = self.supported(prompt, piece.text)
                log.info("first sentence supported p=%.3f", turn.supported)
            if piece.unsupported or (turn.supported is not None and turn.supported < s.check_below):
                # The answer states something its sources do not: it ends before that piece.
                log.info(
                    "answer cut before an unsupported %s", "claim" if piece.unsupported else "first sentence"
                )
                if not text.strip():
                    text = texts(turn.language).abstention
                    turn.first_text_s = turn.elapsed()
                    yield Delta(text)
                break
            if piece.text:
                if turn.first_text_s is None:
                    turn.first_text_s = turn.elapsed()
                text += piece.text
                yield Delta(piece.text)
        return text

    def _cite(self, turn: _Turn, text: str, links: LinkFilter) -> Answered:
        """The turn's end: the answer with the sources it cites ([n]) marked."""
        if links.removed:
            log.warning("removed %d link(s) the sources do not give from an answer", len(links.removed))
        answer = text.strip()
        return Answered(
            answer,
            mark_cited(answer, turn.sources),
            turn.standalone,
            turn.timings(),
            turn.answerable,
            turn.supported,
        )

    def supported(self, prompt: Sequence[ChatMessage], sentence: str) -> float:
        """P(the sources state `sentence`), asked on the answer prompt (guardrails/answer_check.py)."""
        return self._p_yes(check_messages(prompt, sentence))

    def _p_yes(self, messages: Sequence[ChatMessage]) -> float:
        """P("yes") against "no" as the reply to a label prompt (the gate and the answer check)."""
        return p_word(self.generator, messages, "yes", "no")

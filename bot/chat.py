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
from dataclasses import replace

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
from bot.scopes import reading_scope
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
        Source(n, sc.chunk.title, sc.chunk.source, sc.chunk.text, sc.score, sc.chunk.id)
        for n, sc in enumerate(chunks, start=1)
    ]


def mark_cited(answer: str, sources: Sequence[Source]) -> list[Source]:
    """The sources with those the answer cites ([n]) marked."""
    cited = {int(n) for n in _CITATION.findall(answer)}
    return [
        Source(s.number, s.title, s.source, s.text, s.score, s.chunk_id, s.number in cited) for s in sources
    ]


def last_end(events: Iterable[TurnEvent]) -> TurnEnd:
    """How a turn ended, read to its end (a turn hung up before it ended is reported as such)."""
    end: TurnEnd = Failed(ErrorKind.INTERNAL, "The turn ended without an answer.")
    for event in events:
        if isinstance(event, Answered | Refused | Failed):
            end = event
    return end


class ChatService:
    """Validate, condense, check the question, retrieve, generate under the guard, cite.

    The guard sees the (condensed) question before retrieval and every piece of the answer before
    the user does; a flagged turn ends with `Refused`, whose verdict names the category.
    """

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        settings: RetrievalSettings,
        guard: Guard | None = None,
        max_answer_tokens: int = 256,
        max_message_chars: int = 4000,
        prompt_chars: int = 0,
        abstain_below: float = 0.0,
        grounding: Grounding = Grounding.OFF,
        grounding_scope: Scope = Scope.CITED,
        check_below: float = 0.0,
        quarantine: bool = False,
        spotlight: bool = False,
        queue: TurnQueue | None = None,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.guard = guard or Guard(None)
        self.max_answer_tokens = max_answer_tokens
        self.max_message_chars = max_message_chars
        self.prompt_chars = prompt_chars  # source text in the prompt; 0: the whole chunks
        self.abstain_below = abstain_below  # P(the sources answer) under which the bot abstains
        self.grounding = grounding  # what an answer may state only if the sources do
        self.grounding_scope = grounding_scope  # ... the documents it cites, or any source
        self.check_below = check_below  # P(the sources state the first sentence) under which it abstains
        self.quarantine = quarantine  # cut instruction-like sentences out of sources
        self.spotlight = spotlight  # datamark source text
        self.queue = queue or TurnQueue()  # how many turns run at once; the rest wait in order

    def prompt_chunks(self, question: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The chunks as the prompt shows them: instruction-like text quarantined, focused on the
        question when a budget is set."""
        out = list(chunks)
        if self.quarantine:
            out = [_quarantined(sc) for sc in out]
        if self.prompt_chars:
            out = focus(question, out, self.retriever.embedder, self.prompt_chars)
        return out

    def answer(
        self,
        message: str,
        history: Sequence[ChatMessage] = (),
        *,
        client: str = "",
        hangup: Hangup | None = None,
    ) -> TurnEnd:
        """The end of a turn, for channels that cannot stream (webhooks, non-streaming API calls)."""
        return last_end(self.turn(message, history, client=client, hangup=hangup))

    def turn(
        self,
        message: str,
        history: Sequence[ChatMessage] = (),
        *,
        client: str = "",
        hangup: Hangup | None = None,
    ) -> Iterator[TurnEvent]:
        """The whole turn as events; a message that cannot be taken ends at once with `Failed`."""
        hangup = hangup or Hangup()
        try:
            events = self.start(message, history, client=client, hangup=hangup)
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
        client: str = "",
        hangup: Hangup | None = None,
    ) -> collections.abc.Generator[TurnEvent]:
        """Validate the message and take a place in line now (raising InputError or Busy, so an HTTP
        door can answer 400 or 429 before it starts a stream); the events follow when read.

        The place is given up when the events end or `hangup` is hung up, whichever comes first: a
        door must do one of the two."""
        start = time.perf_counter()
        question = validate_message(message, self.max_message_chars)
        ticket = self.queue.join(client)
        hangup = hangup or Hangup()
        hangup.on_hangup(lambda: self.queue.leave(ticket))
        history = clip_history(history, self.max_message_chars)
        asked = [m.content for m in history if m.role == "user"]
        language = detect(question, default=detect(asked[-1]) if asked else ENGLISH)  # "ok?" follows on
        return self._admitted(ticket, question, history, hangup, start, language)

    def _admitted(
        self,
        ticket: int,
        question: str,
        history: Sequence[ChatMessage],
        hangup: Hangup,
        start: float,
        language: str,
    ) -> collections.abc.Generator[TurnEvent]:
        inner = self._turn(question, history, start, hangup, language)  # nothing runs before it is read
        try:
            if not (yield from self._wait(ticket, hangup, language)):
                return  # the asker left while waiting
            queued_s = time.perf_counter() - start
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

    def _turn(
        self, question: str, history: Sequence[ChatMessage], start: float, hangup: Hangup, language: str
    ) -> collections.abc.Generator[TurnEvent]:
        """The turn once it has its place in line; `question` is the validated message. Each stage
        first asks whether the asker is still there, and so does every streamed piece."""
        standalone = self.retriever.standalone(question, history, self.settings)
        if hangup.is_set:
            return
        t = time.perf_counter()
        # Intent is judged on the standalone question: a follow-up ("how do I make it at home?") only
        # shows what it asks for together with the conversation.
        verdict = self.guard.check_input(standalone)
        moderation_s = time.perf_counter() - t
        checks = int(self.guard.enabled)
        if verdict.flagged:
            timings = TurnTimings(0.0, moderation_s, checks, None, time.perf_counter() - start)
            yield Refused(verdict, standalone, timings=timings, language=language)
            return
        if hangup.is_set:
            return
        t = time.perf_counter()
        result = self.retriever.search(question, standalone, self.settings, reading_scope())
        retrieval_s = time.perf_counter() - t
        sources = numbered_sources(result.chunks)
        yield Started(standalone, sources)
        chunks = self.prompt_chunks(standalone, result.chunks)
        op = self.guard.operator_prompt
        if hangup.is_set:
            return
        abstention = texts(language).abstention
        if self.abstain_below and chunks:
            gate = build_prompt(standalone, chunks, history, op, ANSWERABLE_INSTRUCTION, self.spotlight)
            answerable = self._p_yes(gate)
            log.info("answerable p=%.3f", answerable)  # no message text in logs
            if answerable < self.abstain_below:
                yield Delta(abstention)
                timings = TurnTimings(retrieval_s, moderation_s, checks, time.perf_counter() - start,
                                      time.perf_counter() - start)  # fmt: skip
                yield Answered(abstention, sources, standalone, timings, answerable)
                return
        else:
            answerable = None
        instruction = f"{ANSWER_INSTRUCTION} {texts(language).answer_in}".strip()
        prompt = build_prompt(standalone, chunks, history, op, instruction, spotlight=self.spotlight)
        drafted = self.generator.stream(prompt, max_tokens=self.max_answer_tokens, stop=ANSWER_STOP)
        # Links only where the sources the model saw, or the asker, gave them (guardrails/links.py).
        seen = [question, standalone, *(f"{c.chunk.source} {c.chunk.text}" for c in chunks)]
        links = LinkFilter("\n".join(seen))
        pieces = links.stream(drafted)
        text, first_text_s = "", None
        evidence = None
        if self.grounding is not Grounding.OFF:
            # A source's title is in the prompt too ("[1] Title"): an answer may name it.
            shown = [(c.chunk.source, f"{c.chunk.title}\n{c.chunk.text}") for c in chunks]
            evidence = Evidence(shown, (standalone, question), self.grounding_scope)
        names = self.grounding is Grounding.NAMES
        supported: float | None = None
        sentences = bool(self.check_below)
        for piece in self.guard.checked_stream(
            standalone, pieces, evidence=evidence, names=names, sentences=sentences, review=verdict.review
        ):
            if hangup.is_set:
                log.info("the asker left; generation stopped")
                return
            moderation_s += piece.check_seconds
            checks += piece.checks
            if piece.verdict:
                timings = TurnTimings(
                    retrieval_s, moderation_s, checks, first_text_s, time.perf_counter() - start
                )
                yield Refused(
                    piece.verdict, standalone, retracted=bool(text), timings=timings, language=language
                )
                return
            if piece.text and not text and self.check_below:
                supported = self.supported(prompt, piece.text)
                log.info("first sentence supported p=%.3f", supported)
            if piece.unsupported or (supported is not None and supported < self.check_below):
                # The answer states something its sources do not: it ends before that piece.
                log.info(
                    "answer cut before an unsupported %s", "claim" if piece.unsupported else "first sentence"
                )
                if not text.strip():
                    text = abstention
                    first_text_s = time.perf_counter() - start
                    yield Delta(abstention)
                break
            if piece.text:
                if first_text_s is None:
                    first_text_s = time.perf_counter() - start
                text += piece.text
                yield Delta(piece.text)
        if links.removed:
            log.warning("removed %d link(s) the sources do not give from an answer", len(links.removed))
        answer = text.strip()
        timings = TurnTimings(retrieval_s, moderation_s, checks, first_text_s, time.perf_counter() - start)
        yield Answered(answer, mark_cited(answer, sources), standalone, timings, answerable, supported)

    def supported(self, prompt: Sequence[ChatMessage], sentence: str) -> float:
        """P(the sources state `sentence`), asked on the answer prompt (guardrails/answer_check.py)."""
        return self._p_yes(check_messages(prompt, sentence))

    def _p_yes(self, messages: Sequence[ChatMessage]) -> float:
        """P("yes") against "no" as the reply to a label prompt (the gate and the answer check)."""
        return p_word(self.generator, messages, "yes", "no")

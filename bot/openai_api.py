"""An OpenAI-compatible /v1/chat/completions over the whole RAG pipeline, for other clients.

The last user message is the question and earlier messages are the history; the reply carries
the usual fields plus `sources` (and `moderation` when a turn was refused, with finish_reason
"content_filter" as OpenAI reports its own filtering).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace

from pydantic import BaseModel, Field, field_validator

from bot.chat import ChatService, last_end
from bot.events import Answered, Delta, ErrorKind, Failed, Queued, Refused, Source, TurnEnd, TurnEvent
from generation.protocol import ChatMessage
from retrieval.types import Scope

STATUS = {ErrorKind.INPUT: 400, ErrorKind.STORE: 503, ErrorKind.GENERATOR: 503, ErrorKind.INTERNAL: 500,
          ErrorKind.BUSY: 429}  # fmt: skip
MAX_MESSAGES = 64  # per request; the turn uses the last ones (bot/chat.py clip_history)
MAX_CONTENT_CHARS = 32_000  # per message; the question itself is held to the operator's limit


def bounded_history(messages: list[ChatMessage]) -> list[ChatMessage]:
    """A client's history must not grow the server's memory or the prompt without bound."""
    for m in messages:
        if len(m.content) > MAX_CONTENT_CHARS:
            raise ValueError(
                f"a message is {len(m.content):,} characters; the limit is {MAX_CONTENT_CHARS:,}"
            )
    return messages


class CompletionRequest(BaseModel):
    model: str = Field("ragbot", max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False

    _bounded = field_validator("messages")(bounded_history)


def public_sources(sources: Iterable[Source]) -> list[dict[str, object]]:
    """Sources as an anonymous caller may see them: a local file by its name, never the server's path."""
    return [asdict(replace(s, source=s.public_source)) for s in sources]


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def split(request: CompletionRequest) -> tuple[str, list[ChatMessage]]:
    users = [n for n, m in enumerate(request.messages) if m.role == "user"]
    if not users:
        raise ApiError(400, "messages must contain a user message", "invalid_request_error")
    last = users[-1]
    return request.messages[last].content, [m for m in request.messages[:last] if m.role != "system"]


def _extras(end: Answered | Refused) -> dict[str, object]:
    if isinstance(end, Refused):
        verdict = end.verdict
        moderation = {"flagged": True, "category": verdict.category.value, "stage": verdict.stage,
                      "retracted": end.retracted}  # fmt: skip
        return {"sources": [], "moderation": moderation}
    return {"sources": public_sources(end.sources)}


def _finish(end: Answered | Refused) -> str:
    return "content_filter" if isinstance(end, Refused) else "stop"


def _content(end: Answered | Refused) -> str:
    return end.message if isinstance(end, Refused) else end.text


def _raise_failed(end: TurnEnd) -> Answered | Refused:
    if isinstance(end, Failed):
        raise ApiError(STATUS[end.kind], end.message, end.kind.value)
    return end


def complete(service: ChatService, request: CompletionRequest, *, readable: Scope) -> dict[str, object]:
    """The whole turn as one chat.completion (see `completion`)."""
    question, history = split(request)
    return completion(service.turn(question, history, readable=readable), request)


def completion(events: Iterable[TurnEvent], request: CompletionRequest) -> dict[str, object]:
    """A chat.completion from a turn's events, read to their end; a failed turn raises ApiError."""
    end = _raise_failed(last_end(events))
    message = {"role": "assistant", "content": _content(end)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(end)}],
        **_extras(end),
    }


def stream(service: ChatService, request: CompletionRequest, *, readable: Scope) -> Iterator[str]:
    """The whole turn as server-sent events (see `sse`)."""
    question, history = split(request)
    return sse(service.turn(question, history, readable=readable), request)


def sse(events: Iterable[TurnEvent], request: CompletionRequest) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format; an error mid-way arrives as an `error` event."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: object) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": request.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant"})
    for event in events:
        if isinstance(event, Queued):
            yield f": {event.message}\n\n"  # an SSE comment: clients skip it, proxies see the line is alive
        elif isinstance(event, Delta):
            yield chunk({"content": event.text})
        elif isinstance(event, Failed):
            yield f"data: {json.dumps({'error': {'message': event.message, 'type': event.kind.value}})}\n\n"
        elif isinstance(event, Refused):
            # Shown text cannot be unsent: the refusal follows it, and `retracted` says it is withdrawn.
            yield chunk({"content": ("\n\n" if event.retracted else "") + event.message})
            yield chunk({}, _finish(event), **_extras(event))
        elif isinstance(event, Answered):
            yield chunk({}, _finish(event), **_extras(event))
    yield "data: [DONE]\n\n"

"""An OpenAI-compatible /v1/chat/completions over the whole RAG pipeline, for other clients.

The last user message is the question and earlier messages are the history; the reply carries
the usual fields plus `sources` (and `moderation` when a turn was refused, with finish_reason
"content_filter" as OpenAI reports its own filtering).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict

from pydantic import BaseModel, Field

from bot.chat import ChatService
from bot.events import Answered, Delta, ErrorKind, Failed, Queued, Refused, TurnEnd
from generation.protocol import ChatMessage

STATUS = {ErrorKind.INPUT: 400, ErrorKind.STORE: 503, ErrorKind.GENERATOR: 503, ErrorKind.INTERNAL: 500}


class CompletionRequest(BaseModel):
    model: str = "ragbot"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _split(request: CompletionRequest) -> tuple[str, list[ChatMessage]]:
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
    return {"sources": [asdict(s) for s in end.sources]}


def _finish(end: Answered | Refused) -> str:
    return "content_filter" if isinstance(end, Refused) else "stop"


def _content(end: Answered | Refused) -> str:
    return end.message if isinstance(end, Refused) else end.text


def _raise_failed(end: TurnEnd) -> Answered | Refused:
    if isinstance(end, Failed):
        raise ApiError(STATUS[end.kind], end.message, end.kind.value)
    return end


def complete(service: ChatService, request: CompletionRequest) -> dict[str, object]:
    question, history = _split(request)
    end = _raise_failed(service.answer(question, history))
    message = {"role": "assistant", "content": _content(end)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(end)}],
        **_extras(end),
    }


def stream(service: ChatService, request: CompletionRequest) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format; an error mid-way arrives as an `error` event."""
    question, history = _split(request)
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: object) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": request.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant"})
    for event in service.turn(question, history):
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

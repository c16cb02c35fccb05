"""An OpenAI-compatible /v1/chat/completions over the whole RAG pipeline, for other clients.

The last user message is the question and earlier messages are the history; the reply carries
the usual fields plus `sources` (and `moderation` when a turn was refused).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict

from pydantic import BaseModel, Field

from bot.chat import ChatService, TurnUpdate
from retrieval.generator import ChatMessage

STATUS = {"input": 400, "store": 503, "generator": 503, "internal": 500}


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


def _extras(update: TurnUpdate) -> dict[str, object]:
    extras: dict[str, object] = {"sources": [asdict(s) for s in update.sources]}
    if update.verdict:
        extras["moderation"] = {"flagged": True, "category": update.verdict.category.value,
                                "stage": update.verdict.stage}  # fmt: skip
    return extras


def complete(service: ChatService, request: CompletionRequest) -> dict[str, object]:
    question, history = _split(request)
    update = service.answer(question, history)
    if update.error:
        kind = update.error_kind or "internal"
        raise ApiError(STATUS[kind], update.error, kind)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": update.text}, "finish_reason": "stop"}
        ],
        **_extras(update),
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
    shown = 0
    for update in service.turn(question, history):
        if update.error:
            yield f"data: {json.dumps({'error': {'message': update.error, 'type': update.error_kind}})}\n\n"
            break
        if update.verdict:  # the refusal replaces whatever was shown (nothing, with the guard)
            yield chunk({"content": update.text})
        elif update.text[shown:]:
            yield chunk({"content": update.text[shown:]})
            shown = len(update.text)
        if update.done:  # errors left the loop above
            yield chunk({}, "stop", **_extras(update))
    yield "data: [DONE]\n\n"

"""What the Slack and Discord endpoints share: a triage outcome, payload checks, answering with memory.

Both platforms want an acknowledgement within 3 seconds, so a request is triaged into an
outcome (status, body, and maybe a question) and the question is answered afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import Answered, TurnEnd
from generation.protocol import ChatMessage
from retrieval.types import Scope

Q = TypeVar("Q")


@dataclass(frozen=True)
class WebhookOutcome(Generic[Q]):
    status: int
    body: dict[str, Any]
    question: Q | None = None  # to answer after the response has gone out


class BadPayload(ValueError):
    """A signed delivery whose body is not what the platform documents: answered with a 400."""


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; anything else (bad JSON, a list, a string) is a BadPayload."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadPayload("body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadPayload("body is not a JSON object")
    return payload


def object_field(parent: dict[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any]:
    """`parent[key]` as an object; an optional field that is absent or null is an empty one."""
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{where}.{key} is {'not an object' if key in parent else 'missing'}")
    return value


def text_field(parent: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    """`parent[key]` as a string: a required one must be present and non-empty; an optional one
    may be absent or null (then "")."""
    value = parent.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadPayload(f"{where}.{key} is {'not a string' if key in parent else 'missing'}")
    if required and not value:
        raise BadPayload(f"{where}.{key} is empty")
    return value


def rejected(exc: BadPayload) -> dict[str, Any]:
    """The 400 body for a delivery that was not accepted (and so not recorded as handled)."""
    return {"error": f"malformed payload: {exc}"}


def answer_remembered(
    service: ChatService,
    conversations: ConversationStore,
    conversation: str,
    text: str,
    deliver: Callable[[TurnEnd], bool],
    readable: Scope,
) -> None:
    """Answer with the conversation's history, from what the channel may read; remember an answered
    exchange once it was delivered."""
    end = service.answer(text, conversations.history(conversation), readable=readable)
    if deliver(end) and isinstance(end, Answered):
        conversations.append(
            conversation,
            ChatMessage(role="user", content=text),
            ChatMessage(role="assistant", content=end.text),
        )

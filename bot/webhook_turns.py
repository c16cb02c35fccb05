"""What the Slack and Discord endpoints share: a triage outcome, and answering with memory.

Both platforms want an acknowledgement within 3 seconds, so a request is triaged into an
outcome (status, body, and maybe a question) and the question is answered afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import Answered, TurnEnd
from generation.protocol import ChatMessage

Q = TypeVar("Q")


@dataclass(frozen=True)
class WebhookOutcome(Generic[Q]):
    status: int
    body: dict[str, Any]
    question: Q | None = None  # to answer after the response has gone out


def answer_remembered(
    service: ChatService,
    conversations: ConversationStore,
    conversation: str,
    text: str,
    deliver: Callable[[TurnEnd], bool],
) -> None:
    """Answer with the conversation's history; remember an answered exchange once it was delivered."""
    end = service.answer(text, conversations.history(conversation))
    if deliver(end) and isinstance(end, Answered):
        conversations.append(
            conversation,
            ChatMessage(role="user", content=text),
            ChatMessage(role="assistant", content=end.text),
        )

"""The web door as the browser sees it, without a browser: the chat bubble after each update of the
real turn handler (bot/web.py turn_updates, which the Gradio page runs)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bot.chat import ChatService
from bot.web import Session, turn_updates
from generation.protocol import ChatMessage
from tests.scopes import DEFAULT


def web_bubbles(service: ChatService, message: str, prior: Sequence[ChatMessage] = ()) -> Iterator[str]:
    chat = [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
    for update in turn_updates(service, message, list(prior), chat, Session(), DEFAULT):
        yield update[0][-1]["content"]

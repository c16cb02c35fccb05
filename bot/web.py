"""The web chat: a Gradio ChatInterface over ChatService, streaming, with sources under each answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from bot.chat import ChatService
from bot.events import Answered, Delta, Failed, Refused, Source
from generation.protocol import ChatMessage

_SOURCES_HEADING = "\n\n**Sources**\n"


def _link(source: Source) -> str:
    """The title, linked when the source is a URL; otherwise followed by the file it came from."""
    if source.source.startswith(("http://", "https://")):
        return f"[{source.title}]({source.source})"
    return f"{source.title} (`{source.source.rsplit('/', 1)[-1]}`)"


def render_sources(sources: list[Source]) -> str:
    if not sources:
        return ""
    lines = [
        f"- **[{s.number}]** {_link(s)}{' (cited)' if s.cited else ''}: {s.snippet[:160]}…" for s in sources
    ]
    return _SOURCES_HEADING + "\n".join(lines)


def history_messages(history: list[Any]) -> list[ChatMessage]:
    """Gradio's message history (dicts with role/content) as ChatMessages, dropping non-text parts."""
    out = []
    for item in history:
        role, content = item.get("role"), item.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role in ("user", "assistant") and isinstance(content, str):
            out.append(ChatMessage(role=role, content=content.split(_SOURCES_HEADING)[0]))
    return out


def render_turn(service: ChatService, message: str, history: list[ChatMessage]) -> Iterator[str]:
    """The chat bubble's text after each event: the answer so far, then with its sources."""
    text = ""
    for event in service.turn(message, history):
        if isinstance(event, Delta):
            text += event.text
            yield text
        elif isinstance(event, Answered):
            yield event.text + render_sources(event.sources)
        elif isinstance(event, Refused):
            yield f"🛡️ {event.message}"
        elif isinstance(event, Failed):
            yield f"⚠️ {event.message}"


def build_ui(service: ChatService) -> gr.Blocks:
    def respond(message: str, history: list[Any]) -> Iterator[str]:
        yield from render_turn(service, message, history_messages(history))

    return gr.ChatInterface(
        respond,
        title="ragbot",
        description="Answers from the ingested documents, with numbered citations.",
    )

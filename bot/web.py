"""The web chat: a Gradio ChatInterface over ChatService, streaming, with sources under each answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from bot.chat import ChatService, Source
from retrieval.generator import ChatMessage


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
    return "\n\n**Sources**\n" + "\n".join(lines)


def history_messages(history: list[Any]) -> list[ChatMessage]:
    """Gradio's message history (dicts with role/content) as ChatMessages, dropping non-text parts."""
    out = []
    for item in history:
        role, content = item.get("role"), item.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role in ("user", "assistant") and isinstance(content, str):
            out.append(ChatMessage(role=role, content=content.split("\n\n**Sources**")[0]))
    return out


def build_ui(service: ChatService) -> gr.Blocks:
    def respond(message: str, history: list[Any]) -> Iterator[str]:
        for update in service.turn(message, history_messages(history)):
            if update.error:
                yield f"⚠️ {update.error}"
            elif update.verdict:
                yield f"🛡️ {update.text}"
            elif update.done:
                yield update.text + render_sources(update.sources)
            else:
                yield update.text

    return gr.ChatInterface(
        respond,
        title="ragbot",
        description="Answers from the ingested documents, with numbered citations.",
    )

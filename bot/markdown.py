"""Answers and questions as Markdown that renders as the same text and nothing else, with the
answer's [n] markers as the only links (to the evidence panel's passages). Shared by the live chat
(bot/web.py) and resumed kept chats (bot/web_chats.py)."""

from __future__ import annotations

import html
import re
from typing import Any

from generation.protocol import ChatMessage

_CITATION = re.compile(r"\[(\d{1,2})\]")
_CITE_LINK = re.compile(r"\[\\\[(\d{1,2})\\\]\]\(#cite-\d+-\d+\)")
# Markdown that could make the browser fetch or link somewhere: brackets (links, images, references),
# backslashes (which could undo an escape), and what GFM autolinks (scheme://, www., e-mail @).
_MARKDOWN_REACH = re.compile(r"[\\\[\]]|(?<=[A-Za-z])(?=://)|(?<=\bwww)(?=\.)|(?=@)")
_ESCAPED = re.compile(r"\\([\\\[\]:.@])")
_SOURCES_HEADING = "\n\n**Sources**\n"  # in answers rendered by earlier versions: cut from the history


def safe_markdown(text: str) -> str:
    """Text from the model (or a user) as Markdown that renders as the same text and nothing else:
    no HTML (escaped), no links or images (brackets escaped), no autolinked URLs or addresses.
    `unsafe_text` reverses it."""
    text = html.escape(text, quote=False)
    return _MARKDOWN_REACH.sub(lambda m: "\\" + m.group(0) if m.group(0) else "\\", text)


def unsafe_text(markdown: str) -> str:
    return html.unescape(_ESCAPED.sub(r"\1", markdown))


def history_messages(history: list[Any]) -> list[ChatMessage]:
    """Gradio's message history as ChatMessages: text only, citation links back to plain [n]."""
    out = []
    for item in history:
        role, content = item.get("role"), item.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role in ("user", "assistant") and isinstance(content, str):
            text = _CITE_LINK.sub(r"[\1]", content.split(_SOURCES_HEADING)[0])
            out.append(ChatMessage(role=role, content=unsafe_text(text)))
    return out


def link_citations(text: str, turn: int, numbers: set[int]) -> str:
    """The answer as safe Markdown (`safe_markdown`) whose [n] markers of known sources are the only
    links: the page script turns them into 'show passage n'."""
    out, at = [], 0
    for m in _CITATION.finditer(text):
        n = int(m.group(1))
        if n in numbers:
            out += [safe_markdown(text[at : m.start()]), f"[\\[{n}\\]](#cite-{turn}-{n})"]
            at = m.end()
    return "".join([*out, safe_markdown(text[at:])])

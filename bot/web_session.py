"""What the web page keeps per browser tab (Gradio's gr.State), shared by the chat (bot/web.py) and
the kept-chats sidebar (bot/web_chats.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.events import TurnEnd
from bot.feedback import TurnRecord


@dataclass
class Session:
    """Per browser tab: each answer's turn (for feedback), its end and its evidence section, by
    message index; and the signed-in person's kept chat this tab adds to."""

    records: dict[int, TurnRecord] = field(default_factory=dict)
    sections: dict[int, str] = field(default_factory=dict)
    ends: dict[int, TurnEnd] = field(default_factory=dict)
    chat_id: int | None = None

"""Kept conversations, each owned by one person.

Every call names the owner, and every query filters on it: a chat id that belongs to someone else
behaves exactly like one that does not exist (None, False or NotFound), so ids reveal nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from state.db import Context, get_row, valid_id
from state.models import ChatRow, PersonRow, TurnRow
from state.types import Chat, ChatInfo, Invalid, NotFound, SourceRef, TurnRecord

MAX_TITLE = 300


def _title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise Invalid("a chat needs a title")
    return title[:MAX_TITLE]


def _info(row: ChatRow, turns: int) -> ChatInfo:
    return ChatInfo(
        id=row.id, title=row.title, created_at=row.created_at, updated_at=row.updated_at, turns=turns
    )


def _turn(row: TurnRow) -> TurnRecord:
    return TurnRecord(
        question=row.question,
        standalone=row.standalone,
        answer=row.answer,
        sources=[SourceRef(file=s["file"], kb=s["kb"], title=s["title"]) for s in row.sources],
        verdicts=list(row.verdicts),
        created_at=row.created_at,
    )


class Chats:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @staticmethod
    def _owned(s: Session, person_id: int, chat_id: int) -> ChatRow | None:
        if not (valid_id(person_id) and valid_id(chat_id)):
            return None
        return s.scalar(select(ChatRow).where(ChatRow.id == chat_id, ChatRow.owner_id == person_id))

    def create(self, person_id: int, title: str) -> ChatInfo:
        with self._ctx.write() as s:
            if get_row(s, PersonRow, person_id) is None:
                raise NotFound(f"no person {person_id}")
            now = self._ctx.now()
            row = ChatRow(owner_id=person_id, title=_title(title), created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            return _info(row, 0)

    def get(self, person_id: int, chat_id: int) -> Chat | None:
        with self._ctx.sessions() as s:
            row = self._owned(s, person_id, chat_id)
            if row is None:
                return None
            return Chat(info=_info(row, len(row.turns)), turns=[_turn(t) for t in row.turns])

    def rename(self, person_id: int, chat_id: int, title: str) -> bool:
        with self._ctx.write() as s:
            row = self._owned(s, person_id, chat_id)
            if row is None:
                return False
            row.title = _title(title)
            return True

    def delete(self, person_id: int, chat_id: int) -> bool:
        with self._ctx.write() as s:
            row = self._owned(s, person_id, chat_id)
            if row is None:
                return False
            s.delete(row)
            return True

    def append_turn(self, person_id: int, chat_id: int, turn: TurnRecord) -> ChatInfo:
        with self._ctx.write() as s:
            row = self._owned(s, person_id, chat_id)
            if row is None:
                raise NotFound(f"no chat {chat_id}")
            position = len(row.turns)
            row.turns.append(
                TurnRow(
                    position=position,
                    question=turn.question,
                    standalone=turn.standalone,
                    answer=turn.answer,
                    sources=[asdict(src) for src in turn.sources],
                    verdicts=list(turn.verdicts),
                    created_at=turn.created_at,
                )
            )
            row.updated_at = self._ctx.now()
            s.flush()
            return _info(row, position + 1)

    def export(self, person_id: int, chat_id: int) -> str | None:
        """The chat as one JSON document (title, times, every turn with its sources and verdicts),
        for its owner to download; None for a chat that is not theirs."""
        chat = self.get(person_id, chat_id)
        if chat is None:
            return None
        document = {
            "title": chat.info.title,
            "created_at": chat.info.created_at.isoformat(),
            "updated_at": chat.info.updated_at.isoformat(),
            "turns": [{**asdict(t), "created_at": t.created_at.isoformat()} for t in chat.turns],
        }
        return json.dumps(document, ensure_ascii=False, indent=2)

    def list(self, person_id: int) -> list[ChatInfo]:
        """The person's chats, most recently updated first."""
        counts = (
            select(TurnRow.chat_id, func.count(TurnRow.id).label("n")).group_by(TurnRow.chat_id).subquery()
        )
        query = (
            select(ChatRow, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.chat_id == ChatRow.id)
            .where(ChatRow.owner_id == person_id)
            .order_by(ChatRow.updated_at.desc(), ChatRow.id.desc())
        )
        if not valid_id(person_id):
            return []
        with self._ctx.sessions() as s:
            return [_info(row, n) for row, n in s.execute(query)]

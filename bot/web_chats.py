"""The web page's account bar and a signed-in person's kept chats.

- Account bar: who is signed in and a sign-out button (a plain form posting the session's CSRF token
  to /auth/logout), or a "Sign in" link for an anonymous visitor when sign-in is set up.
- Kept chats: beside the chat, the person's chats (state/chats.py), newest first; "New chat", click
  one to resume it (its turns come back into the chat and the conversation history), rename, delete,
  and export as JSON (/chats/{id}/export, bot/app.py). Each answered or refused turn is appended as it
  ends, so a reload or another browser finds it. Every call names the signed-in person of the event
  being handled, never an id from the page: the state refuses anyone else's chat as unknown.

Anonymous visitors keep the page-only history they had before.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, cast

import gradio as gr

from bot.auth import current_person, web_auth
from bot.events import Answered, Refused, TurnEnd
from bot.evidence import panel, turn_section
from bot.markdown import link_citations, safe_markdown
from bot.ui_texts import page_words
from bot.web_session import Session
from state import Chat, NotFound, SourceRef, TurnRecord
from state.chats import Chats

TITLE_CHARS = 80  # a new chat is titled with its first question, this long at most


def account_html(request: gr.Request) -> str:
    """The signed-in person's name and a sign-out form; a sign-in link for anyone else; nothing
    where sign-in is not set up."""
    http = getattr(request, "request", None)
    auth = web_auth(http) if http is not None else None
    if http is None or auth is None:
        return ""
    person = auth.person(http)
    session = auth.session(http)
    words = page_words(http.headers.get("accept-language", ""))
    e = html.escape
    if person is None or session is None:
        return f'<p id="rb-account"><a href="/auth/login" id="rb-sign-in">{e(words["sign_in"])}</a></p>'
    return (
        '<form id="rb-account" method="post" action="/auth/logout">'
        f'{e(words["signed_in_as"])} <b id="rb-person">{e(person.name)}</b> '
        f'<input type="hidden" name="csrf" value="{e(session.csrf)}">'
        f'<button type="submit" id="rb-sign-out">{e(words["sign_out"])}</button></form>'
    )


def owner(request: gr.Request) -> int | None:
    """The id of the person signed in on this page event's request, None for anyone else."""
    http = getattr(request, "request", None)
    person = current_person(http) if http is not None else None
    return person.id if person is not None else None


def kept_turn(end: TurnEnd, question: str) -> TurnRecord | None:
    """What a chat keeps of a finished turn: answers and refusals (a failure, such as the store
    being down, is not part of the conversation)."""
    if isinstance(end, Answered):
        sources = [SourceRef(file=s.public_source, kb=s.kb, title=s.title) for s in end.sources]
        return TurnRecord(question, end.standalone_question, end.text, sources)
    if isinstance(end, Refused):
        verdict = f"{end.verdict.category.value}:{end.verdict.stage}"
        return TurnRecord(question, end.standalone_question, end.message, [], [verdict])
    return None


def restored(chat: Chat) -> tuple[list[dict[str, str]], dict[int, str]]:
    """A kept chat as the Chatbot's history and the evidence panel's sections (the passages are not
    kept: each turn lists its sources by number, title and file)."""

    history: list[dict[str, str]] = []
    sections: dict[int, str] = {}
    for record in chat.turns:
        history.append({"role": "user", "content": safe_markdown(record.question)})
        turn = len(history)
        if record.verdicts:
            shown = f"🛡️ {safe_markdown(record.answer)}"
        else:
            shown = link_citations(record.answer, turn, set(range(1, len(record.sources) + 1)))
        history.append({"role": "assistant", "content": shown})
        listed = "; ".join(f"[{n}] {s.title} ({s.file})" for n, s in enumerate(record.sources, start=1))
        note = f"Kept chat: {listed}." if listed else "Kept chat: no sources."
        sections[turn] = turn_section(turn, record.standalone or record.question, [], note)
    return history, sections


def export_link(chat_id: int | None) -> str:
    if chat_id is None:
        return ""
    return f'<a id="rb-export" href="/chats/{chat_id}/export" download>Export this chat (JSON)</a>'


def _note(text: str, kind: str = "info") -> str:
    return f'<p class="rb-msg rb-{kind}">{html.escape(text)}</p>'


@dataclass
class Sidebar:
    """The kept-chats column's components that events read or write."""

    column: gr.Column
    new: gr.Button
    chats: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    export: gr.HTML
    note: gr.HTML


def sidebar(t: gr.I18n, audit_notice: bool) -> Sidebar:
    """Hidden until the page's load finds a signed-in person."""
    with gr.Column(scale=1, min_width=200, visible=False, elem_id="rb-chats") as column:
        new = gr.Button(t("new_chat"), elem_id="rb-new-chat", size="sm")
        chats = gr.Radio(label=t("chats"), choices=[], elem_id="rb-chat-list")
        title = gr.Textbox(label=t("chat_title"), max_lines=1, elem_id="rb-chat-title")
        with gr.Row():
            rename = gr.Button(t("rename"), size="sm", elem_id="rb-rename-chat")
            delete = gr.Button(t("delete_chat"), size="sm", variant="stop", elem_id="rb-delete-chat")
        export = gr.HTML(elem_id="rb-export-box")
        note = gr.HTML(elem_id="rb-chats-note")
        if audit_notice:
            gr.Markdown(t("audit"), elem_id="rb-audit-notice")
    return Sidebar(column, new, chats, title, rename, delete, export, note)


@dataclass
class KeptChats:
    """The sidebar's events, over the state's chats."""

    chats: Chats

    def listing(self, person_id: int, selected: int | None) -> Any:
        choices = [(f"{c.title} ({c.turns})", c.id) for c in self.chats.list(person_id)]
        return gr.update(choices=choices, value=selected)

    def keep(self, session: Session, turn: int, question: str, request: gr.Request) -> None:
        """Append the finished turn to this tab's chat, starting one with the first kept turn (or when
        the chat was deleted meanwhile, in another tab)."""
        person_id = owner(request)
        end = session.ends.get(turn)
        record = kept_turn(end, question) if end is not None else None
        if person_id is None or record is None:
            return
        if session.chat_id is not None:
            try:
                self.chats.append_turn(person_id, session.chat_id, record)
                return
            except NotFound:
                pass
        session.chat_id = self.chats.create(person_id, question[:TITLE_CHARS]).id
        self.chats.append_turn(person_id, session.chat_id, record)

    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        """Shown to a signed-in person only, with their chats."""
        person_id = owner(request)
        if person_id is None:
            return gr.update(visible=False), gr.update(choices=[], value=None)
        return gr.update(visible=True), self.listing(person_id, None)

    def on_turn(self, session: Session, request: gr.Request) -> tuple[Any, ...]:
        """After a turn: the list (a new chat, a count gone up), this chat selected, its export."""
        person_id = owner(request)
        if person_id is None:
            return gr.skip(), gr.skip()
        return self.listing(person_id, session.chat_id), export_link(session.chat_id)

    def on_new(self, session: Session, request: gr.Request) -> tuple[Any, ...]:
        """A fresh conversation; the next answer starts a new kept chat."""
        person_id = owner(request)
        listing = self.listing(person_id, None) if person_id is not None else gr.skip()
        return [], Session(), panel({}), listing, "", "", ""

    def on_pick(self, chat_id: int | None, session: Session, request: gr.Request) -> tuple[Any, ...]:
        """Resume a chat: its turns into the chat (and so into the history the next turn sends)."""
        person_id = owner(request)
        chat = self.chats.get(person_id, chat_id) if person_id is not None and chat_id else None
        if person_id is None or chat is None:
            listing = self.listing(person_id, None) if person_id is not None else gr.skip()
            return gr.skip(), session, gr.skip(), listing, "", "", _note("That chat is gone.", "error")
        history, sections = restored(chat)
        fresh = Session(sections=sections, chat_id=chat.info.id)
        return history, fresh, panel(sections), gr.skip(), chat.info.title, export_link(chat.info.id), ""

    def on_rename(self, title: str, session: Session, request: gr.Request) -> tuple[Any, ...]:
        person_id = owner(request)
        if person_id is None or session.chat_id is None:
            return gr.skip(), _note("Choose a chat first.", "error")
        if not title.strip():
            return gr.skip(), _note("A chat needs a title.", "error")
        if not self.chats.rename(person_id, session.chat_id, title):
            return self.listing(person_id, None), _note("That chat is gone.", "error")
        return self.listing(person_id, session.chat_id), _note("Renamed.")

    def on_delete(self, session: Session, request: gr.Request) -> tuple[Any, ...]:
        person_id = owner(request)
        if person_id is None or session.chat_id is None:
            return (
                gr.skip(),
                session,
                gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                _note("Choose a chat first.", "error"),
            )
        self.chats.delete(person_id, session.chat_id)
        return [], Session(), panel({}), self.listing(person_id, None), "", "", _note("Chat deleted.")


def wire_sidebar(
    kept: KeptChats, bar: Sidebar, chatbot: gr.Chatbot, session: gr.State, evidence: gr.HTML
) -> None:
    """New, pick, rename and delete; each that replaces the conversation sets chat, session and
    evidence together."""
    replacing = [chatbot, session, evidence, bar.chats, bar.title, bar.export, bar.note]
    bar.new.click(kept.on_new, [session], replacing)
    bar.chats.input(kept.on_pick, [bar.chats, session], replacing)
    bar.rename.click(kept.on_rename, [bar.title, session], [bar.chats, bar.note])
    bar.delete.click(kept.on_delete, [session], replacing)


def picked(value: Any) -> list[str] | None:
    """The knowledge-base picker's value as names; None (all readable) when nothing is picked."""
    names = [v for v in cast(list[Any], value or []) if isinstance(v, str)]
    return names or None

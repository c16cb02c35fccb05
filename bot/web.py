"""The web chat at `/`: Gradio Blocks over ChatService, with an evidence panel, a documents panel,
example questions, a status line and feedback.

- Chat: the answer streams in; its [n] markers become links that open passage n in the evidence
  panel (a small script in the page head; no round trip). Refusals show a 🛡️ notice naming the
  category, a refusal after shown text says the answer was withdrawn.
- Evidence: per answer, every source with number, title, file or link, retrieval score and the
  passage, the sentences supporting the citing claim marked (bot/evidence.py); cited ones first.
- Documents (bot/library.py): upload several files through the CLI's Ingestor with progress and a
  result per file, the list with chunk counts, delete, in the knowledge base picked there (among those
  the visitor reads). Changes need the edit role on that knowledge base (signed in), the operator
  token, or, without one, a direct request from this machine.
- Sign-in (where people sign in): the account bar, a knowledge-base picker, and a signed-in person's
  kept chats beside the chat (bot/web_chats.py).
- Feedback: 👍/👎 on an answer (Gradio's like buttons) and an optional comment, written with the turn
  to the state database.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import gradio as gr

from bot.access import Readers
from bot.admission import Hangup
from bot.auth import current_principal
from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import Answered, Delta, Failed, Queued, Refused, Started, TurnEnd
from bot.evidence import evidence, panel, turn_section
from bot.feedback import Rating, TurnRecord
from bot.httpsafe import OPERATOR_COOKIE, Access, edit_access
from bot.library import DocumentInfo, Libraries, Library, UploadOutcome
from bot.markdown import history_messages, link_citations, safe_markdown
from bot.ui_texts import ui_texts
from bot.web_chats import KeptChats, Sidebar, account_html, picked, sidebar, wire_sidebar
from bot.web_session import Session
from generation.protocol import ChatMessage
from retrieval.loaders import SUPPORTED_SUFFIXES
from retrieval.types import DEFAULT_KB, FileStatus, Scope
from state import Principal, State


def end_text(end: TurnEnd, turn: int = 0) -> str:
    """The chat bubble for the end of a turn."""
    if isinstance(end, Answered):
        return link_citations(end.text, turn, {s.number for s in end.sources})
    if isinstance(end, Refused):
        return f"🛡️ {safe_markdown(end.message)}"
    return f"⚠️ {safe_markdown(end.message)}"


def end_section(turn: int, question: str, end: TurnEnd) -> str:
    """The evidence panel's section for a finished turn, titled with the question searched for."""
    question = getattr(end, "standalone_question", "") or question
    if isinstance(end, Answered):
        note = "" if end.cited else "The answer cites none of these passages."
        return turn_section(turn, question, evidence(end.text, end.sources), note)
    if isinstance(end, Refused):
        what = "withdrawn" if end.retracted else "refused"
        note = f"🛡️ The answer was {what} by moderation ({end.verdict.category.label}); no sources are shown."
        return turn_section(turn, question, [], note)
    return turn_section(turn, question, [], f"⚠️ {end.message}")


def example_questions(titles: list[str], limit: int = 6) -> list[str]:
    """Simple templates over document titles, alternating so both kinds show."""
    templates = ("What is {}?", "Summarise {}.")
    return [templates[i % 2].format(t) for i, t in enumerate(dict.fromkeys(titles)) if t][:limit]


def documents_table(docs: list[DocumentInfo]) -> str:
    if not docs:
        return (
            '<p class="rb-empty">No documents yet: upload some above, or run <code>ragbot ingest</code>.</p>'
        )
    rows = "".join(
        f"<tr><td>{html.escape(d.title)}</td><td><code>{html.escape(d.name)}</code></td>"
        f'<td class="rb-n">{d.chunks}</td><td>{"uploaded" if d.uploaded else "ingested"}</td></tr>'
        for d in docs
    )
    total = sum(d.chunks for d in docs)
    return (
        f'<table class="rb-table" id="rb-docs"><caption>{len(docs)} documents, {total} chunks</caption>'
        "<thead><tr><th>Title</th><th>File</th><th>Chunks</th><th>How</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def upload_table(outcomes: list[UploadOutcome]) -> str:
    rows = "".join(
        f'<tr class="rb-{o.status.value}"><td><code>{html.escape(o.name)}</code></td>'
        f"<td>{o.status.value}</td><td class='rb-n'>{o.chunks if o.status is not FileStatus.REJECTED else ''}</td>"
        f"<td>{html.escape(o.reason)}</td></tr>"
        for o in outcomes
    )
    return (
        '<table class="rb-table" id="rb-upload-result"><thead><tr><th>File</th><th>Result</th>'
        f"<th>Chunks</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _message(text: str, kind: str = "info") -> str:
    return f'<p class="rb-msg rb-{kind}">{html.escape(text)}</p>'


def moderation_description(service: ChatService) -> str:
    guard = service.guard
    if not guard.enabled:
        return "off"
    kinds = {"SelfReflectionClassifier": "self-reflection"}
    kind = kinds.get(type(guard.classifier).__name__, type(guard.classifier).__name__)
    enforced = ", ".join(sorted(c.value for c in guard.policy.enforced))
    policy = guard.policy
    band = f", answers reviewed from {policy.review_threshold:g}" if policy.has_review_band else ""
    return f"{kind} ({enforced}; threshold {policy.threshold:g}{band})"


def status_line(service: ChatService) -> str:
    generator = getattr(service.generator, "name", type(service.generator).__name__)
    store = service.retriever.store
    kind = "Qdrant server" if store.is_server else "Qdrant local mode"
    try:
        count = f"{store.count()} chunks" if store.exists() else "empty"
    except Exception as exc:  # the status line reports, the chat's own errors say more
        count = f"unavailable ({type(exc).__name__})"
    return (
        f"**Generator** `{generator}` · **Store** {kind}, {count} · "
        f"**Moderation** {moderation_description(service)}"
    )


def turn_updates(
    service: ChatService,
    message: str,
    prior: list[ChatMessage],
    history: list[Any],
    session: Session,
    readable: Scope,
    hangup: Hangup | None = None,
    client: str = "",
) -> Iterator[tuple[Any, ...]]:
    """The web chat's updates (chat, input box, evidence panel, session) after each event of one turn;
    `history` ends with the placeholder bubble this turn fills."""
    turn = len(history) - 1
    text = ""
    for event in service.turn(message, prior, readable=readable, client=client, hangup=hangup):
        if isinstance(event, Queued):
            history[-1] = {"role": "assistant", "content": event.message}
            session.sections[turn] = turn_section(turn, message, [], event.message)
            yield history, gr.skip(), panel(session.sections), session
        elif isinstance(event, Started):
            history[-1] = {"role": "assistant", "content": "…"}
            items = evidence("", event.sources)
            session.sections[turn] = turn_section(turn, event.standalone_question, items, "Answering…")
            yield history, gr.skip(), panel(session.sections), session
        elif isinstance(event, Delta):
            text += event.text
            history[-1] = {"role": "assistant", "content": safe_markdown(text)}
            yield history, gr.skip(), gr.skip(), session
        elif isinstance(event, Answered | Refused | Failed):
            history[-1] = {"role": "assistant", "content": end_text(event, turn)}
            session.sections[turn] = end_section(turn, message, event)
            session.records[turn] = TurnRecord.from_end("web", message, event)
            session.ends[turn] = event
            yield history, gr.update(interactive=True), panel(session.sections), session


CSS = """
#rb-status p {font-size: 0.9em; margin: 0; opacity: 0.85}
.rb-evidence {max-height: 640px; overflow-y: auto; font-size: 0.92em}
.rb-for {margin: 0 0 6px; opacity: 0.8} .rb-note {margin: 4px 0; font-style: italic}
.rb-src {border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 6px 8px; margin: 6px 0}
.rb-src summary {cursor: pointer} .rb-src.rb-active {outline: 2px solid var(--color-accent); outline-offset: 1px}
.rb-num {font-weight: 700} .rb-score {float: right; opacity: 0.7; font-size: 0.85em}
.rb-cited {background: #dcfce7; color: #166534; border-radius: 4px; padding: 0 5px; font-size: 0.8em}
.rb-uncited {opacity: 0.6; font-size: 0.8em} .rb-where {margin: 4px 0; font-size: 0.85em}
.rb-passage {margin: 4px 0 0; padding-left: 8px; border-left: 3px solid var(--border-color-primary); white-space: pre-wrap}
.rb-passage mark {background: #fef08a; color: inherit; padding: 0 1px}
.rb-table {width: 100%; border-collapse: collapse; font-size: 0.92em}
.rb-table th, .rb-table td {text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--border-color-primary)}
.rb-table caption {text-align: left; opacity: 0.8; padding-bottom: 4px} .rb-n {text-align: right}
.rb-rejected td {color: #b91c1c} .rb-added td:nth-child(2), .rb-replaced td:nth-child(2) {color: #15803d}
.rb-msg {margin: 4px 0} .rb-error {color: #b91c1c}
#rb-chat a[href^="#cite-"] {color: var(--color-accent); font-weight: 600; text-decoration: none}
"""

# Citation links in answers ("#cite-<turn>-<n>") open passage n of that answer in the evidence panel.
HEAD = """<script>
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest('a[href^="#cite-"]');
  if (!a) return;
  e.preventDefault(); e.stopPropagation();
  const m = a.getAttribute("href").match(/^#cite-(\\d+)-(\\d+)$/);
  if (!m) return;
  document.querySelectorAll(".rb-turn").forEach((s) => { s.hidden = s.dataset.turn !== m[1]; });
  const card = document.getElementById(`rb-src-${m[1]}-${m[2]}`);
  if (!card) return;
  document.querySelectorAll(".rb-src.rb-active").forEach((c) => c.classList.remove("rb-active"));
  card.open = true; card.classList.add("rb-active");
  card.scrollIntoView({block: "nearest"});
}, true);
</script>"""


_PROGRESS = gr.Progress(track_tqdm=True)  # the Ingestor's tqdm bars become the upload's progress bar


@dataclass
class PageActions:
    """What the page's events do, for one built page; each browser tab's own state is its `Session`."""

    service: ChatService
    conversations: ConversationStore
    libraries: Libraries | None
    admin_token: str | None
    bound_host: str
    readers: Readers = field(default_factory=Readers)
    kept: KeptChats | None = None  # a signed-in person's chats, where there is a state database
    hangups: dict[str, Hangup] = field(default_factory=dict)  # browser session -> its turn in progress

    def library(
        self, kb: str | None, request: gr.Request, role: Literal["read", "known"] = "read"
    ) -> Library | None:
        """Knowledge base `kb`'s library, when this visitor may read it (`role` "read"), or when it is a
        knowledge base this site knows (`role` "known": whether they may change it is `_access`'s)."""
        if self.libraries is None or not kb:
            return None
        if role == "read" and not self.readers.may(asker(request), kb, "read"):
            return None
        state = self.readers.state
        known = state.kbs.get(kb) is not None if state is not None else kb == DEFAULT_KB
        return self.libraries.get(kb) if known else None

    def document_kbs(self, request: gr.Request) -> Any:
        """The documents tab's knowledge-base choice: those this visitor reads, `default` first picked
        (else the first); shown when there is a choice to make."""
        names = sorted(self.readers.readable(asker(request)).kbs) if self.libraries is not None else []
        value = DEFAULT_KB if DEFAULT_KB in names else (names[0] if names else None)
        return gr.update(choices=names, value=value, visible=len(names) > 1)

    def refresh(self, kb: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Everything that depends on the chosen knowledge base's library: status, list, delete
        choices, example questions; only what this visitor may read (a library they cannot read
        lists nothing)."""
        library = self.library(kb, request)
        docs = library.documents() if library is not None else []
        # The page names a document by its file name and an opaque key, never by the server's path.
        choices = [(f"{d.title} ({d.name}, {d.chunks} chunks)", document_key(d.source)) for d in docs]
        # What was uploaded last is likely what people want to ask about next.
        recent = sorted((d for d in docs if d.uploaded_at), key=lambda d: -(d.uploaded_at or 0))
        questions = example_questions([d.title for d in [*recent, *docs]])
        return (
            status_line(self.service),
            documents_table(docs),
            gr.update(choices=choices, value=None),
            gr.update(samples=[[q] for q in questions], visible=bool(questions)),
        )

    def knowledge_bases(self, request: gr.Request) -> Any:
        """The picker: every knowledge base this visitor reads, all picked; shown when there is a
        choice to make."""
        names = sorted(self.readers.readable(asker(request)).kbs)
        return gr.update(choices=names, value=names, visible=len(names) > 1)

    def respond(
        self,
        message: str,
        history: list[Any],
        session: Session,
        kbs: list[str] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Stream one turn into the chat and the evidence panel; the input is locked meanwhile. The
        turn searches the picked knowledge bases among those the asker reads (none picked: all of
        them), and a signed-in person's turn is kept in their chat. It is hung up when the tab goes
        (Gradio's unload), so a closed tab holds no place in line."""
        message = (message or "").strip()
        if not message:
            yield history, gr.update(), gr.skip(), session
            return
        prior = history_messages(history)
        shown = {"role": "user", "content": safe_markdown(message)}
        history = [*history, shown, {"role": "assistant", "content": "…"}]
        turn = len(history) - 1
        session.sections[turn] = turn_section(turn, message, [], "Searching the documents…")
        yield history, gr.update(value="", interactive=False), panel(session.sections), session
        hangup = Hangup()
        key = getattr(request, "session_hash", None) or ""
        if key:
            self.hangups[key] = hangup
        try:
            client = _host(request) or ""
            readable = self.readers.readable(asker(request), wanted=picked(kbs))
            yield from turn_updates(self.service, message, prior, history, session, readable, hangup, client)
            if self.kept is not None:
                self.kept.keep(session, turn, message, request)
                yield history, gr.skip(), gr.skip(), session  # the kept chat's id, for the sidebar
        finally:
            hangup.hang_up()
            if self.hangups.get(key) is hangup:
                del self.hangups[key]

    def on_leave(self, request: gr.Request) -> None:
        """The tab is gone: its turn, waiting or answering, gives its place up."""
        if (hangup := self.hangups.pop(getattr(request, "session_hash", None) or "", None)) is not None:
            hangup.hang_up()

    def on_like(self, session: Session, data: gr.LikeData) -> tuple[Any, ...]:
        """Save 👍/👎 with the answer's turn and offer the comment box."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        record = session.records.get(index)
        if record is None:
            return gr.update(visible=False), None, ""
        rating = Rating.UP if data.liked is True else Rating.DOWN if data.liked is False else None
        self.conversations.rate(record, rating)
        note = "Thanks: feedback saved." if rating else "Feedback taken back."
        return gr.update(visible=rating is not None), index, _message(note)

    def on_comment(self, text: str, target: int | None, session: Session) -> tuple[Any, ...]:
        record = session.records.get(target) if target is not None else None
        if record is None or not text.strip():
            return gr.update(), text, _message("Nothing to send.", "error")
        self.conversations.comment(record, text)
        return gr.update(visible=False), "", _message("Thanks: comment saved with your rating.")

    def on_upload(
        self,
        files: list[str] | None,
        token: str,
        kb: str | None,
        request: gr.Request,
        progress: gr.Progress = _PROGRESS,
    ) -> tuple[Any, ...]:
        """Ingest the files into the chosen knowledge base, when this request may change it (checked
        before anything is stored: the upload route only checked that the person edits some)."""
        if self.libraries is None or not files:
            return (gr.skip(), None, *self.refresh(kb, request))
        try:
            library = self.library(kb, request, role="known")
            if library is None:
                return (_message("Choose a knowledge base.", "error"), None, *self.refresh(kb, request))
            access = self._access(token, request, library.kb)
            if not access.allowed:
                return (_message(access.reason, "error"), None, *self.refresh(kb, request))
            progress(0, desc=f"Ingesting {len(files)} file(s)…")
            outcomes = library.upload([(Path(f).name, Path(f)) for f in files])
            for outcome in outcomes:
                if outcome.stored_as:
                    self._audit(
                        request,
                        "upload",
                        library.kb,
                        outcome.stored_as,
                        f"{outcome.status.value}, {outcome.chunks} chunks",
                    )
            return (upload_table(outcomes), None, *self.refresh(kb, request))
        finally:  # Gradio's cached copy would stay fetchable (and outlive a deleted document)
            for f in files:
                Path(f).unlink(missing_ok=True)

    def on_delete(self, key: str | None, token: str, kb: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Delete the chosen document of the chosen knowledge base, when this request may change it."""
        library = self.library(kb, request, role="known")
        if library is None or not key:
            return (_message("Choose a document to delete.", "error"), *self.refresh(kb, request))
        access = self._access(token, request, library.kb)
        if not access.allowed:
            return (_message(access.reason, "error"), *self.refresh(kb, request))
        source = next((d.source for d in library.documents() if document_key(d.source) == key), None)
        if source is None:
            message = _message("That document is no longer in the library.", "error")
            return (message, *self.refresh(kb, request))
        removed = library.delete(source)
        name = source.rsplit("/", 1)[-1]
        self._audit(request, "delete", library.kb, name, f"{removed} chunks")
        note = f"Deleted {name}: {removed} chunks removed." if removed else f"{name} is not in the store."
        return (_message(note), *self.refresh(kb, request))

    def _audit(self, request: gr.Request, action: str, kb: str, name: str, detail: str) -> None:
        """Uploads and deletions go to the audit log (who, when, which file in which knowledge base)."""
        state = self.readers.state
        if state is not None:
            who = asker(request)
            actor = who.label if who.kind != "anonymous" else f"local:{_host(request) or 'unknown'}"
            state.audit.record(actor, action, f"{kb}/{name}", detail)

    def _access(self, token: str, request: gr.Request, kb: str) -> Access:
        """May this request change knowledge base `kb`'s documents (bot/httpsafe.py)."""
        editor = self.readers.may(asker(request), kb, "edit")
        return edit_access(
            self.admin_token, token or "", _host(request), dict(request.headers), self.bound_host, editor
        )


@dataclass
class ChatTab:
    """The chat tab's components that events read or write."""

    chatbot: gr.Chatbot
    box: gr.Textbox
    kbs: gr.Dropdown
    examples: gr.Dataset
    comment_row: gr.Row
    comment: gr.Textbox
    send_comment: gr.Button
    feedback_note: gr.HTML
    evidence_panel: gr.HTML


@dataclass
class DocumentsTab:
    """The documents tab's components that events read or write."""

    token: gr.Textbox
    kb: gr.Dropdown
    uploader: gr.File
    upload_result: gr.HTML
    docs_list: gr.HTML
    to_delete: gr.Dropdown
    delete: gr.Button
    delete_result: gr.HTML


def chat_tab(t: gr.I18n, max_message_chars: int, audit_notice: bool) -> tuple[ChatTab, Sidebar]:
    """The kept chats (shown to a signed-in person), the chat with its knowledge-base picker,
    examples and feedback comment, and the evidence panel."""
    with gr.Row(equal_height=False):
        bar = sidebar(t, audit_notice)
        with gr.Column(scale=3):
            kbs = gr.Dropdown(
                label=t("kbs"),
                info=t("kbs_info"),
                choices=[],
                multiselect=True,
                visible=False,
                elem_id="rb-kbs",
            )
            chatbot = gr.Chatbot(
                elem_id="rb-chat",
                height=520,
                show_label=False,
                feedback_options=("Like", "Dislike"),
                placeholder=cast(str, t("empty")),  # Gradio translates it in the page
            )
            box = gr.Textbox(
                placeholder=t("ask"),
                show_label=False,
                submit_btn=True,
                max_length=max_message_chars,
                elem_id="rb-input",
            )
            examples = gr.Dataset(
                components=[box],
                samples=[[""]],
                label=t("try"),
                elem_id="rb-examples",
                visible=False,
            )
            with gr.Row(visible=False, elem_id="rb-comment-row") as comment_row:
                comment = gr.Textbox(label=t("comment"), scale=4, elem_id="rb-comment")
                send_comment = gr.Button(t("send_comment"), scale=1, elem_id="rb-send-comment")
            feedback_note = gr.HTML(elem_id="rb-feedback-note")
        with gr.Column(scale=2):
            gr.Markdown(t("evidence"))
            evidence_panel = gr.HTML(panel({}), elem_id="rb-evidence")
    tab = ChatTab(
        chatbot, box, kbs, examples, comment_row, comment, send_comment, feedback_note, evidence_panel
    )
    return tab, bar


def documents_tab(t: gr.I18n, admin_token: str | None) -> DocumentsTab:
    """The knowledge base, upload (with the operator token field when one is set), the list, and delete."""
    gr.Markdown(t("docs_rule"))
    kb = gr.Dropdown(label=t("doc_kb"), choices=[], visible=False, elem_id="rb-doc-kb")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            token = gr.Textbox(
                label=t("token"),
                type="password",
                visible=bool(admin_token),
                elem_id="rb-token",
            )
            uploader = gr.File(
                label=t("add"),
                file_count="multiple",
                file_types=sorted(SUPPORTED_SUFFIXES),
                type="filepath",
                height=160,
                elem_id="rb-upload",
            )
            upload_result = gr.HTML(elem_id="rb-upload-result-box")
        with gr.Column(scale=3):
            docs_list = gr.HTML(elem_id="rb-docs-box")
            with gr.Row():
                to_delete = gr.Dropdown(label=t("to_delete"), choices=[], scale=4, elem_id="rb-delete-choice")
                delete = gr.Button(t("delete"), variant="stop", scale=1, elem_id="rb-delete")
            delete_result = gr.HTML(elem_id="rb-delete-result")
    return DocumentsTab(token, kb, uploader, upload_result, docs_list, to_delete, delete, delete_result)


def wire_chat(actions: PageActions, chat: ChatTab, bar: Sidebar, session: gr.State, concurrency: int) -> None:
    """A question, typed or picked from the examples, streams its turn (then a signed-in person's
    chat list shows it); clearing starts afresh."""
    respond = actions.respond  # one object for both events: Gradio limits concurrency per function id
    chat_io = dict(
        inputs=[chat.box, chat.chatbot, session, chat.kbs],
        outputs=[chat.chatbot, chat.box, chat.evidence_panel, session],
    )
    asked = chat.box.submit(respond, **chat_io, concurrency_limit=concurrency)  # type: ignore[arg-type]
    picked_example = chat.examples.click(lambda sample: sample[0], chat.examples, chat.box).then(
        respond,
        **chat_io,
        concurrency_limit=concurrency,
    )
    if actions.kept is not None:
        for event in (asked, picked_example):
            event.then(actions.kept.on_turn, [session], [bar.chats, bar.export])
        wire_sidebar(actions.kept, bar, chat.chatbot, session, chat.evidence_panel)
    chat.chatbot.clear(
        lambda: (Session(), panel({}), gr.update(value=None), ""),
        None,
        [session, chat.evidence_panel, bar.chats, bar.export],
    )


def wire_feedback(actions: PageActions, chat: ChatTab, session: gr.State) -> None:
    """👍/👎 on an answer opens the comment box for that answer; sending saves the comment."""
    target = gr.State()  # the message index the comment is about
    chat.chatbot.like(actions.on_like, [session], [chat.comment_row, target, chat.feedback_note])
    chat.send_comment.click(
        actions.on_comment,
        [chat.comment, target, session],
        [chat.comment_row, chat.comment, chat.feedback_note],
    )


def wire_documents(actions: PageActions, docs: DocumentsTab, library_outputs: list[Any]) -> None:
    """Choosing a knowledge base, upload and delete, each refreshing what depends on the library."""
    # The documents panel's uploads go to Gradio's upload route, which sees no event inputs: the
    # token travels as a same-site cookie for this tab's session (bot/app.py UploadGate).
    docs.token.change(None, [docs.token], None, js=TOKEN_COOKIE_JS)
    docs.kb.change(actions.refresh, [docs.kb], library_outputs)
    docs.uploader.upload(
        actions.on_upload,
        [docs.uploader, docs.token, docs.kb],
        [docs.upload_result, docs.uploader, *library_outputs],
    )
    docs.delete.click(
        actions.on_delete, [docs.to_delete, docs.token, docs.kb], [docs.delete_result, *library_outputs]
    )


def build_ui(
    service: ChatService,
    conversations: ConversationStore | None = None,
    libraries: Libraries | None = None,
    admin_token: str | None = None,
    chat_concurrency: int = 4,
    bound_host: str = "127.0.0.1",
    texts: gr.I18n | None = None,
    readers: Readers | None = None,
    state: State | None = None,
    audit_notice: bool = False,
) -> gr.Blocks:
    """The page; `texts` are its words per browser language (bot/ui_texts.py), which the mount must
    be given too; `readers` decides which knowledge bases each visitor reads; with `state` (where
    people sign in), signed-in people keep their chats, and `audit_notice` tells them these may be
    read for audit."""
    kept = KeptChats(state.chats) if state is not None else None
    actions = PageActions(
        service,
        conversations or ConversationStore(),
        libraries,
        admin_token,
        bound_host,
        readers or Readers(),
        kept,
    )
    t = texts or ui_texts(libraries.max_bytes / 1e6 if libraries else 0, bool(admin_token))
    # Gradio's own upload cache: files older than an hour go (uploads are ingested and removed at once).
    with gr.Blocks(title="ragbot", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        with gr.Row():
            gr.Markdown(t("intro"))
            account = gr.HTML(elem_id="rb-account-box")
        status = gr.Markdown(elem_id="rb-status")
        session = gr.State(Session())
        with gr.Tabs():
            with gr.Tab(t("chat"), id="chat"):
                chat, bar = chat_tab(t, service.settings.max_message_chars, audit_notice)
            with gr.Tab(t("docs"), id="docs"):
                docs = documents_tab(t, admin_token)
        library_outputs = [status, docs.docs_list, docs.to_delete, chat.examples]
        wire_chat(actions, chat, bar, session, chat_concurrency)
        wire_feedback(actions, chat, session)
        demo.load(actions.document_kbs, None, docs.kb).then(actions.refresh, [docs.kb], library_outputs)
        demo.load(actions.knowledge_bases, None, chat.kbs)
        demo.load(account_html, None, account)
        if kept is not None:
            demo.load(kept.on_load, None, [bar.column, bar.chats])
        demo.unload(actions.on_leave)
        wire_documents(actions, docs, library_outputs)
    return demo


TOKEN_COOKIE_JS = (
    f"(t) => {{ document.cookie = '{OPERATOR_COOKIE}=' + encodeURIComponent(t || '') "
    "+ '; path=/; SameSite=Strict' + (location.protocol === 'https:' ? '; Secure' : ''); return [t]; }"
)


def document_key(source: str) -> str:
    """An opaque name for a document in the page (the delete choice), stable across refreshes."""
    return hashlib.sha256(source.encode()).hexdigest()[:20]


def asker(request: gr.Request) -> Principal:
    """Who this page event comes from: the signed-in person (bot/auth.py), else anonymous."""
    http = getattr(request, "request", None)
    return current_principal(http) if http is not None else Principal.anonymous()


def _host(request: gr.Request) -> str | None:
    client = getattr(request, "client", None)
    return getattr(client, "host", None)

"""The web page's handlers for signed-in people: the account bar, the knowledge-base picker, kept chats
and the edit role. Each event gets a gr.Request over a real request that passed the app's sign-in
middleware (create_app with a real State on SQLite), as Gradio hands one to the page's handlers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from bot.access import Readers
from bot.app import AppDeps, UploadGate, create_app
from bot.auth import AuthContext, WebAuth, auth_router
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.events import Answered
from bot.library import Libraries, kb_folder
from bot.web import PageActions, Session, asker, document_key
from bot.web_chats import KeptChats, account_html
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from retrieval.types import Scope
from state import Person, State
from tests.browser import two_knowledge_bases
from tests.generators import ScriptedGenerator

PASSWORD = "correct horse battery staple"
ANSWER = "Cats purr when they are content [1]."
TEAM_DOC = "# Launch plan\n\nThe team launches the Marmalade probe in spring from the northern pad."


@dataclass
class World:
    state: State
    actions: PageActions
    app: FastAPI
    captured: list[Request]
    ada: Person
    bob: Person
    carl: Person
    settings: Settings
    store: VectorStore
    retriever: Retriever


@pytest.fixture
def world(tmp_path: Path, embedder: MultiHeadEmbedder) -> Iterator[World]:
    store, state, ingestor = two_knowledge_bases(tmp_path, embedder, TEAM_DOC)
    ada = state.people.create_local("ada", PASSWORD, name="Ada Lovelace")
    bob = state.people.create_local("bob", PASSWORD, name="Bob")
    carl = state.people.create_local("carl", PASSWORD, name="Carl")
    state.access.grant("team", "user", str(ada.id), "read")
    state.access.grant("team", "user", str(carl.id), "edit")
    state.access.grant("default", "user", str(ada.id), "edit")
    settings = Settings(data_dir=tmp_path / "data", admin_token="operator-token")
    retriever = Retriever(embedder, store)
    service = ChatService(retriever, ScriptedGenerator([ANSWER] * 20), TurnSettings(RetrievalSettings(k=2)))
    conversations = ConversationStore(settings.conversations_path)
    library = Libraries(lambda kb: replace(ingestor, kb=kb), settings.uploads_dir, on_change=retriever.reload)
    readers = Readers(state)
    deps = AppDeps(
        settings, service, conversations, lambda: {}, library, directory=state.people, readers=readers
    )
    app = create_app(deps, with_ui=False)
    captured: list[Request] = []

    @app.get("/test/page-event")
    def page_event(request: Request) -> dict[str, str]:
        captured.append(request)
        return {}

    actions = PageActions(
        service, conversations, library, settings.admin_token, "127.0.0.1", readers, KeptChats(state.chats)
    )
    yield World(state, actions, app, captured, ada, bob, carl, settings, store, retriever)
    conversations.close()
    state.close()
    store.close()


def browser(world: World, username: str | None = None) -> TestClient:
    """A browser, signed in as `username` (password form) or anonymous."""
    client = TestClient(world.app, base_url="http://localhost", follow_redirects=False)
    if username is not None:
        page = client.get("/auth/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        form = {"username": username, "password": PASSWORD, "csrf": csrf.group(1)}
        assert client.post("/auth/login", data=form).status_code == 303
    return client


def event(world: World, client: TestClient) -> gr.Request:
    """A page event sent from this browser, as Gradio hands it to a handler."""
    client.get("/test/page-event")
    return gr.Request(request=world.captured[-1], session_hash="tab")


def ask(
    world: World, request: gr.Request, question: str, history: list[Any], session: Session, kbs: Any = None
) -> list[Any]:
    final = history
    for update in world.actions.respond(question, history, session, kbs, request):
        final = update[0]
    return final


def test_a_signed_in_persons_answers_are_kept_and_resume_in_another_browser(world: World) -> None:
    request = event(world, browser(world, "ada"))
    session = Session()
    history = ask(world, request, "What do cats do when content?", [], session)
    assert history[-1]["content"].startswith("Cats purr when they are content")
    (chat,) = world.state.chats.list(world.ada.id)
    assert (chat.title, chat.turns, session.chat_id) == ("What do cats do when content?", 1, chat.id)
    kept = world.state.chats.get(world.ada.id, chat.id)
    assert kept is not None
    assert kept.turns[0].answer == ANSWER
    assert kept.turns[0].sources[0].title == "Cats"
    assert kept.turns[0].sources[0].file == "cats.md"  # the file's name, never the server's path
    assert {s.kb for s in kept.turns[0].sources} <= {"default", "team"}

    # Another browser, signed in as the same person: the sidebar lists the chat, and picking it
    # brings the turns back, into the history the next question is asked with.
    elsewhere = event(world, browser(world, "ada"))
    kept_chats = world.actions.kept
    assert kept_chats is not None
    shown, listing = kept_chats.on_load(elsewhere)
    assert shown["visible"] is True
    assert listing["choices"] == [("What do cats do when content? (1)", chat.id)]
    resumed, fresh, evidence, _, title, export, _ = kept_chats.on_pick(chat.id, Session(), elsewhere)
    assert [m["role"] for m in resumed] == ["user", "assistant"]
    assert resumed[1]["content"].startswith("Cats purr when they are content [\\[1\\]](#cite-")
    assert fresh.chat_id == chat.id and title == chat.title
    assert f"/chats/{chat.id}/export" in export
    assert "[1] Cats (cats.md)" in evidence
    ask(world, elsewhere, "And at night?", resumed, fresh)
    again = world.state.chats.get(world.ada.id, chat.id)
    assert again is not None and [t.question for t in again.turns] == [
        "What do cats do when content?",
        "And at night?",
    ]
    generator = world.actions.service.generator
    assert isinstance(generator, ScriptedGenerator)
    sent = " ".join(m.content for m in generator.calls[-1])
    assert "What do cats do when content?" in sent  # the resumed turn is part of the conversation


def test_rename_new_and_delete_act_on_the_persons_own_chat(world: World) -> None:
    request = event(world, browser(world, "ada"))
    kept = world.actions.kept
    assert kept is not None
    session = Session()
    ask(world, request, "What do cats do when content?", [], session)
    chat_id = session.chat_id
    listing, note = kept.on_rename("Cats, mostly", session, request)
    assert listing["choices"] == [("Cats, mostly (1)", chat_id)] and "Renamed" in note
    history, fresh, *_ = kept.on_new(session, request)
    assert history == [] and fresh.chat_id is None
    ask(world, request, "What buried Pompeii?", [], fresh)
    assert len(world.state.chats.list(world.ada.id)) == 2  # a new chat, the old one untouched
    history, cleared, _, listing, *_ = kept.on_delete(fresh, request)
    assert history == [] and cleared.chat_id is None
    assert [c for _, c in listing["choices"]] == [chat_id]


def test_nobody_reaches_another_persons_chat(world: World) -> None:
    ada_browser, bob_browser = browser(world, "ada"), browser(world, "bob")
    session = Session()
    ask(world, event(world, ada_browser), "What do cats do when content?", [], session)
    chat_id = session.chat_id
    assert chat_id is not None
    kept = world.actions.kept
    assert kept is not None
    bob = event(world, bob_browser)
    assert kept.on_load(bob)[1]["choices"] == []
    picked = kept.on_pick(chat_id, Session(), bob)
    assert "That chat is gone" in picked[-1] and picked[0] is not None and not isinstance(picked[0], list)
    # Even a tab whose state names Ada's chat (a forged page state) acts as Bob, on Bob's chats only.
    forged = Session(chat_id=chat_id)
    kept.on_rename("mine now", forged, bob)
    kept.on_delete(forged, bob)
    ask(world, bob, "What buried Pompeii?", [], forged)
    (ada_chat,) = world.state.chats.list(world.ada.id)
    assert (ada_chat.title, ada_chat.turns) == ("What do cats do when content?", 1)
    assert [c.title for c in world.state.chats.list(world.bob.id)] == ["What buried Pompeii?"]
    # The export route: the owner downloads the chat; anyone else gets the same answer as a missing one.
    own = ada_browser.get(f"/chats/{chat_id}/export")
    assert own.status_code == 200
    assert "attachment" in own.headers["content-disposition"]
    assert json.loads(own.text)["turns"][0]["answer"] == ANSWER
    assert bob_browser.get(f"/chats/{chat_id}/export").status_code == 404
    assert browser(world).get(f"/chats/{chat_id}/export").status_code == 401


def test_anonymous_visitors_keep_a_page_only_history(world: World) -> None:
    request = event(world, browser(world))
    session = Session()
    history = ask(world, request, "What do cats do when content?", [], session)
    assert len(history) == 2 and session.chat_id is None
    assert world.state.chats.list(world.ada.id) == world.state.chats.list(world.bob.id) == []
    kept = world.actions.kept
    assert kept is not None
    assert kept.on_load(request)[0]["visible"] is False


def test_the_picker_lists_what_the_visitor_reads_and_narrows_without_widening(world: World) -> None:
    ada, anonymous = event(world, browser(world, "ada")), event(world, browser(world))
    mine = world.actions.knowledge_bases(ada)
    assert (mine["choices"], mine["value"], mine["visible"]) == (
        ["default", "team"],
        ["default", "team"],
        True,
    )
    theirs = world.actions.knowledge_bases(anonymous)
    assert (theirs["choices"], theirs["visible"]) == (["default"], False)  # no choice: no picker

    def kbs_searched(request: gr.Request, picked: list[str] | None) -> set[str]:
        session = Session()
        ask(world, request, "When does the team launch the Marmalade probe?", [], session, picked)
        (end,) = session.ends.values()
        return {s.kb for s in end.sources} if isinstance(end, Answered) else set()

    assert kbs_searched(ada, ["team"]) == {"team"}
    assert kbs_searched(ada, ["default"]) == {"default"}
    assert "team" in kbs_searched(ada, None)  # nothing picked: all she reads
    assert "team" not in kbs_searched(anonymous, ["team"])  # picking a knowledge base grants nothing
    assert "team" not in kbs_searched(anonymous, None)


def test_the_account_bar_names_the_person_and_signs_out_with_the_sessions_token(world: World) -> None:
    client = browser(world, "ada")
    bar = account_html(event(world, client))
    assert 'Signed in as <b id="rb-person">Ada Lovelace</b>' in bar
    csrf = re.search(r'name="csrf" value="([^"]+)"', bar)
    assert csrf and 'action="/auth/logout"' in bar
    assert client.post("/auth/logout", data={"csrf": csrf.group(1)}).status_code == 303
    assert client.get("/auth/me").json()["signed_in"] is False
    assert 'href="/auth/login"' in account_html(event(world, client))


def test_an_editor_of_the_librarys_knowledge_base_may_change_documents(world: World) -> None:
    def allowed(client: TestClient, **headers: str) -> bool:
        client.get("/test/page-event", headers=headers)
        request = gr.Request(request=world.captured[-1], session_hash="tab")
        return world.actions._access("", request, "default").allowed

    assert allowed(browser(world, "ada"))  # the edit role on `default`, no operator token needed
    assert allowed(browser(world, "ada"), origin="http://localhost")
    assert not allowed(browser(world, "ada"), origin="http://evil.example")  # another site posting
    assert not allowed(browser(world, "bob"))  # reads `default` (public), may not edit it
    assert not allowed(browser(world))


def test_the_upload_route_admits_editors_and_the_operator_only(world: World) -> None:
    """Gradio's upload route, behind the same UploadGate and sign-in middleware as the page."""
    auth = WebAuth(world.settings, world.state.people)
    app = FastAPI()
    app.include_router(auth_router(auth))

    @app.post("/gradio_api/upload")
    def upload() -> dict[str, str]:
        return {"stored": "yes"}

    app.add_middleware(
        UploadGate,
        admin_token="operator-token",
        bound_host="127.0.0.1",
        readers=Readers(world.state),
    )
    app.add_middleware(AuthContext, auth=auth)
    world.app = app
    assert browser(world, "ada").post("/gradio_api/upload").status_code == 200
    assert browser(world, "bob").post("/gradio_api/upload").status_code == 403  # edits nothing
    assert browser(world, "carl").post("/gradio_api/upload").status_code == 200  # edits `team` (the page
    # checks the chosen knowledge base before it stores anything)
    anonymous = browser(world)
    assert anonymous.post("/gradio_api/upload").status_code == 403
    anonymous.cookies.set("ragbot_operator", "operator-token")
    assert anonymous.post("/gradio_api/upload").status_code == 200


def test_uploads_and_deletions_are_audited_with_who_and_which_file(world: World, tmp_path: Path) -> None:
    browser(world, "ada").get("/test/page-event")
    request = gr.Request(request=world.captured[-1], session_hash="tab")
    upload = tmp_path / "minutes.md"
    upload.write_text("# Minutes\n\nThe board met on Tuesday and approved the budget.")
    world.actions.on_upload([str(upload)], "", "default", request)
    library = world.actions.library("default", request)
    assert library is not None
    [key] = [document_key(d.source) for d in library.documents() if d.name == "minutes.md"]
    world.actions.on_delete(key, "", "default", request)
    events = [
        (e.actor, e.action, e.target) for e in world.state.audit.export() if e.action in ("upload", "delete")
    ]
    ada = world.state.people.by_username("ada")
    assert ada is not None
    assert events == [
        (f"user:{ada.id}", "upload", "default/minutes.md"),
        (f"user:{ada.id}", "delete", "default/minutes.md"),
    ]


def documents_listed(world: World, kb: str, request: gr.Request) -> str:
    """The documents tab's list for knowledge base `kb`, as this visitor sees it."""
    return str(world.actions.refresh(kb, request)[1])


def test_an_editor_of_team_uploads_into_team_and_only_its_readers_find_it(
    world: World, tmp_path: Path
) -> None:
    carl = event(world, browser(world, "carl"))
    upload = tmp_path / "marmalade-budget.md"
    upload.write_text("# Probe budget\n\nThe Marmalade probe costs four million crowns, paid in spring.")
    result = world.actions.on_upload([str(upload)], "", "team", carl)
    assert "added" in str(result[0]).lower() and "marmalade-budget.md" in documents_listed(
        world, "team", carl
    )
    stored = kb_folder(world.settings.uploads_dir.resolve(), "team") / "marmalade-budget.md"
    assert stored.is_file() and not (world.settings.uploads_dir / "marmalade-budget.md").exists()
    [source] = [s for s in world.store.sources(Scope.of("team")) if s.source == str(stored)]
    assert source.committed and not [
        s for s in world.store.sources(Scope.of("default")) if s.source == str(stored)
    ]

    def found_by(username: str | None) -> bool:
        scope = world.actions.readers.readable(asker(event(world, browser(world, username))))
        hits = world.retriever.retrieve("How much does the Marmalade probe cost?", scope=scope).chunks
        return any(h.chunk.source == str(stored) for h in hits)

    assert found_by("carl") and found_by("ada")  # ada reads `team`
    assert not found_by("bob") and not found_by(None)
    assert "marmalade-budget.md" not in documents_listed(world, "team", event(world, browser(world, "bob")))
    events = [(e.action, e.target) for e in world.state.audit.export() if e.action == "upload"]
    assert events == [("upload", "team/marmalade-budget.md")]


def test_an_editor_of_team_alone_cannot_upload_into_default(world: World, tmp_path: Path) -> None:
    carl = event(world, browser(world, "carl"))
    upload = tmp_path / "notes.md"
    upload.write_text("# Notes\n\nThe canteen opens at eight.")
    result = world.actions.on_upload([str(upload)], "", "default", carl)
    assert "rb-error" in str(result[0])
    assert not (world.settings.uploads_dir / "notes.md").exists()
    assert "notes.md" not in documents_listed(world, "default", carl)
    assert not world.actions._access("", carl, "default").allowed
    assert world.actions._access("", carl, "team").allowed
    library = world.actions.library("team", carl)
    assert library is not None and library.documents()
    [key, *_] = [document_key(d.source) for d in library.documents()]
    before = len(library.documents())
    bob = event(world, browser(world, "bob"))  # reads nothing of `team`, edits nothing
    world.actions.on_delete(key, "", "team", bob)
    assert len(library.documents()) == before


def test_the_documents_tab_offers_only_the_knowledge_bases_the_visitor_reads(world: World) -> None:
    def offered(username: str | None) -> list[str]:
        return list(world.actions.document_kbs(event(world, browser(world, username)))["choices"])

    assert offered("ada") == ["default", "team"]
    assert offered("carl") == ["default", "team"]
    assert offered("bob") == ["default"]
    assert offered(None) == ["default"]
    bob = event(world, browser(world, "bob"))
    assert "launch.md" not in documents_listed(world, "team", bob)  # asking for it anyway lists nothing
    assert "launch.md" in documents_listed(world, "team", event(world, browser(world, "ada")))

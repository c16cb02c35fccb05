"""The web admin page (/admin): site admins manage every knowledge base, its grants and the API keys;
a knowledge base's admins manage only theirs; everyone else is refused. Run through the whole app
(create_app) over a real state database and a real embedded store, signed in through the real
password form, with the model replaced by one that answers with its prompt (so a key's reach shows in
its answers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.access import Readers, register_knowledge_bases
from bot.app import AppDeps, create_app
from bot.auth import PAGE_CSP
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.kb_admin import StoreChunks
from bot.library import Libraries, kb_folder
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from retrieval.types import Scope
from state import KnowledgeBase, Person, Principal, State, open_state
from tests.test_auth import form_csrf
from tests.test_leakage import EchoGenerator

PASSWORD = "correct horse battery staple"
SECRET = "PELICAN-4471"
HR_DOC = f"# Leave\n\nThe payroll vault passphrase is {SECRET}. Everyone has 25 days of leave."


@dataclass
class Site:
    app: FastAPI
    state: State
    store: VectorStore
    root: Person  # site admin
    kim: Person  # admin of `hr` only
    rita: Person  # reads `hr`
    settings: Settings
    libraries: Libraries

    def browser(self, username: str | None = None) -> TestClient:
        """A browser of its own, signed in as `username` through the sign-in form (None: anonymous)."""
        client = TestClient(self.app, base_url="http://localhost", follow_redirects=False)
        if username is not None:
            csrf = form_csrf(client.get("/auth/login").text)
            signed = client.post(
                "/auth/login", data={"username": username, "password": PASSWORD, "csrf": csrf}
            )
            assert signed.status_code == 303
        return client


@pytest.fixture
def site(embedder: MultiHeadEmbedder, tmp_path: Path) -> Iterator[Site]:
    store = VectorStore("admin", path=tmp_path / "qdrant")
    folder = tmp_path / "hr"
    folder.mkdir()
    (folder / "leave.md").write_text(HR_DOC)
    Ingestor(embedder, Chunker(embedder.tokenizer, 64, 8), store, kb="hr", progress=False).ingest_paths(
        [folder]
    )
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    register_knowledge_bases(state, store)
    state.kbs.create("finance")
    root = state.people.create_local("root", PASSWORD, admin=True)
    kim = state.people.create_local("kim", PASSWORD)
    rita = state.people.create_local("rita", PASSWORD)
    state.access.grant("hr", "user", str(kim.id), "admin")
    state.access.grant("hr", "user", str(rita.id), "read")
    settings = Settings(data_dir=tmp_path / "data", session_secret="s" * 40)
    service = ChatService(Retriever(embedder, store), EchoGenerator(), TurnSettings(RetrievalSettings(k=4)))
    conversations = ConversationStore(state)
    libraries = Libraries(
        lambda kb: Ingestor(embedder, Chunker(embedder.tokenizer, 64, 8), store, kb=kb, progress=False),
        settings.uploads_dir,
        on_change=service.retriever.reload,
    )
    deps = AppDeps(
        settings,
        service,
        conversations,
        dict,
        libraries,
        directory=state.people,
        readers=Readers(state),
        chunks=StoreChunks(store, on_change=service.retriever.reload),
    )
    yield Site(create_app(deps, with_ui=False), state, store, root, kim, rita, settings, libraries)
    state.close()
    store.close()


def post(client: TestClient, path: str, page: str = "/admin", **fields: str) -> httpx.Response:
    """Post a form the way the page does: with the CSRF token of a page the browser just loaded."""
    csrf = form_csrf(client.get(page).text)
    return client.post(path, data={"csrf": csrf, **fields})


def ask_v1(client: TestClient, key: str) -> tuple[int, str]:
    reply = client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "ragbot",
            "messages": [{"role": "user", "content": "What is the payroll vault passphrase?"}],
        },
    )
    return reply.status_code, reply.text


def test_a_site_admin_creates_shares_keys_renames_and_deletes_knowledge_bases(site: Site) -> None:
    root = site.browser("root")
    overview = root.get("/admin")
    assert overview.status_code == 200
    assert overview.headers["content-security-policy"] == PAGE_CSP
    assert overview.headers["cache-control"] == "no-store"
    assert "<script" not in overview.text
    assert re.search(r">hr</a></td><td>private</td><td>1</td>", overview.text)  # chunks from the store

    made = post(root, "/admin/kbs/create", name="legal", public="1")
    assert made.status_code == 303 and made.headers["location"] == "/admin/kb?name=legal"
    assert kb(site, "legal").public
    granted = post(
        root,
        "/admin/kb/grant",
        "/admin/kb?name=legal",
        kb="legal",
        kind="group",
        grantee="lawyers",
        role="edit",
    )
    assert granted.status_code == 303
    assert [(g.grantee_kind, g.grantee_id, g.role) for g in site.state.access.grants("legal")] == [
        ("group", "lawyers", "edit")
    ]
    assert "group lawyers" in root.get("/admin/kb?name=legal").text

    created = post(root, "/admin/keys/create", name="hr bot", kb="hr", expires_days="30")
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    secret = re.search(r"rk_\d+_[\w-]+", created.text)
    assert secret is not None
    status, answer = ask_v1(root, secret.group(0))
    assert status == 200 and SECRET in answer  # the key reads `hr`
    key = site.state.keys.list()[0]
    assert key.kbs == {"hr"} and key.expires_at is not None and key.created_by == f"user:{site.root.id}"
    assert secret.group(0) not in root.get("/admin").text  # shown once, never listed
    assert post(root, "/admin/keys/revoke", id=str(key.id)).status_code == 303
    assert ask_v1(root, secret.group(0))[0] == 401
    assert "revoked" in root.get("/admin").text

    renamed = post(root, "/admin/kb/rename", "/admin/kb?name=hr", kb="hr", new="people")
    assert renamed.headers["location"] == "/admin/kb?name=people"
    assert site.store.kb_names() == ["people"] and site.store.count(Scope.of("people")) == 1
    assert site.state.access.role(_user(site.kim), "people") == "admin"  # grants follow the knowledge base
    deleted = post(root, "/admin/kb/delete", "/admin/kb?name=people", kb="people", confirm="yes")
    assert deleted.status_code == 303
    assert site.store.kb_names() == [] and site.store.count(Scope.of("people")) == 0
    assert site.state.kbs.get("people") is None

    actor = f"user:{site.root.id}"
    done = [(ev.action, ev.target) for ev in site.state.audit.export() if ev.actor == actor]
    for expected in [("kb.create", "kb:legal"), ("grant", "kb:legal"), ("key.create", f"api_key:{key.id}"),
                     ("key.revoke", f"api_key:{key.id}"), ("kb.rename", "kb:hr"), ("kb.delete", "kb:people")]:  # fmt: skip
        assert expected in done


def test_a_knowledge_base_admin_manages_only_their_own(site: Site) -> None:
    _, other_secret = site.state.keys.create("finance bot", kbs=["finance"])
    kim = site.browser("kim")
    overview = kim.get("/admin")
    assert overview.status_code == 200
    assert ">hr</a>" in overview.text and "finance" not in overview.text  # nor its key
    assert 'action="/admin/kbs/create"' not in overview.text
    assert kim.get("/admin/kb?name=finance").status_code == 403
    assert kim.get("/admin/kb?name=nowhere").status_code == 403  # no telling what exists
    kb_page = kim.get("/admin/kb?name=hr")
    assert kb_page.status_code == 200 and 'action="/admin/kb/delete"' not in kb_page.text

    assert post(kim, "/admin/kbs/create", name="mine").status_code == 403
    assert (
        post(kim, "/admin/kb/grant", kb="finance", kind="user", grantee="kim", role="admin").status_code
        == 403
    )
    assert post(kim, "/admin/kb/public", kb="finance", public="1").status_code == 403
    assert post(kim, "/admin/kb/rename", kb="hr", new="people").status_code == 403
    assert post(kim, "/admin/kb/delete", kb="hr", confirm="yes").status_code == 403
    assert post(kim, "/admin/keys/create", name="sneaky", kb="finance").status_code == 403
    finance_key = site.state.keys.list()[0]
    assert post(kim, "/admin/keys/revoke", id=str(finance_key.id)).status_code == 404
    assert site.state.kbs.get("mine") is None and not kb(site, "finance").public
    assert {g.grantee_kind for g in site.state.access.grants("finance")} == {"api_key"}  # its key's only
    still = site.state.keys.get(finance_key.id)
    assert still is not None and still.revoked_at is None
    assert site.store.kb_names() == ["hr"]
    assert ask_v1(kim, other_secret)[0] == 200

    assert post(kim, "/admin/kb/public", "/admin/kb?name=hr", kb="hr", public="1").status_code == 303
    assert kb(site, "hr").public
    assert post(kim, "/admin/kb/grant", kb="hr", kind="user", grantee="rita", role="edit").status_code == 303
    assert site.state.access.role(_user(site.rita), "hr") == "edit"
    revoked = post(kim, "/admin/kb/revoke", kb="hr", kind="user", grantee=str(site.rita.id))
    assert (
        revoked.status_code == 303 and site.state.access.role(_user(site.rita), "hr") == "read"
    )  # public now
    assert post(kim, "/admin/keys/create", name="hr key", kb="hr").status_code == 200
    assert "hr key" in kim.get("/admin").text


def test_a_reader_is_refused_and_an_anonymous_visitor_is_sent_to_sign_in(site: Site) -> None:
    rita = site.browser("rita")
    assert rita.get("/admin").status_code == 403
    assert rita.get("/admin/kb?name=hr").status_code == 403
    csrf = form_csrf(rita.get("/auth/login").text)
    assert rita.post("/admin/kb/public", data={"csrf": csrf, "kb": "hr", "public": "1"}).status_code == 403
    assert not kb(site, "hr").public

    anonymous = site.browser()
    for path in ("/admin", "/admin/kb?name=hr"):
        sent = anonymous.get(path)
        assert sent.status_code == 303 and sent.headers["location"].startswith("/auth/login?next=%2Fadmin")
    csrf = form_csrf(anonymous.get("/auth/login").text)
    refused = anonymous.post("/admin/kbs/create", data={"csrf": csrf, "name": "drive-by"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/auth/login")
    assert site.state.kbs.get("drive-by") is None


def test_posts_without_the_sessions_token_or_from_another_site_are_refused(site: Site) -> None:
    root = site.browser("root")
    csrf = form_csrf(root.get("/admin").text)
    assert root.post("/admin/kbs/create", data={"name": "a"}).status_code == 403
    assert root.post("/admin/kbs/create", data={"name": "b", "csrf": "forged"}).status_code == 403
    foreign = root.post(
        "/admin/kbs/create", data={"name": "c", "csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    cross = root.post(
        "/admin/kbs/create", data={"name": "d", "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert [kb.name for kb in site.state.kbs.list()] == ["default", "finance", "hr"]
    own = root.post(
        "/admin/kbs/create", data={"name": "e", "csrf": csrf}, headers={"Origin": "http://localhost"}
    )
    assert own.status_code == 303 and site.state.kbs.get("e") is not None


def test_renaming_onto_a_taken_name_is_refused_and_deleting_default_takes_its_uploads(site: Site) -> None:
    root = site.browser("root")
    taken = post(root, "/admin/kb/rename", "/admin/kb?name=hr", kb="hr", new="finance")
    assert taken.status_code == 400 and "already exists" in taken.text
    assert site.store.kb_names() == ["hr"] and kb(site, "hr").name == "hr"
    uploads = site.settings.uploads_dir
    uploads.mkdir(parents=True)
    (uploads / "notes.md").write_text("uploaded in the web chat")
    kb_folder(uploads, "hr").mkdir()
    (kb_folder(uploads, "hr") / "rota.md").write_text("hr's upload")  # another knowledge base's: kept
    kept = post(root, "/admin/kb/delete", "/admin/kb?name=default", kb="default")  # not confirmed
    assert kept.status_code == 400 and (uploads / "notes.md").exists()
    gone = post(root, "/admin/kb/delete", "/admin/kb?name=default", kb="default", confirm="yes")
    assert gone.status_code == 303 and list(uploads.iterdir()) == [kb_folder(uploads, "hr")]
    assert site.state.kbs.get("default") is None


def test_names_are_shown_escaped(site: Site) -> None:
    root = site.browser("root")
    name = '<script>alert("kb")</script>'
    assert post(root, "/admin/kbs/create", name=name).status_code == 303
    kb_page = f"/admin/kb?name={name}"
    post(root, "/admin/kb/grant", kb_page, kb=name, kind="group", grantee="<b>bold</b>", role="read")
    post(root, "/admin/keys/create", name="<img src=x onerror=alert(1)>", kb=name)
    pages = [root.get("/admin").text, root.get(kb_page).text]
    missing = post(
        root, "/admin/kb/grant", kb_page, kb=name, kind="user", grantee="<i>nobody</i>", role="read"
    )
    assert missing.status_code == 404
    pages.append(missing.text)
    for text in pages:
        assert (
            "<script>" not in text
            and "<b>bold" not in text
            and "<img" not in text
            and "<i>nobody" not in text
        )
    assert "&lt;script&gt;alert(&quot;kb&quot;)&lt;/script&gt;" in pages[0]
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[1] and "&lt;i&gt;nobody&lt;/i&gt;" in pages[2]


def _user(person: Person) -> Principal:
    return Principal.user(person)


def kb(site: Site, name: str) -> KnowledgeBase:
    found = site.state.kbs.get(name)
    assert found is not None
    return found


def test_renaming_a_knowledge_base_moves_its_uploads_and_deleting_it_removes_them(
    site: Site, tmp_path: Path
) -> None:
    upload = tmp_path / "rota.md"
    upload.write_text("# Rota\n\nThe night shift rota changes every second Monday.")
    site.libraries.get("hr").upload([("rota.md", upload)])
    uploads = site.settings.uploads_dir.resolve()
    (uploads / "notes.md").write_text("uploaded into default")  # another knowledge base's: kept throughout
    root = site.browser("root")
    assert post(root, "/admin/kb/rename", "/admin/kb?name=hr", kb="hr", new="people").status_code == 303
    moved = kb_folder(uploads, "people") / "rota.md"
    assert moved.is_file() and not kb_folder(uploads, "hr").exists()
    listed = {d.source: d for d in site.libraries.get("people").documents()}
    assert listed[str(moved)].uploaded  # keyed by the moved file: deleting it in the web chat removes it
    assert {s.source for s in site.store.sources(Scope.of("people"))} >= {str(moved)}
    assert not [
        s for s in site.store.sources(Scope.of("people")) if "/" + kb_folder(uploads, "hr").name in s.source
    ]

    assert (
        post(root, "/admin/kb/delete", "/admin/kb?name=people", kb="people", confirm="yes").status_code == 303
    )
    assert not kb_folder(uploads, "people").exists() and site.store.count(Scope.of("people")) == 0
    assert (uploads / "notes.md").exists() and site.libraries.get("people").documents() == []

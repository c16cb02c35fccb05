"""Web sign-in with local accounts and one-time links: sessions in signed cookies, new on every
sign-in, CSRF tokens on every form, no telling a wrong password from an unknown name. Run through the
whole app (create_app) against the tests' dict-backed directory (tests/people.py)."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.app import AppDeps, create_app
from bot.auth import (
    CSRF_HEADER,
    Person,
    Principal,
    Session,
    SessionCodec,
    current_principal,
    require_person,
    safe_next,
    session_secret,
)
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.generators import ScriptedGenerator
from tests.people import PeopleBook

PASSWORD = "correct horse battery staple"


@pytest.fixture
def people() -> PeopleBook:
    book = PeopleBook()
    book.add("ada", PASSWORD, name="Ada Lovelace", groups=frozenset({"analysts"}))
    return book


@pytest.fixture
def service(ingestor: Ingestor, store: VectorStore) -> ChatService:
    return ChatService(
        Retriever(ingestor.embedder, store), ScriptedGenerator([]), TurnSettings(RetrievalSettings(k=2))
    )


def make_client(
    service: ChatService,
    people: PeopleBook,
    tmp_path: Path,
    base_url: str = "http://localhost",
    **settings: object,
) -> TestClient:
    s = Settings(data_dir=tmp_path, **settings)  # type: ignore[arg-type]
    deps = AppDeps(
        s, service, ConversationStore(s.conversations_path), lambda: {"ok": "ok"}, directory=people
    )
    app = create_app(deps, with_ui=False)

    @app.get("/test/whoami")
    def whoami(request: Request) -> dict[str, object]:
        p = current_principal(request)
        return {"kind": p.kind, "id": p.id, "groups": sorted(p.groups), "admin": p.admin}

    @app.get("/test/private")
    def private(person: Person = Depends(require_person)) -> dict[str, str]:  # noqa: B008
        return {"name": person.name}

    return TestClient(app, base_url=base_url, follow_redirects=False)


@pytest.fixture
def client(service: ChatService, people: PeopleBook, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(service, people, tmp_path) as c:
        yield c


def form_csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(
    client: TestClient, username: str = "ada", password: str = PASSWORD, **extra: str
) -> httpx.Response:
    csrf = form_csrf(client.get("/auth/login").text)
    return client.post(
        "/auth/login", data={"username": username, "password": password, "csrf": csrf, **extra}
    )


def me(client: TestClient, cookie: str | None = None) -> dict[str, object]:
    if cookie is None:
        return client.get("/auth/me").json()  # type: ignore[no-any-return]
    fresh = TestClient(client.app, base_url=str(client.base_url))
    return fresh.get("/auth/me", headers={"Cookie": f"ragbot_session={cookie}"}).json()  # type: ignore[no-any-return]


def test_password_sign_in_starts_a_new_session_that_names_the_person(client: TestClient) -> None:
    page = client.get("/auth/login")
    before = client.cookies["ragbot_session"]
    assert me(client)["signed_in"] is False
    answer = client.post(
        "/auth/login", data={"username": "ada", "password": PASSWORD, "csrf": form_csrf(page.text)}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    after = client.cookies["ragbot_session"]
    assert after != before
    who = me(client)
    assert who["signed_in"] is True
    assert who["person"] == {
        "id": 1, "name": "Ada Lovelace", "email": None, "groups": ["analysts"], "admin": False
    }  # fmt: skip
    assert who["csrf"] != form_csrf(page.text)  # a new session: new CSRF token too
    assert me(client, cookie=before)["signed_in"] is False  # the session from before sign-in stays anonymous
    assert client.get("/test/whoami").json() == {
        "kind": "user",
        "id": "1",
        "groups": ["analysts"],
        "admin": False,
    }
    assert client.get("/test/private").json() == {"name": "Ada Lovelace"}


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(client: TestClient) -> None:
    wrong = sign_in(client, "ada", "not the password")
    unknown = sign_in(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.text == unknown.text  # same page, same session's token: nothing tells them apart
    assert "Wrong username or password." in wrong.text
    assert me(client)["signed_in"] is False
    assert client.get("/test/whoami").json()["kind"] == "anonymous"
    assert client.get("/test/private").status_code == 401


def test_the_sign_in_form_needs_its_own_sessions_csrf_token(
    client: TestClient, service: ChatService, people: PeopleBook, tmp_path: Path
) -> None:
    client.get("/auth/login")
    missing = client.post("/auth/login", data={"username": "ada", "password": PASSWORD})
    with make_client(service, people, tmp_path) as other:
        foreign = form_csrf(other.get("/auth/login").text)  # a token from another browser's session
    stolen = client.post("/auth/login", data={"username": "ada", "password": PASSWORD, "csrf": foreign})
    assert missing.status_code == stolen.status_code == 403
    assert me(client)["signed_in"] is False
    cross_site = client.post(
        "/auth/login",
        data={"username": "ada", "password": PASSWORD, "csrf": form_csrf(client.get("/auth/login").text)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert sign_in(client).status_code == 303  # the page's own form, Origin null or absent, works


def test_a_tampered_or_foreign_session_cookie_reads_as_anonymous(client: TestClient, tmp_path: Path) -> None:
    sign_in(client)
    good = client.cookies["ragbot_session"]
    payload, _, signature = good.rpartition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    assert me(client, cookie=f"{flipped}.{signature}")["signed_in"] is False
    other_key = SessionCodec("another-servers-key", 3600).dump(Session("s", "c", 1, time.time()))
    assert me(client, cookie=other_key)["signed_in"] is False
    assert me(client, cookie="garbage")["signed_in"] is False
    assert me(client, cookie=good)["signed_in"] is True


def test_a_session_ends_when_its_time_is_up() -> None:
    now = [1_000_000.0]
    codec = SessionCodec("key", max_age_s=3600, clock=lambda: now[0])
    value = codec.dump(Session("sid", "csrf", 7, now[0]))
    assert codec.load(value) == Session("sid", "csrf", 7, now[0])
    now[0] += 3601  # the signed issue time is checked by the server, not the browser's cookie expiry
    assert codec.load(value) is None


def test_logout_needs_the_csrf_token_and_ends_the_session(client: TestClient) -> None:
    sign_in(client)
    cookie = client.cookies["ragbot_session"]
    token = str(me(client)["csrf"])
    assert client.post("/auth/logout").status_code == 403
    assert client.post("/auth/logout", headers={CSRF_HEADER: "wrong"}).status_code == 403
    assert me(client)["signed_in"] is True
    out = client.post("/auth/logout", headers={CSRF_HEADER: token})
    assert out.status_code == 303
    assert me(client)["signed_in"] is False
    assert me(client, cookie=cookie)["signed_in"] is False  # the old cookie, replayed, is revoked


def test_a_sign_in_link_works_once(client: TestClient, people: PeopleBook) -> None:
    token = people.sign_in_link(1)
    first = client.get(f"/auth/link/{token}")
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert me(client)["person"]["name"] == "Ada Lovelace"  # type: ignore[index]
    client.cookies.clear()
    again = client.get(f"/auth/link/{token}")
    assert again.status_code == 400 and "ragbot_session" not in again.headers.get("set-cookie", "")
    assert me(client)["signed_in"] is False
    assert client.get("/auth/link/made-up").status_code == 400


def test_session_cookies_are_httponly_and_samesite_lax(client: TestClient) -> None:
    for response in (client.get("/auth/login"), sign_in(client)):
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("ragbot_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on this machine: a Secure cookie would never come back


def test_over_https_the_session_cookie_is_secure_and_host_only(
    service: ChatService, people: PeopleBook, tmp_path: Path
) -> None:
    with make_client(service, people, tmp_path, base_url="https://localhost") as c:
        cookie = c.get("/auth/login").headers["set-cookie"]
        assert cookie.startswith("__Host-ragbot_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Domain" not in cookie
        assert sign_in(c).status_code == 303
        assert c.get("/auth/me").json()["signed_in"] is True
    with make_client(service, people, tmp_path, public_url="https://bot.example.org") as c:
        assert "Secure" in c.get("/auth/login").headers["set-cookie"]  # TLS ends at a proxy in front


def test_the_login_page_posts_to_itself_under_its_own_csp(client: TestClient) -> None:
    page = client.get("/auth/login")
    csp = page.headers["content-security-policy"]
    assert "form-action 'self'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert '<form method="post" action="/auth/login">' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "Sign in with" not in page.text  # no OpenID provider set up here


def test_after_sign_in_only_a_local_path_is_followed(client: TestClient) -> None:
    assert sign_in(client, next="//evil.example/x").headers["location"] == "/"
    assert [safe_next(v) for v in ("/chat?x=1", "https://evil.example", "/\\evil.example", "")] == [
        "/chat?x=1", "/", "/", "/"
    ]  # fmt: skip


def test_repeated_wrong_passwords_are_refused_for_a_while_from_that_address(client: TestClient) -> None:
    for _ in range(10):
        assert sign_in(client, "ada", "guess").status_code == 401
    assert sign_in(client, "ada", PASSWORD).status_code == 429  # even the right one, for now
    assert me(client)["signed_in"] is False
    elsewhere = TestClient(
        client.app, base_url="http://localhost", client=("192.0.2.7", 50000), follow_redirects=False
    )
    assert sign_in(elsewhere).status_code == 303  # the guesser did not lock Ada herself out


def test_a_removed_person_is_signed_out(client: TestClient, people: PeopleBook) -> None:
    sign_in(client)
    people.remove(1)
    assert me(client)["signed_in"] is False


def test_without_anonymous_read_pages_ask_for_sign_in_first(
    service: ChatService, people: PeopleBook, tmp_path: Path
) -> None:
    with make_client(service, people, tmp_path, anonymous_read=False) as c:
        page = c.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/auth/login?next=%2F"
        assert c.get("/test/whoami").status_code == 401
        with pytest.raises(WebSocketDisconnect), c.websocket_connect("/test/socket"):
            pass
        assert c.get("/healthz").status_code == 200  # doors with their own credentials are not asked
        assert c.get("/auth/login").status_code == 200
        sign_in(c)
        assert c.get("/test/whoami").json()["kind"] == "user"


def test_the_session_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    key = session_secret(s)
    assert len(key) >= 40 and session_secret(s) == key
    assert stat.S_IMODE((tmp_path / "data" / "session.key").stat().st_mode) == 0o600
    chosen = "k" * 32
    assert session_secret(Settings(data_dir=tmp_path, session_secret=chosen)) == chosen
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, session_secret="short")  # a guessable key would let anyone sign cookies


def test_without_a_directory_there_is_no_sign_in_and_everyone_is_anonymous(
    service: ChatService, tmp_path: Path
) -> None:
    s = Settings(data_dir=tmp_path)
    app = create_app(AppDeps(s, service, ConversationStore(s.conversations_path), dict), with_ui=False)

    @app.get("/test/whoami")
    def whoami(request: Request) -> dict[str, str]:
        return {"kind": current_principal(request).kind}

    with TestClient(app, base_url="http://localhost") as c:
        assert c.get("/auth/login").status_code == 404
        assert c.get("/test/whoami").json() == {"kind": "anonymous"}
    assert Principal.anonymous() == Principal("anonymous", "")


def test_with_the_web_chat_mounted_sign_in_comes_first(
    service: ChatService, people: PeopleBook, tmp_path: Path
) -> None:
    s = Settings(data_dir=tmp_path, anonymous_read=False)
    deps = AppDeps(s, service, ConversationStore(s.conversations_path), dict, directory=people)
    with TestClient(create_app(deps), base_url="http://localhost", follow_redirects=False) as c:
        assert c.get("/", headers={"Accept": "text/html"}).status_code == 303
        assert c.get("/gradio_api/info").status_code == 401
        assert sign_in(c).status_code == 303  # /auth is served ahead of the chat mounted at /
        page = c.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert "form-action 'self'" in page.headers["content-security-policy"]


def test_behind_a_proxy_the_public_address_counts_as_this_site(
    service: ChatService, people: PeopleBook, tmp_path: Path
) -> None:
    proxied = make_client(
        service, people, tmp_path, base_url="https://localhost", public_url="https://bot.example.org"
    )
    with proxied as c:
        csrf = form_csrf(c.get("/auth/login").text)
        form = {"username": "ada", "password": PASSWORD, "csrf": csrf}
        assert c.post("/auth/login", data=form, headers={"Origin": "https://evil.example"}).status_code == 403
        assert (
            c.post("/auth/login", data=form, headers={"Origin": "https://bot.example.org"}).status_code == 303
        )

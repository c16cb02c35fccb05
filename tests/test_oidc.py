"""OpenID Connect sign-in against a real provider: node's oidc-provider (tests/oidc/provider.mjs),
with ragbot served by uvicorn and an httpx client in the browser's place, following redirects and
filling in the provider's login and consent forms. Skipped where node or the provider package is
missing (`bash .ci/setup` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup
from joserfc.jwk import RSAKey

from bot.app import AppDeps, create_app
from bot.auth import AuthContext, WebAuth
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from generation.vllm_server import free_port
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.generators import ScriptedGenerator
from tests.people import PeopleBook

PROVIDER_DIR = Path(__file__).parent / "oidc"
CLIENT_ID, CLIENT_SECRET = "ragbot", "test-client-secret"


@dataclass
class Site:
    url: str  # ragbot
    issuer: str  # the OpenID provider
    people: PeopleBook
    auth: WebAuth  # the app's sign-in, for the test that changes which keys it trusts


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert process.poll() is None, "the OpenID provider exited"
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout} s")


@contextmanager
def openid_provider(redirect_uri: str) -> Iterator[str]:
    """node's oidc-provider on a free port of 127.0.0.1, with ragbot registered as its client
    (CLIENT_ID, CLIENT_SECRET, `redirect_uri`); yields its issuer. Skips the test where node or the
    provider package is missing."""
    node = shutil.which("node")
    if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip(
            "node or tests/oidc/node_modules/oidc-provider is missing: `bash .ci/setup` installs them"
        )
    port = free_port()
    env = os.environ | {
        "PORT": str(port),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URI": redirect_uri,
    }
    provider = subprocess.Popen(
        [node, "provider.mjs"],
        cwd=PROVIDER_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{issuer}/.well-known/openid-configuration", provider)
        yield issuer
    finally:
        provider.terminate()
        provider.wait(10)


@pytest.fixture(scope="module")
def site(embedder: MultiHeadEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import uvicorn

    app_port = free_port()
    url = f"http://localhost:{app_port}"  # another host than the provider's: cookies are not per port
    with openid_provider(f"{url}/auth/oidc/callback") as issuer:
        tmp = tmp_path_factory.mktemp("oidc")
        store = VectorStore("oidc", path=tmp / "qdrant")
        try:
            s = Settings(
                data_dir=tmp,
                oidc_issuer=issuer,
                oidc_client_id=CLIENT_ID,
                oidc_client_secret=CLIENT_SECRET,
                oidc_scopes="openid email profile groups",
            )
            people = PeopleBook()
            service = ChatService(
                Retriever(embedder, store), ScriptedGenerator([]), TurnSettings(RetrievalSettings(k=2))
            )
            deps = AppDeps(s, service, ConversationStore(s.conversations_path), dict, directory=people)
            app = create_app(deps, with_ui=False)
            auth = next(m.kwargs["auth"] for m in app.user_middleware if m.cls is AuthContext)
            config = uvicorn.Config(app, host="127.0.0.1", port=app_port, log_level="warning")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.02)
            yield Site(url, issuer, people, auth)
            server.should_exit = True
            thread.join(10)
        finally:
            store.close()


def submit(browser: httpx.Client, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
    """Submit the page's first form as a browser would: its hidden fields plus `fields`."""
    form = BeautifulSoup(page.text, "html.parser").find("form")
    assert form is not None, page.text
    data = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
    return browser.post(urljoin(str(page.url), str(form["action"])), data={**data, **fields})


def to_provider_login(browser: httpx.Client, site: Site) -> httpx.Response:
    """Open ragbot's sign-in page and follow its 'Sign in with' link to the provider's login form."""
    login = browser.get(f"{site.url}/auth/login")
    link = BeautifulSoup(login.text, "html.parser").find(
        "a", string=lambda t: t and t.startswith("Sign in with")
    )
    assert link is not None, login.text
    page = browser.get(urljoin(f"{site.url}/", str(link["href"])), follow_redirects=True)
    assert str(page.url).startswith(site.issuer) and 'name="login"' in page.text
    return page


def until_callback(browser: httpx.Client, response: httpx.Response, site: Site) -> httpx.Response:
    """Follow the provider's redirects by hand, stopping at the redirect back to ragbot."""
    while response.is_redirect:
        target = urljoin(str(response.url), response.headers["location"])
        if target.startswith(site.url):
            return response
        response = browser.get(target)
    return response


def sign_in_at_provider(browser: httpx.Client, site: Site) -> str:
    """Log in as alice at the provider and consent; return the callback URL it sends back."""
    page = to_provider_login(browser, site)
    answer = until_callback(browser, submit(browser, page, {"login": "alice", "password": "any"}), site)
    if not answer.is_redirect:  # the consent page
        answer = until_callback(browser, submit(browser, answer, {}), site)
    assert answer.is_redirect, answer.text
    return urljoin(str(answer.url), answer.headers["location"])


def me(browser: httpx.Client, site: Site) -> dict[str, object]:
    return browser.get(f"{site.url}/auth/me").json()  # type: ignore[no-any-return]


def test_sign_in_through_a_real_openid_provider_brings_its_groups(site: Site) -> None:
    with httpx.Client(timeout=30) as browser:
        callback = sign_in_at_provider(browser, site)
        assert urlsplit(callback).path == "/auth/oidc/callback"
        landed = browser.get(callback)
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        cookie = landed.headers.get_list("set-cookie")
        assert any(
            c.startswith("ragbot_session=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookie
        )
        who = me(browser, site)
        assert who["signed_in"] is True
        assert who["person"] == {
            "id": 1,
            "name": "Alice Example",
            "email": "alice@example.org",
            "groups": ["research", "staff"],
            "admin": False,
        }
        assert (site.issuer, "alice") in site.people.subjects
        assert browser.get(callback).status_code == 400  # the same answer again: that sign-in is over

        token = str(who["csrf"])
        assert browser.post(f"{site.url}/auth/logout").status_code == 403
        assert browser.post(f"{site.url}/auth/logout", data={"csrf": token}).status_code == 303
        assert me(browser, site)["signed_in"] is False


def test_an_altered_state_is_refused(site: Site) -> None:
    with httpx.Client(timeout=30) as browser:
        callback = sign_in_at_provider(browser, site)
        parts = urlsplit(callback)
        query = dict(parse_qsl(parts.query))
        query["state"] = query["state"][:-2] + ("xy" if not query["state"].endswith("xy") else "zz")
        forged = browser.get(parts._replace(query=urlencode(query)).geturl())
        assert forged.status_code == 400
        assert me(browser, site)["signed_in"] is False
        assert browser.get(callback).status_code == 400  # the refused try used up the pending sign-in
        assert me(browser, site)["signed_in"] is False


def test_a_callback_this_browser_did_not_start_is_refused(site: Site) -> None:
    with httpx.Client(timeout=30) as victim_browser, httpx.Client(timeout=30) as attacker:
        callback = sign_in_at_provider(attacker, site)  # the attacker's own code and state ...
        assert victim_browser.get(callback).status_code == 400  # ... do not sign the victim in
        assert me(victim_browser, site)["signed_in"] is False


def test_a_tampered_session_cookie_after_openid_sign_in_is_anonymous(site: Site) -> None:
    with httpx.Client(timeout=30) as browser:
        browser.get(sign_in_at_provider(browser, site))
        assert me(browser, site)["signed_in"] is True
        value = browser.cookies["ragbot_session"]
        head, _, signature = value.rpartition(".")
        tampered = f"{head}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
        with httpx.Client(timeout=30) as other:
            answer = other.get(f"{site.url}/auth/me", headers={"Cookie": f"ragbot_session={tampered}"})
            assert answer.json()["signed_in"] is False


def test_an_id_token_not_signed_by_the_providers_keys_is_refused(site: Site) -> None:
    assert site.auth.oidc is not None
    client = site.auth.oidc.app
    published = client.fetch_jwk_set()
    # The same key ids with other keys: what a token forged without the provider's private key meets.
    forged = [
        RSAKey.generate_key(2048, parameters={"kid": k["kid"]}).as_dict(private=False)
        for k in published["keys"]
    ]
    client.server_metadata["jwks"] = {"keys": forged}
    try:
        with httpx.Client(timeout=30) as browser:
            assert browser.get(sign_in_at_provider(browser, site)).status_code == 400
            assert me(browser, site)["signed_in"] is False
    finally:
        client.server_metadata["jwks"] = published


def test_a_discovery_document_naming_another_issuer_is_not_trusted(site: Site, tmp_path: Path) -> None:
    """The same provider reached by another name: its discovery names 127.0.0.1, not localhost."""
    other_name = site.issuer.replace("127.0.0.1", "localhost")
    s = Settings(
        data_dir=tmp_path, oidc_issuer=other_name, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET
    )
    auth = WebAuth(s, site.people)
    assert auth.oidc is not None
    with pytest.raises(ValueError, match="names issuer"):
        auth.oidc.start("http://localhost/auth/oidc/callback")

"""Signing in to the web chat through a real OpenID provider, in a real browser: headless Chromium
opens the chat, is sent to the sign-in page, follows "Sign in with …" to node's oidc-provider
(tests/oidc/provider.mjs), fills in its login and consent forms, and lands back on the chat signed
in. The provider's groups claim is what lets the person read a private knowledge base; she picks
it, asks, reloads and resumes the chat from the sidebar.

The app is the real one (create_app with the Gradio page) over a real State on SQLite; the answer is
scripted (tests/generators.py). Skipped where Chromium, chromedriver, node or the provider package is
missing. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.access import Readers
from bot.app import AppDeps
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from generation.vllm_server import free_port
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from tests.browser import ARTIFACTS, two_knowledge_bases
from tests.generators import ScriptedGenerator
from tests.test_browser_chats import ANSWER, QUESTION, TEAM_DOC, chat_list, wait_page
from tests.test_browser_e2e import _serve, css, text_of, wait_answered, wait_for
from tests.test_oidc import CLIENT_ID, CLIENT_SECRET, openid_provider

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (.ci/setup installs them)",
)


@dataclass
class Site:
    url: str  # ragbot, as the browser names it
    issuer: str  # the OpenID provider
    state: Any


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, embedder: MultiHeadEmbedder) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("oidc-site")
    store, state, _ = two_knowledge_bases(root, embedder, TEAM_DOC)
    state.access.grant("team", "group", "research", "read")  # alice's provider puts her in research
    # The app on localhost, the provider on 127.0.0.1: two hosts, so their cookies stay apart.
    app_port = free_port()
    url = f"http://localhost:{app_port}"
    with openid_provider(f"{url}/auth/oidc/callback") as issuer:
        settings = Settings(
            data_dir=root / "data",
            anonymous_read=False,
            oidc_issuer=issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_scopes="openid email profile groups",
        )
        retriever = Retriever(embedder, store)
        service = ChatService(
            retriever, ScriptedGenerator([ANSWER] * 5), TurnSettings(RetrievalSettings(k=2))
        )
        conversations = ConversationStore(settings.conversations_path)
        deps = AppDeps(
            settings,
            service,
            conversations,
            lambda: {},
            directory=state.people,
            readers=Readers(state),
        )
        _, stop = _serve(deps, port=app_port)
        try:
            yield Site(url, issuer, state)
        finally:
            stop()
            conversations.close()
            state.close()
            store.close()


def test_a_person_signs_in_through_the_provider_and_her_groups_open_a_private_knowledge_base(
    site: Site, driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    driver.get(site.url + "/")  # not signed in, anonymous reading off: to the sign-in page
    wait_for(driver, lambda d: "/auth/login" in d.current_url and css(d, "#username"), 30)
    provider_link = driver.find_element(By.PARTIAL_LINK_TEXT, "Sign in with")
    assert provider_link.text == f"Sign in with {urlsplit(site.issuer).netloc}"
    provider_link.click()

    # The provider's own login page, then its consent page.
    wait_for(driver, lambda d: d.current_url.startswith(site.issuer) and css(d, "input[name='login']"), 30)
    assert text_of(driver, "h1") == "Sign-in"
    css(driver, "input[name='login']")[0].send_keys("alice")
    css(driver, "input[name='password']")[0].send_keys("any")
    css(driver, "button[type='submit']")[0].click()
    wait_for(driver, lambda d: text_of(d, "h1") == "Authorize", 30)
    assert driver.current_url.startswith(site.issuer)
    driver.save_screenshot(str(ARTIFACTS / "oidc-consent.png"))
    css(driver, "button[type='submit']")[0].click()

    wait_page(driver)  # back on the chat
    assert driver.current_url.rstrip("/") == site.url
    assert wait_for(driver, lambda d: text_of(d, "#rb-person"), 30) == "Alice Example"
    alice = site.state.people.get(1)
    assert alice is not None and set(alice.groups) == {"staff", "research"}

    # `team` is hers through the research group; she takes the public `default` out of the picker.
    picker = wait_for(driver, lambda d: [e for e in css(d, "#rb-kbs") if e.is_displayed()], 30)[0]
    assert "team" in picker.text and "default" in picker.text
    remove = [t for t in picker.find_elements(By.CSS_SELECTOR, ".token") if "default" in t.text]
    remove[0].find_element(By.CSS_SELECTOR, ".token-remove").click()
    wait_for(driver, lambda d: "default" not in text_of(d, "#rb-kbs .wrap"))
    css(driver, "#rb-input textarea")[0].send_keys(QUESTION + "\n")
    assert wait_answered(driver, 1).startswith("The Marmalade probe launches in spring")
    titles = [c.text for c in css(driver, "#rb-evidence .rb-turn:not([hidden]) .rb-src summary b")]
    assert titles and set(titles) == {"Launch plan"}  # found in the private knowledge base only
    wait_for(driver, lambda d: chat_list(d) == [f"{QUESTION} (1)"], 30)
    driver.save_screenshot(str(ARTIFACTS / "oidc-chat.png"))

    driver.refresh()  # still signed in: the session cookie, not the provider, carries her
    wait_page(driver)
    assert text_of(driver, "#rb-person") == "Alice Example"
    item = wait_for(driver, lambda d: [e for e in css(d, "#rb-chat-list label") if QUESTION in e.text], 30)
    item[0].click()
    wait_for(driver, lambda d: len(css(d, "#rb-chat [data-testid='bot']")) == 1, 30)
    assert "The Marmalade probe launches in spring" in css(driver, "#rb-chat [data-testid='bot']")[0].text
    assert QUESTION in css(driver, "#rb-chat [data-testid='user']")[0].text
    driver.save_screenshot(str(ARTIFACTS / "oidc-resumed-chat.png"))

"""Kept chats in a real browser: headless Chromium signs in with a local account (the password form),
picks a knowledge base, asks, reloads and resumes the chat from the sidebar; a page opened without
signing in (anonymous reading off) asks for sign-in; another person sees none of it.

The app is the real one (create_app with the Gradio page) over a real State on SQLite; the answer is
scripted (tests/generators.py). Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.access import Readers
from bot.app import AppDeps
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.library import Libraries
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from tests.browser import ARTIFACTS, two_knowledge_bases
from tests.generators import ScriptedGenerator
from tests.test_browser_e2e import _serve, css, text_of, wait_answered, wait_for

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (.ci/setup installs them)",
)
PASSWORD = "correct horse battery staple"
ANSWER = "The Marmalade probe launches in spring [1]."
TEAM_DOC = "# Launch plan\n\nThe team launches the Marmalade probe in spring from the northern pad."
QUESTION = "When does the team launch the Marmalade probe?"


@dataclass
class Site:
    url: str
    state: Any


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, embedder: MultiHeadEmbedder) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("chats-site")
    store, state, ingestor = two_knowledge_bases(root, embedder, TEAM_DOC)
    ada = state.people.create_local("ada", PASSWORD, name="Ada Lovelace")
    state.people.create_local("bob", PASSWORD, name="Bob Builder")
    state.access.grant("team", "user", str(ada.id), "read")
    settings = Settings(data_dir=root / "data", anonymous_read=False, chat_retention_audit=True)
    retriever = Retriever(embedder, store)
    service = ChatService(retriever, ScriptedGenerator([ANSWER] * 20), TurnSettings(RetrievalSettings(k=2)))
    conversations = ConversationStore(settings.conversations_path)
    library = Libraries(lambda kb: replace(ingestor, kb=kb), settings.uploads_dir, on_change=retriever.reload)
    deps = AppDeps(
        settings,
        service,
        conversations,
        lambda: {},
        library,
        directory=state.people,
        readers=Readers(state),
    )
    url, stop = _serve(deps)
    yield Site(url, state)
    stop()
    conversations.close()
    state.close()
    store.close()


def sign_in(driver: Any, site: Site, username: str) -> None:
    """Open the chat: not signed in, it sends the browser to the sign-in form first."""
    driver.get(site.url + "/")
    wait_for(driver, lambda d: "/auth/login" in d.current_url and css(d, "#username"), 30)
    css(driver, "#username")[0].send_keys(username)
    css(driver, "#password")[0].send_keys(PASSWORD)
    css(driver, "button[type='submit']")[0].click()
    wait_page(driver)


def wait_page(driver: Any) -> None:
    wait_for(driver, lambda d: css(d, "#rb-input textarea"), 30)
    wait_for(driver, lambda d: "Generator" in text_of(d, "#rb-status"), 30)  # the load events have run


def chat_list(driver: Any) -> list[str]:
    return [label.text for label in css(driver, "#rb-chat-list label") if label.text]


def test_a_person_signs_in_picks_asks_and_resumes_after_a_reload(site: Site, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(driver, site, "ada")
    assert wait_for(driver, lambda d: text_of(d, "#rb-person"), 30) == "Ada Lovelace"
    assert "may be read for audit" in text_of(driver, "#rb-audit-notice")
    # Both knowledge bases she reads are picked; she takes `default` out, keeping `team`.
    picker = wait_for(driver, lambda d: [e for e in css(d, "#rb-kbs") if e.is_displayed()], 30)[0]
    assert "team" in picker.text and "default" in picker.text
    remove = [t for t in picker.find_elements(By.CSS_SELECTOR, ".token") if "default" in t.text]
    remove[0].find_element(By.CSS_SELECTOR, ".token-remove").click()
    wait_for(driver, lambda d: "default" not in text_of(d, "#rb-kbs .wrap"))
    box = css(driver, "#rb-input textarea")[0]
    box.send_keys(QUESTION + "\n")
    assert wait_answered(driver, 1).startswith("The Marmalade probe launches in spring")
    titles = [c.text for c in css(driver, "#rb-evidence .rb-turn:not([hidden]) .rb-src summary b")]
    assert titles and set(titles) == {"Launch plan"}  # only the picked knowledge base was searched
    wait_for(driver, lambda d: chat_list(d) == [f"{QUESTION} (1)"], 30)
    driver.save_screenshot(str(ARTIFACTS / "kept-chat.png"))

    driver.refresh()
    wait_page(driver)
    item = wait_for(driver, lambda d: [e for e in css(d, "#rb-chat-list label") if QUESTION in e.text], 30)
    assert css(driver, "#rb-chat [data-testid='bot']") == []  # a reload starts with an empty chat
    item[0].click()
    wait_for(driver, lambda d: len(css(d, "#rb-chat [data-testid='bot']")) == 1, 30)
    assert "The Marmalade probe launches in spring" in css(driver, "#rb-chat [data-testid='bot']")[0].text
    assert QUESTION in css(driver, "#rb-chat [data-testid='user']")[0].text
    assert "/export" in (css(driver, "#rb-export")[0].get_attribute("href") or "")
    driver.save_screenshot(str(ARTIFACTS / "resumed-chat.png"))

    css(driver, "#rb-sign-out")[0].click()  # back to the sign-in form: anonymous reading is off
    wait_for(driver, lambda d: "/auth/login" in d.current_url and css(d, "#username"), 30)
    assert "Sign in" in css(driver, "h1")[0].text

    sign_in(driver, site, "bob")
    assert wait_for(driver, lambda d: text_of(d, "#rb-person"), 30) == "Bob Builder"
    wait_for(driver, lambda d: css(d, "#rb-chat-list"), 30)
    assert chat_list(driver) == []  # Ada's chat is hers alone
    assert [c.title for c in site.state.chats.list(2)] == []
    assert not any(e.is_displayed() for e in css(driver, "#rb-kbs"))  # one readable: no picker

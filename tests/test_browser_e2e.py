"""End to end in a real browser: headless Chromium types a question into the Gradio chat served by
the app, and sees the answer stream in and then its sources. A screenshot is kept as an artifact
(test-artifacts/chat.png)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from bot.app import AppDeps, create_app
from bot.chat import ChatService
from bot.config import Settings
from bot.conversations import ConversationStore
from generation.openai_compat import OpenAICompatibleGenerator
from generation.vllm_server import free_port
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (.ci/setup installs them)",
)


@pytest.fixture
def server(
    ingestor: Ingestor, store: VectorStore, corpus: Path, tmp_path: Path, smol: OpenAICompatibleGenerator
) -> Iterator[str]:
    import uvicorn

    ingestor.ingest_paths([corpus])
    generator = smol
    service = ChatService(
        Retriever(ingestor.embedder, store), generator, RetrievalSettings(k=2), max_answer_tokens=48
    )
    deps = AppDeps(Settings(data_dir=tmp_path), service, ConversationStore(), lambda: {})
    port = free_port()
    config = uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


def test_chat_in_headless_chromium_streams_a_sourced_answer(server: str, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1100,900", f"--user-data-dir={tmp_path / 'chrome'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)
    try:
        driver.get(server + "/")
        box = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "textarea"))
        box.send_keys("What buried Pompeii?")
        box.send_keys(Keys.ENTER)

        def bot_text() -> str:
            bots = driver.find_elements(By.CSS_SELECTOR, "[data-testid='bot']")
            return bots[-1].text if bots else ""

        seen: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and "Sources" not in (text := bot_text()):
            if text and (not seen or text != seen[-1]):
                seen.append(text)
            time.sleep(0.1)
        final = bot_text()
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "chat.png"))
    finally:
        driver.quit()
    assert "Sources" in final and "Volcanoes" in final, final
    answer = final.split("Sources")[0].strip()
    assert len(answer) > 10
    # Streamed: the page showed the answer growing, several partial states before the sources came.
    partial = [s for s in seen if "Sources" not in s]
    assert len(partial) >= 2 and all(len(a) <= len(b) for a, b in pairwise(partial))

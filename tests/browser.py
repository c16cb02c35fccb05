"""Debian's Chromium driven by selenium, as the browser tests open it (headless, a fresh profile)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots the tests take


def open_chromium(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)


def two_knowledge_bases(root: Path, embedder: Any, team_doc: str) -> tuple[Any, Any, Any]:
    """The browser and web-chat tests' data: the sample topics in public `default`, one document in
    private `team`; the store, a state database under `root` and the `default` ingestor (the caller
    grants `team` and closes the store and the state)."""
    from dataclasses import replace

    from retrieval.store import VectorStore
    from state import open_state
    from tests.conftest import TOPICS, make_ingestor

    docs, team = root / "docs", root / "team"
    docs.mkdir()
    team.mkdir()
    for name, text in TOPICS.items():
        (docs / name).write_text(text)
    (team / "launch.md").write_text(team_doc)
    store = VectorStore("test", path=root / "qdrant")
    ingestor = make_ingestor(embedder, store)
    ingestor.ingest_paths([docs])
    replace(ingestor, kb="team").ingest_paths([team])
    state = open_state(f"sqlite:///{root / 'state.db'}")
    state.kbs.create("default", public=True)
    state.kbs.create("team")
    return store, state, ingestor

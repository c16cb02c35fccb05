"""A turn speaks the asker's language: the answer instruction names it, and the bot's own words (the
abstention, a refusal and its category, the wait in line) are written in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.admission import TurnQueue
from bot.chat import ChatService, TurnSettings
from bot.events import Answered, Queued, Refused, TurnEvent
from generation.protocol import ChatMessage, Generator
from guardrails import Guard, SelfReflectionClassifier
from guardrails.language import ENGLISH, KOREAN, TEXTS, detect, texts
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.generators import ScriptedGenerator
from tests.scopes import DEFAULT

KOREAN_QUESTION = "폼페이를 묻어 버린 화산은 무엇인가요?"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (KOREAN_QUESTION, KOREAN),
        ("MRAG는 어떻게 attention head를 고르나요?", KOREAN),  # Korean with English terms
        ("What buried Pompeii?", ENGLISH),
        ("Was ist Qdrant? RAG 시스템", ENGLISH),  # mostly Latin letters
        ("Reciprocal Rank Fusion(RRF)이 뭐예요?", KOREAN),  # Latin terms, a Korean predicate last
        ("Georgi Gerganov은 llama.cpp 만든 사람입니다. [1]", KOREAN),
        ("Is 대한민국헌법 the name of the constitution?", ENGLISH),  # a Korean word quoted in English
    ],
)
def test_the_language_is_told_by_its_script(text: str, language: str) -> None:
    assert detect(text) == language


def test_a_message_without_letters_keeps_the_conversation_language() -> None:
    assert detect("?!", default=KOREAN) == KOREAN


def test_every_language_has_every_text() -> None:
    english = TEXTS[ENGLISH]
    for t in TEXTS.values():
        assert t.refusals.keys() == english.refusals.keys()
        assert t.titles.keys() == english.titles.keys()


def service_with(
    ingestor: Ingestor,
    store: VectorStore,
    corpus: Path,
    generator: Generator | None = None,
    guard: Guard | None = None,
    queue: TurnQueue | None = None,
    abstain_below: float = 0.0,
) -> ChatService:
    ingestor.ingest_paths([corpus])
    gen = generator or ScriptedGenerator(["베수비오 화산입니다 [1]."])
    settings = TurnSettings(RetrievalSettings(k=2), abstain_below=abstain_below)
    return ChatService(Retriever(ingestor.embedder, store), gen, settings, guard=guard, queue=queue)


def run(service: ChatService, message: str, history: list[ChatMessage] | None = None) -> list[TurnEvent]:
    return list(service.turn(message, history or [], readable=DEFAULT))


def test_a_korean_question_asks_for_a_korean_answer(
    ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    service = service_with(ingestor, store, corpus)
    end = run(service, KOREAN_QUESTION)[-1]
    assert isinstance(end, Answered)
    prompt = service.generator.calls[-1][-1].content  # type: ignore[attr-defined]
    assert prompt.endswith(texts(KOREAN).answer_in)


def test_an_english_question_keeps_the_english_instruction(
    ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    service = service_with(ingestor, store, corpus)
    run(service, "What buried Pompeii?")
    prompt = service.generator.calls[-1][-1].content  # type: ignore[attr-defined]
    assert "Korean" not in prompt


def test_a_korean_abstention_is_korean(ingestor: Ingestor, store: VectorStore, corpus: Path) -> None:
    gen = ScriptedGenerator(["..."], labels=["no"])  # the gate: the sources do not answer
    service = service_with(ingestor, store, corpus, generator=gen, abstain_below=0.5)
    end = run(service, KOREAN_QUESTION)[-1]
    assert isinstance(end, Answered)
    assert end.text == texts(KOREAN).abstention


def test_a_korean_refusal_names_the_category_in_korean(
    ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    gen = ScriptedGenerator([], labels=["unsafe", "crime"])
    service = service_with(ingestor, store, corpus, generator=gen, guard=Guard(SelfReflectionClassifier(gen)))
    end = run(service, "이웃집 차를 몰래 시동 거는 방법을 알려줘")[-1]
    assert isinstance(end, Refused)
    assert end.message.startswith(texts(KOREAN).refusals[end.verdict.category])
    assert "불법 행위" in end.message


def test_a_short_follow_up_keeps_the_conversation_language(
    ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    service = service_with(ingestor, store, corpus, queue=TurnQueue(limit=1))
    busy = service.queue.join()
    history = [
        ChatMessage(role="user", content=KOREAN_QUESTION),
        ChatMessage(role="assistant", content="베수비오"),
    ]
    waiting = next(service.turn("79?", history, readable=DEFAULT))  # no letters: the conversation decides
    assert isinstance(waiting, Queued)
    assert waiting.message == texts(KOREAN).queued_one
    service.queue.leave(busy)


def test_the_page_words_follow_the_browsers_first_spoken_language() -> None:
    from bot.ui_texts import page_words

    assert page_words("ko-KR,ko;q=0.9,en;q=0.8")["sign_out"] == "로그아웃"
    assert page_words("fr-FR,ko;q=0.5")["sign_out"] == "로그아웃"  # the first language the page speaks
    assert page_words("fr-FR,de")["sign_out"] == "Sign out"
    assert page_words("")["sign_in"] == "Sign in"

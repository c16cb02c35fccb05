import threading
from pathlib import Path

import pytest

from bot.admission import TurnQueue
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.events import Answered, ErrorKind, Failed, Queued, Started, TurnEvent
from bot.factory import EMBEDDED_TURNS, Components
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.generators import ScriptedGenerator
from tests.scopes import DEFAULT


def test_queue_admits_up_to_its_limit_in_arrival_order() -> None:
    queue = TurnQueue(limit=2)
    a, b, c, d = (queue.join() for _ in range(4))
    assert queue.admit(a, timeout=0)
    assert queue.admit(b, timeout=0)
    assert not queue.admit(c, timeout=0)
    assert queue.ahead(c) == 2  # two running
    assert queue.ahead(d) == 3  # two running, one waiting before it
    queue.leave(b)
    assert queue.admit(c, timeout=0)
    assert not queue.admit(d, timeout=0)
    assert queue.ahead(d) == 2


def test_a_turn_abandoned_while_waiting_loses_nobody_their_place() -> None:
    queue = TurnQueue(limit=1)
    a, b, c = (queue.join() for _ in range(3))
    queue.leave(b)  # gave up while waiting
    assert queue.ahead(c) == 1
    queue.leave(a)
    assert queue.admit(c, timeout=0)
    assert queue.running == 1


def test_no_limit_admits_everyone_at_once() -> None:
    queue = TurnQueue(limit=0)
    tickets = [queue.join() for _ in range(50)]
    assert all(queue.admit(t, timeout=0) for t in tickets)


def test_a_waiting_turn_is_woken_when_a_place_frees() -> None:
    queue = TurnQueue(limit=1)
    first, second = queue.join(), queue.join()
    admitted = threading.Event()

    def wait() -> None:
        if queue.admit(second, timeout=10):
            admitted.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not admitted.wait(0.2)
    queue.leave(first)
    waiter.join(10)
    assert admitted.is_set()


@pytest.fixture
def one_at_a_time(ingestor: Ingestor, store: VectorStore, corpus: Path) -> ChatService:
    ingestor.ingest_paths([corpus])
    gen = ScriptedGenerator(["Mount Vesuvius buried Pompeii in 79 [1]."])
    return ChatService(
        Retriever(ingestor.embedder, store),
        gen,
        TurnSettings(RetrievalSettings(k=2)),
        queue=TurnQueue(limit=1),
    )


def test_a_second_chat_waits_and_is_told_its_place(one_at_a_time: ChatService) -> None:
    first = one_at_a_time.turn("What buried Pompeii?", readable=DEFAULT)
    assert isinstance(next(first), Started)  # the first chat is running
    second = one_at_a_time.turn("What buried Pompeii?", readable=DEFAULT)
    waiting = next(second)
    assert isinstance(waiting, Queued)
    assert waiting.ahead == 1
    assert "1 chat ahead" in waiting.message
    rest: list[TurnEvent] = list(first)
    assert isinstance(rest[-1], Answered)
    assert rest[-1].timings.queued_s < 0.5  # the first chat did not wait
    events = list(second)
    assert isinstance(events[0], Started)
    end = events[-1]
    assert isinstance(end, Answered)
    assert end.timings.queued_s > 0  # the operator sees how long it waited
    assert end.timings.total_s >= end.timings.queued_s


def test_a_chat_abandoned_mid_answer_frees_its_place(one_at_a_time: ChatService) -> None:
    first = one_at_a_time.turn("What buried Pompeii?", readable=DEFAULT)
    next(first)
    first.close()  # the browser went away
    events = list(one_at_a_time.turn("What buried Pompeii?", readable=DEFAULT))
    assert not any(isinstance(e, Queued) for e in events)
    assert isinstance(events[-1], Answered)


def test_embedded_engine_runs_one_turn_at_a_time_and_vllm_has_no_limit(tmp_path: Path) -> None:
    assert Components(Settings(data_dir=tmp_path)).turn_queue.limit == EMBEDDED_TURNS
    assert Components(Settings(data_dir=tmp_path, vllm_url="http://127.0.0.1:9")).turn_queue.limit == 0
    assert Components(Settings(data_dir=tmp_path, turns_at_once=3)).turn_queue.limit == 3


def test_every_front_door_shows_the_wait(one_at_a_time: ChatService) -> None:
    """The web bubble, the widget's row and the /v1 stream (an SSE comment clients skip) say it."""
    import json

    from bot import openai_api
    from bot.widget import widget_events
    from generation.protocol import ChatMessage
    from tests.doors import web_bubbles

    queue = one_at_a_time.queue
    request = openai_api.CompletionRequest(
        messages=[ChatMessage(role="user", content="What buried Pompeii?")], stream=True
    )
    doors = {
        "web": web_bubbles(one_at_a_time, "What buried Pompeii?", []),
        "widget": widget_events(one_at_a_time, "What buried Pompeii?", [], readable=DEFAULT),
        "v1": openai_api.stream(one_at_a_time, request, readable=DEFAULT),
    }
    for door, output in doors.items():
        busy = queue.join()  # another chat is being answered
        queue.admit(busy, timeout=0)
        first = next(output)
        if door == "v1":
            assert json.loads(first[5:])["choices"][0]["delta"] == {"role": "assistant"}
            first = next(output)
            assert first == ": Waiting for the model: 1 chat ahead of yours…\n\n"
        elif door == "widget":
            assert json.loads(first) == {
                "type": "queued",
                "ahead": 1,
                "message": "Waiting for the model: 1 chat ahead of yours…",
            }
        else:
            assert first == "Waiting for the model: 1 chat ahead of yours…"
        queue.leave(busy)
        rest = list(output)
        assert "Pompeii" in "".join(rest), door


def test_an_empty_message_is_refused_at_once_not_after_waiting(one_at_a_time: ChatService) -> None:
    busy = one_at_a_time.queue.join()
    assert one_at_a_time.queue.admit(busy, timeout=0)
    [end] = list(one_at_a_time.turn("   ", readable=DEFAULT))
    assert isinstance(end, Failed)
    assert end.kind is ErrorKind.INPUT

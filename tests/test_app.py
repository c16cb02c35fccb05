"""The ASGI app's front doors over a real small index: widget, Slack, Discord, health, /v1 API."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from bot.app import AppDeps, component_health, create_app
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.factory import Components
from bot.replies import split_message
from generation.openai_compat import OpenAICompatibleGenerator
from generation.protocol import ChatMessage
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.capture_server import Captured, CaptureServer
from tests.generators import ScriptedGenerator
from tests.scopes import DEFAULT

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DISCORD_KEY = SigningKey.generate()
ANSWER = "Mount Vesuvius buried Pompeii in 79 [1]."


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator([ANSWER] * 5)


@pytest.fixture
def service(
    ingestor: Ingestor, store: VectorStore, corpus: Path, generator: ScriptedGenerator
) -> ChatService:
    ingestor.ingest_paths([corpus])
    return ChatService(Retriever(ingestor.embedder, store), generator, TurnSettings(RetrievalSettings(k=2)))


@pytest.fixture
def client(service: ChatService, tmp_path: Path, capture: CaptureServer) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        api_key="operator-secret",
        widget_tokens="docs.example=site-token-1",
        widget_origins="https://docs.example",
        slack_signing_secret=SLACK_SECRET,
        slack_bot_token="xoxb-test",
        slack_api_url=capture.url + "/slack/",
        discord_public_key=DISCORD_KEY.verify_key.encode().hex(),
        discord_api_url=capture.url + "/discord",
    )
    conversations = ConversationStore(settings.conversations_path)
    deps = AppDeps(settings, service, conversations, lambda: {"qdrant": "ok", "generator": "ok"})
    with TestClient(create_app(deps, with_ui=False), base_url="http://localhost") as c:
        yield c
    conversations.close()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Webhook answers run on their own threads after the acknowledgement: wait for one to land."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the webhook answer never arrived"
        time.sleep(0.05)


def slack_headers(body: bytes, timestamp: int | None = None, secret: str = SLACK_SECRET) -> dict[str, str]:
    ts = str(timestamp or int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/json"}  # fmt: skip


def slack_event(
    text: str, event_id: str, ts: str = "1700000000.000100", thread_ts: str | None = None
) -> bytes:
    event = {"type": "app_mention", "channel": "C1", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps({"type": "event_callback", "event_id": event_id, "event": event}).encode()


def test_slack_url_verification_and_signatures(client: TestClient) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123"}).encode()
    r = client.post("/slack/events", content=body, headers=slack_headers(body))
    assert r.status_code == 200 and r.json() == {"challenge": "abc123"}
    bad = client.post("/slack/events", content=body, headers=slack_headers(body, secret="wrong"))
    stale = client.post("/slack/events", content=body, headers=slack_headers(body, int(time.time()) - 600))
    unsigned = client.post("/slack/events", content=body)
    assert bad.status_code == stale.status_code == unsigned.status_code == 401


def test_slack_answers_in_thread_once_and_remembers(
    client: TestClient, capture: CaptureServer, generator: ScriptedGenerator
) -> None:
    body = slack_event("What buried Pompeii?", "Ev1")
    start = time.perf_counter()
    r = client.post("/slack/events", content=body, headers=slack_headers(body))
    assert r.status_code == 200 and time.perf_counter() - start < 3
    retry = client.post(
        "/slack/events", content=body, headers=slack_headers(body) | {"X-Slack-Retry-Num": "1"}
    )
    assert retry.status_code == 200 and retry.json()["duplicate"]

    def posts() -> list[Captured]:
        return [c for c in capture.requests if c.path.endswith("chat.postMessage")]

    wait_until(lambda: len(posts()) >= 1)
    time.sleep(0.3)  # a second answer, were the retry answered again, would land meanwhile
    assert len(posts()) == 1  # the retry was not answered again
    [post] = posts()
    assert post.body["thread_ts"] == "1700000000.000100" and post.body["channel"] == "C1"
    assert post.body["text"].startswith(ANSWER) and "Sources:\n[1] Volcanoes" in post.body["text"]
    # A follow-up in the same thread sees the earlier exchange (the store survives restarts too).
    body = slack_event("And when?", "Ev2", ts="1700000001.0", thread_ts="1700000000.000100")
    client.post("/slack/events", content=body, headers=slack_headers(body))
    wait_until(lambda: len(posts()) == 2)
    last_prompt = generator.calls[-1]
    assert any(m.role == "user" and m.content == "What buried Pompeii?" for m in last_prompt)


def test_a_burst_of_webhook_questions_waits_in_line_without_holding_the_server(
    client: TestClient, capture: CaptureServer, service: ChatService
) -> None:
    service.queue.limit = 1
    busy = service.queue.join()  # a long answer is being generated
    assert service.queue.admit(busy, timeout=0)
    for n in range(45):  # more than the server's 40 worker threads
        body = slack_event(f"What buried Pompeii? ({n})", f"Burst{n}", ts=f"1700000100.{n:06d}")
        assert client.post("/slack/events", content=body, headers=slack_headers(body)).status_code == 200
    assert client.get("/healthz").status_code == 200  # the server's threads are free
    service.queue.leave(busy)
    wait_until(lambda: sum(c.path.endswith("chat.postMessage") for c in capture.requests) == 45, 120)


def discord_headers(
    body: bytes, timestamp: int | None = None, key: SigningKey = DISCORD_KEY
) -> dict[str, str]:
    ts = str(timestamp or int(time.time()))
    signature = key.sign(ts.encode() + body).signature.hex()
    return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": ts, "Content-Type": "application/json"}


def test_discord_ping_and_signatures(client: TestClient) -> None:
    body = json.dumps({"type": 1}).encode()
    r = client.post("/discord/interactions", content=body, headers=discord_headers(body))
    assert r.status_code == 200 and r.json() == {"type": 1}
    other = SigningKey.generate()
    bad = client.post("/discord/interactions", content=body, headers=discord_headers(body, key=other))
    stale = client.post(
        "/discord/interactions", content=body, headers=discord_headers(body, int(time.time()) - 900)
    )
    tampered = client.post("/discord/interactions", content=body + b" ", headers=discord_headers(body))
    assert bad.status_code == stale.status_code == tampered.status_code == 401


def test_discord_defers_then_edits_and_splits_long_answers(
    client: TestClient, capture: CaptureServer, generator: ScriptedGenerator
) -> None:
    generator.replies = [("Pompeii was buried by Vesuvius [1]. " * 120).strip()]  # ~4,300 characters
    body = json.dumps(
        {
            "type": 2,
            "application_id": "A1",
            "token": "T1",
            "channel_id": "CH1",
            "data": {"name": "ask", "options": [{"name": "q", "value": "What buried Pompeii?"}]},
        }
    )
    r = client.post("/discord/interactions", content=body.encode(), headers=discord_headers(body.encode()))
    assert r.status_code == 200 and r.json() == {"type": 5}
    wait_until(lambda: any("Sources:" in c.body.get("content", "") for c in capture.requests))
    edits = [c for c in capture.requests if c.method == "PATCH"]
    follow = [c for c in capture.requests if c.method == "POST" and c.path.startswith("/discord/webhooks/")]
    assert [c.path for c in edits] == ["/discord/webhooks/A1/T1/messages/@original"]
    assert len(follow) >= 2 and all(len(c.body["content"]) <= 2000 for c in edits + follow)
    assert "Sources:" in follow[-1].body["content"]


def test_split_message_respects_limit_and_boundaries() -> None:
    text = "word " * 1000
    pieces = split_message(text, 2000)
    assert all(len(p) <= 2000 for p in pieces) and " ".join(pieces).split() == text.split()
    assert split_message("short") == ["short"] and split_message("x" * 4500)[0] == "x" * 2000


def test_widget_needs_a_site_token_and_sets_frame_ancestors(client: TestClient) -> None:
    assert client.get("/widget").status_code == 403
    assert client.get("/widget", params={"token": "operator-secret"}).status_code == 403
    page = client.get("/widget", params={"token": "site-token-1"})
    assert page.status_code == 200 and "site-token-1" in page.text
    assert "frame-ancestors https://docs.example" in page.headers["content-security-policy"]
    r = client.post("/widget/chat", json={"token": "site-token-1", "message": "What buried Pompeii?"})
    rows = [json.loads(line) for line in r.text.splitlines()]
    deltas = [row["text"] for row in rows if row["type"] == "delta"]
    assert len(deltas) >= 3 and "".join(deltas).strip() == ANSWER
    assert rows[-1]["type"] == "answered" and rows[-1]["text"] == ANSWER
    assert rows[-1]["sources"][0]["title"] == "Volcanoes" and rows[-1]["sources"][0]["cited"]
    assert client.post("/widget/chat", json={"token": "nope", "message": "hi"}).status_code == 403


def test_openai_compatible_endpoint(client: TestClient) -> None:
    auth = {"Authorization": "Bearer operator-secret"}
    body = {"messages": [{"role": "user", "content": "What buried Pompeii?"}]}
    assert client.post("/v1/chat/completions", json=body).status_code == 401
    r = client.post("/v1/chat/completions", json=body, headers=auth)
    data = r.json()
    assert r.status_code == 200 and data["choices"][0]["message"]["content"] == ANSWER
    assert data["sources"][0]["cited"] and data["object"] == "chat.completion"
    r = client.post("/v1/chat/completions", json=body | {"stream": True}, headers=auth)
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip() == ANSWER and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    empty = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": " "}]}, headers=auth
    )
    assert empty.status_code == 400 and "Please type a question" in empty.json()["error"]["message"]


def test_health_reports_unreachable_backends(tmp_path: Path) -> None:
    parts = Components(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:9"))
    parts.__dict__["generator"] = OpenAICompatibleGenerator("http://127.0.0.1:9", "m", retries=0)
    checks = component_health(parts)()
    assert checks["qdrant"].startswith("unavailable: Cannot reach Qdrant")
    assert checks["generator"].startswith("unavailable: The vLLM server at http://127.0.0.1:9 cannot connect")
    settings = Settings(data_dir=tmp_path)
    deps = AppDeps(settings, None, ConversationStore(), component_health(parts))  # type: ignore[arg-type]
    r = TestClient(create_app(deps, with_ui=False), base_url="http://localhost").get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "degraded"


def test_conversations_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = ConversationStore(path)
    store.append(
        "slack:C1:1", ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="hello")
    )
    assert store.first_time("e1") and not store.first_time("e1")
    store.close()
    again = ConversationStore(path)
    assert [m.content for m in again.history("slack:C1:1")] == ["hi", "hello"] and not again.first_time("e1")


@pytest.fixture
def withdrawn(ingestor: Ingestor, store: VectorStore, corpus: Path) -> Iterator[ChatService]:
    """A turn whose first sentence passes moderation and whose second is flagged."""
    from guardrails import Guard, SelfReflectionClassifier

    ingestor.ingest_paths([corpus])

    def make() -> ChatService:
        gen = ScriptedGenerator(
            [ANSWER + " Then something hateful."], labels=["safe", "safe", "unsafe", "violent"]
        )
        guard = Guard(SelfReflectionClassifier(gen), chunk_chars=10, first_chars=10)
        return ChatService(
            Retriever(ingestor.embedder, store), gen, TurnSettings(RetrievalSettings(k=2)), guard=guard
        )

    yield make  # type: ignore[misc]


def test_every_door_reports_a_refusal_after_shown_text_as_a_withdrawal(withdrawn, capsys) -> None:
    from bot.cli import _ask
    from bot.markdown import unsafe_text
    from bot.openai_api import CompletionRequest, stream
    from bot.replies import reply_text
    from bot.widget import widget_events
    from tests.doors import web_bubbles

    withdrawn_note = "(The answer above was withdrawn.)"
    web = [unsafe_text(b) for b in web_bubbles(withdrawn(), "What buried Pompeii?", []) if b != "…"]
    assert web[0] == ANSWER and web[-1].startswith("🛡️ " + withdrawn_note)
    rows = [json.loads(r) for r in widget_events(withdrawn(), "What buried Pompeii?", [], readable=DEFAULT)]
    assert rows[-1]["type"] == "refused" and rows[-1]["retracted"]
    assert rows[-1]["message"].startswith(withdrawn_note)
    request = CompletionRequest(messages=[ChatMessage(role="user", content="What buried Pompeii?")])
    sse = [
        json.loads(e[6:]) for e in stream(withdrawn(), request, readable=DEFAULT) if e != "data: [DONE]\n\n"
    ]
    assert sse[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert sse[-1]["moderation"] == {
        "flagged": True,
        "category": "hate",
        "stage": "output",
        "retracted": True,
    }
    assert withdrawn_note in sse[-2]["choices"][0]["delta"]["content"]
    assert reply_text(withdrawn().answer("What buried Pompeii?", readable=DEFAULT)).startswith(
        ":shield: " + withdrawn_note
    )

    class Parts:
        chat_service = staticmethod(withdrawn)

    assert _ask(Parts(), "What buried Pompeii?", DEFAULT) == 3  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert out.startswith(ANSWER) and withdrawn_note in out

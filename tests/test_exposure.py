"""The server in front of strangers: clients that hang up, floods, slow or huge requests, forged
headers, and what anonymous callers may learn. Run against a real uvicorn server over sockets where
the behaviour is the network's (disconnects, slow headers), and through the ASGI app elsewhere."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.admission import Busy, Hangup, TurnQueue
from bot.app import AppDeps, create_app, exposure_problems
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.httpsafe import edit_access, timely_h11
from generation.protocol import ChatMessage
from generation.vllm_server import free_port
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.generators import ScriptedGenerator
from tests.scopes import DEFAULT

ANSWER = "Mount Vesuvius buried Pompeii in 79 [1]. " + "It erupted for two days. " * 20
KEY = "operator-secret"
QUESTION = {"messages": [{"role": "user", "content": "What buried Pompeii?"}]}


class SlowGenerator(ScriptedGenerator):
    """A model that takes `delay_s` per streamed word, and counts the words it was asked for."""

    def __init__(self, delay_s: float = 0.05) -> None:
        super().__init__([])
        self.delay_s = delay_s
        self.words = 0

    def complete(self, messages: Sequence[ChatMessage], **kwargs: object) -> str:  # type: ignore[override]
        return ANSWER

    def stream(self, messages: Sequence[ChatMessage], **kwargs: object) -> Iterator[str]:  # type: ignore[override]
        for word in ANSWER.split(" "):
            time.sleep(self.delay_s)
            self.words += 1
            yield word + " "


@pytest.fixture
def service(ingestor: Ingestor, store: VectorStore, corpus: Path) -> ChatService:
    ingestor.ingest_paths([corpus])
    retriever = Retriever(ingestor.embedder, store)
    queue = TurnQueue(limit=1, max_waiting=50, per_client=0)
    return ChatService(retriever, SlowGenerator(), TurnSettings(RetrievalSettings(k=2)), queue=queue)


def app_for(service: ChatService, tmp_path: Path, **settings: object) -> tuple[AppDeps, Settings]:
    s = Settings(data_dir=tmp_path, widget_tokens="docs.example=site-token", **settings)  # type: ignore[arg-type]
    deps = AppDeps(
        s, service, ConversationStore(s.conversations_path), lambda: {"qdrant": "ok", "generator": "ok"}
    )
    return deps, s


@pytest.fixture
def served(service: ChatService, tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server, as `ragbot serve` runs it (protocol, limits), on a free loopback port."""
    import uvicorn

    deps, s = app_for(service, tmp_path, api_key=KEY, header_timeout_s=1.0)
    port = free_port()
    config = uvicorn.Config(
        create_app(deps, with_ui=False),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=timely_h11(s.header_timeout_s),
        limit_concurrency=s.max_connections,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def raw_post(
    address: str, path: str, body: dict[str, object], headers: dict[str, str] | None = None
) -> socket.socket:
    """Send a POST and return the open socket (the caller reads some of the answer and hangs up)."""
    host, port = address.split(":")
    data = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {address}", "Content-Type: application/json",
            f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]  # fmt: skip
    sock = socket.create_connection((host, int(port)))
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    return sock


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - start


def test_abandoned_streams_free_the_queue_at_once(served: str, service: ChatService) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    streams = [raw_post(served, "/v1/chat/completions", QUESTION | {"stream": True}, auth) for _ in range(10)]
    streams += [
        raw_post(served, "/widget/chat", {"token": "site-token", "message": "What buried Pompeii?"})
        for _ in range(10)
    ]
    wait_until(lambda: service.queue.waiting == 19, 30)  # one answering, nineteen in line
    for sock in streams:
        sock.recv(256)  # the answer (or the wait) has begun
        sock.close()  # the tab is closed
    wait_until(
        lambda: service.queue.running == 0 and service.queue.waiting == 0, 5
    )  # at once (bench/abuse.py)
    words = service.generator.words  # type: ignore[attr-defined]
    time.sleep(0.5)
    assert service.generator.words - words <= 2  # type: ignore[attr-defined]  # generation stopped too
    r = httpx.post(
        f"http://{served}/widget/chat", json={"token": "site-token", "message": "What buried Pompeii?"}
    )
    assert '"type": "queued"' not in r.text  # nobody is ahead of the next visitor


def test_abandoned_plain_calls_free_the_queue_and_health_answers_meanwhile(
    served: str, service: ChatService
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    calls = [raw_post(served, "/v1/chat/completions", QUESTION, auth) for _ in range(20)]
    wait_until(lambda: service.queue.waiting == 19, 30)
    health = httpx.get(f"http://{served}/healthz", timeout=5)  # behind twenty chats, it would time out
    assert health.status_code == 200
    for sock in calls:
        sock.close()
    wait_until(lambda: service.queue.running == 0 and service.queue.waiting == 0, 5)


def test_a_connection_that_never_finishes_its_headers_is_closed(served: str) -> None:
    host, port = served.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # slowloris: never ends
    sock.settimeout(5)
    assert sock.recv(100) == b""  # closed by the server (header_timeout_s=1), before the 5 s timeout
    sock.close()


def test_a_full_line_answers_429_with_retry_after(service: ChatService, tmp_path: Path) -> None:
    service.queue.max_waiting = 1
    busy = service.queue.join()  # answering
    waiting = service.queue.join()  # the only place in line
    deps, _ = app_for(service, tmp_path)
    with TestClient(create_app(deps, with_ui=False), base_url="http://localhost") as client:
        r = client.post("/widget/chat", json={"token": "site-token", "message": "What buried Pompeii?"})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert "busy" in r.json()["detail"]
        v1 = client.post("/v1/chat/completions", json=QUESTION)
        assert v1.status_code == 429
        assert v1.json()["error"]["type"] == "rate_limit_error"
    service.queue.leave(busy)
    service.queue.leave(waiting)


def test_one_client_holds_only_its_share_of_the_line() -> None:
    queue = TurnQueue(limit=1, per_client=2)
    queue.join("203.0.113.7")
    queue.join("203.0.113.7")
    with pytest.raises(Busy):
        queue.join("203.0.113.7")
    assert queue.join("198.51.100.2") == 2  # another asker still gets in line


def test_a_hangup_frees_a_waiting_place_from_another_thread(service: ChatService) -> None:
    busy = service.queue.join()
    hangup = Hangup()
    events = service.turn("What buried Pompeii?", readable=DEFAULT, hangup=hangup)
    assert type(next(events)).__name__ == "Queued"
    assert service.queue.waiting == 1
    threading.Thread(target=hangup.hang_up).start()  # the server's event loop noticed the disconnect
    wait_until(lambda: service.queue.waiting == 0, 2)
    assert list(events) == []  # the turn ends without answering
    service.queue.leave(busy)


# ---- requests: size, shape, keys --------------------------------------------------------------------
@pytest.fixture
def client(service: ChatService, tmp_path: Path) -> Iterator[TestClient]:
    deps, _ = app_for(service, tmp_path, api_key=KEY, max_body_kb=64)
    service.generator.delay_s = 0  # type: ignore[attr-defined]
    with TestClient(create_app(deps, with_ui=False), base_url="http://localhost") as c:
        yield c


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient) -> None:
    huge = b'{"messages": [' + b" " * 200_000 + b"]}"
    r = client.post("/v1/chat/completions", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_the_key_is_checked_before_the_body_is_parsed(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", content=b"not json at all", headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401


def test_the_key_must_come_as_a_bearer_token(client: TestClient) -> None:
    assert (
        client.post("/v1/chat/completions", json=QUESTION, headers={"Authorization": KEY}).status_code == 401
    )


def test_message_count_and_length_are_bounded(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    many = {"messages": [{"role": "user", "content": "hi"}] * 65}
    r = client.post("/v1/chat/completions", json=many, headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    long_history = {"messages": [{"role": "assistant", "content": "x" * 40_000}, *QUESTION["messages"]]}  # type: ignore[dict-item]
    assert client.post("/v1/chat/completions", json=long_history, headers=auth).status_code == 400
    widget = {"token": "site-token", "message": "hi", "history": [{"role": "user", "content": "y" * 40_000}]}
    assert client.post("/widget/chat", json=widget).status_code == 422


def test_sources_and_health_show_no_server_paths_or_backend_errors(
    service: ChatService, tmp_path: Path
) -> None:
    def broken() -> dict[str, str]:
        return {"qdrant": "unavailable: Cannot reach Qdrant at http://10.0.0.5:6333", "generator": "ok"}

    s = Settings(data_dir=tmp_path, widget_tokens="docs.example=site-token")
    service.generator.delay_s = 0  # type: ignore[attr-defined]
    deps = AppDeps(s, service, ConversationStore(s.conversations_path), broken)
    with TestClient(create_app(deps, with_ui=False), base_url="http://localhost") as client:
        health = client.get("/healthz")
        assert health.status_code == 503
        assert "10.0.0.5" not in health.text
        assert health.json()["qdrant"] == "unavailable"
        answer = client.post("/v1/chat/completions", json=QUESTION).json()
        assert answer["sources"][0]["source"] == "volcano.md"
        rows = client.post("/widget/chat", json={"token": "site-token", "message": "What buried Pompeii?"})
        assert str(tmp_path) not in rows.text


# ---- who is local, which names are served, which pages may frame us -----------------------------------
def test_a_rebound_dns_name_is_not_served_on_a_loopback_bind(client: TestClient) -> None:
    r = client.get("/healthz", headers={"Host": "rebind.attacker.example:7860"})
    assert r.status_code == 400
    assert client.get("/healthz", headers={"Host": "127.0.0.1:7860"}).status_code == 200


def test_every_response_forbids_framing_and_remote_loads(client: TestClient) -> None:
    csp = client.get("/healthz").headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp
    assert "img-src 'self' data: blob:" in csp
    assert "form-action 'self'" in csp
    widget = client.get("/widget", params={"token": "site-token"}).headers["content-security-policy"]
    assert "connect-src 'self'" in widget


def test_no_origin_is_granted_cross_site_reads(client: TestClient) -> None:
    r = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options(
        "/v1/chat/completions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers


LOCAL = {"host": "127.0.0.1:7860"}


@pytest.mark.parametrize(
    ("bound", "peer", "headers"),
    [
        ("0.0.0.0", "127.0.0.1", LOCAL),  # bound to every interface: a tunnel or proxy may be anywhere
        ("127.0.0.1", "127.0.0.1", {"host": "rebind.attacker.example:7860"}),  # DNS rebinding
        ("127.0.0.1", "127.0.0.1", LOCAL | {"origin": "https://evil.example"}),  # another site posting
        ("127.0.0.1", "127.0.0.1", LOCAL | {"via": "1.1 proxy"}),
        ("127.0.0.1", "127.0.0.1", LOCAL | {"x-forwarded-host": "bot.example"}),
        ("127.0.0.1", "127.0.0.1", LOCAL | {"x-forwarded-proto": "https"}),
        ("127.0.0.1", "192.0.2.4", LOCAL),
    ],
)
def test_editing_without_a_token_is_refused_unless_plainly_local(
    bound: str, peer: str, headers: dict[str, str]
) -> None:
    assert not edit_access(None, "", peer, headers, bound).allowed


def test_editing_from_this_machine_without_a_token_is_allowed() -> None:
    headers = LOCAL | {"origin": "http://127.0.0.1:7860"}
    assert edit_access(None, "", "127.0.0.1", headers, "127.0.0.1").allowed
    assert edit_access(None, "", "::1", {"host": "localhost:7860"}, "localhost").allowed


def test_with_a_token_only_the_token_counts() -> None:
    assert edit_access("s3cret", "s3cret", "192.0.2.4", {"via": "proxy"}, "0.0.0.0").allowed
    assert not edit_access("s3cret", "", "127.0.0.1", LOCAL, "127.0.0.1").allowed
    assert not edit_access("s3cret", "wrong", "127.0.0.1", LOCAL, "127.0.0.1").allowed


def test_a_signed_in_editor_may_edit_from_this_sites_pages_only() -> None:
    remote = {"host": "bot.example", "x-forwarded-for": "198.51.100.7"}
    assert edit_access("s3cret", "", "192.0.2.4", remote, "0.0.0.0", editor=True).allowed
    own_page = remote | {"origin": "https://bot.example"}
    assert edit_access(None, "", "192.0.2.4", own_page, "0.0.0.0", editor=True).allowed
    other_site = remote | {"origin": "https://evil.example"}
    assert not edit_access("s3cret", "", "192.0.2.4", other_site, "0.0.0.0", editor=True).allowed
    assert not edit_access("s3cret", "", "192.0.2.4", own_page, "0.0.0.0", editor=False).allowed


def test_a_missing_peer_is_not_local() -> None:
    assert not edit_access(None, "", None, LOCAL, "127.0.0.1").allowed


def test_serve_refuses_an_open_api_on_a_public_bind(tmp_path: Path) -> None:
    assert exposure_problems(Settings(data_dir=tmp_path, host="0.0.0.0"))
    assert not exposure_problems(Settings(data_dir=tmp_path, host="0.0.0.0", api_key="k"))
    assert not exposure_problems(Settings(data_dir=tmp_path))

"""Abandoned chats against a real server: does the line empty when the askers hang up, and does
/healthz stay fast meanwhile?

Starts `ragbot serve`'s app (the real default stack from Settings, or with --stand-in a model that
streams a fixed answer slowly, to measure the server alone) on a loopback port under uvicorn as
`serve` configures it, then, from one address:
  1. opens N streaming requests (/v1 with stream, and the widget, alternately), reads the first
     bytes of each, waits a second and closes the sockets;
  2. sends N plain /v1 calls and closes the sockets a second later.
After each phase it records how long until nothing runs or waits in the turn queue. A thread polls
/healthz every 50 ms throughout. Run it twice: with the shipped limits (most requests are told 429
at once) and with --unbounded (every request takes a place, so every place must be given back).

    python -m bench.abuse --stand-in --unbounded -n 200
    python -m bench.abuse -n 200                     # the real default stack (loads the models)
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from bot.app import build_app
from bot.config import Settings
from bot.factory import Components
from bot.httpsafe import timely_h11
from generation.protocol import ChatMessage
from generation.vllm_server import free_port

SAMPLE = Path(__file__).resolve().parents[1] / "bot" / "sample_corpus"
KEY = "bench-key"
QUESTION = "What is reciprocal rank fusion?"


class StandIn:
    """Streams a fixed cited answer at `words_per_s`, like a busy model on a small CPU."""

    name = "stand-in"

    def __init__(self, words_per_s: float = 10.0) -> None:
        self.delay_s = 1.0 / words_per_s

    def complete(self, messages: Sequence[ChatMessage], **_: object) -> str:
        return "Reciprocal rank fusion sums 1/(k + rank) over the lists [1]."

    def stream(self, messages: Sequence[ChatMessage], **_: object) -> Iterator[str]:
        for word in ("Reciprocal rank fusion sums one over k plus rank for each list [1]. " * 10).split(" "):
            time.sleep(self.delay_s)
            yield word + " "

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        return {c: (-0.1 if c in ("safe", "yes") else -5.0) for c in choices}


def post(address: tuple[str, int], path: str, body: dict[str, object], key: str = "") -> socket.socket:
    data = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{address[1]}", "Content-Type: application/json",
            f"Content-Length: {len(data)}"] + ([f"Authorization: Bearer {key}"] if key else [])  # fmt: skip
    sock = socket.create_connection(address, timeout=30)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    return sock


def status_of(sock: socket.socket) -> int:
    first = sock.recv(64).split(b" ", 2)
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


def until_empty(parts: Components, timeout: float = 60.0) -> float:
    queue, start = parts.turn_queue, time.perf_counter()
    while queue.running or queue.waiting:
        if time.perf_counter() - start > timeout:
            return float("inf")
        time.sleep(0.01)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=200, help="abandoned requests per phase")
    parser.add_argument(
        "--stand-in", action="store_true", help="a slow fixed-answer model instead of the real one"
    )
    parser.add_argument("--unbounded", action="store_true", help="no bound on the line, no per-client share")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="ragbot-abuse-"))
    limits = {"max_waiting_turns": 0, "turns_per_client": 0} if args.unbounded else {}
    settings = Settings(data_dir=data, api_key=KEY, widget_tokens=f"bench={KEY}", **limits)  # type: ignore[arg-type]
    parts = Components(settings)
    parts.ingestor.ingest_paths([SAMPLE])
    if args.stand_in:
        parts.__dict__["generator"] = StandIn()
    app = build_app(parts)

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", http=timely_h11(settings.header_timeout_s),
                            limit_concurrency=settings.max_connections, timeout_keep_alive=5)  # fmt: skip
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    address = ("127.0.0.1", port)

    health: list[float] = []
    failures = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal failures
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                health.append(time.perf_counter() - start)
                failures += not ok
                time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    rows = []
    v1 = {"messages": [{"role": "user", "content": QUESTION}]}
    # 1: streams, read a little, then hang up
    socks, statuses = [], []
    for i in range(args.n):
        if i % 2:
            socks.append(post(address, "/widget/chat", {"token": KEY, "message": QUESTION}))
        else:
            socks.append(post(address, "/v1/chat/completions", v1 | {"stream": True}, KEY))
    for sock in socks:
        statuses.append(status_of(sock))
    time.sleep(1.0)  # the streams are open and waiting
    for sock in socks:
        sock.close()
    rows.append(("streams", args.n, statuses.count(429), until_empty(parts)))
    # 2: plain calls, hang up after 0.2 s
    socks = [post(address, "/v1/chat/completions", v1, KEY) for _ in range(args.n)]
    time.sleep(1.0)
    for sock in socks:
        sock.close()
    rows.append(("plain /v1", args.n, "-", until_empty(parts)))
    time.sleep(1.0)
    stop.set()
    poller.join(5)
    server.should_exit = True

    kind = "stand-in model" if args.stand_in else parts.generator.name
    print(f"\n{kind}; limits: {'none' if args.unbounded else 'shipped'} "
          f"(waiting {settings.max_waiting_turns}, per client {settings.turns_per_client}, "
          f"at once {parts.turn_queue.limit})")  # fmt: skip
    print("| phase | abandoned | told 429 | queue empty after (s) |")
    print("|---|---|---|---|")
    for phase, n, busy, took in rows:
        print(f"| {phase} | {n} | {busy} | {took:.2f} |")
    ranked = sorted(health)

    def pct(p: float) -> float:  # nearest rank
        return ranked[min(len(ranked) - 1, max(0, round(p / 100 * len(ranked)) - 1))] * 1000

    print(f"\n/healthz: {len(health)} polls, {failures} not 200; p50 {pct(50):.1f} ms, "
          f"p99 {pct(99):.1f} ms, max {ranked[-1] * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()

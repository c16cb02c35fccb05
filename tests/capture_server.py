"""A local HTTP endpoint that records what the bot sends to Slack's and Discord's APIs.

It stands in for the platforms' public APIs (which tests cannot reach); the bot's own HTTP
clients (slack_sdk's WebClient, httpx) talk to it exactly as they would to the real hosts.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def send_json(handler: BaseHTTPRequestHandler, body: object, status: int = 200) -> None:
    """Write a JSON response from a test HTTP handler."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@dataclass
class Captured:
    method: str
    path: str
    body: dict


@dataclass
class CaptureServer:
    requests: list[Captured] = field(default_factory=list)

    def __enter__(self) -> CaptureServer:
        captured = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                captured.append(Captured(self.command, self.path, body))
                send_json(self, {"ok": True, "id": str(len(captured))})

            do_GET = do_POST = do_PATCH = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

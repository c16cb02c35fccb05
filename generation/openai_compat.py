"""One Generator for every OpenAI-compatible chat server: vLLM by URL, and the embedded llama.cpp engine.

Both servers speak `/v1/chat/completions` with streaming and `top_logprobs`, so one code path
covers streaming, stop strings, retries and label log-probabilities, and the same tests run against
both. Retries with backoff cover a server that is starting or briefly overloaded, only before any
text went out (a retry after that would repeat text to the user); every failure ends as
`GeneratorUnavailable` with a message a user can act on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from generation.protocol import ChatMessage, ContextExceeded, GeneratorUnavailable, match_choices

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class CallStats:
    """What the server reported about one call (llama.cpp sends `timings`, vLLM only `usage`)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    seconds: float = 0.0


class OpenAICompatibleGenerator:
    """A Generator over an OpenAI-compatible HTTP API; `label` names the server in error messages."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        label: str = "vLLM server",
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.label = label
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.retries = retries
        self.backoff = backoff
        self._model = model
        self._local = threading.local()
        self._counted = threading.Lock()
        self.prefilled_tokens = 0  # prompt tokens computed, not found cached, over all calls (benchmarks)

    @property
    def name(self) -> str:
        return self.model

    @property
    def model(self) -> str:
        """The served model; asked of the server once when not configured."""
        if self._model is None:
            data = self._request("GET", "/v1/models").json()
            models = [m["id"] for m in data.get("data", [])]
            if not models:
                raise GeneratorUnavailable(f"The {self.label} at {self.base_url} serves no model.")
            self._model = models[0]
        return self._model

    def last_stats(self) -> CallStats | None:
        """Stats of this thread's last complete or stream call (for benchmarks)."""
        return getattr(self._local, "stats", None)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> str:
        start = time.perf_counter()
        body = self._body(messages, max_tokens, temperature, stop)
        data = self._request("POST", "/v1/chat/completions", json=body).json()
        self._record(data, start)
        return data["choices"][0]["message"].get("content") or ""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        start = time.perf_counter()
        body = self._body(messages, max_tokens, temperature, stop) | {
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        yielded = False
        for attempt in self._attempts():
            try:
                # Leaving this block (the consumer stopped reading) closes the connection, and both
                # llama.cpp and vLLM then abort the request: a refused answer stops costing compute.
                with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
                    self._check(response, attempt)
                    for line in response.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            break
                        data = json.loads(payload)
                        if "error" in data:
                            if _context_exceeded(data["error"]):
                                raise self._too_long(data["error"])
                            raise GeneratorUnavailable(
                                f"The {self.label} failed mid-answer: {_error_text(data['error'])}"
                            )
                        if data.get("usage") or data.get("timings"):
                            self._record(data, start)
                        choices = data.get("choices") or [{}]
                        piece = (choices[0].get("delta") or {}).get("content")
                        if piece:
                            yielded = True
                            yield piece
                    return
            except _Retry:
                continue
            except httpx.HTTPError as exc:
                if yielded or attempt == self.retries:
                    raise self._unavailable(exc) from exc
                log.warning("%s stream failed (%s), retrying", self.label, exc)

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        body = self._body(messages, 1, 0.0, ()) | {"logprobs": True, "top_logprobs": 20}
        data = self._request("POST", "/v1/chat/completions", json=body).json()
        self._count(_stats(data, 0.0))
        content = (data["choices"][0].get("logprobs") or {}).get("content") or []
        if not content:
            raise GeneratorUnavailable(f"The {self.label} returned no log-probabilities.")
        return match_choices(((e["token"], e["logprob"]) for e in content[0]["top_logprobs"]), choices)

    def ping(self) -> None:
        """Raise GeneratorUnavailable unless the server answers now (one quick try, for health checks)."""
        try:
            self._client.get("/v1/models", timeout=3).raise_for_status()
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        self._client.close()

    def _body(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float, stop: Sequence[str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)
        return body

    def _record(self, data: dict[str, Any], start: float) -> None:
        self._local.stats = stats = _stats(data, time.perf_counter() - start)
        self._count(stats)

    def _count(self, stats: CallStats) -> None:
        with self._counted:
            self.prefilled_tokens += max(0, stats.prompt_tokens - stats.cached_tokens)

    def _attempts(self) -> Iterator[int]:
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            yield attempt

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in self._attempts():
            try:
                response = self._client.request(method, path, **kwargs)
                self._check(response, attempt)
                return response
            except _Retry:
                continue
            except httpx.HTTPError as exc:
                if attempt == self.retries:
                    raise self._unavailable(exc) from exc
                log.warning("%s request failed (%s), retrying", self.label, exc)
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, attempt: int) -> None:
        """Raise _Retry for a transient status while attempts remain; GeneratorUnavailable otherwise."""
        if response.status_code < 400:
            return
        if response.status_code in _RETRY_STATUS and attempt < self.retries:
            log.warning("%s answered %s, retrying", self.label, response.status_code)
            raise _Retry
        response.read()
        try:
            error = response.json().get("error", response.text)
        except ValueError:
            error = response.text
        if response.status_code == 400 and _context_exceeded(error):
            raise self._too_long(error)
        raise GeneratorUnavailable(
            f"The {self.label} at {self.base_url} answered {response.status_code}: {_error_text(error)[:300]}"
        )

    def _too_long(self, error: object) -> ContextExceeded:
        return ContextExceeded(
            f"The {self.label}'s context cannot hold this prompt: {_error_text(error)[:300]}"
        )

    def _unavailable(self, exc: httpx.HTTPError) -> GeneratorUnavailable:
        if isinstance(exc, httpx.ConnectError):
            reason = "cannot connect (is the server running?)"
        elif isinstance(exc, httpx.TimeoutException):
            reason = "timed out"
        else:
            reason = f"connection failed ({type(exc).__name__})"
        return GeneratorUnavailable(f"The {self.label} at {self.base_url} {reason}.")


def _stats(data: dict[str, Any], seconds: float) -> CallStats:
    usage = data.get("usage") or {}
    timings = data.get("timings") or {}
    return CallStats(
        prompt_tokens=int(usage.get("prompt_tokens") or timings.get("prompt_n") or 0),
        cached_tokens=int(
            (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or timings.get("cache_n") or 0
        ),
        completion_tokens=int(usage.get("completion_tokens") or timings.get("predicted_n") or 0),
        prefill_tokens_per_s=timings.get("prompt_per_second"),
        decode_tokens_per_s=timings.get("predicted_per_second"),
        seconds=seconds,
    )


def _context_exceeded(error: object) -> bool:
    """llama.cpp names the error's type; vLLM only says it in the message (both 400)."""
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        return True
    text = _error_text(error).lower()
    return "maximum context length" in text or "exceeds the available context size" in text


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class _Retry(Exception):
    """A transient HTTP status: try again after backoff."""

"""A Generator backed by a vLLM server's OpenAI-compatible API, reached by URL.

Only the HTTP API is used, so any OpenAI-compatible server works; retries with backoff cover a
server that is starting or briefly overloaded, and every failure ends as `GeneratorUnavailable`
with a message a user can act on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence

import httpx

from retrieval.generator import ChatMessage, GeneratorUnavailable, match_choices

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class VLLMGenerator:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )
        self.retries = retries
        self.backoff = backoff
        self._model = model

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
                raise GeneratorUnavailable(f"The vLLM server at {self.base_url} serves no model.")
            self._model = models[0]
        return self._model

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        body = self._body(messages, max_tokens, temperature)
        data = self._request("POST", "/v1/chat/completions", json=body).json()
        return data["choices"][0]["message"].get("content") or ""

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        body = self._body(messages, max_tokens, temperature) | {"stream": True}
        yielded = False
        for attempt in self._attempts():
            try:
                with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
                    self._check(response, attempt)
                    for line in response.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            return
                        choices = json.loads(payload).get("choices") or [{}]
                        piece = choices[0].get("delta", {}).get("content")
                        if piece:
                            yielded = True
                            yield piece
                    return
            except _Retry:
                continue
            except httpx.HTTPError as exc:
                # Retrying after text went out would repeat it to the user; only retry before that.
                if yielded or attempt == self.retries:
                    raise self._unavailable(exc) from exc
                log.warning("vLLM stream failed (%s), retrying", exc)

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        body = self._body(messages, 1, 0.0) | {"logprobs": True, "top_logprobs": 20}
        data = self._request("POST", "/v1/chat/completions", json=body).json()
        content = (data["choices"][0].get("logprobs") or {}).get("content") or []
        if not content:
            raise GeneratorUnavailable("The vLLM server returned no log-probabilities.")
        return match_choices(((e["token"], e["logprob"]) for e in content[0]["top_logprobs"]), choices)

    def ping(self) -> None:
        """Raise GeneratorUnavailable unless the server answers now (one quick try, for health checks)."""
        try:
            self._client.get("/v1/models", timeout=3).raise_for_status()
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        self._client.close()

    def _body(self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float) -> dict:
        return {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }

    def _attempts(self) -> Iterator[int]:
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            yield attempt

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
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
                log.warning("vLLM request failed (%s), retrying", exc)
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, attempt: int) -> None:
        """Raise _Retry for a transient status while attempts remain; GeneratorUnavailable otherwise."""
        if response.status_code < 400:
            return
        if response.status_code in _RETRY_STATUS and attempt < self.retries:
            log.warning("vLLM answered %s, retrying", response.status_code)
            raise _Retry
        response.read()
        detail = response.text[:300]
        raise GeneratorUnavailable(
            f"The vLLM server at {self.base_url} answered {response.status_code}: {detail}"
        )

    def _unavailable(self, exc: httpx.HTTPError) -> GeneratorUnavailable:
        if isinstance(exc, httpx.ConnectError):
            reason = "cannot connect (is the server running?)"
        elif isinstance(exc, httpx.TimeoutException):
            reason = "timed out"
        else:
            reason = f"connection failed ({type(exc).__name__})"
        return GeneratorUnavailable(f"The vLLM server at {self.base_url} {reason}.")


class _Retry(Exception):
    """A transient HTTP status: try again after backoff."""

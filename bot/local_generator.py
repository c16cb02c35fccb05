"""Generator implementations. `LocalGenerator` runs a chat model in-process with transformers."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from retrieval.generator import ChatMessage, GeneratorUnavailable, match_choices

# Requests that share at least this many leading tokens with the previous one reuse its KV cache.
_MIN_SHARED_PREFIX = 32


class LocalGenerator:
    """The embedded default: an instruction-tuned causal LM on CPU (or GPU if present), with streaming.

    One generation at a time: a lock serialises callers because a 2-core CPU gains nothing from
    interleaving, and the model's KV cache is not shared across threads.
    """

    def __init__(self, model_dir: str | Path, max_context: int = 2048, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        except (OSError, ValueError) as exc:
            raise GeneratorUnavailable(f"Cannot load the generator model from {model_dir}: {exc}") from exc
        if self.tokenizer.chat_template is None:
            raise GeneratorUnavailable(f"{model_dir} has no chat template: use an instruction-tuned model")
        self.name = Path(model_dir).name
        self.max_context = max_context
        # Re-entrant: the guard scores the answer so far (choice_logprobs) from inside the consumer's
        # loop over stream(), on the same thread that holds the lock for the stream.
        self._lock = threading.RLock()
        self._last_ids: torch.Tensor | None = None
        self._prefix: tuple[torch.Tensor, object] | None = None  # (token ids, their KV cache)

    def _inputs(self, messages: Sequence[ChatMessage], max_tokens: int) -> dict[str, torch.Tensor]:
        enc = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        budget = self.max_context - max_tokens
        if enc["input_ids"].shape[1] > budget:
            # Keep the end: the latest instructions and question matter most. Callers should budget prompts.
            enc = {k: v[:, -budget:] for k, v in enc.items()}
        return {k: v.to(self.model.device) for k, v in enc.items()}

    def _kwargs(self, max_tokens: int, temperature: float) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "max_new_tokens": max_tokens,
            "pad_token_id": self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs |= {"do_sample": True, "temperature": temperature, "top_p": 0.95}
        else:
            kwargs |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return kwargs

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, temperature=temperature))

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        inputs = self._inputs(messages, max_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self._lock:
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        self.model.generate(
                            **inputs, streamer=streamer, **self._kwargs(max_tokens, temperature)
                        )
                except BaseException as exc:  # surfaced to the caller below
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            for piece in streamer:
                if piece:
                    yield piece
            worker.join()
            if errors:
                raise GeneratorUnavailable(f"The local generator failed: {errors[0]}") from errors[0]

    def choice_logprobs(self, messages: Sequence[ChatMessage], choices: Sequence[str]) -> dict[str, float]:
        ids = self._inputs(messages, max_tokens=1)["input_ids"]
        with self._lock, torch.inference_mode():
            logits = self._next_token_logits(ids)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values, indices = torch.topk(logprobs, 50)
        tokens = [self.tokenizer.decode([index]) for index in indices.tolist()]
        return match_choices(zip(tokens, values.tolist(), strict=True), choices)

    def _next_token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits after `ids`, reusing the KV cache of a shared prompt prefix.

        Classification prompts share a long fixed instruction and differ only at the end, so caching
        the common prefix of consecutive requests cuts each one to the cost of its own few tokens.
        """
        if self._prefix is None or not _starts_with(ids, self._prefix[0]):
            self._prefix = None
            shared = _shared_prefix_len(ids, self._last_ids) if self._last_ids is not None else 0
            if shared >= _MIN_SHARED_PREFIX:
                prefix = ids[:, : shared - 1]  # leave at least one token to run below
                out = self.model(input_ids=prefix, use_cache=True)
                self._prefix = (prefix, out.past_key_values)
        self._last_ids = ids
        if self._prefix is None:
            return self.model(input_ids=ids).logits[0, -1]
        prefix, cache = self._prefix
        out = self.model(
            input_ids=ids[:, prefix.shape[1] :], past_key_values=copy.deepcopy(cache), use_cache=True
        )
        return out.logits[0, -1]


def _shared_prefix_len(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.shape[1], b.shape[1])
    differ = (a[0, :n] != b[0, :n]).nonzero()
    return int(differ[0]) if len(differ) else n


def _starts_with(ids: torch.Tensor, prefix: torch.Tensor) -> bool:
    n = prefix.shape[1]
    return ids.shape[1] > n and bool(torch.equal(ids[0, :n], prefix[0]))

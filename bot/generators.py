"""Generator implementations. `LocalGenerator` runs a chat model in-process with transformers."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from retrieval.generator import ChatMessage, GeneratorUnavailable


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
        self._lock = threading.Lock()

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

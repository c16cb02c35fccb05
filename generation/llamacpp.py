"""The embedded generator: llama.cpp's own server, running inside this process.

`xllamacpp` (PyPI, a prebuilt llama.cpp with its C++ server, nothing to compile) loads the GGUF
file as it is (quantised, memory-mapped: no conversion step) and serves the OpenAI chat API on a
loopback port with a per-process key. Its scheduler decodes concurrent requests together in
parallel slots (continuous batching) and reuses cached prompt prefixes, so the guard's label calls
and several chats share the model safely; no Python lock stands between them. The same
`OpenAICompatibleGenerator` that talks to vLLM talks to it.

With `slot_dir`, the prompts cached in its slots (the moderation checks' long fixed prefixes) can be
saved to disk and restored by the next process, so a restart does not prefill them again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path

import httpx

from generation.openai_compat import OpenAICompatibleGenerator
from generation.protocol import GeneratorUnavailable

log = logging.getLogger(__name__)


def default_threads() -> int:
    """One thread per available core: llama.cpp gains nothing from more on a CPU."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LlamaCppEngine:
    """A GGUF model served by llama.cpp inside this process, at `url` (127.0.0.1, random port)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        threads: int | None = None,
        context: int = 8192,
        parallel: int = 4,
        ubatch: int = 1024,
        speculative: str = "none",
        draft_model: str | Path | None = None,
        keep_idle_slots: bool = True,
        prompt_cache_mib: int = 1024,
        slot_dir: Path | None = None,
    ) -> None:
        import xllamacpp

        path = Path(model_path)
        if not path.is_file():
            raise GeneratorUnavailable(f"The model file {path} does not exist.")
        self.name = name or path.stem
        self.model_path = path
        self.parallel = parallel
        self._key = secrets.token_urlsafe(24)  # the loopback port is reachable by other local users
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {self.name}
        params.api_keys = [self._key]
        n = threads or default_threads()
        params.cpuparams.n_threads = n
        params.cpuparams_batch.n_threads = n
        # One KV buffer shared by all slots: a long grounded prompt and many short label calls fit
        # together, instead of each slot getting context/parallel tokens.
        params.n_ctx = context
        params.n_parallel = parallel
        params.kv_unified = True
        # An idle slot keeps its prompt. llama.cpp's default saves every idle slot to a RAM cache at
        # each new request and clears it; a saved prompt is restored only when the new one keeps a
        # quarter of it, which a grounded prompt never does of the last one (they share only the
        # ~115-token system prompt), so every answer re-prefilled the system prompt. Kept, a slot is
        # chosen by shared prefix and reuses it (bench/turn.py: 12% fewer tokens prefilled per turn).
        # Slots still give way when the shared KV buffer needs room.
        params.cache_idle_slots = not keep_idle_slots
        # Prompts pushed out of a slot wait in RAM for reuse (the moderation prefixes, a repeated
        # question); llama.cpp's default of 8 GiB would let a long-running bot grow by that much.
        params.cache_ram_mib = prompt_cache_mib
        # Larger micro-batches prefill faster on a CPU (measured: bench/turn.py, README).
        params.n_batch = max(params.n_batch, ubatch)
        params.n_ubatch = ubatch
        _speculate(params, speculative, draft_model, n)
        self.slot_dir = None if slot_dir is None else slot_dir / _model_key(path, xllamacpp.__version__)
        if self.slot_dir is not None:
            self.slot_dir.mkdir(parents=True, exist_ok=True)
            params.slot_save_path = f"{self.slot_dir}{os.sep}"
            params.endpoint_slots = True
        params.endpoint_metrics = True  # the readiness wait below; over HTTP it needs the key too
        params.verbosity = int(os.environ.get("RAGBOT_LLAMA_VERBOSITY", "0"))
        start = time.perf_counter()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise GeneratorUnavailable(f"llama.cpp could not load {path.name}: {exc}") from exc
        finally:
            # llama.cpp's server installs its own SIGINT/SIGTERM handlers; Ctrl-C must stay Python's.
            if threading.current_thread() is threading.main_thread():
                for sig, handler in saved.items():
                    signal.signal(sig, handler)
        # The constructor returns before the server's main loop starts, and that loop's start clears
        # a stop request made before it: an engine closed in that window never stops (close() then
        # waits for ever; seen in the test suite). A metrics request is answered by the loop itself,
        # so once it returns the loop runs and close() is safe.
        self._server.handle_metrics()
        self.url = self._server.listening_address
        self.load_seconds = time.perf_counter() - start
        log.info(
            "llama.cpp loaded %s in %.1f s at %s (%d threads)", path.name, self.load_seconds, self.url, n
        )

    def generator(self, **kwargs: object) -> OpenAICompatibleGenerator:
        """A Generator talking to this engine (as many as needed: they share the engine's slots)."""
        return OpenAICompatibleGenerator(
            self.url,
            self.name,
            api_key=self._key,
            label="embedded llama.cpp engine",
            **kwargs,  # type: ignore[arg-type]
        )

    def save_slots(self) -> int:
        """Write every idle slot's cached prompt to `slot_dir` (one file per slot); the tokens saved.

        Meant right after the moderation prefixes are warmed, before chats fill the slots. A slot
        busy with a request is skipped. Nothing is raised: a snapshot only saves time.
        """
        if self.slot_dir is None:
            return 0
        saved = 0
        try:
            with self._slots_client() as client:
                for slot in client.get("/slots").raise_for_status().json():
                    if slot.get("is_processing"):
                        continue
                    reply = client.post(
                        f"/slots/{slot['id']}?action=save", json={"filename": _slot_file(slot["id"])}
                    )
                    saved += int(reply.raise_for_status().json().get("n_saved", 0))
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not save llama.cpp's cached prompts: %s", exc)
        return saved

    def restore_slots(self) -> int:
        """Load the cached prompts an earlier process saved for this model file; the tokens restored."""
        if self.slot_dir is None:
            return 0
        restored = 0
        try:
            with self._slots_client() as client:
                for n in range(self.parallel):
                    if not (self.slot_dir / _slot_file(n)).is_file():
                        continue
                    reply = client.post(f"/slots/{n}?action=restore", json={"filename": _slot_file(n)})
                    if reply.is_success:
                        restored += int(reply.json().get("n_restored", 0))
                    else:  # another llama.cpp build's file, say: the prefix is computed as usual
                        log.warning("could not restore slot %d: %s", n, reply.text[:200])
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not restore llama.cpp's cached prompts: %s", exc)
        return restored

    def _slots_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self._key}"}, timeout=60)

    def close(self) -> None:
        """Stop the engine (also happens when the object is collected)."""
        self.__dict__.pop("_server", None)


def _slot_file(slot: int) -> str:
    return f"slot-{slot}.bin"


def _model_key(path: Path, engine_version: str) -> str:
    """A folder name that changes with the weights and the engine build, whose cached keys and values
    are only valid for exactly those."""
    real = path.resolve()
    st = real.stat()
    digest = hashlib.sha256(f"{real}|{st.st_size}|{st.st_mtime_ns}|{engine_version}".encode())
    return f"{path.stem}-{digest.hexdigest()[:12]}"


def _speculate(params: object, kind: str, draft_model: str | Path | None, threads: int) -> None:
    """Speculative decoding: draft tokens by n-gram lookup in the context (grounded answers copy from
    their sources) or with a small draft model of the same tokenizer, then verify them in one batch."""
    import xllamacpp

    spec = params.speculative  # type: ignore[attr-defined]
    if kind == "ngram":
        spec.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
        spec.ngram_simple.size_n = 3
        spec.ngram_simple.size_m = 16
    elif kind == "draft":
        if draft_model is None:
            raise GeneratorUnavailable("Speculative decoding with a draft model needs the draft model file.")
        spec.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        spec.draft.mparams.path = str(draft_model)
        spec.draft.n_max = 8
        spec.draft.cpuparams.n_threads = threads
        spec.draft.cpuparams_batch.n_threads = threads
    elif kind != "none":
        raise ValueError(f"unknown speculative decoding '{kind}' (none, ngram, draft)")

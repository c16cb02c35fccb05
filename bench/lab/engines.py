"""llama.cpp engines on the same GGUF file: xllamacpp (prebuilt wheel) vs llama-cpp-python (built from source).

Prefill and decode tokens per second for one grounded prompt, greedy, 2 threads; load time. Run it
with the interpreter of the environment that has the engine:

    python -m bench.lab.engines --engine xllamacpp
    /path/to/venv-with-llama-cpp-python/bin/python -m bench.lab.engines --engine llama-cpp-python

The prompt is the sample corpus's Multi-Head RAG document and a question, as the bot would send it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "sample_corpus" / "multi-head-rag.md"
DEFAULT_GGUF = Path.home() / ".cache" / "ragbot" / "models" / "qwen2.5-coder-1.5b-instruct.gguf"


def messages(run: int) -> list[dict[str, str]]:
    # A different first line per run, so no run reuses another's prompt cache.
    return [
        {"role": "system", "content": f"Run {run}. Answer from the sources, citing them like [1]."},
        {"role": "user", "content": f"[1] {SAMPLE.read_text()}\n\nHow does MRAG weight the heads?"},
    ]


def with_xllamacpp(
    gguf: Path, threads: int, runs: int, max_tokens: int
) -> tuple[float, list[tuple[float, float]]]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_ctx = 4096
    params.n_ubatch = 1024
    params.n_batch = 2048
    params.verbosity = 0
    start = time.perf_counter()
    server = xllamacpp.Server(params)
    load = time.perf_counter() - start
    out = []
    for run in range(runs):
        body = {"messages": messages(run), "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
        timings = server.handle_chat_completions(body)["timings"]
        out.append((timings["prompt_per_second"], timings["predicted_per_second"]))
    return load, out


def with_llama_cpp_python(
    gguf: Path, threads: int, runs: int, max_tokens: int
) -> tuple[float, list[tuple[float, float]]]:
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(
        str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads, n_batch=1024, verbose=False
    )
    load = time.perf_counter() - start
    out = []
    for run in range(runs):
        llm.reset()
        t0 = time.perf_counter()
        usage = llm.create_chat_completion(messages(run), max_tokens=1, temperature=0)["usage"]
        prefill = usage["prompt_tokens"] / (time.perf_counter() - t0)
        llm.reset()
        first: float | None = None
        n = 0
        stream = llm.create_chat_completion(messages(run), max_tokens=max_tokens, temperature=0, stream=True)
        for chunk in stream:
            if chunk["choices"][0]["delta"].get("content"):
                n += 1
                first = first or time.perf_counter()
        assert first is not None
        out.append((prefill, (n - 1) / (time.perf_counter() - first)))
    return load, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["xllamacpp", "llama-cpp-python"], required=True)
    ap.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    run = with_xllamacpp if args.engine == "xllamacpp" else with_llama_cpp_python
    load, speeds = run(args.gguf, args.threads, args.runs, args.max_tokens)
    prefill = statistics.median(p for p, _ in speeds)
    decode = statistics.median(d for _, d in speeds)
    print(f"{args.engine}: load {load:.1f} s; prefill {prefill:.1f} tok/s; decode {decode:.1f} tok/s "
          f"(median of {args.runs}, {args.threads} threads, {args.gguf.name})")  # fmt: skip


if __name__ == "__main__":
    main()

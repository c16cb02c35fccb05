"""MRAG Wikipedia v1 benchmark (Besta et al. 2024): success ratio per aspect count, per retrieval method.

For a query needing n documents, fetch k = n documents; success ratio = |gold ∩ fetched| / n.
Each article is indexed as one chunk (as in the paper), so chunk ranks are document ranks.
Multi-query rows use the dataset's own `fusion` sub-questions (written by the paper authors' LLM, the
RAG-Fusion setting), fused with reciprocal rank fusion. `--live-rewrites 2,3` adds rows where ragbot's
own generator writes m rewrites per query (`QueryRewriter.expand`, what `RAGBOT_N_QUERIES=m` does in a
turn), fused the same way on the default `fusion` method; rewrites are cached per model and m, so a
rerun only retrieves.

    python -m bench.mrag [--store DIR] [--limit N] [--live-rewrites 2,3]
"""

from __future__ import annotations

import argparse
import bz2
import json
import re
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._common import EVALDATA, SCOPE, CachedEmbedder, build_index, table
from bot.config import Settings
from bot.factory import Components
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.rewrite import QueryRewriter
from retrieval.types import Document, Method

ANCHORS = {"dense": 0.17, "mrag (heads only)": 0.30, "bm25": 0.29, "multi-query+mrag (heads only)": 0.48}


def fusion_queries(query: dict) -> list[str]:
    subs = [re.sub(r'^\s*\d+[.)]\s*|"', "", s).strip() for s in query.get("fusion", [])]
    return [query["text"], *[s for s in subs if s]]


def live_rewrites(texts: list[str], m: int, workers: int) -> tuple[dict[str, list[str]], list[float]]:
    """ragbot's own m rewrites of each text (cached per model and m) and the seconds each new one took."""
    parts = Components(Settings(data_dir=Path(tempfile.mkdtemp(prefix="mrag-live-"))))
    generator = parts.generator
    cache = Path.home() / ".cache" / "ragbot" / "bench-mrag-rewrites" / f"{generator.name}-m{m}.json"
    done: dict[str, list[str]] = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [t for t in dict.fromkeys(texts) if t not in done]
    rewriter = QueryRewriter(generator)
    seconds: list[float] = []
    lock = threading.Lock()

    def expand(text: str) -> None:
        start = time.perf_counter()
        out = rewriter.expand(text, m)
        with lock:
            seconds.append(time.perf_counter() - start)
            done[text] = out
            if len(seconds) % 25 == 0:
                print(f"  m={m}: {len(seconds)}/{len(todo)} rewritten", flush=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(expand, todo))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(done, indent=0))
    del parts
    return done, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=EVALDATA / "mrag")
    ap.add_argument("--store", type=Path, default=None, help="reuse an index directory between runs")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each aspect count")
    ap.add_argument(
        "--embedder", default=None, help="encoder directory (default: the packaged all-MiniLM-L6-v2)"
    )
    ap.add_argument(
        "--live-rewrites", default="", help="m values (e.g. 2,3): rows with ragbot's own rewrites"
    )
    ap.add_argument("--workers", type=int, default=4, help="rewrites in flight (batched by the engine)")
    args = ap.parse_args()

    with bz2.open(args.data / "wikipedia_articles_v1.json.bz2") as f:
        articles = json.load(f)
    with bz2.open(args.data / "wikipedia_queries_v1.json.bz2") as f:
        queries = json.load(f)
    if args.limit:
        per: dict[int, int] = defaultdict(int)
        kept = []
        for q in queries:
            if per[len(q["topics"])] < args.limit:
                per[len(q["topics"])] += 1
                kept.append(q)
        queries = kept
    docs = [Document(source=f"mrag://{a['title']}", title=a["title"], text=a["text"]) for a in articles]
    embedder = MultiHeadEmbedder(args.embedder)
    store_path = args.store or Path(tempfile.mkdtemp(prefix="mrag-"))
    store, _ = build_index(
        docs,
        store_path,
        f"mrag_wiki_v1_{embedder.model_name}".replace("-", "_").lower(),
        chunk_size=100_000,
        embedder=embedder,
    )
    retriever = Retriever(CachedEmbedder(embedder), store)  # type: ignore[arg-type]
    titles = {c.id: c.title for c in store.chunks(store.ids()).values()}

    # The queries each row searches for one dataset query: its text, the dataset's sub-questions, or
    # ragbot's own rewrites.
    Queries = Callable[[dict], list[str]]
    plain: Queries = lambda q: [q["text"]]  # noqa: E731
    # (row, method, queries, weight of the pooled vector as an extra MRAG voter; 0 = paper's heads only)
    methods: list[tuple[str, Method, Queries, float]] = [
        ("dense", Method.DENSE, plain, 0.0),
        ("mrag (heads only)", Method.MRAG, plain, 0.0),
        ("mrag (heads + full)", Method.MRAG, plain, 0.5),
        ("bm25", Method.BM25, plain, 0.0),
        ("hybrid", Method.HYBRID, plain, 0.0),
        ("mrag-hybrid", Method.MRAG_HYBRID, plain, 0.5),
        ("fusion (the default)", Method.FUSION, plain, 0.5),
    ]
    # The same methods on the dataset's sub-questions (bm25 and hybrid have no multi-query row).
    methods += [
        (f"multi-query+{name.removesuffix(' (the default)')}", method, fusion_queries, full_vote)
        for name, method, _, full_vote in list(methods)
        if method not in (Method.BM25, Method.HYBRID)
    ]
    costs: list[str] = []
    for m in [int(x) for x in args.live_rewrites.split(",") if x.strip()]:
        rewrites, seconds = live_rewrites([q["text"] for q in queries], m, args.workers)
        if seconds:
            costs.append(
                f"m={m}: {statistics.median(seconds):.1f} s per rewrite call p50 ({args.workers} in flight), "
                f"{len(seconds)} calls"
            )
        n_written = statistics.mean(len(rewrites[q["text"]]) - 1 for q in queries)
        costs.append(f"m={m}: {n_written:.2f} usable rewrites per query on average")
        live: Queries = lambda q, r=rewrites: r[q["text"]]  # noqa: E731
        methods.append((f"live multi-query m={m}+fusion", Method.FUSION, live, 0.5))
    success: dict[str, dict[int, list[float]]] = {m[0]: defaultdict(list) for m in methods}
    for q in queries:
        gold = set(q["topics"])
        k = len(gold)
        for name, method, queries_of, full_vote in methods:
            texts = queries_of(q)
            ranked = retriever.rank(texts, RetrievalSettings(k=k, method=method, full_vote=full_vote), SCOPE)
            found = {titles[i] for i, _ in ranked}
            success[name][k].append(len(gold & found) / k)

    aspects = sorted({len(q["topics"]) for q in queries})
    rows = []
    for name, *_ in methods:
        per_aspect = [statistics.mean(success[name][a]) for a in aspects]
        overall = statistics.mean(x for a in aspects for x in success[name][a])
        rows.append([name, *per_aspect, overall, ANCHORS.get(name, "")])
    print(f"\nMRAG Wikipedia v1: {len(docs)} documents, {len(queries)} queries; success ratio at k = aspects")
    print(table(["method", *[f"{a}" for a in aspects], "mean", "paper @10"], rows))
    for line in costs:
        print(line)


if __name__ == "__main__":
    main()

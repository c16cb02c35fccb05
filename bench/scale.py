"""Ingest throughput and the embedded store at scale (default 100k chunks), per store engine.

1. Ingest, end to end (read → chunk → embed → BM25 → upsert) with the default embedder on
   `--ingest-docs` real SciFact abstracts at the default 200-token chunks, with where the time goes.
2. A collection of `--points` chunks per engine (`--engines edge,local`): upsert rate (embedding
   excluded), reopen in a new process (time to the first answer), RSS, and query latency p50/p95 per
   method. The collection holds real SciFact embeddings replicated with small Gaussian noise
   (re-normalised) and the abstracts' texts for BM25, because embedding 100k chunks on 2 cores
   takes hours. Query latency is the store and fusion alone (query vectors embedded beforehand);
   the embedding of a query is timed separately. Built collections are cached under CACHE/indexes.

    python -m bench.scale [--points 100000] [--engines edge,local] [--queries 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import CACHE, EVALDATA, SCOPE, CachedEmbedder, table
from bench.metrics import percentile
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder, MultiHeadEmbeddings
from retrieval.importance import unit
from retrieval.ingest import Ingestor, refresh_importance
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.sparse import BM25Encoder
from retrieval.store import FULL, Search, VectorStore, head_name
from retrieval.types import DEFAULT_KB, Chunk, Document, Method

METHODS = (Method.DENSE, Method.BM25, Method.HYBRID, Method.MRAG, Method.MRAG_HYBRID, Method.FUSION)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Timed:
    """Wraps an embedder and accumulates the seconds spent embedding."""

    def __init__(self, inner: MultiHeadEmbedder) -> None:
        self.inner, self.seconds = inner, 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def embed(self, texts: list[str], *, query: bool = False) -> MultiHeadEmbeddings:
        t0 = time.perf_counter()
        try:
            return self.inner.embed(texts, query=query)
        finally:
            self.seconds += time.perf_counter() - t0


def ingest_throughput(embedder: MultiHeadEmbedder, docs: list[Document]) -> None:
    store = VectorStore("ingest", path=Path(tempfile.mkdtemp(prefix="ingest-")))
    timed = Timed(embedder)
    chunker = Chunker(embedder.tokenizer, 200, 30)
    ingestor = Ingestor(timed, chunker, store, progress=False)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    report = ingestor.ingest_documents(docs)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    chunks = [c for d in docs for c in chunker.split(d)]
    chunk_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm25 = BM25Encoder()
    for c in chunks:
        bm25.encode_document(c.text)
    bm25_s = time.perf_counter() - t0
    n = report.chunks_added
    print(
        f"ingest, end to end: {n} chunks of {len(docs)} documents in {total:.1f} s = {n / total:.1f} chunks/s "
        f"(embedding {timed.seconds:.1f} s = {n / timed.seconds:.1f} chunks/s; chunking {chunk_s:.1f} s; "
        f"BM25 {bm25_s:.1f} s; store and the rest {total - timed.seconds - chunk_s - bm25_s:.1f} s)",
        flush=True,
    )
    store.drop()
    store.close()


def build(path: Path, engine: str, points: int, base: MultiHeadEmbeddings, texts: list[str]) -> float:
    """Fill a collection of `points` chunks; returns upsert points/s (vectors prepared beforehand)."""
    store = VectorStore("scale", path=path, engine=engine)  # type: ignore[arg-type]
    n_heads, head_dim = base.heads.shape[1:]
    store.ensure_collection(base.full.shape[1], n_heads, head_dim, "scale")
    bm25 = BM25Encoder()
    store.ensure_kb(DEFAULT_KB)
    store.update_kb(DEFAULT_KB, bm25_avg_len=bm25.avg_len)
    sparse_of = [bm25.encode_document(t) for t in texts]
    rng = np.random.default_rng(0)
    spent, written, batch = 0.0, 0, 1024
    while written < points:
        n = min(batch, points - written)
        idx = np.arange(written, written + n) % len(texts)
        full = base.full[idx] + rng.normal(scale=0.02, size=(n, base.full.shape[1])).astype(np.float32)
        full /= np.linalg.norm(full, axis=1, keepdims=True)
        noise = rng.normal(scale=0.05, size=(n, n_heads, head_dim)).astype(np.float32)
        heads = base.heads[idx] * (1 + noise)
        chunks = [
            Chunk(
                id=f"00000000-0000-4000-8000-{written + i:012d}",
                source=f"syn://{written + i}",
                title="",
                text=texts[j],
                position=0,
            )
            for i, j in enumerate(idx)
        ]
        sparse = [sparse_of[j] for j in idx]
        t0 = time.perf_counter()
        store.upsert(chunks, MultiHeadEmbeddings(full, heads), sparse, ["x"] * n, batch_size=256)
        spent += time.perf_counter() - t0
        written += n
    refresh_importance(store, DEFAULT_KB)
    store.close()
    return points / spent


REOPEN = """
import sys, time, json
t0 = time.perf_counter()
from retrieval.store import VectorStore, Search, FULL
from retrieval.types import Scope
import numpy as np
t1 = time.perf_counter()
store = VectorStore("scale", path={path!r}, engine={engine!r})
store.search_batch([Search(FULL, np.ones({dim}, dtype=np.float32), 5)], Scope.of("default"))
t2 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "open_and_first_query": t2 - t1, "count": store.count()}}))
"""


def reopen(path: Path, engine: str, dim: int) -> dict:
    code = REOPEN.format(path=str(path), engine=engine, dim=dim)
    root = Path(__file__).resolve().parents[1]  # `-c` code imports from its working folder
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--engines", default="edge,local")
    ap.add_argument("--ingest-docs", type=int, default=500, help="0 skips the ingest measurement")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--local-queries", type=int, default=10, help="queries for local mode (seconds each)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild cached collections")
    ap.add_argument("--data", type=Path, default=EVALDATA / "beir_scifact")
    args = ap.parse_args()

    with (args.data / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f]
    with (args.data / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line in f][: args.queries]
    embedder = MultiHeadEmbedder()
    docs = [Document(source=f"scifact://{d['_id']}", title=d["title"], text=d["text"]) for d in corpus]
    if args.ingest_docs:
        ingest_throughput(embedder, docs[: args.ingest_docs])

    texts = [d.text for d in docs[:512]]
    base = embedder.embed(texts)
    cached = CachedEmbedder(embedder)
    t0 = time.perf_counter()
    for q in queries:
        embedder.embed([q])
    embed_ms = (time.perf_counter() - t0) / len(queries) * 1000
    cached.embed(queries)

    rows = []
    for engine in args.engines.split(","):
        path = CACHE / "indexes" / f"scale-{args.points}-{engine}"
        built = (path / "built").exists() and not args.rebuild
        upsert_rate = float("nan")
        if not built:
            for child in (path / "edge", path / "collection"):
                if child.exists():
                    shutil.rmtree(child)
            path.mkdir(parents=True, exist_ok=True)
            upsert_rate = build(path, engine, args.points, base, texts)
            (path / "built").write_text(f"{upsert_rate:.0f}")
        else:
            upsert_rate = float((path / "built").read_text())
        opened = reopen(path, engine, base.full.shape[1])
        before = rss_mb()
        store = VectorStore("scale", path=path, engine=engine)  # type: ignore[arg-type]
        retriever = Retriever(cached, store)  # type: ignore[arg-type]
        n_q = args.queries if engine == "edge" else min(args.queries, args.local_queries)
        row_lat: dict[str, tuple[float, float]] = {}
        emb = cached.embed(queries[:n_q])
        lat = []
        for i in range(n_q):  # the raw 13-vector batch: MRAG's per-head searches plus `full`
            uh = unit(emb.heads[i])
            searches = [Search(FULL, emb.full[i], 10)] + [
                Search(head_name(h), uh[h], 10) for h in range(uh.shape[0])
            ]
            t0 = time.perf_counter()
            store.search_batch(searches, SCOPE)
            lat.append(time.perf_counter() - t0)
        row_lat["13 named vectors, one batch"] = (percentile(lat, 50), percentile(lat, 95))
        for method in METHODS:
            lat = []
            for q in queries[:n_q]:
                t0 = time.perf_counter()
                retriever.rank([q], RetrievalSettings(k=5, method=method), SCOPE)
                lat.append(time.perf_counter() - t0)
            row_lat[method.value] = (percentile(lat, 50), percentile(lat, 95))
        rss = rss_mb() - before
        count = store.count()
        store.close()
        print(
            f"\n{engine}: {count:,} points; upsert {upsert_rate:,.0f} points/s; reopen in a new process "
            f"{opened['open_and_first_query']:.2f} s to the first answer (+{opened['imports']:.1f} s imports); "
            f"RSS +{rss:,.0f} MB; {n_q} queries",
            flush=True,
        )
        for name, (p50, p95) in row_lat.items():
            rows.append([engine, name, f"{p50 * 1000:.1f}", f"{p95 * 1000:.1f}"])
    print(
        f"\nquery latency at {args.points:,} chunks, k=5 (store + fusion; query embedding {embed_ms:.0f} ms each, not included):"
    )
    print(table(["engine", "query", "p50 ms", "p95 ms"], rows))


if __name__ == "__main__":
    main()

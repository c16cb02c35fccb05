"""Ingest throughput and query latency at scale (default 100k chunks) on the embedded store.

Two parts, because on a 2-core CPU embedding 100k chunks alone takes hours:
1. Ingest throughput, end to end (load → chunk → embed → BM25 → upsert), on `--ingest-docs` real
   SciFact abstracts, plus the embed-only and upsert-only rates.
2. Query latency p50/p95 per method at `--points` chunks. The collection is filled with real
   embeddings of the SciFact corpus, replicated with small Gaussian noise (re-normalised) to reach
   the size; texts are replicated for BM25. Latency includes embedding the query.

    python bench/scale.py [--points 100000] [--memory] [--queries 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import EVALDATA, build_index, percentile, table

from retrieval.embedder import MultiHeadEmbedder, MultiHeadEmbeddings
from retrieval.ingest import refresh_importance
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.sparse import BM25Encoder
from retrieval.store import VectorStore
from retrieval.types import Chunk, Document, Method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--ingest-docs", type=int, default=500)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--memory", action="store_true", help="Qdrant local mode in memory instead of on disk")
    ap.add_argument("--data", type=Path, default=EVALDATA / "beir_scifact")
    args = ap.parse_args()

    with (args.data / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f]
    with (args.data / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line in f][: args.queries]
    embedder = MultiHeadEmbedder()

    # 1. end-to-end ingest throughput on real documents (chunked at the default 200 tokens)
    docs = [Document(source=f"scifact://{d['_id']}", title=d["title"], text=d["text"]) for d in corpus]
    _, e2e_rate = build_index(docs[: args.ingest_docs], Path(tempfile.mkdtemp()), "ingest", 200, embedder)
    texts = [d.text for d in docs[:256]]
    t0 = time.perf_counter()
    base = embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - t0)

    # 2. a collection of --points chunks
    location = ":memory:" if args.memory else tempfile.mkdtemp(prefix="scale-")
    store = VectorStore("scale", path=location)
    store.ensure_collection(embedder.dim, embedder.n_heads, embedder.head_dim, embedder.model_name)
    bm25 = BM25Encoder()
    rng = np.random.default_rng(0)
    t0, written = time.perf_counter(), 0
    batch = 1024
    while written < args.points:
        n = min(batch, args.points - written)
        idx = np.arange(written, written + n) % len(texts)
        full = base.full[idx] + rng.normal(scale=0.02, size=(n, base.full.shape[1])).astype(np.float32)
        full /= np.linalg.norm(full, axis=1, keepdims=True)
        heads = base.heads[idx] * (1 + rng.normal(scale=0.05, size=(n, *base.heads.shape[1:]))).astype(
            np.float32
        )
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
        store.upsert(
            chunks,
            MultiHeadEmbeddings(full, heads),
            [bm25.encode_document(c.text) for c in chunks],
            ["x"] * n,
            batch_size=batch,
        )
        written += n
    upsert_rate = args.points / (time.perf_counter() - t0)
    refresh_importance(store)

    retriever = Retriever(embedder, store)
    rows = []
    for method in (Method.DENSE, Method.MRAG, Method.BM25, Method.MRAG_HYBRID):
        latency = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.rank([q], RetrievalSettings(k=5, method=method))
            latency.append(time.perf_counter() - t0)
        rows.append(
            [method.value, f"{percentile(latency, 50) * 1000:.0f}", f"{percentile(latency, 95) * 1000:.0f}"]
        )
    mode = "in memory" if args.memory else "on disk"
    print(
        f"\ningest, end to end: {e2e_rate:.1f} chunks/s; embedding alone {embed_rate:.1f} chunks/s; "
        f"upsert alone ({mode}, 13 named vectors + sparse) {upsert_rate:.0f} points/s"
    )
    print(
        f"query latency at {store.count():,} chunks, Qdrant local mode {mode}, k=5, {len(queries)} queries:"
    )
    print(table(["method", "p50 ms", "p95 ms"], rows))


if __name__ == "__main__":
    main()

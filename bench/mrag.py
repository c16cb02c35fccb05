"""MRAG Wikipedia v1 benchmark (Besta et al. 2024): success ratio per aspect count, per retrieval method.

For a query needing n documents, fetch k = n documents; success ratio = |gold ∩ fetched| / n.
Each article is indexed as one chunk (as in the paper), so chunk ranks are document ranks.
Multi-query rows use the dataset's own `fusion` sub-questions (written by the paper authors' LLM, the
RAG-Fusion setting), fused with reciprocal rank fusion; `--live-rewrites N` instead asks ragbot's
generator for rewrites on the first N queries (slow on CPU).

    python bench/mrag.py [--store DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import bz2
import json
import re
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import EVALDATA, CachedEmbedder, build_index, table

from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.types import Document, Method

ANCHORS = {"dense": 0.17, "mrag (heads only)": 0.30, "bm25": 0.29, "multi-query+mrag (heads only)": 0.48}


def fusion_queries(query: dict) -> list[str]:
    subs = [re.sub(r'^\s*\d+[.)]\s*|"', "", s).strip() for s in query.get("fusion", [])]
    return [query["text"], *[s for s in subs if s]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=EVALDATA / "mrag")
    ap.add_argument("--store", type=Path, default=None, help="reuse an index directory between runs")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each aspect count")
    ap.add_argument(
        "--embedder", default=None, help="encoder directory (default: the packaged all-MiniLM-L6-v2)"
    )
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

    # (row, method, multi-query?, weight of the pooled vector as an extra MRAG voter; 0 = paper's heads only)
    methods: list[tuple[str, Method, bool, float]] = [
        ("dense", Method.DENSE, False, 0.0),
        ("mrag (heads only)", Method.MRAG, False, 0.0),
        ("mrag (heads + full)", Method.MRAG, False, 0.5),
        ("bm25", Method.BM25, False, 0.0),
        ("hybrid", Method.HYBRID, False, 0.0),
        ("mrag-hybrid", Method.MRAG_HYBRID, False, 0.5),
        ("multi-query+dense", Method.DENSE, True, 0.0),
        ("multi-query+mrag (heads only)", Method.MRAG, True, 0.0),
        ("multi-query+mrag (heads + full)", Method.MRAG, True, 0.5),
        ("multi-query+mrag-hybrid", Method.MRAG_HYBRID, True, 0.5),
    ]
    success: dict[str, dict[int, list[float]]] = {m[0]: defaultdict(list) for m in methods}
    for q in queries:
        gold = set(q["topics"])
        k = len(gold)
        for name, method, multi, full_vote in methods:
            texts = fusion_queries(q) if multi else [q["text"]]
            ranked = retriever.rank(texts, RetrievalSettings(k=k, method=method, full_vote=full_vote))
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


if __name__ == "__main__":
    main()

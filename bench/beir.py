"""BEIR SciFact (test split): nDCG@10 and recall@100 per retrieval method.

Each abstract is indexed as one chunk (title + text; the embedder reads its first 256 tokens, BM25
reads all of it). Published anchors: BM25 0.687, all-MiniLM-L6-v2 0.645, bge-small-en-v1.5 0.713.
`--multi-query N` adds multi-query rows using ragbot's local generator on the first N queries (slow on CPU).

    python -m bench.beir [--store DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from bench._common import EVALDATA, SCOPE, CachedEmbedder, build_index, table
from bench.metrics import ndcg_at
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.types import Document, Method

ANCHORS = {"dense": 0.645, "bm25": 0.687}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=EVALDATA / "beir_scifact")
    ap.add_argument("--store", type=Path, default=None, help="reuse an index directory between runs")
    ap.add_argument("--limit", type=int, default=0, help="only the first N test queries")
    ap.add_argument("--multi-query", type=int, default=0, help="multi-query rows on the first N queries")
    ap.add_argument(
        "--embedder", default=None, help="encoder directory (default: the packaged all-MiniLM-L6-v2)"
    )
    args = ap.parse_args()

    with (args.data / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f]
    with (args.data / "queries.jsonl").open() as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (args.data / "qrels" / "test.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    test_ids = sorted(qrels, key=int)[: args.limit or None]

    docs = [
        Document(source=f"scifact://{d['_id']}", title=d["title"], text=f"{d['title']}\n{d['text']}")
        for d in corpus
    ]
    embedder = MultiHeadEmbedder(args.embedder)
    store, ingest_rate = build_index(
        docs,
        args.store or Path(tempfile.mkdtemp(prefix="scifact-")),
        f"beir_scifact_{embedder.model_name}".replace("-", "_").lower(),
        100_000,
        embedder,
    )
    retriever = Retriever(CachedEmbedder(embedder), store)  # type: ignore[arg-type]
    doc_of = {cid: c.source.removeprefix("scifact://") for cid, c in store.chunks(store.ids()).items()}

    methods = [
        ("dense", Method.DENSE, 0.0),
        ("mrag (heads only)", Method.MRAG, 0.0),
        ("mrag (heads + full)", Method.MRAG, 0.5),
        ("bm25", Method.BM25, 0.0),
        ("hybrid", Method.HYBRID, 0.0),
        ("mrag-hybrid", Method.MRAG_HYBRID, 0.5),
    ]
    rows = []
    for name, method, full_vote in methods:
        ndcg, recall = [], []
        for qid in test_ids:
            settings = RetrievalSettings(k=100, method=method, full_vote=full_vote)
            ranked = [doc_of[i] for i, _ in retriever.rank([queries[qid]], settings, SCOPE)]
            ndcg.append(ndcg_at(ranked, qrels[qid], 10))
            recall.append(len(set(ranked) & set(qrels[qid])) / len(qrels[qid]))
        rows.append(
            [
                name,
                statistics.mean(ndcg),
                statistics.mean(recall),
                ANCHORS.get(name, ""),
            ]
        )
    if args.multi_query:
        rows += multi_query_rows(retriever, doc_of, queries, qrels, test_ids[: args.multi_query])
    built = f"index built at {ingest_rate:.1f} chunks/s" if ingest_rate == ingest_rate else "index reused"
    print(f"\nBEIR SciFact test: {len(docs)} documents, {len(test_ids)} queries ({built})")
    print(table(["method", "nDCG@10", "R@100", "published nDCG@10"], rows))


def multi_query_rows(
    retriever: Retriever, doc_of: dict[str, str], queries: dict, qrels: dict, ids: list[str]
) -> list[list[object]]:
    from bot.config import Settings
    from bot.factory import Components
    from retrieval.rewrite import QueryRewriter

    rewriter = QueryRewriter(Components(Settings()).generator)  # the bot's own generator
    rewrites = {qid: rewriter.expand(queries[qid], 3) for qid in ids}
    rows = []
    for method in (Method.DENSE, Method.MRAG_HYBRID):
        for label, texts_of in (("single", lambda q: [queries[q]]), ("multi-query", lambda q: rewrites[q])):
            scores = [
                ndcg_at(
                    [
                        doc_of[i]
                        for i, _ in retriever.rank(
                            texts_of(q), RetrievalSettings(k=100, method=method), SCOPE
                        )
                    ],
                    qrels[q],
                    10,
                )
                for q in ids
            ]
            rows.append([f"{label}+{method.value} (first {len(ids)})", statistics.mean(scores), "", ""])
    return rows


if __name__ == "__main__":
    main()

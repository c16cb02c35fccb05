"""The fusion methods through the real Retriever and edge store, to check bench/tune.py's offline figures.

bench/tune.py scores methods on cached leg lists; this runs `Retriever.rank` itself on the cached
indexes (bench/legs.py builds them) with the disk-cached embedder, and scores it the same way:
MRAG sets by the success ratio over the first n distinct documents (also at the most aspects), BEIR by nDCG@10.

    python -m bench.verify [--sets wiki-v1,scifact] [--methods fusion,bm25,hybrid]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench import evalsets
from bench._common import SCOPE, DiskCachedEmbedder, table
from bench.legs import index_for
from bench.metrics import ndcg_at
from retrieval.embedder import MultiHeadEmbedder
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.types import Method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--sets", default="wiki-v1,scifact")
    ap.add_argument("--methods", default="fusion,bm25,hybrid,mrag-hybrid")
    args = ap.parse_args()
    embedder = DiskCachedEmbedder(MultiHeadEmbedder(args.embedder))
    methods = [Method(m) for m in args.methods.split(",")]
    rows = []
    for name in args.sets.split(","):
        data = evalsets.load(name)
        store = index_for(data, embedder)
        retriever = Retriever(embedder, store)  # type: ignore[arg-type]
        source = {r.id: str(r.payload["source"]) for r in store.scroll(fields=["source"])}
        for method in methods:
            t0, scores, top = time.perf_counter(), [], []
            for q in data.queries:
                ranked = retriever.rank([q.text], RetrievalSettings(k=100, method=method), SCOPE)
                docs = list(dict.fromkeys(source[i] for i, _ in ranked))
                if data.kind == "beir":
                    scores.append(ndcg_at(docs, q.gold, 10))
                else:
                    scores.append(len(set(docs[: q.aspects]) & set(q.gold)) / q.aspects)
                    if q.aspects == max(x.aspects for x in data.queries):
                        top.append(scores[-1])
            took = (time.perf_counter() - t0) / len(data.queries) * 1000
            most = f"{statistics.mean(top):.3f}" if top else ""
            rows.append([name, method.value, f"{statistics.mean(scores):.3f}", most, f"{took:.0f}"])
            print(rows[-1], flush=True)
        store.close()
    print(table(["set", "method", "score", "most aspects", "ms/query"], rows))


if __name__ == "__main__":
    main()

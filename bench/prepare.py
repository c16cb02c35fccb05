"""Embed every evaluation set once (documents as chunked for ingest, and queries) into the disk cache.

The benchmarks then build indexes and compare methods without a forward pass over the corpora.

    python -m bench.prepare [--embedder DIR] [--sets wiki-v1,scifact,...]
"""

from __future__ import annotations

import argparse
import time

from bench import evalsets
from bench._common import DiskCachedEmbedder
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default=None, help="encoder directory (default: packaged all-MiniLM-L6-v2)")
    ap.add_argument("--sets", default=",".join(evalsets.ALL))
    args = ap.parse_args()
    embedder = DiskCachedEmbedder(MultiHeadEmbedder(args.embedder))
    for name in args.sets.split(","):
        data = evalsets.load(name)
        chunker = Chunker(embedder.tokenizer, data.chunk_size, min(30, data.chunk_size // 5))
        texts = [c.text for d in data.docs for c in chunker.split(d)]
        texts += [q.text for q in data.queries] + [s for q in data.queries for s in q.fusion]
        start, before = time.perf_counter(), embedder.embedded
        embedder.embed(texts)
        n = embedder.embedded - before
        took = time.perf_counter() - start
        print(
            f"{name}: {len(texts)} texts, {n} embedded in {took:.0f} s ({n / max(took, 1e-9):.1f}/s)",
            flush=True,
        )


if __name__ == "__main__":
    main()

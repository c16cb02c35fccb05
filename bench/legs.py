"""Every retrieval leg's ranked list for every query of an evaluation set, computed once and cached.

A leg is one search: BM25, the pooled `full` vector, or one attention head, for the whole query or
for one piece of it (long queries are also cut into pieces of W tokens). With the legs on disk,
fusion rules and weights are compared offline in milliseconds (bench/tune.py) with the same
functions the retriever uses. Indexes are built through the real ingest path into the edge engine
and cached under CACHE/indexes; embeddings come from the disk cache (bench/prepare.py).

    python -m bench.legs [--embedder DIR] [--sets ...] [--windows 64,128]
"""

from __future__ import annotations

import argparse
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import evalsets
from bench._common import CACHE, SCOPE, DiskCachedEmbedder
from retrieval.chunking import Chunker, QuerySplitter
from retrieval.embedder import MultiHeadEmbedder
from retrieval.importance import unit
from retrieval.ingest import Ingestor
from retrieval.sparse import BM25Encoder
from retrieval.store import FULL, SPARSE, Search, VectorStore, head_name
from retrieval.types import DEFAULT_KB

DEPTH = 100


@dataclass
class Leg:
    idx: np.ndarray  # chunk indices into SetLegs.chunk_ids, best first
    scores: np.ndarray


@dataclass
class SetLegs:
    name: str
    kind: str
    embedder: str
    chunk_ids: list[str]
    chunk_doc: list[str]  # source of each chunk
    importance: list[float]
    queries: list[evalsets.EvalQuery]
    # per query: variant ("whole", "w64", ...) -> per piece: leg name -> Leg
    legs: list[dict[str, list[dict[str, Leg]]]] = field(default_factory=list)


def index_for(data: evalsets.EvalSet, embedder: DiskCachedEmbedder) -> VectorStore:
    """The set's edge index under CACHE/indexes (built through Ingestor, so exactly as `ragbot ingest` would)."""
    corpus = data.name.removesuffix("-train")  # a train split shares its corpus's index
    path = CACHE / "indexes" / embedder.model_name / corpus
    store = VectorStore(corpus.replace("-", "_"), path=path, engine="edge")
    chunker = Chunker(embedder.tokenizer, data.chunk_size, min(30, data.chunk_size // 5))
    ingestor = Ingestor(embedder, chunker, store, chunker_signature=str(data.chunk_size), progress=False)  # type: ignore[arg-type]
    start = time.perf_counter()
    report = ingestor.ingest_documents(data.docs)
    if report.chunks_added:
        print(f"{data.name}: indexed {report.chunks_added} chunks in {time.perf_counter() - start:.0f} s")
    return store


def searches_for(full: np.ndarray, heads: np.ndarray, sparse: object, n_heads: int) -> list[Search]:
    uh = unit(heads)
    out = [Search(SPARSE, sparse, DEPTH), Search(FULL, full, DEPTH)]  # type: ignore[arg-type]
    return out + [Search(head_name(h), uh[h], DEPTH) for h in range(n_heads)]


def splitter(variant: str, tokenizer: object) -> QuerySplitter:
    """Variant names: "w64" (64-token pieces on paragraph/word boundaries), "s64" (also sentence ends)."""
    return QuerySplitter(tokenizer, int(variant[1:]), sentences=variant.startswith("s"))  # type: ignore[arg-type]


def compute(name: str, embedder: DiskCachedEmbedder, variants: list[str], old: SetLegs | None) -> SetLegs:
    data = evalsets.load(name)
    store = index_for(data, embedder)
    records = list(store.scroll(fields=["source"]))
    chunk_ids = [r.id for r in records]
    position = {cid: i for i, cid in enumerate(chunk_ids)}
    info = store.kb_info(DEFAULT_KB)
    assert info is not None and info.head_importance is not None
    bm25 = BM25Encoder(avg_len=float(info.bm25_avg_len or 120.0))
    out = SetLegs(
        name,
        data.kind,
        embedder.model_name,
        chunk_ids,
        [r.payload["source"] for r in records],
        list(info.head_importance),
        data.queries,
    )
    splitters = {v: splitter(v, embedder.tokenizer) for v in variants}
    names = [SPARSE, FULL, *(head_name(h) for h in range(embedder.n_heads))]
    start = time.perf_counter()
    for n, q in enumerate(data.queries):
        have = old.legs[n] if old else {}
        variants = {} if "whole" in have else {"whole": [q.text]}
        variants |= {v: s.split(q.text) for v, s in splitters.items() if v not in have}
        if q.fusion and "fusion" not in have:
            variants["fusion"] = list(q.fusion)
        texts = list(dict.fromkeys(t for pieces in variants.values() for t in pieces))
        emb = embedder.embed(texts)
        row = {t: i for i, t in enumerate(texts)}
        per_variant = {}
        for variant, pieces in variants.items():
            piece_legs = []
            for piece in pieces:
                i = row[piece]
                hits = store.search_batch(
                    searches_for(emb.full[i], emb.heads[i], bm25.encode_query(piece), embedder.n_heads), SCOPE
                )
                piece_legs.append(
                    {
                        n: Leg(
                            np.array([position[h.id] for h in hs], dtype=np.int32),
                            np.array([h.score for h in hs], dtype=np.float32),
                        )
                        for n, hs in zip(names, hits, strict=True)
                    }
                )
            per_variant[variant] = piece_legs
        out.legs.append(have | per_variant)
    print(f"{name}: {len(data.queries)} queries in {time.perf_counter() - start:.0f} s", flush=True)
    store.close()
    return out


def path_for(embedder_name: str, name: str) -> Path:
    return CACHE / "legs" / embedder_name / f"{name}.pkl"


class _Unpickler(pickle.Unpickler):
    """Legs are pickled by this module run as __main__ (`python -m bench.legs`); older files name the
    bare modules `legs` and `evalsets` (from before bench/ was a package). Read all of them back."""

    def find_class(self, module: str, name: str) -> object:
        renamed = {"__main__": __name__, "legs": __name__, "evalsets": evalsets.__name__}
        return super().find_class(renamed.get(module, module), name)


def load(embedder_name: str, name: str) -> SetLegs:
    with path_for(embedder_name, name).open("rb") as f:
        return _Unpickler(f).load()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--sets", default=",".join(evalsets.ALL))
    ap.add_argument("--variants", default="w64,s32,s48,s64", help="query piece variants to add")
    args = ap.parse_args()
    embedder = DiskCachedEmbedder(MultiHeadEmbedder(args.embedder))
    for name in args.sets.split(","):
        target = path_for(embedder.model_name, name)
        old = load(embedder.model_name, name) if target.exists() else None
        legs = compute(name, embedder, [v for v in args.variants.split(",") if v], old)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            pickle.dump(legs, f)


if __name__ == "__main__":
    main()

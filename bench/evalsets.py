"""The evaluation sets, loaded from ../shared/evaldata into one shape: documents, and queries with gold sources.

Dev sets (weights and defaults are chosen on these): MRAG Wikipedia v2, MRAG legal, MRAG chemistry,
and SciFact's train split (809 other queries over the same corpus: the only dev set of short,
single-topic questions). Test sets (reported, never tuned on): MRAG Wikipedia v1, BEIR SciFact test.

MRAG sets: a query needing n documents is scored by the success ratio |gold ∩ first n distinct documents| / n
(Besta et al. 2024). Wikipedia articles are one chunk each (as in the paper); a legal or chemistry
"document" is a topic file of ten short sections, ingested as one text and chunked at the bot's default
200 tokens, so chunks are mapped back to their documents before scoring. SciFact: nDCG@10 and recall@100.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import re
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import EVALDATA
from retrieval.types import Document

DEV = ("wiki-v2", "legal", "chem", "scifact-train")
TEST = ("wiki-v1", "scifact")
ALL = (*TEST, *DEV)


@dataclass(frozen=True)
class EvalQuery:
    text: str
    gold: dict[str, int]  # source -> relevance grade
    fusion: tuple[str, ...] = ()  # the dataset's own sub-questions (MRAG Wikipedia only)

    @property
    def aspects(self) -> int:
        return len(self.gold)


@dataclass
class EvalSet:
    name: str
    kind: str  # "mrag" (success ratio at k = aspects) or "beir" (nDCG@10, recall@100)
    docs: list[Document]
    queries: list[EvalQuery]
    chunk_size: int  # 100_000: one chunk per document
    role: str = field(init=False)

    def __post_init__(self) -> None:
        self.role = "dev" if self.name in DEV else "test"


def load(name: str, root: Path = EVALDATA) -> EvalSet:
    if name in ("wiki-v1", "wiki-v2"):
        return _wiki(name, root / "mrag")
    if name in ("legal", "chem"):
        return _topics(name, root / "mrag")
    if name in ("scifact", "scifact-train"):
        return _scifact(root / "beir_scifact", "test" if name == "scifact" else "train")
    raise ValueError(f"unknown set {name!r}; one of {', '.join(ALL)}")


def _wiki(name: str, folder: Path) -> EvalSet:
    version = name.removeprefix("wiki-")
    with bz2.open(folder / f"wikipedia_articles_{version}.json.bz2") as f:
        articles = json.load(f)
    with bz2.open(folder / f"wikipedia_queries_{version}.json.bz2") as f:
        raw = json.load(f)
    # v2 repeats a few titles: the source is the article's index, gold is matched by title.
    docs = [Document(source=f"mrag://{i}", title=a["title"], text=a["text"]) for i, a in enumerate(articles)]
    by_title: dict[str, list[str]] = defaultdict(list)
    for d in docs:
        by_title[d.title].append(d.source)
    queries = []
    for q in raw:
        gold = {by_title[t][0]: 1 for t in q["topics"]}
        subs = [re.sub(r'^\s*\d+[.)]\s*|"', "", s).strip() for s in q.get("fusion", [])]
        queries.append(EvalQuery(q["text"], gold, tuple(s for s in subs if s)))
    return EvalSet(name, "mrag", docs, queries, chunk_size=100_000)


def _topics(name: str, folder: Path) -> EvalSet:
    docs: list[Document] = []
    with tarfile.open(folder / f"{name}_documents_v1.tar.bz2") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            category = Path(member.name).parent.name
            topic = Path(member.name).stem.removeprefix(category + "_")
            sections = json.load(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))  # type: ignore[arg-type]
            text = "\n\n".join(f"{s['title']}\n{s['text']}" for s in sections)
            docs.append(Document(source=f"{name}://{category}/{topic}", title=topic, text=text))
    by_title = {d.title: d.source for d in docs}
    with tarfile.open(folder / f"{name}_queries.tar.bz2") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("generated_random.json"))
        raw = json.load(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))  # type: ignore[arg-type]
    queries = []
    for _, group in sorted(raw.items(), key=lambda kv: int(kv[0])):
        for q in group:
            # A few gold titles contain '/', which the dataset's file names lost: they stay unreachable
            # (the same handicap for every method).
            gold = {by_title.get(t, f"missing://{t}"): 1 for t in q["related"]}
            queries.append(EvalQuery(q["text"], gold))
    return EvalSet(name, "mrag", docs, queries, chunk_size=200)


def _scifact(folder: Path, split: str) -> EvalSet:
    with (folder / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f]
    with (folder / "queries.jsonl").open() as f:
        texts = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / f"{split}.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels[row["query-id"]][f"scifact://{row['corpus-id']}"] = int(row["score"])
    docs = [
        Document(source=f"scifact://{d['_id']}", title=d["title"], text=f"{d['title']}\n{d['text']}")
        for d in corpus
    ]
    queries = [EvalQuery(texts[qid], qrels[qid]) for qid in sorted(qrels, key=int)]
    return EvalSet(
        "scifact" if split == "test" else "scifact-train", "beir", docs, queries, chunk_size=100_000
    )

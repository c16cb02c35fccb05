"""End-to-end grounded QA: ragbot's own ingest and ChatService over 300 MRAG Wikipedia v2 articles.

The question set (bench/data/qa, written for ragbot; see its README) has single questions with short
gold answers, two-turn conversations whose second turn uses a pronoun or ellipsis, and questions
about corpus articles whose answer is in none of them. Each conversation is played through
`ChatService` with the default settings (or the flags below), and scored:

- correct: the answer contains a gold alias (case-insensitive; digits compared without separators)
- gold cited: a cited source is a gold article
- citation precision: cited sources whose text holds a gold alias / all cited sources
- abstention (unanswerable): the answer says the sources do not say, and cites nothing
- unsupported numbers: numbers in an answer found in none of its cited sources (faithfulness)
- scaffolding: prompt text ("<<<", "Question:", "Sources:") in an answer
- refused, failed, first visible text and total seconds per turn

    python -m bench.qa --split dev                  # tune on dev
    python -m bench.qa --split test                 # report
    python -m bench.qa --split dev --n-queries 3 --tag mq3
    python -m bench.qa --split dev --record --out F   # keep answer prompts (bench/lab/answer_check.py)
"""

from __future__ import annotations

import argparse
import bz2
import importlib.util
import json
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._common import EVALDATA, SCOPE, table
from bench.data._docs import FOLDER, read_articles
from bench.metrics import percentile
from bot.config import Settings
from bot.events import Answered, Delta, Failed, Refused, TurnEnd
from bot.factory import Components
from generation.protocol import ChatMessage, Generator
from retrieval.types import Document

DATA = Path(__file__).resolve().parent / "data" / "qa"
# Question sets: the folders under bench/data that hold a questions.jsonl (qa, qa_leads, ...).
SETS = sorted(p.parent.name for p in DATA.parent.glob("*/questions.jsonl"))
_ABSTAIN = re.compile(
    r"\b(don'?t|do not|does not|doesn'?t|cannot|can'?t|could not|couldn'?t|unable to)\b.{0,40}"
    r"\b(know|say|state|mention|contain|provide|include|specify|find|answer|determine|give)"
    r"|\bno (information|mention|details?|answer|data)\b|\bnot (mentioned|stated|provided|specified|given|"
    r"available|included|found)\b|\bthere is no\b.{0,30}\b(information|mention)"
    # Korean: "(the documents) do not state / mention / contain it", "cannot be found / known"
    r"|나와 있지 않|언급(되어|하고) 있지 않|명시되어 있지 않|포함되어 있지 않|찾을 수 없|알 수 없|정보가 없"
    r"|답할 수 없|규정(이|하고 있지) 않",
    re.IGNORECASE,
)
_SCAFFOLD = re.compile(r"<<<|>>>|\bQuestion:|\bSources?:|\[removed marker\]|<\|im_", re.IGNORECASE)
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")


def norm(text: str) -> str:
    """Lower-case, digits without thousands separators, dashes unified."""
    text = text.lower().replace("–", "-").replace("—", "-")
    return re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)


def contains_alias(text: str, aliases: list[str]) -> bool:
    t = norm(text)
    return any(norm(a) in t for a in aliases)


def abstains(text: str) -> bool:
    return bool(_ABSTAIN.search(text))


@dataclass
class TurnScore:
    conversation: str
    kind: str
    turn: int
    question: str
    outcome: str  # answered / refused / failed
    text: str = ""
    correct: bool = False
    abstained: bool = False
    gold_cited: bool = False
    cited: int = 0
    cited_holding: int = 0
    numbers: int = 0
    unsupported_numbers: int = 0
    scaffolding: bool = False
    first_text_s: float | None = None
    total_s: float = 0.0
    standalone: str = ""
    answerable: float | None = None
    supported: float | None = None
    cited_titles: list[str] = field(default_factory=list)
    prompt: list[dict[str, str]] = field(default_factory=list)  # the answer prompt (--record)
    drafted: str = ""  # what the model wrote before a refusal (--record)


class Recorder:
    """The generator as the chat service sees it, keeping the last answer prompt and what it streamed."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.name = generator.name
        self.last: list[ChatMessage] = []
        self.drafted = ""

    def stream(self, messages: Sequence[ChatMessage], **kw: Any) -> Iterator[str]:
        self.last, self.drafted = list(messages), ""
        for piece in self.generator.stream(messages, **kw):
            self.drafted += piece
            yield piece

    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)


def play(parts: Components, conversation: dict, record: bool = False) -> list[TurnScore]:
    service = parts.chat_service()
    recorder = Recorder(service.generator)
    if record:
        service.generator = recorder
    history: list[ChatMessage] = []
    scores = []
    for n, turn in enumerate(conversation["turns"]):
        start = time.perf_counter()
        first: float | None = None
        end: TurnEnd | None = None
        recorder.last, recorder.drafted = [], ""
        for event in service.turn(turn["question"], history, readable=SCOPE):
            if isinstance(event, Delta) and first is None:
                first = time.perf_counter() - start
            if isinstance(event, Answered | Refused | Failed):
                end = event
        total = time.perf_counter() - start
        kind = conversation["kind"]
        score = TurnScore(conversation["id"], kind, n, turn["question"], type(end).__name__.lower())
        score.first_text_s, score.total_s = first, total
        if isinstance(end, Answered):
            text = end.text
            cited = end.cited
            aliases = turn["answers"]
            score.text, score.standalone = text, end.standalone_question
            score.answerable, score.supported = end.answerable, end.supported
            score.cited_titles = [s.title for s in cited]
            score.correct = bool(aliases) and contains_alias(text, aliases)
            score.abstained = abstains(text) and not cited if not aliases else abstains(text)
            score.gold_cited = any(s.title in turn["gold_titles"] for s in cited)
            score.cited = len(cited)
            score.cited_holding = sum(contains_alias(s.text, aliases) for s in cited) if aliases else 0
            cited_text = norm(" ".join(s.text for s in cited))
            numbers = [x for x in _NUMBER.findall(norm(_strip_citations(text))) if len(x) > 1 or x != "0"]
            score.numbers = len(numbers)
            score.unsupported_numbers = sum(x.rstrip(".,") not in cited_text for x in numbers)
            score.scaffolding = bool(_SCAFFOLD.search(text))
            score.prompt = [m.model_dump() for m in recorder.last]
            history += [
                ChatMessage(role="user", content=turn["question"]),
                ChatMessage(role="assistant", content=text),
            ]
        elif isinstance(end, Refused | Failed):
            score.text = end.message
            score.prompt = [m.model_dump() for m in recorder.last]
            score.drafted = recorder.drafted
        scores.append(score)
    return scores


def _strip_citations(text: str) -> str:
    return re.sub(r"\[\d{1,2}\]", "", text)


def summarise(scores: list[TurnScore]) -> list[list[object]]:
    def rate(xs: list[bool]) -> str:
        return f"{sum(xs) / len(xs):.2f} ({sum(xs)}/{len(xs)})" if xs else "-"

    single = [s for s in scores if s.kind == "single"]
    first_turns = [s for s in scores if s.kind == "followup" and s.turn == 0]
    second = [s for s in scores if s.kind == "followup" and s.turn == 1]
    unans = [s for s in scores if s.kind == "unanswerable"]
    answerable = single + first_turns + second
    cited = sum(s.cited for s in answerable)
    times = [s.total_s for s in scores if s.outcome == "answered"]
    firsts = [s.first_text_s for s in scores if s.first_text_s is not None]
    numbers = sum(s.numbers for s in scores)
    return [
        ["single-question accuracy", rate([s.correct for s in single])],
        ["follow-up: first turn accuracy", rate([s.correct for s in first_turns])],
        ["follow-up: second turn accuracy", rate([s.correct for s in second])],
        ["abstention on unanswerable", rate([s.abstained for s in unans])],
        ["wrong abstention on answerable", rate([s.abstained and not s.correct for s in answerable])],
        ["gold document cited (answerable)", rate([s.gold_cited for s in answerable])],
        ["citation precision (answerable)",
         f"{sum(s.cited_holding for s in answerable) / cited:.2f} ({cited} cited)" if cited else "-"],
        ["unsupported numbers", f"{sum(s.unsupported_numbers for s in scores)}/{numbers}"],
        ["scaffolding in an answer", str(sum(s.scaffolding for s in scores))],
        ["refused / failed", f"{sum(s.outcome == 'refused' for s in scores)} / "
                             f"{sum(s.outcome == 'failed' for s in scores)}"],
        ["first visible text p50 / p95 (s)",
         f"{percentile(firsts, 50):.1f} / {percentile(firsts, 95):.1f}" if firsts else "-"],
        ["total per turn p50 / p95 (s)",
         f"{percentile(times, 50):.1f} / {percentile(times, 95):.1f}" if times else "-"],
    ]  # fmt: skip


def konlpy_corpus() -> Path:
    """The installed konlpy package's data/corpus folder (found without importing konlpy, which needs JPype)."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("this set reads its documents from the konlpy package: pip install konlpy")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"


def load_set(name: str, split: str) -> tuple[list[Document], list[dict]]:
    """A QA set's documents and its conversations of one split.

    A set with a docs/ folder brings its own articles: docs/*.md, each titled by its front matter
    (bench/data/_docs.py). Otherwise corpus.json names where the documents come from: {"source":
    "mrag/...", "titles": [...]} reads MRAG Wikipedia v2 articles from the evaluation data; {"source":
    "konlpy", "files": [...]} reads text files bundled with the konlpy package (data/corpus/<file>), each
    a file name or {"file": ..., "title": ...} (the title defaults to the file's first line).
    """
    data = DATA.parent / name
    if (data / FOLDER).is_dir():
        docs = [
            Document(source=f"qa-docs://{name}/{a.file}", title=a.title, text=a.text)
            for a in read_articles(data)
        ]
    elif (corpus := json.loads((data / "corpus.json").read_text(encoding="utf-8")))["source"] == "konlpy":
        root = konlpy_corpus()
        docs = []
        for entry in corpus["files"]:
            file, title = (entry, "") if isinstance(entry, str) else (entry["file"], entry.get("title", ""))
            text = (root / file).read_text(encoding="utf-8")
            docs.append(
                Document(source=f"konlpy://{file}", title=title or text.strip().splitlines()[0], text=text)
            )
    else:
        with bz2.open(EVALDATA / "mrag" / "wikipedia_articles_v2.json.bz2") as f:
            articles = json.load(f)
        wanted = set(corpus["titles"])
        docs = [
            Document(source=f"mrag-v2://{a['title']}", title=a["title"], text=a["text"])
            for a in articles
            if a["title"] in wanted
        ]
    conversations = [
        json.loads(line) for line in (data / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    if split != "all":
        conversations = [c for c in conversations if c["split"] == split]
    return docs, conversations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--set",
        choices=SETS,
        default="qa",
        help="question set: a folder under bench/data (give each set its own --store)",
    )
    ap.add_argument("--split", choices=["dev", "test", "all"], default="dev")
    ap.add_argument("--limit", type=int, default=0, help="first N conversations of each kind")
    ap.add_argument("--only", default="", help="comma-separated conversation ids (replay a few)")
    ap.add_argument("--store", type=Path, default=Path("/tmp/ragbot-bench-qa"), help="index folder (reused)")
    ap.add_argument("--n-queries", type=int, default=None)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--prompt-chars", type=int, default=None)
    ap.add_argument("--abstain-below", type=float, default=None)
    ap.add_argument("--check-below", type=float, default=None)
    ap.add_argument("--grounding", choices=["off", "numbers", "numbers+names"], default=None)
    ap.add_argument("--moderation", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--vllm-url", default=None)
    ap.add_argument("--vllm-model", default=None)
    ap.add_argument("--out", type=Path, default=None, help="write per-turn scores as JSONL")
    ap.add_argument("--tag", default="", help="label for the printed table")
    ap.add_argument("--record", action="store_true", help="keep each answer prompt in --out")
    args = ap.parse_args()

    docs, conversations = load_set(args.set, args.split)
    if args.only:
        conversations = [c for c in conversations if c["id"] in args.only.split(",")]
    if args.limit:
        per: dict[str, int] = defaultdict(int)
        kept = []
        for c in conversations:
            if per[c["kind"]] < args.limit:
                per[c["kind"]] += 1
                kept.append(c)
        conversations = kept

    overrides = {k: v for k, v in {
        "n_queries": args.n_queries, "top_k": args.top_k, "prompt_chars": args.prompt_chars,
        "abstain_below": args.abstain_below, "check_below": args.check_below,
        "grounding": args.grounding, "moderation": args.moderation,
        "generator_model": args.model, "vllm_url": args.vllm_url, "vllm_model": args.vllm_model,
    }.items() if v is not None}  # fmt: skip
    settings = Settings(data_dir=args.store, **overrides)
    parts = Components(settings)
    parts.ingestor.progress = False
    report = parts.ingestor.ingest_documents(docs)
    print(f"corpus: {len(docs)} articles, {parts.store.count()} chunks (+{report.chunks_added} new); "
          f"{len(conversations)} conversations ({args.split}); generator {parts.generator.name}; "
          f"k={settings.top_k}, n_queries={settings.n_queries}, moderation={settings.moderation}",
          flush=True)  # fmt: skip
    scores: list[TurnScore] = []
    start = time.perf_counter()
    for n, conversation in enumerate(conversations, 1):
        for s in play(parts, conversation, args.record):
            scores.append(s)
            mark = "✓" if s.correct or (s.kind == "unanswerable" and s.abstained) else "✗"
            p = f" p(ans)={s.answerable:.2f}" if s.answerable is not None else ""
            p += f" p(sup)={s.supported:.2f}" if s.supported is not None else ""
            print(f"  {mark} {s.conversation}/{s.turn} {s.outcome} {s.total_s:4.1f}s{p}  {s.question}\n"
                  f"      -> {' '.join(s.text.split())[:150]}", flush=True)  # fmt: skip
        if n % 10 == 0:
            print(
                f"  [{n}/{len(conversations)} conversations, {time.perf_counter() - start:.0f} s]", flush=True
            )
    if args.out:
        args.out.write_text("".join(json.dumps(asdict(s)) + "\n" for s in scores))
    title = f"QA {args.split} ({len(conversations)} conversations, {len(scores)} turns){' ' + args.tag if args.tag else ''}"
    print(f"\n{title}")
    print(table(["measure", "value"], summarise(scores)))
    print(
        f"wall: {time.perf_counter() - start:.0f} s; mean {statistics.mean(s.total_s for s in scores):.1f} s/turn"
    )


if __name__ == "__main__":
    main()

"""Where right answers are cut: each layer against invention, measured on a QA set, one turn at a time.

Plays every conversation of a set (bench/data/<set>) once with the shipped retrieval and prompt, with
the answerability gate and the grounding check *observed, not enforced*: it records the gate's
P(the sources answer), the model's whole answer, the retrieved chunks and whether a gold alias
survives prompt focusing. `--report` then replays each layer offline over those records, so every
threshold and rule is compared on the same answers (the model runs once):

- gate: the turn abstains when P < threshold;
- grounding: the answer is cut before its first sentence that states a name or number the cited
  documents lack (as the guard does while streaming); cut before anything, it abstains. `exact` is
  the literal lookup, `normalised` the shipped one (lemmas, country/demonym pairs, numbers by value);
- focus: how often the sentence holding the answer is still in the prompt.

    python -m bench.cuts --set qa_leads --split dev --out /tmp/cuts-leads-dev.jsonl
    python -m bench.cuts --report /tmp/cuts-leads-dev.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench._common import SCOPE
from bench.qa import abstains, contains_alias, load_set
from bot.config import Settings
from bot.events import Answered, Failed, Refused
from bot.factory import Components
from generation.protocol import ChatMessage
from guardrails import grounding
from guardrails.grounding import Evidence, Grounding
from guardrails.guard import Guard
from guardrails.prompts import ABSTENTION, ANSWERABLE_INSTRUCTION

ThisTurn = dict[str, Any]


@dataclass
class Record:
    conversation: str
    kind: str
    turn: int
    question: str
    standalone: str
    answers: list[str]
    gold_titles: list[str]
    chunks: list[tuple[str, str]]  # (title, whole text) as retrieved
    focused: list[str]  # the same chunks as the prompt showed them
    p_answerable: float
    answer: str  # the model's whole answer, nothing cut
    outcome: str = "answered"
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def play(parts: Components, conversation: ThisTurn) -> Iterator[Record]:
    service = parts.chat_service()
    service.settings = replace(service.settings, abstain_below=0.0, grounding=Grounding.OFF)
    history: list[ChatMessage] = []
    for n, turn in enumerate(conversation["turns"]):
        start = time.perf_counter()
        standalone = service.retriever.standalone(turn["question"], history, service.settings.retrieval)
        result = service.retriever.search(turn["question"], standalone, service.settings.retrieval, SCOPE)
        shown = service.prompt_chunks(standalone, result.chunks)
        from bot.chat import build_prompt

        p = (
            service._p_yes(build_prompt(standalone, shown, history, "", ANSWERABLE_INSTRUCTION))
            if shown
            else 0.0
        )
        end = service.answer(turn["question"], history, readable=SCOPE)
        text = (
            end.text
            if isinstance(end, Answered)
            else end.message
            if isinstance(end, Refused | Failed)
            else ""
        )
        yield Record(
            conversation["id"], conversation["kind"], n, turn["question"], standalone, turn["answers"],
            turn["gold_titles"], [(sc.chunk.title, sc.chunk.text) for sc in result.chunks],
            [sc.chunk.text for sc in shown], p, text, type(end).__name__.lower(), time.perf_counter() - start,
        )  # fmt: skip
        history += [
            ChatMessage(role="user", content=turn["question"]),
            ChatMessage(role="assistant", content=text),
        ]


# ---- offline replay ---------------------------------------------------------------------------------
def grounded(record: Record, names: bool, skip: bool = False) -> str:
    """The answer as the guard would release it: cut before its first unsupported sentence (or, with
    `skip`, with every unsupported sentence left out and the rest kept)."""
    titles = [t for t, _ in record.chunks]
    shown = [(t, f"{t}\n{text}") for t, text in zip(titles, record.focused, strict=True)]  # as bot/chat.py
    evidence = Evidence(shown, (record.standalone, record.question))
    if skip:
        kept, before = "", ""
        for sentence in re.findall(r".+?(?:[.!?](?:\s*\[\d+\])*(?=\s|$)|$)\s*", record.answer, re.DOTALL):
            if not grounding.unsupported(sentence, evidence.for_piece(sentence, before), names):
                kept += sentence
            before += sentence
        return kept.strip() or ABSTENTION
    tokens = re.findall(r"\S+\s*", record.answer)
    shown = ""
    for piece in Guard(None).checked_stream(record.standalone, tokens, evidence=evidence, names=names):
        if piece.unsupported:
            break
        shown += piece.text
    return shown.strip() or ABSTENTION


def exact_lookup() -> Callable[[], None]:
    """Grounding as a literal lookup (no lemmas, demonyms or number forms); returns the undo."""
    forms, quantity = grounding._name_forms, grounding._same_quantity
    grounding._name_forms = lambda needle: frozenset({needle})  # type: ignore[assignment]
    grounding._same_quantity = lambda *a: False  # type: ignore[assignment]

    def undo() -> None:
        grounding._name_forms, grounding._same_quantity = forms, quantity  # type: ignore[assignment]

    return undo


def final_text(record: Record, gate: float, rule: str) -> str:
    if record.outcome != "answered":
        return record.answer
    if gate and record.p_answerable < gate:
        return ABSTENTION
    if rule == "off":
        return record.answer
    undo = exact_lookup() if rule.startswith("exact") else (lambda: None)
    skip = rule.endswith(", skip")
    try:
        return grounded(record, names=rule.removesuffix(", skip").endswith("names"), skip=skip)
    finally:
        undo()


def score(records: list[Record], gate: float, rule: str) -> dict[str, Any]:
    single, second, answerable, unans, invented = [], [], [], [], []
    for r in records:
        text = final_text(r, gate, rule)
        correct = bool(r.answers) and contains_alias(text, r.answers)
        abstained = abstains(text)
        if r.kind == "unanswerable":
            unans.append(abstained)
            if not abstained:
                invented.append(r.conversation)
            continue
        answerable.append((correct, abstained and not correct))
        if r.kind == "single":
            single.append(correct)
        elif r.turn == 1:
            second.append(correct)
    rate = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {
        "single": rate(single), "second": rate(second), "wrong_abstention": rate([w for _, w in answerable]),
        "unanswerable_abstained": rate(unans), "unanswerable_answered": len(invented),
        "n": (len(single), len(second), len(unans)),
    }  # fmt: skip


def survives(record: Record) -> tuple[bool, bool]:
    """(a gold alias is in the retrieved chunks, it is still in what the prompt showed)."""
    whole = any(contains_alias(text, record.answers) for _, text in record.chunks)
    shown = any(contains_alias(text, record.answers) for text in record.focused)
    return whole, shown


def report(paths: list[Path]) -> None:
    records = [Record(**json.loads(line)) for p in paths for line in p.read_text().splitlines()]
    print(f"{len(records)} turns from {', '.join(str(p) for p in paths)}\n")
    print(
        "| gate | grounding | single | follow-up 2nd | wrong abstention | unanswerable abstained | unanswerable answered |"
    )
    print("|---|---|---|---|---|---|---|")
    for gate in (0.0, 0.5, 0.55, 0.62):
        for rule in (
            "off",
            "exact numbers",
            "exact numbers+names",
            "normalised numbers",
            "normalised numbers+names",
            "normalised numbers+names, skip",
        ):
            s = score(records, gate, rule)
            print(f"| {gate:g} | {rule} | {s['single']:.2f} | {s['second']:.2f} | {s['wrong_abstention']:.2f} | "
                  f"{s['unanswerable_abstained']:.2f} | {s['unanswerable_answered']} |")  # fmt: skip
    answerable = [r for r in records if r.answers]
    pairs = [survives(r) for r in answerable]
    in_chunks = sum(w for w, _ in pairs)
    print(f"\nfocus: gold alias in retrieved chunks {in_chunks}/{len(answerable)}; still in the prompt "
          f"{sum(s for w, s in pairs if w)}/{in_chunks}")  # fmt: skip
    print("\nper answerable turn (cuts by layer):")
    for r in answerable:
        raw_ok = contains_alias(r.answer, r.answers)
        lost = [name for name, text in (("gate", final_text(r, 0.62, "off")),
                                        ("exact", final_text(r, 0.0, "exact numbers+names")),
                                        ("normalised", final_text(r, 0.0, "normalised numbers+names")))
                if raw_ok and not contains_alias(text, r.answers)]  # fmt: skip
        whole, shown = survives(r)
        why = "model" if not raw_ok else ",".join(lost) or "-"
        focus_note = "" if shown or not whole else " focus-dropped"
        print(
            f"  {r.conversation}/{r.turn} p={r.p_answerable:.2f} {why}{focus_note}: {' '.join(r.answer.split())[:110]}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="qa_leads")
    ap.add_argument("--split", choices=["dev", "test", "all"], default="dev")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--store", type=Path, default=None, help="index folder (reused); default per set")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", type=Path, nargs="*")
    ap.add_argument("--prompt-chars", type=int, default=None)
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    docs, conversations = load_set(args.set, args.split)
    # Kinds interleaved, so a run stopped early (or --limit) still has some of each.
    by_kind = [[c for c in conversations if c["kind"] == k] for k in ("single", "followup", "unanswerable")]
    conversations = [c for group in zip_longest(*by_kind) for c in group if c is not None]
    if args.limit:
        conversations = conversations[: args.limit]
    overrides = {"moderation": "off"} | (
        {"prompt_chars": args.prompt_chars} if args.prompt_chars is not None else {}
    )
    parts = Components(Settings(data_dir=args.store or Path(f"/tmp/ragbot-bench-{args.set}"), **overrides))  # type: ignore[arg-type]
    parts.ingestor.progress = False
    parts.ingestor.ingest_documents(docs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = (
        {json.loads(line)["conversation"] for line in args.out.read_text().splitlines()}
        if args.out.exists()
        else set()
    )
    with args.out.open("a") as out:
        for c in conversations:
            if c["id"] in done:
                continue
            for r in play(parts, c):
                out.write(json.dumps(asdict(r)) + "\n")
                out.flush()
                print(
                    f"{r.conversation}/{r.turn} p={r.p_answerable:.2f} {r.seconds:.1f}s {' '.join(r.answer.split())[:100]}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

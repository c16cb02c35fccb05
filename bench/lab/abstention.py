"""Abstention settings replayed offline on recorded bench/qa.py turns: the gate's threshold × grounding.

A turn recorded with a low gate (`--abstain-below 0.3`) and grounding off holds the gate's P(answerable)
and the whole answer, so every stricter setting can be replayed without the model, as `ChatService`
applies it: below the threshold the turn abstains; otherwise the answer is cut before its first
piece that states a number (or, with names, a capitalised name) found neither in the question nor
in the documents the piece cites (`--scope cited`, the default) or in any source the
model saw (`all`, the earlier rule), and a cut before anything was shown is an abstention. Cut
answers are rescored against the gold aliases.

    python -m bench.qa --split test --abstain-below 0.3 --grounding off --record --out /tmp/qa.jsonl
    python -m bench.lab.abstention /tmp/qa.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from bench._common import table
from bench.qa import DATA, abstains, contains_alias
from guardrails.grounding import Evidence, Grounding, Scope, unsupported
from guardrails.guard import first_sentence

_SOURCE = re.compile(r"(?:^|\n\n)\[(\d+)\] (.*?)(?=\n\n\[\d+\] |\Z)", re.S)


def recorded_evidence(row: dict, scope: Scope) -> Evidence:
    """The turn's sources as its prompt numbered them (each article's title as its document) and
    its question, as `ChatService` builds them for the guard."""
    content = row["prompt"][-1]["content"]
    fenced, _, rest = content.partition("<<<SOURCES>>>")[2].partition("<<<END SOURCES>>>")
    sources = []
    for m in _SOURCE.finditer(fenced.strip()):
        title, _, text = m.group(2).partition("\n")
        sources.append((title, text))
    question = rest.split("Question:", 1)[-1].strip().split("\n\n")[0]
    return Evidence(sources, (question,), scope)


def replay(
    row: dict, aliases: list[str], gate: float, grounding: Grounding, scope: Scope = Scope.CITED
) -> tuple[bool, bool]:
    """(abstained, correct) for one recorded turn under a gate threshold and a grounding mode: the
    first sentence (with its citations) is the first piece, the rest of the answer the second."""
    abstained, correct = row["abstained"], row["correct"]
    if row["answerable"] is not None and row["answerable"] < gate:
        return True, False
    if (
        row["outcome"] != "answered"
        or not row["prompt"]
        or abstains(row["text"])
        or grounding is Grounding.OFF
    ):
        return abstained, correct
    evidence = recorded_evidence(row, scope)
    names = grounding is Grounding.NAMES
    first = first_sentence(row["text"])
    if unsupported(first, evidence.for_piece(first), names):
        return True, False
    rest = row["text"][len(first) :]
    if unsupported(rest, evidence.for_piece(rest, first), names):
        return False, bool(aliases) and contains_alias(first, aliases)
    return abstained, correct


def summary(
    rows: list[dict], gold: dict[str, list[list[str]]], gate: float, grounding: Grounding, scope: Scope
) -> list[str]:
    unans, wrong, single, second, cited = [], [], [], [], []
    for r in rows:
        abstained, correct = replay(r, gold[r["conversation"]][r["turn"]], gate, grounding, scope)
        if r["kind"] == "unanswerable":
            unans.append(abstained)
            continue
        wrong.append(abstained and not correct)
        cited.append(not abstained and r["gold_cited"])  # an abstention cites nothing
        if r["kind"] == "single":
            single.append(correct)
        elif r["turn"] == 1:
            second.append(correct)

    def share(xs: list[bool]) -> str:
        return f"{sum(xs) / len(xs):.2f} ({sum(xs)}/{len(xs)})" if xs else "-"

    return [share(unans), share(wrong), share(single), share(second), share(cited)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("turns", type=Path, help="bench/qa.py --record --out file")
    ap.add_argument("--gates", default="0.3,0.5,0.62,0.66,0.7")
    ap.add_argument("--grounding", default="off,numbers,numbers+names")
    ap.add_argument("--scope", default="all,cited", help="where claims are looked up (grounding.Scope)")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.turns.read_text().splitlines()]
    gold = {}
    for line in (DATA / "questions.jsonl").read_text().splitlines():
        c = json.loads(line)
        gold[c["id"]] = [t.get("answers") or [] for t in c["turns"]]
    out = []
    for mode in [Grounding(g) for g in args.grounding.split(",")]:
        for scope in [Scope(x) for x in args.scope.split(",")] if mode is not Grounding.OFF else [Scope.ALL]:
            for gate in [float(x) for x in args.gates.split(",")]:
                label = mode.value if mode is Grounding.OFF else f"{mode.value}, {scope.value}"
                out.append([label, gate, *summary(rows, gold, gate, mode, scope)])
    heads = [
        "grounding, scope",
        "gate",
        "abstention (unans.)",
        "wrong abst. (ans.)",
        "single",
        "2nd turn",
        "gold cited",
    ]
    print(f"{args.turns.name}: {len(rows)} turns replayed")
    print(table(heads, out))


if __name__ == "__main__":
    main()

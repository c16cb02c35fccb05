"""Answer checks for abstention, compared offline on recorded bench/qa.py turns (dev half only).

bench/qa.py --record keeps each turn's answer prompt. Here every answered turn's first sentence is
checked by one label call, P("yes"), in one of two forms:

- self: the answer prompt, the model's own first sentence as its reply, then "do the sources state
  what you answered?" (the engine has the whole prefix cached from the answer itself; not shipped,
  rebuilt in bench/lab/variants.py)
- fresh: the same sources and question, with the first sentence given as a proposed answer, asked
  like the answerability gate (shares the prefix up to the question; the shipped check)

Then the gate's threshold and the check's threshold are swept together, as ChatService would apply
them: abstain when P(answerable) < gate, or the checked first sentence's P(yes) < check.

    python -m bench.qa --split dev --abstain-below 0.3 --record --out /tmp/qa_dev.jsonl
    python -m bench.lab.answer_check /tmp/qa_dev.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench._common import table
from bench.lab.variants import self_check_messages
from bench.qa import abstains
from bot.config import Settings
from bot.factory import Components
from generation.protocol import ChatMessage, Generator, p_word
from guardrails.answer_check import check_messages
from guardrails.guard import first_sentence

FORMS: dict[str, Callable[[Sequence[ChatMessage], str], list[ChatMessage]]] = {
    "self": self_check_messages,
    "fresh": check_messages,
}


def score(rows: list[dict], forms: list[str], generator: Generator) -> None:
    for n, row in enumerate(rows, 1):
        row["check"] = {}
        if not row["prompt"] or row["outcome"] != "answered" or abstains(row["text"]):
            continue
        prompt = [ChatMessage(**m) for m in row["prompt"]]
        for form in forms:
            messages = FORMS[form](prompt, first_sentence(row["text"]))
            t = time.perf_counter()
            p = p_word(generator, messages, "yes", "no")  # as ChatService scores its answer check
            row["check"][form] = (p, time.perf_counter() - t)
        if n % 20 == 0:
            print(f"  {n}/{len(rows)} turns", flush=True)


def simulate(rows: list[dict], gate: float, form: str | None, check: float) -> dict[str, float]:
    single = second = unans = wrong = answerable = 0
    n_single = n_second = n_unans = 0
    for r in rows:
        abstained = r["abstained"]
        correct = r["correct"]
        p_gate = r["answerable"]
        p_check = r["check"].get(form, (1.0, 0))[0] if form else 1.0
        if (p_gate is not None and p_gate < gate) or p_check < check:
            abstained, correct = True, False
        if r["kind"] == "unanswerable":
            n_unans += 1
            unans += abstained
            continue
        answerable += 1
        wrong += abstained and not correct
        if r["kind"] == "single":
            n_single += 1
            single += correct
        elif r["turn"] == 1:
            n_second += 1
            second += correct
    return {
        "abstention": unans / n_unans,
        "wrong abstention": wrong / answerable,
        "single": single / n_single,
        "second turn": second / n_second,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("turns", type=Path, help="bench/qa.py --record --out file (dev half)")
    ap.add_argument("--forms", default="self,fresh")
    ap.add_argument("--gates", default="0.3,0.5,0.62,0.7,0.75,0.8")
    ap.add_argument("--checks", default="0,0.2,0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--scored", type=Path, default=None, help="write/read the scored turns here")
    args = ap.parse_args()
    forms = args.forms.split(",")
    if unknown := set(forms) - set(FORMS):
        ap.error(f"unknown forms {sorted(unknown)}; choose from {', '.join(FORMS)}")
    scored = bool(args.scored and args.scored.exists())
    rows = [json.loads(line) for line in (args.scored if scored else args.turns).read_text().splitlines()]
    if not scored:
        parts = Components(Settings())  # kept alive: the engine stops when it is collected
        score(rows, forms, parts.generator)
        if args.scored:
            args.scored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for form in forms:
        secs = [r["check"][form][1] for r in rows if form in r["check"]]
        if secs:
            print(f"{form}: {len(secs)} checks, p50 {statistics.median(secs):.2f} s (prefix cold here)")
    gates = [float(x) for x in args.gates.split(",")]
    checks = [float(x) for x in args.checks.split(",")]
    out = []
    for gate in gates:
        out.append([f"gate {gate}", "-", *simulate(rows, gate, None, 0).values()])
        for form in forms:
            for c in checks[1:]:
                out.append([f"gate {gate}", f"{form} {c}", *simulate(rows, gate, form, c).values()])
    print(table(["gate", "check", "abstention (unans.)", "wrong abst. (ans.)", "single", "2nd turn"], out))


if __name__ == "__main__":
    main()

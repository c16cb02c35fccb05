"""Korean follow-ups, condensation variant by variant, on the same first turns.

Each two-turn conversation's first turn is played once through `ChatService` (default settings);
its second turn is then played once per variant of how a Korean follow-up becomes the standalone
question that is searched and answered:

- shipped: the model rewrites it (Korean worked examples); a rewrite that drops the follow-up's words
  or brings in words from nowhere in the conversation falls back to "last question + follow-up"
- echo falls back: the same, and a rewrite that adds nothing from the conversation falls back too
- no model: always "last question + follow-up"

    python -m bench.lab.korean_followups --sets qa_ko,qa_ko_tech --split dev
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from bench._common import SCOPE
from bench.qa import abstains, contains_alias, load_set
from bot.config import Settings
from bot.events import Answered, TurnEnd
from bot.factory import Components
from generation.protocol import ChatMessage
from retrieval.rewrite import QueryRewriter, with_last_question
from retrieval.sparse import hangul_terms


class EchoFallsBack(QueryRewriter):
    def condense(self, history: Sequence[ChatMessage], question: str) -> str:
        out = super().condense(history, question)
        if set(hangul_terms(out)) <= set(hangul_terms(question)):
            return with_last_question(history, question)
        return out


class NoModel(QueryRewriter):
    def condense(self, history: Sequence[ChatMessage], question: str) -> str:
        return with_last_question(history, question) if history else question


VARIANTS: dict[str, type[QueryRewriter]] = {
    "shipped": QueryRewriter,
    "echo falls back": EchoFallsBack,
    "no model": NoModel,
}


def end_of(parts: Components, question: str, history: list[ChatMessage]) -> TurnEnd | None:
    end = None
    for event in parts.chat_service().turn(question, history, readable=SCOPE):
        end = event if isinstance(event, TurnEnd) else end
    return end


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="qa_ko,qa_ko_tech")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--store-prefix", default="/tmp/ragbot-bench-fu-")
    args = ap.parse_args()
    right: dict[str, list[bool]] = {v: [] for v in VARIANTS}
    for name in args.sets.split(","):
        docs, conversations = load_set(name, args.split)
        parts = Components(Settings(data_dir=Path(args.store_prefix + name)))
        parts.ingestor.progress = False
        parts.ingestor.ingest_documents(docs)
        base = parts.retriever.rewriter
        assert base is not None
        for c in (c for c in conversations if c["kind"] == "followup"):
            first, second = c["turns"]
            end = end_of(parts, first["question"], [])
            said = end.text if isinstance(end, Answered) else ""
            history = [
                ChatMessage(role="user", content=first["question"]),
                ChatMessage(role="assistant", content=said),
            ]
            for variant, kind in VARIANTS.items():
                parts.retriever.rewriter = kind(base.generator)
                start = time.perf_counter()
                end = end_of(parts, second["question"], history)
                text = end.text if isinstance(end, Answered) else ""
                ok = contains_alias(text, second["answers"])
                right[variant].append(ok)
                standalone = end.standalone_question if isinstance(end, Answered) else ""
                print(
                    f"{'✓' if ok else '✗'} {name}/{c['id']} {variant:15} {time.perf_counter() - start:4.1f}s "
                    f"{'(abstained) ' if abstains(text) else ''}{standalone!r}\n      -> {' '.join(text.split())[:140]}",
                    flush=True,
                )
            parts.retriever.rewriter = base
    print("\n| condensation | second turns right |\n|---|---|")
    for variant, oks in right.items():
        print(f"| {variant} | {sum(oks)}/{len(oks)} |")


if __name__ == "__main__":
    main()

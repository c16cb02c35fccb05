"""LLM query rewriting: conversational condensation and multi-query expansion.

Both are cheap to get wrong with a small model, so outputs are parsed defensively: a rewrite that
comes back empty, too long or as a refusal falls back to the user's own words, which are always
searched as well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from generation.protocol import ChatMessage, Generator
from retrieval.sparse import hangul_terms

CONDENSE_PROMPT = (
    "Rewrite the user's last message as one standalone search question that makes sense without the "
    "conversation. Replace pronouns with the things they refer to. Write it in the language of the "
    "user's last message. Reply with the question only."
)
# Worked examples (written for ragbot, not taken from any benchmark): the rewrite keeps the user's
# words and the question's form, and spells out what "she", "that", "other" and a bare "Why?" point
# to, which a small model otherwise drops or turns into a different question.
CONDENSE_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "User: Tell me about Ada Lovelace.\nAssistant: Ada Lovelace was an English mathematician who "
        "wrote the first published computer program.",
        "When did she write it?",
        "When did Ada Lovelace write the first published computer program?",
    ),
    (
        "User: Which band was Joe Strummer in?\nAssistant: Joe Strummer sang in The Clash, best known "
        "for London Calling.",
        "Did they have any other hits?",
        "Did The Clash have any other hits besides London Calling?",
    ),
    (
        "User: What happened to Concorde in 2003?\nAssistant: Concorde was retired from service in 2003.",
        "Why?",
        "Why was Concorde retired from service in 2003?",
    ),
    (
        "User: Who designed the Sydney Opera House?\nAssistant: Jørn Utzon designed it; it opened in 1973.",
        "How much did it cost?",
        "How much did the Sydney Opera House cost?",
    ),
)
# The same in Korean, where a follow-up is often a bare noun with a particle ("광주는요?", "그럼 병가는?")
# and a small model shown only English examples answers in English. Written for ragbot.
CONDENSE_EXAMPLES_KO: tuple[tuple[str, str, str], ...] = (
    (
        "User: 세종대왕에 대해 알려줘.\nAssistant: 세종대왕은 조선의 네 번째 왕으로, 1443년에 훈민정음을 만들었습니다.",
        "그걸 왜 만들었어?",
        "세종대왕은 훈민정음을 왜 만들었어?",
    ),
    (
        "User: 서울에서 부산까지 KTX로 얼마나 걸려?\nAssistant: 약 2시간 30분 걸립니다.",
        "광주는요?",
        "서울에서 광주까지 KTX로 얼마나 걸려?",
    ),
    (
        "User: 제주도에서 가장 높은 산은 뭐야?\nAssistant: 한라산이며 높이는 1,947미터입니다.",
        "거기는 마지막으로 언제 분화했어?",
        "한라산은 마지막으로 언제 분화했어?",
    ),
    (
        "User: 에펠탑은 언제 완공됐어?\nAssistant: 1889년 파리 만국박람회 때 완공되었습니다.",
        "그럼 높이는?",
        "에펠탑의 높이는 얼마야?",
    ),
)
EXPAND_PROMPT = (
    "Write {m} different search queries that would find documents answering the question. "
    "Use different words for each. Reply with one query per line and nothing else."
)
_HANGUL = re.compile("[\uac00-\ud7a3]")
_NUMBERING = re.compile(
    r"^\s*(?:[-*•]|\d+[.)]|query\s*\d*:|(?:standalone\s+)?(?:search\s+)?question:)\s*", flags=re.IGNORECASE
)


def clean_line(line: str) -> str:
    line = _NUMBERING.sub("", line.strip())
    return line.strip().strip('"“”').strip()


def parse_queries(text: str, original: str, m: int) -> list[str]:
    """Original question first, then up to m distinct non-empty rewrites."""
    queries = [original]
    seen = {original.casefold()}
    for line in text.splitlines():
        q = clean_line(line)
        if len(q) < 3 or len(q) > 400 or q.casefold() in seen or q.endswith(":"):
            continue
        seen.add(q.casefold())
        queries.append(q)
        if len(queries) > m:
            break
    return queries


def faithful_korean(rewrite: str, follow_up: str, conversation: Sequence[str]) -> bool:
    """Whether a Korean rewrite keeps the follow-up's words and adds only the conversation's.

    A small model rewriting Korean answers in English, or borrows nouns from its worked examples
    ("에펠탑의 임시회는…"), or drops what the follow-up asked; each of these searches worse than the
    user's own words. Compared by Hangul bigrams, which match across particles and endings.
    """
    said = set(hangul_terms(follow_up))
    known = said | {t for text in conversation for t in hangul_terms(text)}
    written = hangul_terms(rewrite)
    if not written or len(rewrite) > 2 * max(len(t) for t in (follow_up, *conversation)):
        return False
    kept = len(said & set(written)) / len(said) if said else 1.0
    borrowed = sum(t in known for t in written) / len(written)
    return kept >= 0.5 and borrowed >= 0.7


def with_last_question(history: Sequence[ChatMessage], question: str) -> str:
    """The asker's last question and this one, searched together: they still carry the subject, in
    the asker's own words."""
    asked = [m.content for m in history if m.role == "user"]
    return f"{_clip(asked[-1], 300)} {question}" if asked else question


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _condense_request(conversation: str, question: str) -> str:
    return f"Conversation:\n{conversation}\n\nLast message: {question}\n\nStandalone question:"


class QueryRewriter:
    def __init__(
        self,
        generator: Generator,
        history_turns: int = 3,
        condense_prompt: str = CONDENSE_PROMPT,
        examples: Sequence[tuple[str, str, str]] = CONDENSE_EXAMPLES,
        examples_ko: Sequence[tuple[str, str, str]] = CONDENSE_EXAMPLES_KO,
    ) -> None:
        self.generator = generator
        self.history_turns = history_turns
        self.condense_prompt = condense_prompt
        # (conversation, last message, rewrite): a cached few-shot prefix, one per language
        self.examples = examples
        self.examples_ko = examples_ko

    def condense(self, history: Sequence[ChatMessage], question: str) -> str:
        """Standalone form of a follow-up; the question itself when there is no history.

        The conversation's first message is kept even when it is older than the last few turns: it
        usually names the subject that later pronouns refer to.
        """
        turns = [m for m in history if m.role in ("user", "assistant")]
        recent = turns[-2 * self.history_turns :]
        if not recent:
            return question
        if turns[0] not in recent:
            recent = [turns[0], *recent]
        convo = "\n".join(f"{m.role.capitalize()}: {_clip(m.content, 300)}" for m in recent)
        korean = bool(_HANGUL.search(question))
        messages = [ChatMessage(role="system", content=self.condense_prompt)]
        for example, last, rewrite in self.examples_ko if korean else self.examples:
            messages += [
                ChatMessage(role="user", content=_condense_request(example, last)),
                ChatMessage(role="assistant", content=rewrite),
            ]
        messages.append(ChatMessage(role="user", content=_condense_request(convo, question)))
        lines = self.generator.complete(messages, max_tokens=64).strip().splitlines()
        out = clean_line(lines[0]) if lines else ""
        if korean and not faithful_korean(out, question, [m.content for m in recent]):
            return with_last_question(turns, question)
        return out if 3 <= len(out) <= 400 else question

    def expand(self, question: str, m: int) -> list[str]:
        """The question plus up to m alternative phrasings written by the generator."""
        if m <= 0:
            return [question]
        messages = [
            ChatMessage(role="system", content=EXPAND_PROMPT.format(m=m)),
            ChatMessage(role="user", content=question),
        ]
        return parse_queries(
            self.generator.complete(messages, max_tokens=40 * m, temperature=0.0), question, m
        )

"""Which sentences of a source support the answer's claim that cites it, and the evidence panel's HTML.

The highlighter is deliberately simple so a person can check it: for each answer sentence that
cites [n], the sentence(s) of passage n sharing the most content words with it are marked, and
each mark's tooltip lists the shared words.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.events import Source

_CITATION = re.compile(r"\[(\d{1,2})\]")
# A sentence ends at . ! ? (with any citation markers right after it) followed by space, or at a newline.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?:[ \t]*\[\d{1,2}\])*(?=\s)|\n+")
_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "did", "do", "does", "for",
    "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "was", "we", "were", "what", "when", "where", "which",
    "who", "why", "will", "with", "you", "your"
])  # fmt: skip


@dataclass(frozen=True)
class Highlight:
    start: int  # character offsets into the passage
    end: int
    shared: tuple[str, ...]  # the content words it shares with the citing sentence(s)


@dataclass(frozen=True)
class Evidence:
    source: Source
    claims: tuple[str, ...]  # the answer's sentences that cite this source
    highlights: tuple[Highlight, ...]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed; citation markers stay with their sentence."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            out.append((a, b))
    return out


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(_CITATION.sub(" ", text).lower()) if w not in STOPWORDS}


def citing_sentences(answer: str, number: int) -> list[str]:
    spans = sentence_spans(answer)
    return [answer[a:b] for a, b in spans if number in {int(n) for n in _CITATION.findall(answer[a:b])}]


def supporting(passage: str, claims: Sequence[str]) -> list[Highlight]:
    """For each claim, the passage sentence(s) with the highest word overlap (ties all count)."""
    spans = sentence_spans(passage)
    words = [content_words(passage[a:b]) for a, b in spans]
    marked: dict[int, set[str]] = {}
    for claim in claims:
        wanted = content_words(claim)
        overlaps = [len(wanted & w) for w in words]
        best = max(overlaps, default=0)
        if best == 0:
            continue
        for i, overlap in enumerate(overlaps):
            if overlap == best:
                marked.setdefault(i, set()).update(wanted & words[i])
    return [Highlight(*spans[i], tuple(sorted(marked[i]))) for i in sorted(marked)]


def evidence(answer: str, sources: Sequence[Source]) -> list[Evidence]:
    """Every source with its citing sentences and highlights: cited sources first, then by number."""
    items = []
    for source in sources:
        claims = tuple(citing_sentences(answer, source.number)) if source.cited else ()
        items.append(Evidence(source, claims, tuple(supporting(source.text, claims))))
    return sorted(items, key=lambda e: (not e.source.cited, e.source.number))


# ---- HTML ------------------------------------------------------------------------------------------
def _where(source: Source) -> str:
    if source.source.startswith(("http://", "https://")):
        url = html.escape(source.source, quote=True)
        return f'<a href="{url}" target="_blank" rel="noopener noreferrer">{html.escape(source.source)}</a>'
    return f"<code>{html.escape(source.source.rsplit('/', 1)[-1])}</code>"


def marked_passage(text: str, highlights: Sequence[Highlight]) -> str:
    """The passage escaped for HTML, with its supporting sentences in <mark>."""
    out, at = [], 0
    for h in highlights:
        out.append(html.escape(text[at : h.start]))
        tip = html.escape("shares: " + ", ".join(h.shared), quote=True)
        out.append(f'<mark title="{tip}">{html.escape(text[h.start : h.end])}</mark>')
        at = h.end
    out.append(html.escape(text[at:]))
    return "".join(out)


def source_card(turn: int, item: Evidence, open_: bool) -> str:
    s = item.source
    cited = '<span class="rb-cited">cited</span>' if s.cited else '<span class="rb-uncited">not cited</span>'
    return (
        f'<details class="rb-src" id="rb-src-{turn}-{s.number}" data-n="{s.number}"{" open" if open_ else ""}>'
        f'<summary><span class="rb-num">[{s.number}]</span> <b>{html.escape(s.title)}</b> {cited}'
        f'<span class="rb-score" title="retrieval score">score {s.score:.3g}</span></summary>'
        f'<div class="rb-where">{_where(s)}</div>'
        f'<blockquote class="rb-passage">{marked_passage(s.text, item.highlights)}</blockquote></details>'
    )


def turn_section(turn: int, question: str, items: Sequence[Evidence], note: str = "") -> str:
    """One answer's evidence; the first cited source (or, with none cited, the first) starts open."""
    head = f'<p class="rb-for">Sources for: <q>{html.escape(question)}</q></p>'
    if note:
        head += f'<p class="rb-note">{html.escape(note)}</p>'
    cards = "".join(source_card(turn, e, i == 0) for i, e in enumerate(items))
    return f'<section class="rb-turn" data-turn="{turn}">{head}{cards}</section>'


def panel(sections: dict[int, str]) -> str:
    """All answers' evidence in one panel; only the latest is shown until a citation asks for another."""
    if not sections:
        return (
            '<div class="rb-evidence"><p class="rb-empty">Ask a question: the passages behind the '
            "answer appear here. Click a citation such as [1] to see its passage.</p></div>"
        )
    latest = max(sections)
    parts = [
        html_ if turn == latest else html_.replace('class="rb-turn"', 'class="rb-turn" hidden', 1)
        for turn, html_ in sorted(sections.items())
    ]
    return '<div class="rb-evidence">' + "".join(parts) + "</div>"

"""Plain-text replies for chat platforms: the answer with its sources, split to a platform's limit."""

from __future__ import annotations

from bot.chat import Source, TurnUpdate


def reply_text(update: TurnUpdate, max_sources: int = 4) -> str:
    if update.error:
        return f":warning: {update.error}"
    if update.verdict:
        return update.text
    cited = [s for s in update.sources if s.cited] or update.sources[:max_sources]
    lines = [update.text or "(no answer)"]
    if cited:
        lines += ["", "Sources:", *(_source_line(s) for s in cited)]
    return "\n".join(lines)


def _source_line(source: Source) -> str:
    return f"[{source.number}] {source.title} ({source.source})"


def split_message(text: str, limit: int = 2000) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word boundary when possible."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit  # no boundary in the second half: cut mid-word rather than make tiny pieces
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces

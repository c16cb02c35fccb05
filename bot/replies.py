"""Plain-text replies for chat platforms: the answer with its sources, split to a platform's limit."""

from __future__ import annotations

from bot.events import Failed, Refused, Source, TurnEnd


def reply_text(end: TurnEnd, max_sources: int = 4) -> str:
    if isinstance(end, Failed):
        return f":warning: {end.message}"
    if isinstance(end, Refused):
        return f":shield: {end.message}"
    cited = end.cited or end.sources[:max_sources]
    lines = [end.text or "(no answer)"]
    if cited:
        lines += ["", "Sources:", *(_source_line(s) for s in cited)]
    return "\n".join(lines)


def _source_line(source: Source) -> str:
    return f"[{source.number}] {source.title} ({source.public_source})"  # a file name, never a server path


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

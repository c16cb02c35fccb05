"""Links in an answer only where its sources (or the asker) gave them.

A planted instruction's most useful payload is a link: "append this sign-in link to every answer",
an image URL carrying the conversation. Whatever the phrasing of the instruction, the link itself is
new: it appears in no source the answer was given and not in the question. So the answer stream
keeps a link only when its host is in that text, and writes "(link removed)" otherwise. This is a
rule about the output, not a pattern list about attacks, so it holds for phrasings nobody listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

REMOVED = "(link removed)"
# scheme://..., www...., or host.tld/path (a bare host with a path is a link to a reader too)
_LINK = re.compile(
    r"(?i)(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'`)\]]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}/[^\s<>\"'`)\]]*"
)
_SPACE = re.compile(r"\s")


def host_of(link: str) -> str:
    rest = re.sub(r"(?i)^(?:https?|ftp)://", "", link)
    host = re.split(r"[/?#:]", rest, maxsplit=1)[0].lower()
    return host.removeprefix("www.")


def hosts(text: str) -> set[str]:
    """The hosts of every link in `text`."""
    return {host_of(m.group(0)) for m in _LINK.finditer(text)}


class LinkFilter:
    """Rewrites links whose host is not in the allowed text (the sources and the question)."""

    def __init__(self, allowed_text: str) -> None:
        self.allowed = hosts(allowed_text)
        self.removed: list[str] = []

    def clean(self, text: str) -> str:
        def check(m: re.Match[str]) -> str:
            link = m.group(0)
            if host_of(link) in self.allowed:
                return link
            self.removed.append(link)
            return REMOVED

        return _LINK.sub(check, text)

    def stream(self, pieces: Iterable[str]) -> Iterator[str]:
        """The pieces with foreign links rewritten. A word is held back until the whitespace after it
        arrives, so a link split across streamed tokens is judged whole."""
        held = ""
        iterator = iter(pieces)
        try:
            for piece in iterator:
                held += piece
                ends = [m.end() for m in _SPACE.finditer(held)]
                if not ends:
                    continue
                out, held = held[: ends[-1]], held[ends[-1] :]
                yield self.clean(out)
            if held:
                yield self.clean(held)
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()  # an answer cut short stops generating

"""BM25 as Qdrant sparse vectors: documents carry the saturated term frequency, Qdrant applies IDF.

The collection's sparse vector is created with `Modifier.IDF`, so the server (or local mode) keeps the
document frequencies up to date as chunks come and go; the client only needs term ids and the
BM25 tf part tf*(k1+1) / (tf + k1*(1 - b + b*len/avg_len)). Queries send each term once with weight 1.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

import snowballstemmer

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why
    will with you your yours yourself yourselves
    """.split()  # noqa: SIM905 - a word list reads better as prose
)
_stemmer = snowballstemmer.stemmer("english")


def terms(text: str) -> list[str]:
    """Lower-cased, stop-word-free, Snowball-stemmed word tokens."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS]
    return _stemmer.stemWords(words)


def term_id(term: str) -> int:
    """Stable 31-bit id for a term (CRC32); collisions are rare and only merge two terms' statistics."""
    return zlib.crc32(term.encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


class BM25Encoder:
    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_len: float = 120.0) -> None:
        self.k1, self.b, self.avg_len = k1, b, avg_len

    def encode_document(self, text: str) -> SparseVec:
        tokens = terms(text)
        counts = Counter(term_id(t) for t in tokens)
        norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.avg_len)
        ids = sorted(counts)
        return SparseVec(ids, [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in ids])

    def encode_query(self, text: str) -> SparseVec:
        ids = sorted({term_id(t) for t in terms(text)})
        return SparseVec(ids, [1.0] * len(ids))

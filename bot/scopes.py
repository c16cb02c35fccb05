"""Which knowledge bases the bot reads: the one place a `Scope` is built for a conversation or a query.

For now every door reads the `default` knowledge base (where `ragbot ingest` and web uploads write
unless told otherwise). Reading by who asks replaces this function with the asker's readable set.
"""

from __future__ import annotations

from retrieval.types import DEFAULT_KB, Scope


def reading_scope() -> Scope:
    """The knowledge bases a chat turn, `ragbot ask` and `ragbot query` search."""
    return Scope.of(DEFAULT_KB)

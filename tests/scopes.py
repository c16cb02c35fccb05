"""The scope tests pass when they are not about permissions: the one knowledge base every store
built before knowledge bases has, which everyone may read by default."""

from retrieval.types import DEFAULT_KB, Scope

DEFAULT = Scope.of(DEFAULT_KB)

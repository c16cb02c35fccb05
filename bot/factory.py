"""Build the pieces from Settings: one place that knows how store, embedder and generator are chosen."""

from __future__ import annotations

from functools import cached_property

from bot.config import Settings
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.generator import Generator
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.rewrite import QueryRewriter
from retrieval.store import VectorStore


class Components:
    """Lazily built components, so `ragbot ingest` never loads the generator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> VectorStore:
        s = self.settings
        if s.qdrant_url:
            return VectorStore(s.collection, url=s.qdrant_url, api_key=s.qdrant_api_key)
        return VectorStore(s.collection, path=s.qdrant_path)

    @cached_property
    def embedder(self) -> MultiHeadEmbedder:
        return MultiHeadEmbedder(self.settings.embedder_model)

    @cached_property
    def ingestor(self) -> Ingestor:
        s = self.settings
        chunker = Chunker(self.embedder.tokenizer, s.chunk_size, s.chunk_overlap)
        return Ingestor(self.embedder, chunker, self.store, chunker_signature=s.chunker_signature)

    @cached_property
    def generator(self) -> Generator:
        from bot.generators import LocalGenerator
        from bot.models import resolve_model_dir

        return LocalGenerator(resolve_model_dir(self.settings.generator_model))

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.embedder, self.store, QueryRewriter(self.generator))

    def retrieval_settings(self) -> RetrievalSettings:
        s = self.settings
        return RetrievalSettings(k=s.top_k, method=s.method, n_queries=s.n_queries, condense=s.condense)

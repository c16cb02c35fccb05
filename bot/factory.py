"""Build the pieces from Settings: one place that knows how store, embedder and generator are chosen."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bot.access import Readers, register_knowledge_bases
from bot.admission import TurnQueue
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from generation.llamacpp import LlamaCppEngine
from generation.models import SHIPPED, cache_dir, model_file
from generation.openai_compat import OpenAICompatibleGenerator
from guardrails.categories import parse_categories
from guardrails.classifier import SelfReflectionClassifier
from guardrails.guard import Guard
from guardrails.policy import ModerationPolicy
from retrieval.chunking import Chunker
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.rewrite import QueryRewriter
from retrieval.store import VectorStore
from retrieval.types import DEFAULT_KB

if TYPE_CHECKING:  # loaded when first used: `ragbot info` and `reset` need no torch
    from retrieval.embedder import MultiHeadEmbedder
    from state import State

log = logging.getLogger(__name__)
EMBEDDED_TURNS = 2  # turns at once on the embedded engine: measured with bench/turn.py --concurrency 20


class Components:
    """Lazily built components, so `ragbot ingest` never loads the generator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> VectorStore:
        s = self.settings
        if s.qdrant_url:
            return VectorStore(s.collection, url=s.qdrant_url, api_key=s.qdrant_api_key)
        return VectorStore(s.collection, path=s.qdrant_path, engine=s.store_engine)

    @cached_property
    def state(self) -> State:
        """Accounts, knowledge bases, grants, keys, audit and kept chats (state/), migrated on open;
        every knowledge base the store holds is registered (bot/access.py)."""
        from state import open_state

        state = open_state(self.settings.state_db_url)
        register_knowledge_bases(state, self.store)
        return state

    @cached_property
    def readers(self) -> Readers:
        return Readers(self.state)

    @cached_property
    def embedder_model(self) -> str:
        """The setting when given; else the encoder the existing collection was built with; else the default."""
        from retrieval.embedder import for_store

        if self.settings.embedder_model:
            return self.settings.embedder_model
        return for_store(self.store.metadata().get("embedder") if self.store.exists() else None)

    @cached_property
    def embedder(self) -> MultiHeadEmbedder:
        from retrieval.embedder import MultiHeadEmbedder

        return MultiHeadEmbedder(self.embedder_model, dtype=self.settings.embedder_dtype)

    @cached_property
    def ingestor(self) -> Ingestor:
        """The ingestor of the `default` knowledge base (web uploads, `ragbot up`)."""
        return self.ingestor_for(DEFAULT_KB)

    def ingestor_for(self, kb: str) -> Ingestor:
        """An ingestor writing into knowledge base `kb`."""
        s = self.settings
        chunker = Chunker(self.embedder.tokenizer, s.chunk_size, s.chunk_overlap)
        return Ingestor(self.embedder, chunker, self.store, chunker_signature=s.chunker_signature, kb=kb)

    @property
    def draft_model_path(self) -> Path | None:
        s = self.settings
        return model_file(s.generator_draft_model) if s.generator_speculative == "draft" else None

    @cached_property
    def engine(self) -> LlamaCppEngine:
        """The embedded llama.cpp engine (only when no vLLM server is configured)."""
        s = self.settings
        return LlamaCppEngine(
            model_file(s.generator_model),
            name=s.generator_model if s.generator_model in SHIPPED else None,
            threads=s.generator_threads,
            context=s.generator_context,
            parallel=s.generator_parallel,
            speculative=s.generator_speculative,
            draft_model=self.draft_model_path,
            keep_idle_slots=s.generator_keep_slots,
            slot_dir=cache_dir() / "slots" if s.generator_save_prompts else None,
        )

    @cached_property
    def generator(self) -> OpenAICompatibleGenerator:
        """vLLM by URL when configured, else the embedded engine: both through the same client."""
        s = self.settings
        if s.vllm_url:
            return OpenAICompatibleGenerator(s.vllm_url, s.vllm_model, api_key=s.vllm_api_key)
        return self.engine.generator()

    @cached_property
    def guard(self) -> Guard:
        s = self.settings
        policy = ModerationPolicy(
            parse_categories(s.moderation_categories),
            s.moderation_threshold,
            s.moderation_output_threshold,
            s.moderation_review_threshold,
            s.moderation_review_output_threshold,
        )
        moderated = s.moderation == "self" and policy.enforced
        classifier = SelfReflectionClassifier(self.generator) if moderated else None
        return Guard(classifier, policy, s.operator_prompt, chunk_chars=s.moderation_chunk_chars)

    def warm(self) -> None:
        """Cache the moderation checks' long fixed prompt prefixes before the first chat needs them.

        The embedded engine restores them from the files an earlier start saved (a cold prefill of
        ~1,400 tokens is 20-30 s on 2 cores), the guard's warm-up then computes only what is missing,
        and the slots are saved again for the next start, unless a chat began meanwhile: a slot may
        then hold a person's prompt, which has no place in a cache file.
        """
        saved_prompts = not self.settings.vllm_url and self.guard.enabled and self.engine.slot_dir is not None
        if saved_prompts:
            restored = self.engine.restore_slots()
            log.info("restored %d cached prompt tokens from %s", restored, self.engine.slot_dir)
        self.guard.warm()
        if saved_prompts and not self.turn_queue.joined:
            self.engine.save_slots()

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.embedder, self.store, QueryRewriter(self.generator))

    @cached_property
    def turn_queue(self) -> TurnQueue:
        """One line for every chat service built here: they share one model."""
        s = self.settings
        limit = s.turns_at_once if s.turns_at_once is not None else (0 if s.vllm_url else EMBEDDED_TURNS)
        return TurnQueue(limit, max_waiting=s.max_waiting_turns, per_client=s.turns_per_client)

    def chat_service(self) -> ChatService:
        return ChatService(
            self.retriever, self.generator, self.turn_settings(), guard=self.guard, queue=self.turn_queue
        )

    def turn_settings(self) -> TurnSettings:
        s = self.settings
        return TurnSettings(
            retrieval=self.retrieval_settings(),
            max_answer_tokens=s.max_answer_tokens,
            max_message_chars=s.max_message_chars,
            prompt_chars=s.prompt_chars,
            abstain_below=s.abstain_below,
            grounding=s.grounding,
            grounding_scope=s.grounding_scope,
            check_below=s.check_below,
            quarantine=s.quarantine,
            spotlight=s.spotlight,
        )

    def retrieval_settings(self) -> RetrievalSettings:
        s = self.settings
        return RetrievalSettings(k=s.top_k, method=s.method, n_queries=s.n_queries, condense=s.condense)

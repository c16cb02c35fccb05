"""Settings from environment variables (RAGBOT_*, plus QDRANT_URL / QDRANT_API_KEY) and CLI flags.

With nothing set, everything runs embedded: Qdrant local mode on disk under ./data, the in-process
generator, and the web UI on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from guardrails.categories import parse_categories
from guardrails.grounding import Grounding, Scope
from retrieval.types import Method


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGBOT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Where local Qdrant data, uploads and the SQLite state database live."
    )
    collection: str = "ragbot"
    qdrant_url: str | None = Field(
        None,
        validation_alias=AliasChoices("QDRANT_URL", "RAGBOT_QDRANT_URL"),
        description="Use a Qdrant server.",
    )
    qdrant_api_key: str | None = Field(
        None, validation_alias=AliasChoices("QDRANT_API_KEY", "RAGBOT_QDRANT_API_KEY")
    )
    store_engine: Literal["edge", "local"] = Field(
        "edge",
        description="Embedded store without QDRANT_URL: Qdrant Edge (default) or qdrant-client local mode.",
    )

    embedder_model: str | None = Field(
        None,
        description=(
            "Encoder: 'multilingual-e5-small', 'all-MiniLM-L6-v2' or a model directory. Default: the one an "
            "existing collection was built with, else multilingual-e5-small (Korean and English)."
        ),
    )
    embedder_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Encoder precision; auto: bfloat16 on a GPU or an AMX CPU, else float32."
    )
    chunk_size: int = Field(200, ge=32, le=8192, description="Chunk size in embedder tokens.")
    chunk_overlap: int = Field(30, ge=0, le=1024)

    generator_model: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="Embedded generator (llama.cpp): a .gguf file or a shipped model name.",
    )
    generator_threads: int | None = Field(None, ge=1, description="llama.cpp threads; default: one per core.")
    generator_parallel: int = Field(
        4, ge=1, le=64, description="Requests llama.cpp decodes together (slots); more queue."
    )
    generator_context: int = Field(
        8192, ge=1024, description="llama.cpp context in tokens, shared by all slots."
    )
    generator_speculative: Literal["none", "ngram", "draft"] = Field(
        "none", description="Speculative decoding: n-gram lookup in the context, or a draft model."
    )
    generator_keep_slots: bool = Field(
        True,
        description="llama.cpp keeps idle slots' prompts for the next request with the same start "
        "(off: its default, save them to RAM and clear them; measured in bench/turn.py).",
    )
    generator_save_prompts: bool = Field(
        True,
        description="Save the embedded engine's cached prompts (the moderation checks' fixed "
        "prefixes) under the model cache, so the next start restores them instead of prefilling.",
    )
    generator_draft_model: str = Field(
        "qwen2.5-coder-0.5b-instruct", description="Draft model for generator_speculative=draft."
    )
    turns_at_once: int | None = Field(
        None,
        ge=0,
        description="Chat turns run at once; the rest wait in arrival order (0: no limit). Default: "
        "2 for the embedded engine (20 chats at once: median wait 144 s instead of 315 s with no "
        "limit, bench/turn.py), no limit with a vLLM server (it batches).",
    )
    vllm_url: str | None = Field(None, description="Use a vLLM (OpenAI-compatible) server at this URL.")
    vllm_model: str | None = Field(None, description="Served model name; default: the server's first.")
    vllm_api_key: str | None = None
    max_answer_tokens: int = Field(256, ge=16, le=4096)

    moderation: Literal["self", "off"] = Field(
        "self", description="Moderation: the generator labels the message and its answer (self), or off."
    )
    moderation_categories: str = Field(
        "illegal,hate,advice",
        description="Enforced categories: illegal, hate, advice, sexual, selfharm, all, none.",
    )
    moderation_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A message at or above this is refused at once; chosen on dev: see bench/stages.py.",
    )
    moderation_output_threshold: float = Field(
        0.8, gt=0, le=1, description="For the drafted answer; chosen on dev: see bench/output_check.py."
    )
    moderation_review_threshold: float = Field(
        0.6,
        gt=0,
        le=1,
        description="A message at or above this and below moderation_threshold is in doubt: not refused "
        "at once, its drafted answer decides (see bench/stages.py). At or above moderation_threshold: "
        "no such band.",
    )
    moderation_review_output_threshold: float = Field(
        0.6, gt=0, le=1, description="For the drafted answer to a message in doubt (stricter than 0.8)."
    )
    moderation_chunk_chars: int = Field(
        160,
        ge=0,
        description="After the first sentence, check the streamed answer at sentence ends every N "
        "characters or more (0: once, at the end).",
    )
    operator_prompt: str = Field("", description="Extra system instructions, after the guardrail.")

    top_k: int = Field(4, ge=1, le=50)
    abstain_below: float = Field(
        0.55,
        ge=0,
        le=1,
        description="Say the documents do not say when P(they answer) is below this (0: never ask). "
        "0.55 on two dev sets (see docs/decisions/answerability-gate.md): 0.62 cut right answers held out.",
    )
    grounding: Grounding = Field(
        Grounding.NAMES,
        description="Show no answer piece that states a number or a capitalised name (numbers: only a "
        "number) its sources and the question lack; with nothing shown yet, the answer becomes the "
        "abstention. bench/qa.py dev: names add 2 of 25 abstentions and cost no right answer.",
    )
    grounding_scope: Scope = Field(
        Scope.CITED,
        description="Where grounding looks a claim up: the documents the piece cites (cited), or every "
        "source the model saw (all, the earlier rule). An invented answer is usually a neighbouring "
        "fact from another retrieved document; see bench/lab/abstention.py.",
    )
    check_below: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Check an answer's first sentence before it is shown: when P(the sources state it) "
        "is below this, say the documents do not say instead (0: no check, the default: with the "
        "1.5B model it cost more right answers than it saved, see bench/lab/answer_check.py).",
    )
    quarantine: bool = Field(
        True, description="Cut instruction-like sentences (addressed to the assistant) out of sources."
    )
    spotlight: bool = Field(False, description="Datamark source text so the model tells data from orders.")
    prompt_chars: int = Field(
        1400,
        ge=0,
        description="Source text given to the generator, the sentences nearest the question (0: whole "
        "chunks). 1400 was best on bench/qa.py dev: accuracy 0.9 and 43% less time than whole chunks.",
    )
    method: Method = Method.FUSION
    n_queries: int = Field(0, ge=0, le=8, description="LLM rewrites per question (multi-query); 0 disables.")
    condense: bool = True

    # Front doors. Secrets come from the environment, never from flags.
    api_key: str | None = Field(
        None,
        description="Bearer key for /v1/chat/completions; unset: open, which `serve` allows on a loopback "
        "bind only.",
    )
    widget_tokens: str = Field(
        "", description="Per-site widget tokens, 'site=token,site2=token2' (not the operator's key)."
    )
    widget_origins: str = Field(
        "'self'", description="Origins allowed to frame /widget (CSP frame-ancestors), space-separated."
    )
    slack_signing_secret: str | None = None
    slack_bot_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    discord_public_key: str | None = Field(None, description="The application's Ed25519 key, hex.")
    discord_api_url: str = "https://discord.com/api/v10"

    admin_token: str | None = Field(
        None,
        description="Token for the web documents panel (upload, delete); unset: allowed from this machine only.",
    )
    max_upload_mb: float = Field(20, gt=0, le=50, description="Largest file the web upload accepts.")

    # Web sign-in (bot/auth.py): local accounts, one-time links, and an OpenID Connect provider.
    public_url: str | None = Field(
        None,
        description="The address people open, e.g. https://bot.example.org: the OpenID redirect URI is "
        "built from it, and https here makes the session cookie Secure. Unset: each request's own address.",
    )
    oidc_issuer: str | None = Field(
        None,
        description="OpenID Connect issuer URL (its discovery document is read); unset: no OIDC sign-in.",
    )
    oidc_client_id: str | None = Field(None, description="This server's client id at the OpenID provider.")
    oidc_client_secret: str | None = Field(None, description="Its client secret (confidential client).")
    oidc_scopes: str = Field("openid email profile", description="Scopes asked of the OpenID provider.")
    oidc_groups_claim: str = Field(
        "groups", description="The ID token or userinfo claim listing the person's groups."
    )
    session_secret: str | None = Field(
        None,
        min_length=32,
        description="Key that signs session cookies. Unset: a random key kept in <data_dir>/session.key "
        "(mode 0600), so sessions survive a restart.",
    )
    session_hours: float = Field(
        12, gt=0, le=24 * 30, description="A sign-in lasts this long, counted from the sign-in."
    )
    anonymous_read: bool = Field(
        True,
        description="People who have not signed in may use the web chat (public knowledge bases only); "
        "off: the web pages ask for sign-in first.",
    )
    state_url: str | None = Field(
        None,
        description="Database of accounts, knowledge bases, permissions, API keys, the audit log, "
        "kept chats, Slack and Discord conversations, handled webhook events and feedback (an "
        "SQLAlchemy URL, e.g. postgresql+psycopg://user@host/ragbot). Unset: the SQLite file "
        "DATA_DIR/state.db. Its schema is migrated on start; a DATA_DIR/conversations.sqlite from "
        "before it is imported once and renamed conversations.sqlite.imported.",
    )
    chat_retention_audit: bool = Field(
        False,
        description="Tell people that their kept chats may be read for audit (the chat page says "
        "so). Only the notice: chats are kept and readable by their owner either way.",
    )

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    allowed_hosts: str = Field(
        "",
        description="Host names the server answers to besides loopback names, comma-separated; '*': any. "
        "Unset: loopback names only on a loopback bind (no DNS rebinding), any name otherwise.",
    )
    max_message_chars: int = Field(4000, ge=1)
    max_body_kb: int = Field(
        2048, ge=16, description="Largest request body outside uploads, checked before parsing."
    )
    max_waiting_turns: int = Field(
        32,
        ge=0,
        description="Chats that may wait for the model; more are told to retry (HTTP 429). 0: no bound.",
    )
    turns_per_client: int = Field(
        3,
        ge=0,
        description="Chats one address may have running or waiting at once (0: no cap; behind a "
        "proxy every asker shares its address).",
    )
    max_connections: int = Field(256, ge=8, description="Open connections and requests before HTTP 503.")
    header_timeout_s: float = Field(
        10, gt=0, description="Time a connection has to send a request's headers."
    )

    @field_validator("moderation_categories")
    @classmethod
    def _known_categories(cls, value: str) -> str:
        parse_categories(value)  # raises ValueError naming the bad category
        return value

    def served_hosts(self) -> frozenset[str] | None:
        """Host names served besides loopback names; None: any."""
        from bot.httpsafe import is_loopback_name

        names = frozenset(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())
        if "*" in names or (not names and not is_loopback_name(self.host)):
            return None
        return names

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url starts with https:// (or http://)")
        return value.rstrip("/") if value else value

    @property
    def conversations_path(self) -> Path:
        """The SQLite file conversations and feedback were kept in before the state database; read
        once, at the first start that finds it, into the state database, then renamed `.imported`."""
        return self.data_dir / "conversations.sqlite"

    def widget_token_map(self) -> dict[str, str]:
        """token -> site name, from 'site=token,...'."""
        pairs = [p.split("=", 1) for p in self.widget_tokens.split(",") if "=" in p]
        return {token.strip(): site.strip() for site, token in pairs if token.strip()}

    @property
    def state_db_url(self) -> str:
        """`state_url`, or the SQLite file under the data directory."""
        return self.state_url or f"sqlite:///{(self.data_dir / 'state.db').as_posix()}"

    @property
    def uploads_dir(self) -> Path:
        """Where files uploaded in the browser are kept (their stored copy is what gets ingested)."""
        return self.data_dir / "uploads"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def chunker_signature(self) -> str:
        """Changes whenever chunking would, so re-ingest re-chunks files after a settings change."""
        return f"{self.embedder_model or 'default'}:{self.chunk_size}:{self.chunk_overlap}"

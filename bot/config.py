"""Settings from environment variables (RAGBOT_*, plus QDRANT_URL / QDRANT_API_KEY) and CLI flags.

With nothing set, everything runs embedded: Qdrant local mode on disk under ./data, the in-process
generator, and the web UI on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrieval.types import Method


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGBOT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where local Qdrant data and conversations live.")
    collection: str = "ragbot"
    qdrant_url: str | None = Field(
        None,
        validation_alias=AliasChoices("QDRANT_URL", "RAGBOT_QDRANT_URL"),
        description="Use a Qdrant server.",
    )
    qdrant_api_key: str | None = Field(
        None, validation_alias=AliasChoices("QDRANT_API_KEY", "RAGBOT_QDRANT_API_KEY")
    )

    embedder_model: str | None = Field(
        None, description="Encoder directory; default: the packaged all-MiniLM-L6-v2."
    )
    chunk_size: int = Field(200, ge=32, le=8192, description="Chunk size in embedder tokens.")
    chunk_overlap: int = Field(30, ge=0, le=1024)

    generator_model: str = Field(
        "smollm2-135m-instruct", description="Directory, .gguf file or shipped model name."
    )
    max_answer_tokens: int = Field(256, ge=16, le=4096)

    top_k: int = Field(4, ge=1, le=50)
    method: Method = Method.MRAG_HYBRID
    n_queries: int = Field(0, ge=0, le=8, description="LLM rewrites per question (multi-query); 0 disables.")
    condense: bool = True

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    max_message_chars: int = Field(4000, ge=1)

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def chunker_signature(self) -> str:
        """Changes whenever chunking would, so re-ingest re-chunks files after a settings change."""
        return f"{self.embedder_model or 'default'}:{self.chunk_size}:{self.chunk_overlap}"

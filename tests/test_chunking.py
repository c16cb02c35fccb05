from retrieval.chunking import Chunker, chunk_id
from retrieval.embedder import MultiHeadEmbedder
from retrieval.types import Document

LONG = "\n\n".join(
    f"Paragraph {i} talks about topic number {i} in some detail, with several words." for i in range(40)
)


def test_chunk_ids_are_stable_and_content_derived(embedder: MultiHeadEmbedder) -> None:
    doc = Document(source="/docs/a.md", title="A", text=LONG)
    first = Chunker(embedder.tokenizer, 64, 8).split(doc)
    second = Chunker(embedder.tokenizer, 64, 8).split(doc)
    assert len(first) > 3
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    # The same text under another source is another chunk; the id is a pure function of its inputs.
    other = Chunker(embedder.tokenizer, 64, 8).split(doc.model_copy(update={"source": "/docs/b.md"}))
    assert not {c.id for c in first} & {c.id for c in other}
    assert first[0].id == chunk_id("/docs/a.md", first[0].text, 0)


def test_chunks_respect_token_budget(embedder: MultiHeadEmbedder) -> None:
    chunks = Chunker(embedder.tokenizer, 64, 8).split(Document(source="s", title="t", text=LONG))
    sizes = [len(embedder.tokenizer.encode(c.text, add_special_tokens=False)) for c in chunks]
    assert max(sizes) <= 64
    assert [c.position for c in chunks] == sorted(c.position for c in chunks)


def test_repeated_passages_get_distinct_ids(embedder: MultiHeadEmbedder) -> None:
    text = "A repeated sentence about the weather today.\n\n" * 3
    chunks = Chunker(embedder.tokenizer, 10, 0).split(Document(source="s", title="t", text=text))
    assert [c.text for c in chunks] == ["A repeated sentence about the weather today."] * 3
    assert len({c.id for c in chunks}) == 3

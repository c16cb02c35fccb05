"""The evidence panel's highlighter and HTML: which passage sentences support a cited claim."""

from __future__ import annotations

from bot.events import Source
from bot.evidence import citing_sentences, evidence, marked_passage, panel, sentence_spans, supporting

CATS = "# Cats\n\nCats are small carnivorous mammals kept as pets. They purr when content and hunt mice at night."


def source(number: int, text: str, cited: bool, title: str = "T") -> Source:
    return Source(number, title, f"/docs/{title}.md", text, 0.5, f"id{number}", cited)


def test_sentences_keep_trailing_citations_and_split_at_newlines() -> None:
    text = "Vesuvius erupted [1]. It buried Pompeii. [2] Rockets fly!\n[3] A heading\nEnd"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Vesuvius erupted [1].",
        "It buried Pompeii. [2]",
        "Rockets fly!",
        "[3] A heading",
        "End",
    ]


def test_citing_sentences_are_those_with_the_marker() -> None:
    answer = "Cats purr [1]. They hunt at night [1][2]. Rockets fly."
    assert citing_sentences(answer, 1) == ["Cats purr [1].", "They hunt at night [1][2]."]
    assert citing_sentences(answer, 2) == ["They hunt at night [1][2]."]
    assert citing_sentences(answer, 3) == []


def test_the_sentence_with_most_shared_content_words_is_marked() -> None:
    marks = supporting(CATS, ["At night cats hunt mice [1]."])
    assert [CATS[m.start : m.end] for m in marks] == ["They purr when content and hunt mice at night."]
    assert marks[0].shared == ("hunt", "mice", "night")


def test_ties_mark_every_best_sentence_and_no_overlap_marks_nothing() -> None:
    passage = "Lava is hot. Ash is grey. Pompeii was buried."
    tied = supporting(passage, ["Hot lava and grey ash [1]."])
    assert [passage[m.start : m.end] for m in tied] == ["Lava is hot.", "Ash is grey."]
    assert supporting(passage, ["The weather is nice [1]."]) == []


def test_cited_sources_come_first_and_uncited_ones_have_no_marks() -> None:
    answer = "They hunt mice at night [2]."
    items = evidence(answer, [source(1, "Rockets burn propellant.", False), source(2, CATS, True)])
    assert [e.source.number for e in items] == [2, 1]
    assert items[0].claims == ("They hunt mice at night [2].",)
    assert len(items[0].highlights) == 1
    assert items[1].highlights == ()


def test_passages_are_escaped_so_a_document_cannot_inject_markup() -> None:
    text = "<script>alert(1)</script> Cats hunt mice."
    html = marked_passage(text, supporting(text, ["Cats hunt mice [1]."]))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert '<mark title="shares: cats, hunt, mice">' in html


def test_panel_shows_the_latest_answer_and_keeps_earlier_ones_hidden() -> None:
    html = panel({1: '<section class="rb-turn" data-turn="1">a</section>',
                  3: '<section class="rb-turn" data-turn="3">b</section>'})  # fmt: skip
    assert '<section class="rb-turn" hidden data-turn="1">' in html
    assert '<section class="rb-turn" data-turn="3">' in html
    assert "Click a citation" in panel({})

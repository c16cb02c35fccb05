from generation.protocol import ChatMessage, Generator
from retrieval.rewrite import CONDENSE_EXAMPLES, QueryRewriter, clean_line, parse_queries
from tests.generators import ScriptedGenerator


def test_parse_queries_strips_numbering_and_duplicates() -> None:
    text = '1. "Saturn V rocket"\n2) saturn v rocket\n- How did Apollo reach the Moon?\n\nHere are queries:\n* Moon landing launch vehicle'
    assert parse_queries(text, "What rocket went to the Moon?", 3) == [
        "What rocket went to the Moon?",
        "Saturn V rocket",
        "How did Apollo reach the Moon?",
        "Moon landing launch vehicle",
    ]
    assert parse_queries(text, "q?", 1) == ["q?", "Saturn V rocket"]
    assert parse_queries("", "q?", 3) == ["q?"]
    assert clean_line("Standalone question: How tall is it?") == "How tall is it?"


def test_expand_asks_for_m_queries() -> None:
    gen = ScriptedGenerator(["one phrasing\nanother phrasing\nthird phrasing\nfourth phrasing"])
    assert isinstance(gen, Generator)
    queries = QueryRewriter(gen).expand("original?", 2)
    assert queries == ["original?", "one phrasing", "another phrasing"]
    assert "2 different search queries" in gen.calls[0][0].content


def test_condense_uses_history_and_falls_back() -> None:
    history = [
        ChatMessage(role="user", content="Tell me about the Saturn V."),
        ChatMessage(role="assistant", content="The Saturn V was a rocket used by NASA."),
    ]
    gen = ScriptedGenerator(["Standalone: How tall was the Saturn V rocket?", ""])
    rw = QueryRewriter(gen)
    assert rw.condense(history, "How tall was it?") == "Standalone: How tall was the Saturn V rocket?"
    request = gen.calls[0][-1]  # after the worked examples
    assert "Saturn V was a rocket" in request.content and "How tall was it?" in request.content
    examples = gen.calls[0][1:-1]
    assert len(examples) == 2 * len(CONDENSE_EXAMPLES)
    assert [m.role for m in examples[:2]] == ["user", "assistant"]
    assert rw.condense(history, "How tall was it?") == "How tall was it?"  # empty reply -> user's words
    assert rw.condense([], "No history here?") == "No history here?"
    assert len(gen.calls) == 2  # no model call without history

from generation.protocol import ChatMessage, Generator
from retrieval.rewrite import (
    CONDENSE_EXAMPLES,
    CONDENSE_EXAMPLES_KO,
    QueryRewriter,
    clean_line,
    parse_queries,
)
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


KO_HISTORY = [
    ChatMessage(role="user", content="국회 정기회 회기는 최대 며칠이에요?"),
    ChatMessage(role="assistant", content="정기회의 회기는 100일을 초과할 수 없습니다."),
]


def test_a_korean_follow_up_is_shown_korean_examples() -> None:
    gen = ScriptedGenerator(["국회 임시회 회기는 최대 며칠이에요?"])
    assert QueryRewriter(gen).condense(KO_HISTORY, "임시회는요?") == "국회 임시회 회기는 최대 며칠이에요?"
    shown = [m.content for m in gen.calls[0][1:-1:2]]
    assert shown[0].startswith("Conversation:\nUser: 세종대왕")
    assert len(shown) == len(CONDENSE_EXAMPLES_KO)


def test_a_korean_follow_up_rewritten_in_english_keeps_the_korean_words() -> None:
    gen = ScriptedGenerator(["Is there a temporary meeting?"])
    standalone = QueryRewriter(gen).condense(KO_HISTORY, "임시회는요?")
    assert standalone == "국회 정기회 회기는 최대 며칠이에요? 임시회는요?"


def test_a_korean_rewrite_that_borrows_or_drops_words_falls_back_to_the_users_words() -> None:
    borrowed = QueryRewriter(ScriptedGenerator(["에펠탑의 임시회는 언제 분화했어?"]))  # nouns from an example
    assert borrowed.condense(KO_HISTORY, "임시회는요?") == "국회 정기회 회기는 최대 며칠이에요? 임시회는요?"
    dropped = QueryRewriter(
        ScriptedGenerator(["국회 정기회 회기는 최대 며칠이에요?"])
    )  # the follow-up is gone
    assert dropped.condense(KO_HISTORY, "임시회는요?") == "국회 정기회 회기는 최대 며칠이에요? 임시회는요?"

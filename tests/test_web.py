import gradio as gr

from bot.chat import ChatService
from bot.events import Source
from bot.web import build_ui, history_messages, render_sources
from retrieval.retriever import RetrievalSettings


def test_history_from_gradio_messages_drops_rendered_sources() -> None:
    history = [
        {"role": "user", "content": "What is MRAG?"},
        {"role": "assistant", "content": "A retrieval method [1].\n\n**Sources**\n- **[1]** Multi-Head RAG"},
        {"role": "user", "content": [{"type": "text", "text": "And RRF?"}]},
    ]
    msgs = history_messages(history)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "What is MRAG?"),
        ("assistant", "A retrieval method [1]."),
        ("user", "And RRF?"),
    ]


def test_sources_rendered_with_title_snippet_and_cited_mark() -> None:
    text = render_sources(
        [
            Source(1, "Multi-Head RAG", "/x/mrag.md", "MRAG uses heads", 0.9, "a", True),
            Source(2, "Qdrant", "https://qdrant.tech/docs", "Named vectors", 0.5, "b", False),
        ]
    )
    assert "**[1]** Multi-Head RAG (`mrag.md`) (cited): MRAG uses heads" in text
    assert "**[2]** [Qdrant](https://qdrant.tech/docs): Named vectors" in text
    assert render_sources([]) == ""


def test_ui_builds_as_a_chat_interface() -> None:
    service = ChatService(retriever=None, generator=None, settings=RetrievalSettings())  # type: ignore[arg-type]
    assert isinstance(build_ui(service), gr.ChatInterface)

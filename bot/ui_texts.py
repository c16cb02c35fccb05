"""The web chat's own words in each language the bot speaks; the browser's language picks the row
(Gradio's I18n). Answers and the bot's fixed replies follow the question instead
(guardrails/language.py)."""

from __future__ import annotations

import gradio as gr


def ui_texts(max_mb: float, token_rule: bool, editors: bool = False) -> gr.I18n:
    """`token_rule`: editing needs the operator token (else: this machine only); `editors`: people
    with the edit role on the knowledge base may too, once signed in."""
    en = {
        "intro": "# ragbot\nAnswers from your documents with numbered citations: click [1] to see its passage.",
        "chat": "Chat",
        "docs": "Documents",
        "empty": "Ask about the documents listed under **Documents**.",
        "ask": "Ask a question about the documents",
        "try": "Try asking",
        "comment": "Comment on this answer (optional)",
        "send_comment": "Send comment",
        "evidence": "### Evidence",
        "docs_rule": f"Markdown, text, HTML and PDF, up to {max_mb:g} MB each; ingested like `ragbot ingest`. "
        + (
            "Uploading and deleting need the operator token."
            if token_rule
            else "Uploading and deleting are allowed from this machine only."
        )
        + (
            " People with the edit role on the chosen knowledge base may too, once signed in."
            if editors
            else ""
        ),
        "token": "Operator token",
        "add": "Add documents",
        "to_delete": "Document to delete",
        "delete": "Delete",
        "doc_kb": "Knowledge base",
        "kbs": "Knowledge bases",
        "kbs_info": "Answers come from the ones picked (none picked: all you may read).",
        "chats": "Your chats",
        "new_chat": "New chat",
        "chat_title": "Title",
        "rename": "Rename",
        "delete_chat": "Delete chat",
        "audit": "Your chats are kept, and may be read for audit.",
    }
    ko = {
        "intro": "# ragbot\n문서에서 찾은 답을 번호 붙은 출처와 함께 보여 줍니다. [1]을 누르면 해당 구절이 보입니다.",
        "chat": "대화",
        "docs": "문서",
        "empty": "**문서** 탭에 있는 문서에 대해 물어보세요.",
        "ask": "문서에 대해 질문하세요",
        "try": "이런 질문은 어떠세요",
        "comment": "이 답변에 대한 의견 (선택)",
        "send_comment": "의견 보내기",
        "evidence": "### 근거",
        "docs_rule": f"Markdown, 텍스트, HTML, PDF 파일을 각각 {max_mb:g} MB까지 올릴 수 있으며 `ragbot ingest`와 같이 "
        "색인됩니다. "
        + (
            "올리기와 삭제에는 운영자 토큰이 필요합니다."
            if token_rule
            else "올리기와 삭제는 이 컴퓨터에서만 할 수 있습니다."
        )
        + (" 고른 지식 베이스의 편집 권한이 있는 사람도 로그인하면 할 수 있습니다." if editors else ""),
        "token": "운영자 토큰",
        "add": "문서 추가",
        "to_delete": "삭제할 문서",
        "delete": "삭제",
        "doc_kb": "지식 베이스",
        "kbs": "지식 베이스",
        "kbs_info": "고른 지식 베이스에서 답합니다 (고르지 않으면 읽을 수 있는 모든 곳).",
        "chats": "내 대화",
        "new_chat": "새 대화",
        "chat_title": "제목",
        "rename": "이름 바꾸기",
        "delete_chat": "대화 삭제",
        "audit": "대화는 보관되며 감사를 위해 열람될 수 있습니다.",
    }
    return gr.I18n(en=en, ko=ko)


# Words the server writes into the page's HTML itself (the account bar, the export link), where
# Gradio's I18n does not reach: the browser's Accept-Language picks the row.
PAGE_WORDS: dict[str, dict[str, str]] = {
    "en": {"sign_in": "Sign in", "signed_in_as": "Signed in as", "sign_out": "Sign out",
           "export": "Export this chat (JSON)"},
    "ko": {"sign_in": "로그인", "signed_in_as": "로그인한 사람:", "sign_out": "로그아웃",
           "export": "이 대화 내보내기 (JSON)"},
}  # fmt: skip


def page_words(accept_language: str) -> dict[str, str]:
    """The row of the first language in an Accept-Language header that the page speaks; English else."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in PAGE_WORDS:
            return PAGE_WORDS[code]
    return PAGE_WORDS["en"]

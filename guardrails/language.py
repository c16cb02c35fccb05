"""The asker's language, and what the bot says in it.

A turn is answered in the language of the question: the answer instruction names it, and every
fixed text the bot writes itself (the abstention, a refusal and the category it names, a withdrawal)
comes from the table below. Adding a language is adding a row, not code.

Detection is by script: a question is Korean when Hangul is a fair share of its letters. That is a
property of the writing system, not a word list, so it holds for any Korean sentence; questions in
Latin script are answered in English (the table has no other Latin-script language yet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guardrails.categories import TITLES, Category

ENGLISH, KOREAN = "en", "ko"


@dataclass(frozen=True)
class Texts:
    name: str  # the language's name in English, as the answer instruction uses it
    abstention: str
    refusals: dict[Category, str]
    titles: dict[Category, str]  # how a refusal names the category
    flagged_input: str  # "(Moderation: your message was flagged as {title}.)"
    flagged_output: str
    withdrawn: str  # before a refusal that follows shown text
    queued_one: str  # the wait, one chat ahead
    queued_many: str  # ... {n} chats ahead
    answer_in: str = ""  # added to the answer instruction; empty: the prompt's own language


TEXTS: dict[str, Texts] = {
    ENGLISH: Texts(
        name="English",
        abstention="The documents I have do not say.",
        refusals={
            Category.ILLEGAL: "I can't help with this because it looks like a request involving illegal activity.",
            Category.HATE: "I can't help with this because it involves hate, harassment or violence.",
            Category.ADVICE: (
                "I can't give personal legal, medical or financial advice. Please consult a qualified "
                "professional (a lawyer, doctor or licensed financial adviser) about your situation."
            ),
            Category.SEXUAL: "I can't help with sexual content.",
            Category.SELF_HARM: (
                "I can't help with this, but you don't have to face it alone. If you are thinking about "
                "harming yourself, please contact your local emergency number or a suicide crisis line now."
            ),
        },
        titles=dict(TITLES),
        flagged_input="(Moderation: your message was flagged as {title}.)",
        flagged_output="(Moderation: the answer I drafted was flagged as {title}.)",
        withdrawn="(The answer above was withdrawn.)",
        queued_one="Waiting for the model: 1 chat ahead of yours…",
        queued_many="Waiting for the model: {n} chats ahead of yours…",
    ),
    KOREAN: Texts(
        name="Korean",
        abstention="제가 가진 문서에는 그 내용이 나와 있지 않습니다.",
        refusals={
            Category.ILLEGAL: "불법 행위와 관련된 요청으로 보여 도와드릴 수 없습니다.",
            Category.HATE: "혐오, 괴롭힘 또는 폭력과 관련된 내용이라 도와드릴 수 없습니다.",
            Category.ADVICE: (
                "개인적인 법률, 의료 또는 재무 조언은 드릴 수 없습니다. 상황에 대해서는 변호사, 의사 또는 "
                "공인 재무 상담사 같은 전문가와 상담하세요."
            ),
            Category.SEXUAL: "성적인 내용은 도와드릴 수 없습니다.",
            Category.SELF_HARM: (
                "이 요청은 도와드릴 수 없지만, 혼자 견디지 않으셔도 됩니다. 스스로를 해칠 생각이 드신다면 "
                "지금 바로 119나 자살예방상담전화 109로 연락하세요."
            ),
        },
        titles={
            Category.SAFE: "안전",
            Category.ILLEGAL: "불법 행위",
            Category.HATE: "혐오, 괴롭힘 또는 폭력",
            Category.ADVICE: "자격 없는 법률, 의료 또는 재무 조언",
            Category.SEXUAL: "성적인 내용",
            Category.SELF_HARM: "자해",
        },
        flagged_input="(검토 결과: 보내신 메시지가 '{title}'(으)로 분류되었습니다.)",
        flagged_output="(검토 결과: 작성한 답변이 '{title}'(으)로 분류되었습니다.)",
        withdrawn="(위의 답변은 철회되었습니다.)",
        queued_one="모델을 기다리는 중입니다: 앞에 대화 1개가 있습니다…",
        queued_many="모델을 기다리는 중입니다: 앞에 대화 {n}개가 있습니다…",
        answer_in="Write the answer in Korean (한국어로 답하세요).",
    ),
}


def _hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def detect(text: str, default: str = ENGLISH) -> str:
    """The language a message is written in, by script; `default` when it has no letters.

    Korean when Hangul is a fair share of the letters, or when a sentence made mostly of Latin terms
    ends in Hangul words: Korean puts its predicate last ("Reciprocal Rank Fusion(RRF)이 뭐예요?"),
    while an English sentence that quotes a Korean word ends in English.
    """
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return default
    if sum(map(_hangul, letters)) / len(letters) >= 0.3:
        return KOREAN
    words = re.findall(r"[^\W\d_]+", text)
    korean_words = [w for w in words if any(map(_hangul, w))]
    return KOREAN if len(korean_words) >= 2 and any(map(_hangul, words[-1])) else ENGLISH


def texts(language: str) -> Texts:
    return TEXTS.get(language, TEXTS[ENGLISH])


def queued(ahead: int, language: str = ENGLISH) -> str:
    t = texts(language)
    return t.queued_one if ahead == 1 else t.queued_many.format(n=ahead)


def refusal(category: Category, stage: str, language: str = ENGLISH) -> str:
    """The refusal for a flagged message or draft, naming the category."""
    t = texts(language)
    note = t.flagged_input if stage == "input" else t.flagged_output
    return f"{t.refusals[category]} {note.format(title=t.titles[category])}"


def abstentions() -> tuple[str, ...]:
    """Every language's abstention: the guard releases these unchecked, benchmarks recognise them."""
    return tuple(t.abstention for t in TEXTS.values())

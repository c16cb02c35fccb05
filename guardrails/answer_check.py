"""Answer check: before the first sentence of an answer is shown, ask whether the sources state it.

The answerability gate judges the sources before the model answers; a small model still answers an
unanswerable question from a neighbouring fact ("how many tourists visit each year?" -> a figure
the article gives for something else). The check reads what the model actually said, in one label
call: P("yes") that the sources state it. Below the operator's threshold the answer becomes "the
documents do not say" before anyone sees it.

Two forms were measured (bench/answer_check.py, dev half of bench/qa.py):
- SELF: the answer prompt, the model's own sentence as its reply, then "do the sources state
  that?"; the engine has the whole prefix cached from generating the answer, so it costs only the
  sentence and the question;
- FRESH: the sources and the question again, with the sentence given as a proposed answer, asked
  like the gate; it shares the cached prefix only up to the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from generation.protocol import ChatMessage
from guardrails.prompts import without_instruction

_CITATION = re.compile(r"\s*\[\d{1,2}\]")

SELF_CHECK = (
    "Check your answer against the sources above: do they state what you answered, as the answer to "
    "the question? Reply yes or no."
)
FRESH_CHECK = "Do the sources above state the proposed answer to this question? Reply yes or no."


class CheckForm(StrEnum):
    SELF = "self"
    FRESH = "fresh"


def check_messages(form: CheckForm, answer_prompt: Sequence[ChatMessage], sentence: str) -> list[ChatMessage]:
    """The label prompt for `sentence`, built on the answer prompt it was generated from."""
    if form is CheckForm.SELF:
        return [
            *answer_prompt,
            ChatMessage(role="assistant", content=sentence),
            ChatMessage(role="user", content=SELF_CHECK),
        ]
    head, body = without_instruction(answer_prompt)
    claim = _CITATION.sub("", sentence).strip()
    content = f"{body}\nProposed answer: {claim}\n\n{FRESH_CHECK}"
    return [*head, ChatMessage(role="user", content=content)]

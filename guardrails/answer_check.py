"""Answer check: before the first sentence of an answer is shown, ask whether the sources state it.

The answerability gate judges the sources before the model answers; a small model still answers an
unanswerable question from a neighbouring fact ("how many tourists visit each year?" -> a figure
the article gives for something else). The check reads what the model actually said, in one label
call: P("yes") that the sources state it. Below the operator's threshold the answer becomes "the
documents do not say" before anyone sees it.

It is asked like the gate: the sources and the question again, with the sentence given as a
proposed answer, so it shares the engine's cached prefix up to the question (bench/lab/answer_check.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from generation.protocol import ChatMessage
from guardrails.prompts import without_instruction

_CITATION = re.compile(r"\s*\[\d{1,2}\]")

CHECK = "Do the sources above state the proposed answer to this question? Reply yes or no."


def check_messages(answer_prompt: Sequence[ChatMessage], sentence: str) -> list[ChatMessage]:
    """The label prompt for `sentence`, built on the answer prompt it was generated from."""
    head, body = without_instruction(answer_prompt)
    claim = _CITATION.sub("", sentence).strip()
    content = f"{body}\nProposed answer: {claim}\n\n{CHECK}"
    return [*head, ChatMessage(role="user", content=content)]

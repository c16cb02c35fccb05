"""The Korean injection set loads, validates, and is scored in Korean (no model: the bench's own scoring)."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

from bench.injection import DATA, POSITIONS, answered, load_cases, succeeded


def _counts() -> ModuleType:
    """bench/data/moderation/counts.py is a script, not a package module: load it from its path."""
    spec = importlib.util.spec_from_file_location("moderation_counts", DATA / "counts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KO = json.loads((DATA / "injection_ko.json").read_text(encoding="utf-8"))


def test_the_korean_file_validates_and_every_topic_meets_every_attack_at_every_position() -> None:
    data = _counts().check_injection_ko()
    assert len(data["topics"]) == 6 and len(data["attacks"]) >= 30
    cases = load_cases(["injection_ko"])
    assert len(cases) == len(data["topics"]) * len(data["attacks"]) * len(POSITIONS)
    for case in cases:
        assert case.attack["text"] in case.poisoned
        assert answered(case.poisoned, case.topic["answers"])  # the planted text leaves the answer in place


def test_every_attack_has_a_detector_and_every_topic_states_its_answer() -> None:
    for attack in KO["attacks"]:
        detect = attack["detect"]
        assert detect.get("contains_any") or detect.get("not_language") or detect.get("system_prompt_leak")
    for topic in KO["topics"]:
        assert answered(topic["text"], topic["answers"]), topic["id"]


def test_a_clean_korean_answer_sets_off_no_detector() -> None:
    for topic in KO["topics"]:
        korean = [a for a in topic["answers"] if not a.isascii()]
        clean = [topic["text"], f"{korean[0]}입니다 [1].", f"정답은 {korean[-1]}입니다 [1]."]
        for text in clean:
            assert answered(text, topic["answers"]), (topic["id"], text)
            fired = [a["id"] for a in KO["attacks"] if succeeded(text, a["detect"])]
            assert fired == [], (topic["id"], text, fired)


def test_a_korean_question_answered_in_another_language_is_a_language_switch() -> None:
    switch = {"not_language": "ko"}
    assert succeeded("You can borrow up to five books at a time [1].", switch)
    assert succeeded("一次最多可以借五本书 [1]。", switch)
    assert succeeded("一度に5冊まで借りられます [1]。", switch)
    assert not succeeded("한 번에 최대 다섯 권까지 빌릴 수 있습니다 [1].", switch)
    assert not succeeded("최대 5권(5 books)까지 빌릴 수 있습니다 [1].", switch)  # a Latin gloss stays Korean
    assert not succeeded("", switch)  # a refused turn shows no text: no language, no switch
    assert not succeeded("5.", switch)


def test_korean_aliases_match_whatever_the_spacing() -> None:
    assert answered("마지막 주문은 영업 종료 삼십분 전까지 받습니다 [1].", ["삼십 분"])
    assert answered("요금은 1,000 원입니다 [1].", ["1,000원"])
    assert answered("It costs 1,000 won [1].", ["1,000원", "1,000 won"])
    assert not answered("It costs 1,000won.", ["1,000 won"])  # English aliases keep their spaces
    assert not answered("2,000원입니다.", ["1,000원", "천 원"])

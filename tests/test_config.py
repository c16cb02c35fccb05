from dataclasses import fields
from pathlib import Path

import pytest

from bot.chat import TurnSettings
from bot.config import Settings
from bot.factory import Components
from guardrails.grounding import Grounding, Scope
from retrieval.store import StoreUnavailable
from retrieval.types import Method


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("QDRANT_URL", "RAGBOT_QDRANT_URL", "RAGBOT_METHOD", "RAGBOT_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)
    assert s.qdrant_url is None and s.qdrant_path == Path("data/qdrant")
    assert s.host == "127.0.0.1" and s.method is Method.FUSION and s.store_engine == "edge"


def test_environment_switches_to_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RAGBOT_TOP_K", "7")
    monkeypatch.setenv("RAGBOT_METHOD", "bm25")
    s = Settings(_env_file=None)
    assert (s.qdrant_url, s.top_k, s.method) == ("http://127.0.0.1:9", 7, Method.BM25)
    with pytest.raises(StoreUnavailable, match=r"Cannot reach Qdrant at http://127\.0\.0\.1:9"):
        _ = Components(s).store


def test_every_turn_setting_is_the_operators_setting_of_the_same_name(tmp_path: Path) -> None:
    s = Settings(
        _env_file=None,
        data_dir=tmp_path,
        top_k=7,
        method=Method.BM25,
        max_answer_tokens=99,
        max_message_chars=123,
        prompt_chars=500,
        abstain_below=0.3,
        grounding=Grounding.NUMBERS,
        grounding_scope=Scope.ALL,
        check_below=0.4,
        quarantine=True,
        spotlight=True,
    )
    turn = Components(s).turn_settings()  # each value above differs from TurnSettings' default
    assert (turn.retrieval.k, turn.retrieval.method) == (7, Method.BM25)
    for f in fields(TurnSettings):
        if f.name != "retrieval":
            assert getattr(turn, f.name) == getattr(s, f.name), f.name


def test_chunker_signature_follows_chunk_settings() -> None:
    assert Settings(chunk_size=100).chunker_signature != Settings(chunk_size=120).chunker_signature


def test_compose_wires_real_servers_by_variables_the_bot_reads() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).parents[1] / "compose.yaml").read_text())
    services = compose["services"]
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    env = services["bot"]["environment"]
    assert env["QDRANT_URL"] == "http://qdrant:6333" and env["RAGBOT_VLLM_URL"] == "http://vllm:8000/v1"
    fields = set(Settings.model_fields)
    for name in env:
        if name.startswith("RAGBOT_"):
            assert name.removeprefix("RAGBOT_").lower() in fields, name


def test_moderation_thresholds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGBOT_MODERATION_THRESHOLD", "0.6")
    monkeypatch.setenv("RAGBOT_MODERATION_REVIEW_THRESHOLD", "0.6")  # no band: the earlier behaviour
    monkeypatch.setenv("RAGBOT_MODERATION", "off")  # the policy without starting a model
    policy = Components(Settings(_env_file=None)).guard.policy
    assert (policy.threshold, policy.review_threshold, policy.review_output_threshold) == (0.6, 0.6, 0.6)


def test_moderation_is_the_generators_own_label_or_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from guardrails.classifier import SelfReflectionClassifier

    monkeypatch.delenv("RAGBOT_MODERATION", raising=False)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, moderation="knn")
    url = "http://127.0.0.1:9"  # a server by URL: no engine starts, and building the guard asks nothing
    guard = Components(Settings(_env_file=None, vllm_url=url)).guard
    assert guard.enabled and type(guard.classifier) is SelfReflectionClassifier
    assert Components(Settings(_env_file=None, vllm_url=url, moderation="off")).guard.classifier is None
    none = Settings(_env_file=None, vllm_url=url, moderation_categories="none")
    assert Components(none).guard.classifier is None

"""compose.yaml is safe by default: one published port, on loopback; keyed backends on private networks.

The file is read as Compose reads it, with `${NAME:-default}` and `${NAME:?message}` filled in from a
given environment, so the tests see what `docker compose up` would run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
KEYS = {"RAGBOT_API_KEY": "api-key-1", "QDRANT_API_KEY": "qdrant-key-2", "RAGBOT_VLLM_API_KEY": "vllm-key-3"}
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable syntax as compose.yaml uses it: ${NAME}, ${NAME:-default}, ${NAME:?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        given = env.get(name, "")
        if op == ":?" and not given:
            raise MissingVariable(f"{name}: {arg}")
        return given if given or op != ":-" else arg

    return _VARIABLE.sub(fill, value)


def compose(env: Mapping[str, str] = KEYS) -> dict[str, Any]:
    config = interpolate(yaml.safe_load(COMPOSE.read_text()), env)
    assert isinstance(config, dict)
    return config


def test_only_the_bot_publishes_a_port() -> None:
    services = compose()["services"]
    assert [name for name, service in services.items() if "ports" in service] == ["bot"]


def test_the_bot_port_is_bound_to_loopback_by_default() -> None:
    assert compose()["services"]["bot"]["ports"] == ["127.0.0.1:7860:7860"]


def test_the_bot_port_binding_can_be_widened_on_purpose() -> None:
    ports = compose(KEYS | {"RAGBOT_PUBLISH": "0.0.0.0:8080"})["services"]["bot"]["ports"]
    assert ports == ["0.0.0.0:8080:7860"]


@pytest.mark.parametrize("name", ["qdrant", "vllm"])
def test_a_backend_exposes_nothing_to_the_host(name: str) -> None:
    service = compose()["services"][name]
    assert "ports" not in service
    assert service.get("network_mode") is None


def test_qdrant_is_only_on_an_internal_network() -> None:
    config = compose()
    assert config["services"]["qdrant"]["networks"] == ["backend"]
    assert config["networks"]["backend"]["internal"] is True


def test_qdrant_requires_its_api_key() -> None:
    environment = compose()["services"]["qdrant"]["environment"]
    assert environment["QDRANT__SERVICE__API_KEY"] == KEYS["QDRANT_API_KEY"]


def test_vllm_requires_its_api_key() -> None:
    command = compose()["services"]["vllm"]["command"]
    assert command[command.index("--api-key") + 1] == KEYS["RAGBOT_VLLM_API_KEY"]


@pytest.mark.parametrize("key", ["QDRANT_API_KEY", "RAGBOT_VLLM_API_KEY", "RAGBOT_API_KEY"])
def test_the_bot_is_given_each_key(key: str) -> None:
    assert compose()["services"]["bot"]["environment"][key] == KEYS[key]


@pytest.mark.parametrize("key", list(KEYS))
def test_compose_refuses_to_run_without_a_key(key: str) -> None:
    env = {k: v for k, v in KEYS.items() if k != key}
    with pytest.raises(MissingVariable, match=key):
        compose(env)


def test_an_empty_key_counts_as_none() -> None:
    with pytest.raises(MissingVariable, match="RAGBOT_API_KEY"):
        compose(KEYS | {"RAGBOT_API_KEY": ""})

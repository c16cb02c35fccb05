"""docs/configuration.md, written from `Settings` so the reference cannot drift from the code.

    python -m bot.settings_doc > docs/configuration.md

tests/test_docs.py fails when the file and this output differ: after changing a field in
bot/config.py, run the command above.
"""

from __future__ import annotations

import enum
import sys
import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import annotated_types
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from bot.config import Settings

# Headings, each placed before the field that opens its group in bot/config.py. A new field falls
# under the heading of the field declared before it.
SECTIONS = {
    "data_dir": "Store",
    "embedder_model": "Ingest",
    "generator_model": "Generation",
    "moderation": "Moderation",
    "top_k": "Retrieval and answers",
    "api_key": "Front doors",
    "state_url": "People and access",
    "host": "Server and limits",
}

# Used only while a field has no `description` in bot/config.py (that is where descriptions belong;
# once a field has one, its entry here is ignored and can go).
FALLBACK_DESCRIPTIONS = {
    "collection": "Qdrant collection name.",
    "qdrant_api_key": "API key sent to the Qdrant server.",
    "chunk_overlap": "Tokens shared by neighbouring chunks.",
    "vllm_api_key": "API key sent to the vLLM server.",
    "max_answer_tokens": "Longest answer, in generated tokens.",
    "top_k": "Chunks retrieved and given to the generator.",
    "method": "Retrieval method: fusion, dense, mrag, bm25, hybrid or mrag-hybrid "
    "(`ragbot query --help` explains each).",
    "condense": "Rewrite a follow-up into a standalone question, using the conversation, before "
    "checking and searching it.",
    "slack_signing_secret": "Slack app's signing secret; set, it enables /slack/events.",
    "slack_bot_token": "Slack bot token, to post answers in the thread.",
    "slack_api_url": "Slack Web API base URL (tests point it at a local server).",
    "discord_api_url": "Discord API base URL (tests point it at a local server).",
    "host": "Address the server binds to. Anything but loopback needs RAGBOT_API_KEY.",
    "port": "Port the server listens on.",
    "max_message_chars": "Longest message accepted, in characters.",
}

# Environment variables read outside Settings (each where it is used).
READ_ELSEWHERE = [
    (
        "RAGBOT_MODEL_CACHE",
        "`~/.cache/ragbot/models`",
        "generation/models.py",
        "where shipped models are joined into GGUF files, and saved prompt caches live",
    ),
    (
        "RAGBOT_LLAMA_VERBOSITY",
        "0",
        "generation/llamacpp.py",
        "llama.cpp's own log verbosity",
    ),
    (
        "RAGBOT_VLLM_PYTHON",
        "`./.venv-vllm/bin/python`",
        "generation/vllm_server.py",
        "the interpreter that `ragbot up --vllm` starts vLLM with",
    ),
]

INSTALL_VARIABLES = [
    ("RAGBOT_SKIP_VLLM=1", "skip the vLLM environment (`.venv-vllm`); its tests then skip"),
    ("RAGBOT_SKIP_BROWSER=1", "skip installing Chromium; the browser tests then skip"),
    ("TORCH_INDEX_URL", "an extra package index for the CPU build of torch, if pip cannot find it"),
]


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set a field, in the order they are looked up."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    prefix = Settings.model_config.get("env_prefix", "")
    return [f"{prefix}{name}".upper()]


def _base_type(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    names = {bool: "true/false", int: "integer", float: "number", str: "text", Path: "path"}
    if isinstance(annotation, type) and annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def type_text(field: FieldInfo) -> str:
    """The field's type in words, with its bounds (`integer, 1 to 64`)."""
    annotation = field.annotation
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        parts = [a for a in typing.get_args(annotation) if a is not NoneType]
        text = " or ".join(_base_type(a) for a in parts)
    else:
        text = _base_type(annotation)
    low = high = ""
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            low = f"≥ {bound.ge}"
        elif isinstance(bound, annotated_types.Gt):
            low = f"> {bound.gt}"
        elif isinstance(bound, annotated_types.Le):
            high = f"≤ {bound.le}"
        elif isinstance(bound, annotated_types.Lt):
            high = f"< {bound.lt}"
    if low.startswith("≥") and high.startswith("≤"):
        return f"{text}, {low[2:]} to {high[2:]}"
    bounds = ", ".join(b for b in (low, high) if b)
    return f"{text}, {bounds}" if bounds else text


def default_text(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def description_text(name: str, field: FieldInfo) -> str:
    return field.description or FALLBACK_DESCRIPTIONS.get(name, "")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_markdown() -> str:
    """docs/configuration.md: every Settings field as an environment variable, type, default, meaning."""
    env_file = Settings.model_config.get("env_file")
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m bot.settings_doc > docs/configuration.md` from bot/config.py; "
        "edit the code, not this file. -->",
        "",
        "Every setting is an environment variable"
        + (f" (or a line in an `{env_file}` file in the working directory)" if env_file else "")
        + ". Many can also be given as flags (`ragbot COMMAND --help` lists them); secrets only come from "
        "the environment. With nothing set, everything runs on one machine: the embedded Qdrant store "
        "under `./data`, the generator in-process on llama.cpp, the web chat on 127.0.0.1:7860.",
    ]
    header = ["", "| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines += ["", f"## {SECTIONS[name]}", *header]
        variable = " or ".join(f"`{n}`" for n in env_names(name, field))
        cells = [variable, type_text(field), default_text(field), description_text(name, field)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## Read elsewhere",
        "",
        "These are read where they are used, not through `Settings`, and have no flag:",
        "",
        "| variable | default | read in | meaning |",
        "|---|---|---|---|",
        *(
            f"| `{var}` | {default} | `{where}` | {meaning} |"
            for var, default, where, meaning in READ_ELSEWHERE
        ),
        "",
        "Installing (`.ci/setup`):",
        "",
        *(f"- `{var}`: {meaning}." for var, meaning in INSTALL_VARIABLES),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(settings_markdown())

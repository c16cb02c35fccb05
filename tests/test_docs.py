"""The documentation agrees with the code and stays readable: docs/configuration.md is what
bot/settings_doc.py writes from Settings, the README stays short, and no page speaks of how the
project was made (numbered work sessions mean nothing to a reader)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import Settings
from bot.settings_doc import env_names, settings_markdown

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_BYTES = 12 * 1024
WORK_LOG = re.compile(r"\bstop \d+", re.IGNORECASE)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_configuration_doc_is_generated_from_settings() -> None:
    written = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert written == settings_markdown(), (
        "docs/configuration.md differs from Settings: run `python -m bot.settings_doc > docs/configuration.md`"
    )


def test_configuration_doc_names_every_field_and_its_variables() -> None:
    text = settings_markdown()
    for name, field in Settings.model_fields.items():
        for variable in env_names(name, field):
            assert f"`{variable}`" in text, variable
    assert "`QDRANT_URL` or `RAGBOT_QDRANT_URL`" in text


def test_every_setting_has_a_description() -> None:
    text = settings_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows
    assert all(not line.rstrip().endswith("|  |") for line in rows), "a setting without a description"


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size:,} bytes; details belong in docs/"


def test_no_work_log_language() -> None:
    for page in pages():
        hits = WORK_LOG.findall(page.read_text(encoding="utf-8"))
        assert not hits, f"{page.relative_to(ROOT)}: {hits}"


def test_relative_links_resolve() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for page in pages():
        for target in link.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"

"""The moderation evaluation files keep the shape bench/moderation.py and its reports rely on."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

COUNTS = Path(__file__).resolve().parents[1] / "bench" / "data" / "moderation" / "counts.py"


@pytest.fixture(scope="module")
def counts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("moderation_counts", COUNTS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_english_over_refusal_row_has_one_korean_rendering_with_its_labels(counts: ModuleType) -> None:
    english = counts.check_overrefusal()
    korean = counts.check_overrefusal_ko(english)
    assert sorted(r["of"] for r in korean) == sorted(r["id"] for r in english)


def test_korean_advbench_is_the_seeded_sample_split_in_halves(counts: ModuleType) -> None:
    rows = counts.check_advbench_ko()
    assert len(rows) == 120 and sum(r["split"] == "dev" for r in rows) == 60

"""`Components.warm`, run by `ragbot serve` at start: the moderation prefixes are cached, and saved for
the next start only while no chat has begun (a slot could then hold a person's prompt)."""

from pathlib import Path

import pytest

from bot.config import Settings
from bot.factory import Components
from tests.conftest import SMOL


def _parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save: bool = True) -> Components:
    monkeypatch.setenv("RAGBOT_MODEL_CACHE", str(tmp_path / "models"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        generator_model=SMOL,
        generator_parallel=2,
        generator_context=4096,
        generator_save_prompts=save,
    )
    return Components(settings)


def _slot_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "models" / "slots").glob("*/slot-*.bin"))


def test_the_warm_up_saves_the_prefixes_only_while_no_chat_has_begun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _parts(tmp_path, monkeypatch)
    try:
        parts.warm()
        saved = _slot_files(tmp_path)
        assert saved
        for f in saved:
            f.unlink()
        parts.turn_queue.join()  # a chat begins; the next warm-up (cached now, quick) must not save
        parts.warm()
        assert _slot_files(tmp_path) == []
    finally:
        parts.engine.close()


def test_with_saving_off_the_engine_has_no_slot_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _parts(tmp_path, monkeypatch, save=False)
    try:
        assert parts.engine.slot_dir is None
    finally:
        parts.engine.close()
    assert not (tmp_path / "models" / "slots").exists()

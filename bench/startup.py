"""`ragbot up` on a fresh data folder and model cache: seconds until the chat answers, and peak memory.

Starts `ragbot up` (ingest the sample corpus, load the embedder and the generator, serve) as a
subprocess with empty RAGBOT_DATA_DIR and RAGBOT_MODEL_CACHE, polls /healthz until it is ready,
asks one question through /v1/chat/completions, and reads the process tree's peak resident memory
(VmHWM of the server process) at the end.

    python bench/startup.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def peak_rss_gib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7871)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = os.environ | {
        "RAGBOT_DATA_DIR": str(work / "data"),
        "RAGBOT_MODEL_CACHE": str(work / "models"),
        "RAGBOT_PORT": str(args.port),
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "up"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{args.port}"
    ready = None
    try:
        while time.perf_counter() - start < args.timeout:
            if proc.poll() is not None:
                raise SystemExit(f"ragbot up exited with {proc.returncode}:\n{proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    ready = time.perf_counter() - start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        if ready is None:
            raise SystemExit("ragbot up did not become ready")
        t = time.perf_counter()
        body = {"messages": [{"role": "user", "content": "How tall is Olympus Mons?"}]}
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=300).json()
        answer_s = time.perf_counter() - t
        page = httpx.get(f"{base}/", timeout=10).status_code
        peak = peak_rss_gib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"ragbot up, fresh data folder and model cache: chat ready in {ready:.1f} s (page {page}); "
          f"first answer {answer_s:.1f} s; peak memory {peak:.2f} GiB")  # fmt: skip
    print("answer:", reply["choices"][0]["message"]["content"][:200])


if __name__ == "__main__":
    main()

"""`ragbot up` on a fresh data folder and model cache: seconds until the chat answers, and peak memory.

Starts `ragbot up` (ingest the sample corpus, load the embedder and the generator, serve) as a
subprocess with empty RAGBOT_DATA_DIR and RAGBOT_MODEL_CACHE, polls /healthz until it is ready,
asks one question through /v1/chat/completions, and reads the process tree's peak resident memory
(VmHWM of the server process) at the end.

    python -m bench.startup
    python -m bench.startup --restart     # and a second start on the same folders
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


def saved(models: Path, timeout: float = 300) -> bool:
    """Wait until the server has saved its cached prompts (after its moderation warm-up)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if any((models / "slots").glob("*/slot-*.bin")):
            time.sleep(2)  # the other slots' files follow within milliseconds
            return True
        time.sleep(1)
    return False


def start_and_ask(
    env: dict[str, str], port: int, timeout: float, ask: bool = True
) -> tuple[float, float, float, int, str]:
    """Start `ragbot up`, wait for /healthz, ask one question: ready s, answer s, peak GiB, page, answer.

    Without `ask`, wait instead until the server has saved its warmed prompts (it does not when a
    chat began during the warm-up)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "up"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    ready = None
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise SystemExit(
                    f"ragbot up exited with {proc.returncode}:\n{proc.stdout.read().decode()[-2000:]}"
                )  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    ready = time.perf_counter() - start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        if ready is None:
            raise SystemExit("ragbot up did not become ready")
        answer_s, answer = float("nan"), ""
        if ask:
            t = time.perf_counter()
            body = {"messages": [{"role": "user", "content": "How tall is Olympus Mons?"}]}
            reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=300).json()
            answer_s = time.perf_counter() - t
            answer = reply["choices"][0]["message"]["content"]
        elif env.get("RAGBOT_GENERATOR_SAVE_PROMPTS", "true") == "false":
            time.sleep(90)  # as long as a warm-up takes here: the next start finds nothing either way
        elif not saved(Path(env["RAGBOT_MODEL_CACHE"])):
            print("the server saved no cached prompts", flush=True)
        page = httpx.get(f"{base}/", timeout=10).status_code
        peak = peak_rss_gib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    return ready, answer_s, peak, page, answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7871)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument(
        "--restart",
        action="store_true",
        help="the first start asks nothing and waits for its warm-up to be saved; then start again "
        "on the same folders (model joined, corpus ingested, moderation prefixes saved unless "
        "RAGBOT_GENERATOR_SAVE_PROMPTS=false) and ask at once",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = os.environ | {
        "RAGBOT_DATA_DIR": str(work / "data"),
        "RAGBOT_MODEL_CACHE": str(work / "models"),
        "RAGBOT_PORT": str(args.port),
    }
    runs = ["fresh data folder and model cache"] + (["restarted on them"] if args.restart else [])
    for n, what in enumerate(runs):
        ready, answer_s, peak, page, answer = start_and_ask(
            env, args.port, args.timeout, bool(n) or not args.restart
        )
        print(f"ragbot up, {what}: chat ready in {ready:.1f} s (page {page}); "
              f"first answer {answer_s:.1f} s; peak memory {peak:.2f} GiB", flush=True)  # fmt: skip
        print("answer:", answer[:200], flush=True)


if __name__ == "__main__":
    main()

"""Web chat timings in headless Chromium: first paint of `/`, and uploading the sample corpus
compared with `ragbot ingest` on the same files.

    python -m bench.web [--loads 5]

Targets (issue 12): first paint <= 2 s on 127.0.0.1; uploading the 5 sample files takes no longer
than `ragbot ingest` on them + 2 s. `ragbot ingest` is timed as a user runs it (a fresh process:
imports, embedder load, ingest); the upload as a user waits for it in the browser (files chosen ->
per-file results shown) on a running server, whose embedder is loaded. The in-process ingest of the
same files (no browser, no server) is printed too, so the upload path's own overhead is visible.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.app import build_app
from bot.cli import sample_corpus
from bot.config import Settings
from bot.factory import Components
from generation.vllm_server import free_port

MODEL = "smollm2-135m-instruct"  # generation plays no part in these timings; the small model starts fast


def chromium(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)


def time_cli_ingest(files: list[Path], data_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "ingest", *map(str, files), "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return time.perf_counter() - start


def time_inprocess_ingest(files: list[Path], data_dir: Path) -> float:
    parts = Components(Settings(data_dir=data_dir))
    parts.embedder.embed(["warm up"])
    start = time.perf_counter()
    parts.ingestor.ingest_paths(files)
    elapsed = time.perf_counter() - start
    parts.store.close()
    return elapsed


def serve(data_dir: Path) -> str:
    import uvicorn

    parts = Components(Settings(data_dir=data_dir, generator_model=MODEL))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(parts), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


PAINT_JS = """
const paint = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
const nav = performance.getEntriesByType('navigation')[0];
return {fp: paint['first-paint'], fcp: paint['first-contentful-paint'], dcl: nav.domContentLoadedEventEnd,
        load: nav.loadEventEnd};
"""
READY_JS = "return document.querySelector('#rb-input textarea') ? performance.now() : null;"


def first_paint(url: str, work: Path, loads: int) -> list[dict[str, float]]:
    """Each load in a fresh browser profile (cold cache), as a first visit is."""
    rows = []
    for i in range(loads):
        driver = chromium(work / f"profile-{i}")
        try:
            driver.get(url + "/")
            ready = None
            while ready is None:
                ready = driver.execute_script(READY_JS)
            rows.append(driver.execute_script(PAINT_JS) | {"input": ready})
        finally:
            driver.quit()
    return rows


def time_upload(url: str, files: list[Path], work: Path) -> tuple[float, str]:
    from selenium.webdriver.common.by import By

    driver = chromium(work / "profile-upload")
    try:
        driver.get(url + "/")
        while not driver.find_elements(By.CSS_SELECTOR, "#rb-input textarea"):
            time.sleep(0.05)
        next(
            b for b in driver.find_elements(By.CSS_SELECTOR, "button[role='tab']") if b.text == "Documents"
        ).click()
        field = driver.find_element(By.CSS_SELECTOR, "#rb-upload input[type='file']")
        start = time.perf_counter()
        field.send_keys("\n".join(str(f) for f in files))
        while not driver.find_elements(By.CSS_SELECTOR, "#rb-upload-result"):
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        return elapsed, driver.find_element(By.CSS_SELECTOR, "#rb-upload-result").text
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--loads", type=int, default=5, help="page loads for first paint (fresh profile each)"
    )
    args = parser.parse_args()
    files = sorted(sample_corpus().iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cli_s = time_cli_ingest(files, work / "cli")
        inproc_s = time_inprocess_ingest(files, work / "inproc")
        url = serve(work / "server")
        upload_s, table = time_upload(url, files, work)
        paints = first_paint(url, work, args.loads)

    print(f"sample corpus: {len(files)} files, {sum(f.stat().st_size for f in files) / 1e3:.1f} kB")
    print(table)
    print()
    print("| measure | seconds |")
    print("|---|---|")
    print(f"| `ragbot ingest` (fresh process) | {cli_s:.2f} |")
    print(f"| ingest_paths in process (embedder loaded) | {inproc_s:.2f} |")
    print(f"| browser upload, files chosen -> results shown | {upload_s:.2f} |")
    verdict = "met" if upload_s <= cli_s + 2 else "NOT met"
    print(f"\nupload target (<= ingest + 2 s = {cli_s + 2:.2f} s): {verdict}")
    print("\n| first load (cold cache) | median ms | max ms |")
    print("|---|---|---|")
    for key, name in (("fp", "first paint"), ("fcp", "first contentful paint"), ("dcl", "DOMContentLoaded"),
                      ("input", "chat input on screen"), ("load", "load event")):  # fmt: skip
        values = [p[key] for p in paints if p.get(key) is not None]
        print(f"| {name} | {statistics.median(values):.0f} | {max(values):.0f} |")
    worst = max(p["fcp"] for p in paints)
    print(
        f"\nfirst (contentful) paint target (<= 2000 ms): {'met' if worst <= 2000 else 'NOT met'} (worst of {len(paints)})"
    )


if __name__ == "__main__":
    main()

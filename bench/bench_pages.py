"""Time to first render of each page in headless Chromium, on a cold server (first visit) and a warm one.

    .venv/bin/python bench/bench_pages.py [--data-dir ../shared/corpora]

"Rendered" means the page's title is on screen and, for Explore and Train, their first chart or form:
what a teacher waits for after clicking.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_core import config  # noqa: E402
from tests.e2e.test_browser import QUIET, free_port, wait_until_healthy  # noqa: E402

PAGES = [("home", "", "Try an example"), ("Explore", "Explore", "Clips per speaker"),
         ("Train", "Train", "Saved models"), ("Classify", "Classify", "Classify a clip"),
         ("Live", "Live", "Live microphone")]


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SER_DATA_DIR": args.data_dir, "SER_CACHE_DIR": f"{home}/cache"}
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true"],
            cwd=config.PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = wait_until_healthy(port)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=QUIET)
                print(f"{'page':10} {'cold s':>7} {'warm s':>7}")
                for name, path, text in PAGES:
                    times = []
                    for _ in range(2):
                        page = browser.new_page(viewport={"width": 1400, "height": 2400})
                        start = time.perf_counter()
                        page.goto(f"{url}/{path}")
                        page.get_by_text(text).first.wait_for(timeout=120_000)
                        times.append(time.perf_counter() - start)
                        page.close()
                    print(f"{name:10} {times[0]:7.2f} {times[1]:7.2f}", flush=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()

"""One live-microphone session in headless Chromium, run inside a loopback-only network namespace.

    python tests/e2e/live_session.py OUT.json [--listen S] [--model NAME] [--calibrate S] CLIP.wav [CLIP2.wav ...]

Starts the app, opens one browser context per clip (each clip is that browser's fake microphone), chooses the
model if one is named, presses START in each, calibrates for S seconds if asked (as a speaker would: after
START, so the model first asks for it), reads the live view (the "Now" emotion and the charts) off each page
every 0.5 s for a while, presses STOP, reads the summary, and writes what each page showed to OUT.json, with
how long each window's result took to reach the page (from the moment the window's last audio reached the
server to the result in the page's DOM, same clock), how much of that the server took to classify it, and the
server's memory every 0.5 s.
See ../shared/notes/browser-and-webrtc-testing.md for why it runs this way.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e.test_browser import fake_microphone, free_port, wait_until_healthy  # noqa: E402

# Notes, in the page, how long after its window ended each new result appeared (same machine, same clock).
TIME_RESULTS = """
new MutationObserver(() => {
  for (const span of document.querySelectorAll("[data-ended]")) {
    const ended = Number(span.dataset.ended);
    if (!(window.__seen ||= new Set()).has(ended)) {
      window.__seen.add(ended);
      (window.__lags ||= []).push(Date.now() - ended);
      (window.__classified ||= []).push(Number(span.dataset.ready) - ended);
    }
  }
}).observe(document, {childList: true, subtree: true, characterData: true, attributes: true});
"""

# The live view in one read: the "Now" emotion, the bar chart's accessible label ("Emotion probabilities: neutral
# 62%, ...") and whether the timeline is drawn. A result replaces the previous one in place, but the first one
# arrives element by element after "Listening…", so a read can fall between its metric and its charts.
READ_VIEW = """() => {
  const metric = document.querySelector('[data-testid="stMetricValue"]');
  const bars = document.querySelector('svg[aria-label^="Emotion probabilities:"]');
  return {now: metric ? metric.innerText.trim() : null, bars: bars ? bars.getAttribute("aria-label") : null,
          timeline: !!document.querySelector('svg[aria-label="Emotion probabilities over time"]')};
}"""


def server_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def expect(page, locator, what: str, server_log: Path, timeout: float = 120_000) -> None:
    """Wait for what a user would see next; if it never comes, say what the page and the server showed."""
    try:
        locator.wait_for(timeout=timeout)
    except Exception as error:
        shown = page.locator('[data-testid="stAlert"], [data-testid="stException"]').all_inner_texts()
        streaming = page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="STOP").count()
        raise RuntimeError(f"{what} never showed; the page shows {shown}, the stream is "
                           f"{'on' if streaming else 'off'}, and the server logged:\n"
                           f"{server_log.read_text()[-2000:]}") from error


def main(out: str, clips: list[str], listen: float = 12, model: str | None = None, calibrate: float = 0) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = tempfile.mkdtemp()
    env = {**os.environ, "SER_CACHE_DIR": f"{home}/cache", "SER_USER_MODELS_DIR": f"{home}/models"}
    log = Path(home) / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    results = []
    try:
        url = wait_until_healthy(port)
        with sync_playwright() as playwright:
            browsers, pages = [], []
            for clip in clips:  # one browser per clip: the fake microphone is a launch flag
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"),
                    args=fake_microphone(clip))
                context = browser.new_context(permissions=["microphone"], viewport={"width": 1400, "height": 2400})
                context.add_init_script(TIME_RESULTS)
                page = context.new_page()
                page.set_default_timeout(120_000)
                page.goto(f"{url}/Live")
                page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="START").wait_for()
                if model:
                    page.locator('[data-testid="stSelectbox"]').first.click()
                    page.get_by_role("option", name=f"{model} (shipped)").click()
                    page.locator(f'[data-testid="stSelectbox"] input[value="{model} (shipped)"]').wait_for()
                    if calibrate:  # the page has rerun with the new model
                        expect(page, page.get_by_role("button", name=re.compile("^Start calibration")),
                               "the calibration buttons", log)
                    page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="START").wait_for()
                browsers.append(browser)
                pages.append(page)
            for page in pages:
                page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="START").click()
            calibrated = [None] * len(pages)
            if calibrate:
                for page in pages:  # the stream flows once the model, given a window, asks for calibration
                    expect(page, page.get_by_text(re.compile("calibrate it on")), "the request to calibrate", log)
                    page.get_by_role("button", name=re.compile("^Start calibration")).click()
                time.sleep(calibrate)
                for i, page in enumerate(pages):
                    page.get_by_role("button", name="Finish calibration").click()
                    outcome = page.get_by_text(re.compile(r"^(Calibrated on|Calibration needs)"))
                    expect(page, outcome, "a calibration outcome", log, timeout=60_000)
                    calibrated[i] = outcome.inner_text()
            views, rss_mb = [[] for _ in pages], []
            deadline = time.time() + listen + 20
            while time.time() < deadline and min(len(seen) for seen in views) < listen * 2:
                for page, seen in zip(pages, views):
                    view = page.evaluate(READ_VIEW)
                    if view["now"] not in (None, "silence") and view["bars"] is None:  # its charts are on the way
                        page.wait_for_timeout(300)
                        view = page.evaluate(READ_VIEW)
                    if view["now"]:
                        seen.append(view)
                rss_mb.append(server_rss_mb(server.pid))
                time.sleep(0.5)
            for page in pages:
                page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="STOP").click()
            for page, seen in zip(pages, views):
                summary = page.get_by_text("Session summary")
                summary.wait_for(timeout=60_000)
                mostly = page.get_by_text("Mostly").first.inner_text()
                page.get_by_role("button", name="Timeline (CSV)").wait_for(timeout=30_000)
                downloads = page.get_by_role("button", name="Recording (WAV)").count()
                errors = page.locator('[data-testid="stException"]').count()
                results.append({"calibrated": calibrated[len(results)],
                                "alerts": page.locator('[data-testid="stAlert"]').all_inner_texts(), "now": [view["now"] for view in seen], "views": seen, "summary": mostly, "downloads": downloads,
                                "exceptions": errors, "server_rss_mb": rss_mb,
                                "lags_ms": page.evaluate("window.__lags || []"),
                                "classified_ms": page.evaluate("window.__classified || []")})
            for browser in browsers:
                browser.close()
    finally:
        server.terminate()
        server.wait(10)
        Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--listen", type=float, default=12, help="seconds to read the page before STOP")
    parser.add_argument("--model", help="a shipped model to choose first (default: the default model)")
    parser.add_argument("--calibrate", type=float, default=0, help="seconds of calibration after START")
    args = parser.parse_args()
    main(args.out, args.clips, args.listen, args.model, args.calibrate)

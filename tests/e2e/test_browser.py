"""The app in headless Chromium, used as a person would: real server, real clicks, real clips.

Needs Debian's chromium (the README's test command installs it) and the shared corpora.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import PROJECT_ROOT, known_clip

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUIET = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


SECOND_LOOPBACK = "127.0.0.2"  # WebRTC leaves 127.0.0.1 out of its candidates (../shared/notes)


def fake_microphone(clip: str) -> list[str]:
    """Chromium's launch flags for a browser whose microphone plays `clip` (a WAV file), allowed to stream it
    over loopback WebRTC (../shared/notes)."""
    return [*QUIET, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={clip}", "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns"]


def in_loopback_namespace(command: list[str]) -> list[str]:
    """`command`, to run in a new loopback-only network namespace with SECOND_LOOPBACK, where a browser, the app
    and the students' clients stream WebRTC to each other and nothing else (../shared/notes). Root, unshare, ip."""
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && ip addr add {SECOND_LOOPBACK}/8 dev lo && "
                                         f"exec {shlex.join(command)}"]


def require_loopback_namespace() -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.fail("the WebRTC test needs root, unshare and ip (a loopback-only network namespace)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(port: int, timeout: float = 60) -> str:
    """Poll Streamlit's health endpoint until it answers ok; return the app's URL."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return url
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no Streamlit server answered on port {port}")


@contextmanager
def app_server(**env: str) -> Iterator[str]:
    """The app on a free local port with these environment variables set; yields its URL."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run the README's test command, which installs it")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            url = wait_until_healthy(port)
        except TimeoutError:
            pytest.fail("the Streamlit server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def server(shared_corpora, tmp_path_factory):
    home = tmp_path_factory.mktemp("ser-home")
    with app_server(SER_DATA_DIR=str(shared_corpora), SER_CACHE_DIR=str(home / "cache"),
                    SER_USER_MODELS_DIR=str(home / "models")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def test_home_classifies_a_real_clip(server, page, shared_corpora):
    from playwright.sync_api import expect

    page.goto(server)
    page.get_by_text("Try an example").wait_for()
    sidebar = page.locator('[data-testid="stSidebarNav"]')
    assert sidebar.inner_text().split() == ["Home", "Explore", "Train", "Classify", "Live", "Record", "Lesson"]
    for emotion in ("angry", "sad"):  # real clips the default model gets right; two, so no constant answer
        clip, label = known_clip(shared_corpora, emotion)
        page.set_input_files('input[type="file"]', str(clip))
        expect(page.locator('[data-testid="stMetricValue"]')).to_have_text(label, timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("path", ["", "/Classify"])
def test_upload_boxes_state_and_enforce_the_30_mb_limit(server, page, tmp_path, path):
    page.goto(f"{server}{path}")
    dropzone = page.locator('[data-testid="stFileUploaderDropzone"]').first
    dropzone.wait_for()
    assert re.search(r"\b30 ?MB per file", dropzone.inner_text())  # the box itself says so, under its button
    too_big = tmp_path / "long.wav"
    too_big.write_bytes(b"RIFF" + bytes(31 * 1024 * 1024))  # 31 MB: refused before any decoding
    page.set_input_files('input[type="file"]', str(too_big))
    page.get_by_text(re.compile(r"must be 30(\.0)? ?MB or smaller")).wait_for()
    assert page.locator('[data-testid="stMetricValue"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


def test_explore_shows_a_spectrogram(server, page):
    page.goto(f"{server}/Explore")
    page.get_by_role("tab", name="Clips").click()
    spectrogram = page.locator(".js-plotly-plot:visible", has_text="Spectrogram").first
    spectrogram.wait_for()
    assert spectrogram.locator(".hm, .heatmaplayer, image").count() > 0  # the heatmap itself is drawn
    assert page.locator('[data-testid="stException"]').count() == 0


def test_short_training_draws_curves_and_a_confusion_matrix(server, page):
    page.goto(f"{server}/Train")
    # A small slice: four RAVDESS actors, the Keras MLP on eGeMAPS, 2 folds, 3 epochs. The model first: the form
    # below it then shows the settings a Keras model takes.
    form = page.locator('[data-testid="stForm"]').first
    form.wait_for()  # the page is drawn: a click now is not lost in a redraw
    model = page.locator(".st-key-train_model")  # Streamlit names a keyed widget's element st-key-<key>
    model.get_by_role("combobox").click()
    page.get_by_role("option", name="mlp", exact=True).click()
    form.get_by_label("Epochs", exact=True).wait_for()
    speakers = form.locator('[data-testid="stMultiSelect"]').nth(1)
    for actor in ("ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"):
        speakers.locator("input").fill(actor)  # the list is long and virtualised: filter it, then pick
        page.get_by_role("option", name=actor, exact=True).wait_for()
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    form.get_by_label("Folds", exact=True).fill("2")
    form.get_by_label("Epochs", exact=True).fill("3")
    form.get_by_role("button", name="Train").click()
    panel = page.get_by_role("tabpanel", name="Train a model")
    panel.get_by_text("Loss per epoch").first.wait_for(timeout=300_000)
    panel.get_by_text("Confusion matrix (clips)").wait_for(timeout=300_000)
    assert panel.get_by_text("Protocol: speaker").count() > 0
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("device, error, advice", [
    ("fake", "NotAllowedError", "the browser refused it: allow the microphone for this site"),
    (None, "NotFoundError", "this computer has no microphone the browser can use"),
])
def test_live_page_explains_a_refused_or_missing_microphone(server, browser, device, error, advice):
    """No microphone permission (the user said no), or no microphone at all: the page says what to do."""
    flags = ["--use-fake-device-for-media-stream"] if device else []
    own = browser.browser_type.launch(executable_path=CHROMIUM, args=[*QUIET, *flags])  # devices are launch flags
    try:
        page = own.new_context(viewport={"width": 1400, "height": 2400}).new_page()
        page.goto(f"{server}/Live")
        widget = page.frame_locator('iframe[title*="webrtc"]')
        widget.get_by_role("button", name="START").click(timeout=120_000)
        widget.get_by_text(error).wait_for(timeout=30_000)  # the browser's refusal, in the widget
        assert page.get_by_text(advice).count() == 1
        assert page.get_by_text("Listening…").count() == 0  # no stream, nothing classifying
        assert widget.get_by_role("button", name="START").is_visible()  # it can be tried again
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        own.close()

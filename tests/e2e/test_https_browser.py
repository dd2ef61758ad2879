"""The app behind the shipped nginx site (deploy/nginx-ser-studio.conf): over HTTPS with a password, the Live
page opens with a microphone API (browsers give none over plain HTTP off this machine) and talks to the app
through the WebSocket upgrade."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, missing
from tests.e2e.test_browser import CHROMIUM, QUIET, app_server, free_port

SITE = PROJECT_ROOT / "deploy" / "nginx-ser-studio.conf"
TWO_PROCESSES = PROJECT_ROOT / "deploy" / "nginx-two-processes.conf"
PASSWORD = "class-of-2026"


def nginx_in_front(app_urls: list[str], folder) -> tuple[subprocess.Popen, str]:
    """nginx serving SITE, its certificate, password file and upstream replaced by test ones (several apps: as
    TWO_PROCESSES says); (process, URL). Its access log names the process each request went to."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"  # sbin: not on every user's PATH
    if not shutil.which("openssl") or not Path(nginx).exists():
        missing("nginx and openssl are not installed: run the README's test command, which installs them")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", folder / "ser.key", "-out", folder / "ser.pem"], check=True, capture_output=True)
    hashed = subprocess.run(["openssl", "passwd", "-apr1", PASSWORD], check=True, capture_output=True, text=True)
    (folder / "ser.htpasswd").write_text(f"teacher:{hashed.stdout.strip()}\n")
    port = free_port()
    upstream = ""
    target = app_urls[0]
    if len(app_urls) > 1:
        servers = "".join(f"    server {url.removeprefix('http://')};\n" for url in app_urls)
        upstream = re.sub(r"(    server [^\n]*\n)+", servers, TWO_PROCESSES.read_text())
        target = "http://ser_studio"
    site = (SITE.read_text().replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
            .replace("/etc/ssl/ser.pem", str(folder / "ser.pem")).replace("/etc/ssl/ser.key", str(folder / "ser.key"))
            .replace("/etc/nginx/ser.htpasswd", str(folder / "ser.htpasswd"))
            .replace("http://127.0.0.1:8501", target))
    # Started as root, nginx's workers would run as nobody, who cannot read the test's private folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"{user}pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}\n"
        f"http {{\n  log_format upstreams '$cookie__streamlit_xsrf $upstream_addr $request_uri';\n"
        f"  access_log {folder}/access.log upstreams;\n  client_body_temp_path {folder}/body;\n"
        f"  proxy_temp_path {folder}/proxy;\n  fastcgi_temp_path {folder}/fastcgi;\n"
        f"  uwsgi_temp_path {folder}/uwsgi;\n  scgi_temp_path {folder}/scgi;\n{upstream}{site}\n}}\n")
    process = subprocess.Popen([nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)
    if process.poll() is not None:
        pytest.fail(f"nginx did not start: {process.stderr.read().decode()[-500:]}")
    return process, f"https://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def https_url(shared_corpora, tmp_path_factory):
    home = tmp_path_factory.mktemp("https")
    with app_server(SER_DATA_DIR=str(shared_corpora), SER_CACHE_DIR=str(home / "cache")) as app_url:
        process, url = nginx_in_front([app_url], home)
        try:
            yield url
        finally:
            process.terminate()
            process.wait(10)


def test_the_live_page_opens_over_https_through_the_proxy_with_a_microphone_api(https_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        try:
            stranger = playwright.request.new_context(ignore_https_errors=True)
            assert stranger.get(f"{https_url}/Live").status == 401  # no password, no app
            teacher = browser.new_context(ignore_https_errors=True,
                                          http_credentials={"username": "teacher", "password": PASSWORD})
            page = teacher.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{https_url}/Live")
            # The page is drawn only over Streamlit's WebSocket: through the proxy's upgrade.
            expect(page.get_by_role("heading", name="Live microphone")).to_be_visible(timeout=120_000)
            widget = page.frame_locator('iframe[title*="webrtc"]')
            expect(widget.get_by_role("button", name="START")).to_be_visible(timeout=120_000)
            assert page.evaluate("window.isSecureContext && !!navigator.mediaDevices")
            assert page.url.startswith("https://") and page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()


def test_two_app_processes_behind_the_proxy_keep_each_browser_on_its_own(shared_corpora, tmp_path):
    """Two app processes behind the proxy (deploy/nginx-two-processes.conf): browsers land on both, and each
    browser's requests stay on one process, its upload on the one that holds its session (elsewhere the upload
    would not reach the session, and no result would come)."""
    from playwright.sync_api import expect, sync_playwright

    from tests.conftest import known_clip

    shared = {"SER_DATA_DIR": str(shared_corpora), "SER_CACHE_DIR": str(tmp_path / "cache"),
              "SER_ROOMS_DIR": str(tmp_path / "rooms"), "STREAMLIT_SERVER_COOKIE_SECRET": "one-secret-for-all"}

    def served(page, uri: str = "") -> set[str]:
        """The app processes that answered this browser's requests carrying its cookie (to `uri`, if given)."""
        cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "_streamlit_xsrf")
        lines = (tmp_path / "access.log").read_text().splitlines()
        return {line.split()[1] for line in lines if line.startswith(cookie + " ") and uri in line}

    with app_server(**shared) as first, app_server(**shared) as second:
        process, url = nginx_in_front([first, second], tmp_path)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
                landed = {}  # process address -> a browser page whose session it holds
                for _ in range(12):  # the hash sends each new browser to either: until both have one
                    page = browser.new_context(ignore_https_errors=True, http_credentials={
                        "username": "teacher", "password": PASSWORD}).new_page()
                    page.set_default_timeout(120_000)
                    page.goto(url)
                    page.get_by_text("Try an example").wait_for()
                    [address] = served(page)  # (a WebSocket is logged when it closes: the browser's other requests)
                    landed.setdefault(address, page)
                    if len(landed) == 2:
                        break
                assert len(landed) == 2, f"twelve browsers all landed on {list(landed)}"
                for emotion, (address, page) in zip(("angry", "sad"), landed.items()):
                    clip, label = known_clip(shared_corpora, emotion)
                    page.set_input_files('input[type="file"]', str(clip))
                    expect(page.locator('[data-testid="stMetricValue"]')).to_have_text(label, timeout=120_000)
                    assert served(page, "/_stcore/upload_file") == {address}  # where its session is
                browser.close()
        finally:
            process.terminate()
            process.wait(10)

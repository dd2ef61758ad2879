"""A school's server in one browser session: the app behind the shipped nginx site (deploy/nginx-ser-studio.conf,
HTTPS and a password) and the shipped TURN relay (deploy/turnserver.conf, coturn), with a browser that may send its
microphone only through the relay, as on a school network that lets no audio reach the server directly. Real
speech goes in; the Live page must show an emotion, and both the browser and coturn must say the relay carried it.

Runs this file as a script inside a loopback-only network namespace (root, `unshare`, `ip`), as
../shared/notes/browser-and-webrtc-testing.md describes: coturn relays on 127.0.0.2, which the host never sees.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Frame, Page

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from tests.conftest import PROJECT_ROOT, known_clip, missing  # noqa: E402
from tests.e2e.test_browser import (CHROMIUM, SECOND_LOOPBACK, app_server, fake_microphone,  # noqa: E402
                                    free_port, in_loopback_namespace, require_loopback_namespace)
from tests.e2e.test_https_browser import PASSWORD, nginx_in_front  # noqa: E402

TURN_CONF = PROJECT_ROOT / "deploy" / "turnserver.conf"
RELAY_IP = SECOND_LOOPBACK  # where coturn listens and relays, inside the test's network namespace

# Every RTCPeerConnection the page (and the WebRTC component's iframe) makes may use relay candidates only, as if
# the network dropped everything else, with the relay's password replaced if one is given (a broken relay); each
# is kept for the test to read its statistics. Called with that password or null.
RELAY_ONLY = """(password) => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      const servers = (config || {}).iceServers || [];
      super({...config, iceTransportPolicy: "relay",
             iceServers: password ? servers.map(s => ({...s, credential: password})) : servers}, ...rest);
      (window.__peerConnections ||= []).push(this);
    }
  };
}"""

# The stream's path as the browser sees it: its policy, the candidates it gathered, and the pair it sends over.
READ_PATH = """async () => {
  const pc = (window.__peerConnections || []).at(-1);
  if (!pc) return null;
  const stats = [...(await pc.getStats()).values()];
  const byId = id => stats.find(s => s.id === id) || {};
  const transport = stats.find(s => s.type === "transport") || {};
  const pair = byId(transport.selectedCandidatePairId);
  const local = byId(pair.localCandidateId);
  return {policy: pc.getConfiguration().iceTransportPolicy, state: pc.iceConnectionState,
          gathered: stats.filter(s => s.type === "local-candidate").map(s => s.candidateType),
          local: local.candidateType, local_address: local.address, bytes_sent: pair.bytesSent || 0};
}"""

# A result on the Live page: an emotion in the "Now" metric, with its probability bars drawn.
RESULT_SHOWN = """() => {
  const now = document.querySelector('[data-testid="stMetricValue"]');
  return !!now && !!document.querySelector('svg[aria-label^="Emotion probabilities:"]')
         && !["", "silence"].includes(now.innerText.trim());
}"""


def turn_user() -> tuple[str, str]:
    """The user and password deploy/turnserver.conf gives browsers, as SER_ICE_SERVERS would carry them."""
    found = re.search(r"^user=([^:\s]+):(\S+)$", TURN_CONF.read_text(), re.M)
    assert found, f"{TURN_CONF} has no user=NAME:PASSWORD line"
    return found.group(1), found.group(2)


def stun_answers(port: int) -> bool:
    """Whether a STUN binding request to the relay gets an answer (coturn is listening)."""
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.sendto(request, (RELAY_IP, port))
            return probe.recv(2048)[8:20] == request[8:20]
        except OSError:
            return False


def coturn(folder: Path) -> tuple[subprocess.Popen, int]:
    """coturn on deploy/turnserver.conf in the foreground, logging to a file in `folder` instead of the system log
    (the one line swapped in the file: coturn takes its log from there before its command line), listening and
    relaying on RELAY_IP, and allowed to relay to loopback peers, which the app is here; (process, port)."""
    text = TURN_CONF.read_text()
    assert re.search(r"^syslog$", text, re.M), f"{TURN_CONF} no longer logs to the system log"
    conf = folder / "turnserver.conf"
    conf.write_text(re.sub(r"^syslog$", f"log-file={folder / 'turn.log'}", text, flags=re.M))
    port = free_port()
    process = subprocess.Popen(
        ["turnserver", "-c", str(conf), "--listening-ip", RELAY_IP, "--relay-ip", RELAY_IP, "--listening-port",
         str(port), "--pidfile", str(folder / "turn.pid"), "--userdb", str(folder / "turndb"),
         "--allow-loopback-peers", "--verbose"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not stun_answers(port):
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise RuntimeError(f"coturn did not answer on {RELAY_IP}:{port}: {(folder / 'turn.log').read_text()}")
    return process, port


def open_live(browser: Browser, url: str, password: str | None = None) -> tuple[Page, Frame]:
    """A new browser (context) opens the Live page over HTTPS, relay-only, and presses START; (page, the WebRTC
    iframe's frame)."""
    context = browser.new_context(permissions=["microphone"], ignore_https_errors=True,
                                  viewport={"width": 1400, "height": 2400},
                                  http_credentials={"username": "teacher", "password": PASSWORD})
    context.add_init_script(f"({RELAY_ONLY})({json.dumps(password)})")
    page = context.new_page()
    page.goto(f"{url}/Live")
    page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="START").click(timeout=120_000)
    return page, page.locator('iframe[title*="webrtc"]').element_handle(timeout=10_000).content_frame()


def school_session(out: Path, clip: str, folder: Path) -> None:
    """coturn, the app told of it through SER_ICE_SERVERS, nginx in front, and a browser with `clip` as its
    microphone: it opens the Live page over HTTPS relay-only, presses START and waits for a result; then a second
    browser whose relay password is wrong presses START and waits until it has gathered its candidates. Writes
    what each page and its peer connection showed to `out`."""
    from playwright.sync_api import sync_playwright

    relay, port = coturn(folder)
    user, password = turn_user()
    ice = [{"urls": f"turn:{RELAY_IP}:{port}", "username": user, "credential": password}]
    shown: dict = {}
    try:
        with app_server(SER_ICE_SERVERS=json.dumps(ice)) as app_url:
            proxy, url = nginx_in_front([app_url], folder)
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM,
                        args=fake_microphone(clip))
                    page, widget = open_live(browser, url)
                    try:
                        page.wait_for_function(RESULT_SHOWN, timeout=120_000)
                    except Exception as error:
                        raise RuntimeError(f"no live result in 120 s; the browser's stream: "
                                           f"{widget.evaluate(READ_PATH)}") from error
                    shown["relayed"] = {
                        "now": page.locator('[data-testid="stMetricValue"]').inner_text(), "url": page.url,
                        "secure": page.evaluate("window.isSecureContext"), "path": widget.evaluate(READ_PATH),
                        "exceptions": page.locator('[data-testid="stException"]').count()}
                    page, widget = open_live(browser, url, password="not-" + password)
                    widget.wait_for_function("() => window.__peerConnections?.at(-1)?.iceGatheringState === "
                                             "'complete'", timeout=30_000)
                    shown["refused"] = {"path": widget.evaluate(READ_PATH), "results": page.locator(
                        '[data-testid="stMetricValue"]').count()}
                    browser.close()
            finally:
                proxy.terminate()
                proxy.wait(10)
    finally:
        relay.terminate()
        relay.wait(10)
        out.write_text(json.dumps(shown))


def run_school_session(tmp_path: Path, clip: str) -> tuple[dict, str]:
    """school_session in its own loopback-only network namespace; (what it showed, coturn's log)."""
    require_loopback_namespace()
    if not shutil.which("turnserver"):
        missing("coturn is not installed: run the README's test command, which installs it")
    out = tmp_path / "school.json"
    command = [sys.executable, "tests/e2e/test_network_browser.py", str(out), clip, str(tmp_path)]
    result = subprocess.run(in_loopback_namespace(command), cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), (tmp_path / "turn.log").read_text()


@pytest.fixture(scope="module")
def microphone(shared_corpora, tmp_path_factory) -> str:
    """An angry RAVDESS sentence the default model knows, looped for the fake microphone."""
    import soundfile as sf

    from tests.e2e.test_live_browser import looped

    clip, _ = known_clip(shared_corpora, "angry")
    wav = tmp_path_factory.mktemp("microphone") / "angry.wav"
    sf.write(wav, looped(str(clip)), 48_000, subtype="PCM_16")
    return str(wav)


def test_a_relay_only_live_session_through_the_https_proxy_and_coturn_shows_results(microphone, tmp_path):
    """The school deployment end to end: HTTPS proxy, relay-only audio through coturn, a live result; and a
    browser with a wrong relay password has no way to send audio at all, so the relay is the only path."""
    shown, turn_log = run_school_session(tmp_path, microphone)
    relayed = shown["relayed"]
    assert relayed["now"] not in ("", "silence"), relayed  # an emotion, with its bars, came back to the page
    assert relayed["url"].startswith("https://") and relayed["secure"] and relayed["exceptions"] == 0, relayed
    path = relayed["path"]
    assert path, "the WebRTC iframe made no peer connection through the relay-only script: it did not run there"
    assert path["policy"] == "relay" and path["state"] in ("connected", "completed"), path
    assert path["gathered"] and set(path["gathered"]) == {"relay"}, path
    assert path["local"] == "relay" and path["local_address"] == RELAY_IP and path["bytes_sent"] > 10_000, path
    user, _ = turn_user()
    assert re.search(rf"user <{user}>: incoming packet ALLOCATE processed, success", turn_log), turn_log[-3000:]
    assert re.search(r"incoming packet (CREATE_PERMISSION|CHANNEL_BIND) processed, success", turn_log), \
        turn_log[-3000:]
    refused = shown["refused"]
    assert refused["path"]["policy"] == "relay" and refused["path"]["gathered"] == [], refused
    assert refused["path"]["state"] not in ("connected", "completed") and refused["results"] == 0, refused
    assert f"user {user} credentials are incorrect" in turn_log, turn_log[-3000:]


if __name__ == "__main__":
    school_session(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))

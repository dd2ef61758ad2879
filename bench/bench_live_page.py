"""The Live page end to end: how long after a window ends its prediction is on the page, in real Chromium.

    sudo .venv/bin/python bench/bench_live_page.py [--seconds 300] [--data-dir ../shared/corpora]

Chromium's fake microphone plays RAVDESS speech to the app over WebRTC (inside a loopback-only network
namespace, as tests/e2e does: root, unshare, ip). For every window the page draws, the time from the moment the
window's last audio reached the server to the result being in the page's DOM (one machine, one clock), and the
server's memory over the stream. Server, browser and this script share the machine's cores, as they do when a
teacher runs it on a laptop.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.audio import load_audio  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from tests.e2e.test_browser import in_loopback_namespace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="how long the page listens")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "corpora"))
    args = parser.parse_args()

    catalog = build_catalog(args.data_dir, ["ravdess"]).sample(60, random_state=config.DEFAULT_SEED)
    speech = np.concatenate([load_audio(path, sr=48_000) for path in catalog["path"]])
    with tempfile.TemporaryDirectory() as folder:
        wav, out = Path(folder) / "microphone.wav", Path(folder) / "live.json"
        sf.write(wav, speech, 48_000, subtype="PCM_16")
        command = [sys.executable, "tests/e2e/live_session.py", str(out), "--listen", str(args.seconds), str(wav)]
        subprocess.run(in_loopback_namespace(command), cwd=ROOT, check=True, timeout=args.seconds + 300)
        [page] = json.loads(out.read_text())
    lags = np.array(page["lags_ms"])
    print(f"{len(lags)} window results drawn over {args.seconds:.0f} s of speech (hop 0.5 s, window "
          f"{config.WINDOW:g} s, default model); {page['exceptions']} exceptions")
    print(f"window end -> result on the page: median {np.median(lags):.0f} ms, p95 {np.percentile(lags, 95):.0f} ms, "
          f"max {lags.max():.0f} ms; first half median {np.median(lags[:len(lags) // 2]):.0f} ms, "
          f"second half {np.median(lags[len(lags) // 2:]):.0f} ms")
    classified = np.array(page["classified_ms"])
    print(f"of which classifying (window end -> result ready on the server): median {np.median(classified):.0f} ms, "
          f"p95 {np.percentile(classified, 95):.0f} ms")
    print(f"share of windows on the page within 300 ms: {np.mean(lags <= 300):.1%}")
    rss = page["server_rss_mb"]  # every 0.5 s
    print(f"server memory: {rss[min(len(rss) - 1, 120)]:.0f} MB after the first minute, {rss[-1]:.0f} MB at the end "
          f"(peak {max(rss):.0f} MB)")


if __name__ == "__main__":
    main()

"""Memory of many browser sessions classifying a long clip at once: the server's peak and resting RSS.

    .venv/bin/python bench/bench_memory.py [--sessions 20] [--seconds 300] [--abort-above-mb 12000]

Each session is the app (streamlit_app.py, switched to its Classify page) run by Streamlit's AppTest in its own
thread, as the server runs one script thread per browser session, all in this one process; each uploads its own copy of a WAV of RAVDESS clips
end to end (48 kHz, 16-bit mono: 28.8 MB for 5 minutes), and all upload at the same moment. The process aborts
when its RSS passes --abort-above-mb, so a run that would exhaust the machine stops first.
"""
from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.audio import load_audio  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402

RATE = 48_000
APP = config.PROJECT_ROOT / "streamlit_app.py"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def long_wav(data_dir: str, seconds: float) -> bytes:
    """RAVDESS clips end to end, as one 16-bit mono WAV at 48 kHz of `seconds`."""
    clips = build_catalog(data_dir, ["ravdess"]).sample(200, random_state=config.DEFAULT_SEED)["path"]
    speech, total = [], 0
    for path in clips:
        speech.append(load_audio(path, sr=RATE))
        total += len(speech[-1])
        if total >= seconds * RATE:
            break
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate(speech)[:int(seconds * RATE)], RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--abort-above-mb", type=float, default=12_000)
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    args = parser.parse_args()

    os.environ.setdefault(config.DATA_DIR_ENV, args.data_dir)
    wav = long_wav(args.data_dir, args.seconds)
    pages = [AppTest.from_file(str(APP), default_timeout=900) for _ in range(args.sessions)]
    for at in pages:
        at.switch_page("pages/3_Classify.py").run()  # before any upload (loads the default model, shared)
    uploads = [bytes(bytearray(wav)) for _ in pages]  # each browser session holds its own upload
    del wav
    gc.collect()
    start_rss = rss_mb()

    peak, running = [start_rss], threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], rss_mb())
            if peak[0] > args.abort_above_mb:
                print(f"aborted: RSS {peak[0]:.0f} MB passed {args.abort_above_mb:.0f} MB", flush=True)
                os._exit(2)
            time.sleep(0.05)

    barrier = threading.Barrier(args.sessions)
    outcomes: list[str] = [""] * args.sessions

    def session(i: int) -> None:
        barrier.wait()
        at = pages[i]
        at.file_uploader[0].upload("lecture.wav", uploads[i], "audio/wav").run()
        if at.exception:
            outcomes[i] = f"exception: {at.exception[0].message}"
        elif at.error:
            outcomes[i] = f"error: {at.error[0].value}"
        else:
            outcomes[i] = next((m.value for m in at.metric if m.label == "Emotion"), "no result")

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(args.sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    held = rss_mb()
    pages.clear()
    uploads.clear()
    gc.collect()
    time.sleep(1.0)
    closed = rss_mb()
    running.clear()

    print(f"{args.sessions} sessions classifying a {args.seconds:.0f} s WAV at once: {elapsed:.1f} s")
    print(f"results: {sorted(set(outcomes))}")
    print(f"RSS: {start_rss:.0f} MB before the uploads (page loaded in every session), peak {peak[0]:.0f} MB, "
          f"{held:.0f} MB when all had their results, {closed:.0f} MB after the sessions closed")


if __name__ == "__main__":
    main()

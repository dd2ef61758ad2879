"""The live pipeline under a real-time stream: latency from a window's last sample to its prediction,
dropped windows, and memory, over a long session (no browser: browser-like frames at real-time pace).

    .venv/bin/python bench/bench_live.py [--seconds 300] [--model NAME] [--hop 0.5]

The Live page redraws every 0.5 s, which adds up to that much before a prediction is on screen.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.audio import load_audio  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.inference import Predictor  # noqa: E402
from ser_core.live import LiveSession  # noqa: E402
from tests.test_live import browser_frames  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--model", default=None)
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    args = parser.parse_args()

    catalog = build_catalog(args.data_dir, ["ravdess"]).sample(100, random_state=config.DEFAULT_SEED)
    speech = np.concatenate([load_audio(path, sr=48_000) for path in catalog["path"]])
    speech = np.tile(speech, int(np.ceil(args.seconds * 48_000 / len(speech))))[:int(args.seconds * 48_000)]
    predictor = Predictor.load(args.model)
    if predictor.needs_calibration:  # a speaker-normalised model: ten clips give it statistics to time with
        predictor.calibrate([load_audio(path, sr=predictor.pipeline.sample_rate) for path in catalog["path"][:10]])
    session = LiveSession(predictor, hop=args.hop)
    start, marks = time.monotonic(), []
    for i, frame in enumerate(browser_frames(speech)):
        session.push_frame(frame)
        if i % 3000 == 0:  # every minute of audio
            marks.append((i * 0.02, rss_mb(), len(session.results), session.dropped))
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))  # real-time pace: 20 ms frames
    session.close()
    latencies = 1000 * np.array(session.latencies)
    print(f"{args.seconds:.0f} s stream, windows of {config.WINDOW:g} s every {args.hop:g} s, "
          f"model {session.predictor.name}: {len(session.results)} windows, {session.dropped} dropped")
    print(f"latency from a window's last sample to its prediction: median {np.median(latencies):.0f} ms, "
          f"p95 {np.percentile(latencies, 95):.0f} ms, max {latencies.max():.0f} ms; first minute median "
          f"{np.median(latencies[:int(60 / args.hop)]):.0f} ms, last minute "
          f"{np.median(latencies[-int(60 / args.hop):]):.0f} ms")
    print("real-time factor of the pipeline (work per window / hop): "
          f"{np.median(latencies) / 1000 / args.hop:.3f}")
    for seconds, rss, results, dropped in marks:
        print(f"  at {seconds:5.0f} s: memory {rss:6.0f} MB, {results} windows, {dropped} dropped")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  at the end: memory {rss_mb():6.0f} MB (peak {peak:.0f} MB)")


if __name__ == "__main__":
    main()

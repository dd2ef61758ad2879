"""Classification speed of a model bundle: load time, latency per 3 s window, real-time factor on 60 s.

    .venv/bin/python bench/bench_predict.py [--model NAME] [--data-dir ../shared/corpora] [--windows 200]

Latency is feature extraction + model for one window of samples already decoded (what the live page
does every hop); the 60 s figure decodes a file and classifies it window by window (3 s every 1 s).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.audio import load_audio  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.inference import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the shipped default)")
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--windows", type=int, default=200)
    args = parser.parse_args()

    start = time.perf_counter()
    predictor = Predictor.load(args.model)
    loaded = time.perf_counter() - start
    sr = predictor.pipeline.sample_rate
    catalog = build_catalog(args.data_dir, ["ravdess"]).sample(args.windows, random_state=config.DEFAULT_SEED)
    clips = [load_audio(path, sr=sr) for path in catalog["path"]]
    if predictor.needs_calibration:  # a speaker-normalised model: any clips give it statistics to time with
        predictor.calibrate(clips[:10])
    start = time.perf_counter()
    predictor.predict_samples(clips[0])  # the first pays the imports and one-off set-up (openSMILE, TensorFlow)
    print(f"model {predictor.name}: load and first window {loaded + time.perf_counter() - start:.2f} s")

    size = int(config.WINDOW * sr)
    windows = [np.pad(y, (0, max(0, size - len(y))))[:size] for y in clips]
    latencies = []
    for y in windows:
        start = time.perf_counter()
        predictor.predict_samples(y)
        latencies.append(1000 * (time.perf_counter() - start))
    print(f"one {config.WINDOW:g} s window, {len(windows)} windows: median {np.median(latencies):.1f} ms, "
          f"p95 {np.percentile(latencies, 95):.1f} ms")

    long_clip = np.concatenate(clips)[:60 * sr]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "minute.wav"
        sf.write(path, long_clip, sr)
        start = time.perf_counter()
        timeline = predictor.predict_windows(path)
        elapsed = time.perf_counter() - start
    print(f"{len(long_clip) / sr:.0f} s clip, {len(timeline.windows)} windows of {config.WINDOW:g} s every "
          f"{config.HOP:g} s: {elapsed:.2f} s, real-time factor {elapsed / (len(long_clip) / sr):.3f}")


if __name__ == "__main__":
    main()

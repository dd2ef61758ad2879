"""Classification speed of a model bundle: load time, then time per clip over real corpus clips.

    .venv/bin/python bench/bench_predict.py [--model egemaps-svm] [--data-dir ../shared/corpora] [--clips 50]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_core import config  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.inference import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the shipped default)")
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--clips", type=int, default=50)
    args = parser.parse_args()

    catalog = build_catalog(args.data_dir).sample(args.clips, random_state=config.DEFAULT_SEED)
    start = time.perf_counter()
    predictor = Predictor.load(args.model)
    predictor.predict(catalog["path"].iloc[0])
    print(f"model {predictor.name}: load and first clip {time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    for path in catalog["path"]:
        predictor.predict(path)
    elapsed = time.perf_counter() - start
    audio = catalog["duration"].sum()
    print(f"{len(catalog)} clips, {audio:.0f} s of audio: {1000 * elapsed / len(catalog):.0f} ms a clip, "
          f"{audio / elapsed:.0f}x real time")


if __name__ == "__main__":
    main()

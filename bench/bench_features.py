"""Feature extraction speed over a whole data root: cold (empty cache) and warm (all cached) passes per pipeline.

    .venv/bin/python bench/bench_features.py [--data-dir ../shared/corpora] [--pipelines librosa180,egemaps]

A warm-up step first starts the worker processes and pays their one-off costs (imports, openSMILE
start-up; the spectral pipelines compile no numba code) on a few clips with a throwaway cache; it is
reported on its own line, so the cold figures are per-clip work plus chunking and caching.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import joblib  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.features import CHUNK_SIZE, PIPELINES, extract_features  # noqa: E402


def timed(catalog, pipeline: str, cache_dir: str, n_jobs: int) -> float:
    start = time.perf_counter()
    extract_features(catalog, pipeline, cache_dir=cache_dir, n_jobs=n_jobs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
    args = parser.parse_args()
    pipelines = args.pipelines.split(",")

    start = time.perf_counter()
    catalog = build_catalog(args.data_dir)
    print(f"catalog: {len(catalog)} clips, {catalog['duration'].sum() / 60:.0f} min of audio, "
          f"built in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory() as scratch:
        # One chunk per worker, spread over the catalog, so that every worker starts and sees each corpus.
        n = CHUNK_SIZE * joblib.effective_n_jobs(args.jobs)
        warmup = catalog.iloc[:: max(1, len(catalog) // n)][:n]
        seconds = sum(timed(warmup, name, scratch, args.jobs) for name in pipelines)
        print(f"warm-up (workers, imports) on {len(warmup)} clips x {len(pipelines)} pipelines: "
              f"{seconds:.1f} s\n")

    print(f"{'pipeline':<14}{'clips':>7}{'cold s':>9}{'clips/s':>9}{'warm s':>9}{'clips/s':>10}")
    for name in pipelines:
        with tempfile.TemporaryDirectory() as cache:
            cold = timed(catalog, name, cache, args.jobs)
            warm = timed(catalog, name, cache, args.jobs)
        n = len(catalog)
        print(f"{name:<14}{n:>7}{cold:>9.1f}{n / cold:>9.0f}{warm:>9.2f}{n / warm:>10.0f}")


if __name__ == "__main__":
    main()

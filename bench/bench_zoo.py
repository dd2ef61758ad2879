"""Every model of the zoo under the same honest protocol: accuracy, UAR and training time, one line each.

    .venv/bin/python bench/bench_zoo.py [--corpus ravdess] [--protocol speaker] [--folds 5] [--epochs 60]
                                        [--models svm,mlp,...] [--speaker-norm] [--data-dir ../shared/corpora]

Each model uses its default feature pipeline and the default hyperparameters of TrainConfig; the figures
are pooled over the test folds (no speaker of a test fold is ever seen in training or validation).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_core import config  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.models import MODELS  # noqa: E402
from ser_core.training import BASELINES, TrainConfig, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--corpus", default="ravdess")
    parser.add_argument("--protocol", default="speaker")
    parser.add_argument("--folds", type=int, default=config.DEFAULT_FOLDS)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--models", default=",".join(BASELINES + tuple(MODELS)))
    parser.add_argument("--speaker-norm", action="store_true")
    args = parser.parse_args()

    catalog = build_catalog(args.data_dir, args.corpus.split(","))
    print(f"{args.corpus}: {len(catalog)} clips, {catalog['speaker'].nunique()} speakers; protocol {args.protocol}, "
          f"{args.folds} folds, speaker normalisation {'on' if args.speaker_norm else 'off'}, "
          f"up to {args.epochs} epochs", flush=True)
    print(f"{'model':16} {'features':14} {'accuracy':>9} {'UAR':>7} {'macro F1':>9} {'train s':>8}", flush=True)
    for model in args.models.split(","):
        cfg = TrainConfig(model=model, protocol=args.protocol, folds=args.folds, epochs=args.epochs,
                          speaker_norm=args.speaker_norm)
        start = time.perf_counter()
        run = train(catalog, cfg)
        p = run.result.pooled
        print(f"{model:16} {cfg.features:14} {p['accuracy']:9.1%} {p['uar']:7.1%} {p['macro_f1']:9.1%} "
              f"{time.perf_counter() - start:8.0f}", flush=True)


if __name__ == "__main__":
    main()

"""How a speaker-normalised recipe does on speakers it never heard, by how much of their speech calibrates it.

    .venv/bin/python bench/bench_calibration.py [--corpus ravdess|tess] [--features compare_ge2e]
                                                [--classifier ridge] [--data-dir ../shared/corpora] [--repeats 2]

RAVDESS, 5 folds by actor, or TESS, trained on one speaker and tested on the other (the speaker protocol): each
fold's model is trained on the other speakers, as `evaluate --speaker-norm` trains it. Each test speaker is then
calibrated the way the Live page and `predict --calibrate` do (Predictor.calibrate), on N of their clips played
26 dB quieter than the corpus (a quiet microphone), and classified on their other clips. "all clips" is the
evaluate protocol's own figure: the speaker's statistics from all their clips, which are then all classified.
A `ridge` model also adapts to the calibration clips, unlabelled, as a saved one does (classifiers.adapt_ridge):
both columns are printed, normalised only and adapted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.audio import load_audio  # noqa: E402
from ser_core.bundles import Bundle  # noqa: E402
from ser_core.classifiers import fit_classifier, ridge_adaptation  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.evaluation import make_splits, normalize_speakers  # noqa: E402
from ser_core.features import extract_features, get_pipeline  # noqa: E402
from ser_core.inference import Predictor  # noqa: E402

QUIET = 0.05  # -26 dB
CALIBRATIONS = ("2 clips", "4 clips", "10 clips", "20 clips", "30 clips", "neutral and calm clips", "all clips")


def calibration_rows(kind: str, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind.startswith("neutral"):
        return np.flatnonzero(np.isin(labels, ("neutral", "calm")))
    if kind == "all clips":
        return np.arange(len(labels))
    return rng.choice(len(labels), int(kind.split()[0]), replace=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("ravdess", "tess"), default="ravdess")
    parser.add_argument("--features", default="compare_ge2e")
    parser.add_argument("--classifier", default="ridge", help="default: the shipped compare-ge2e-ridge's")
    parser.add_argument("--data-dir", default=str(config.PROJECT_ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--repeats", type=int, default=2, help="random draws of the calibration clips per speaker")
    args = parser.parse_args()

    catalog = build_catalog(args.data_dir, [args.corpus])
    pipeline = get_pipeline(args.features)
    X = extract_features(catalog, pipeline)
    y = catalog["label"].to_numpy()
    rng = np.random.default_rng(config.DEFAULT_SEED)
    correct: dict[tuple[str, bool], list[float]] = {}
    folds = 2 if args.corpus == "tess" else 5
    for split in make_splits(catalog, "speaker", folds=folds):
        train = catalog.iloc[split.train]
        X_train, _, typical_std = normalize_speakers(X[split.train], train, {})
        model = fit_classifier(args.classifier, X_train, y[split.train])
        metadata = {"name": f"{args.features}-{args.classifier}", "kind": "sklearn", "labels": list(model.classes_),
                    "features": pipeline.to_dict(), "speaker_norm": True,
                    "normalisation": {"typical_speaker_std": typical_std.tolist()}}
        adaptation = ridge_adaptation(model, X_train) if args.classifier == "ridge" else None
        predictor = Predictor(Bundle(Path("."), metadata, model, adaptation))
        for speaker in catalog["speaker"].iloc[split.test].unique():
            rows = np.flatnonzero(catalog["speaker"].to_numpy() == speaker)
            clips = [load_audio(path, sr=pipeline.sample_rate) * QUIET for path in catalog["path"].iloc[rows]]
            for kind in CALIBRATIONS:
                for _ in range(1 if kind.startswith(("neutral", "all")) else args.repeats):
                    used = calibration_rows(kind, y[rows], rng)
                    predictor.calibrate([clips[i] for i in used])
                    scored = rows if kind == "all clips" else np.delete(rows, used)
                    mean, std = predictor.speaker_stats
                    fitted = {False: predictor.trained.model}
                    if predictor.adapted:
                        fitted[True] = predictor.bundle.model
                    for adapted, fold_model in fitted.items():
                        predicted = fold_model.predict((X[scored] - mean) / std)
                        correct.setdefault((kind, adapted), []).append(float(np.mean(predicted == y[scored])))
        print(f"{split.name} done", file=sys.stderr)
    print(f"{args.features} + {args.classifier}, {args.corpus}, {folds} folds by speaker, calibrated on the "
          f"test speaker's clips at -26 dB, scored on their other clips (chance {1 / len(set(y)):.1%}): "
          "normalised only / adapted too")
    for kind in CALIBRATIONS:
        adapted = f" / {np.mean(correct[kind, True]):6.1%}" if (kind, True) in correct else ""
        print(f"  {kind:24s} {np.mean(correct[kind, False]):6.1%}{adapted}")


if __name__ == "__main__":
    main()

"""`python -m ser_core`: what the app does, for scripts and reproducibility.

Every subcommand prints readable text, or JSON with --json; bad input ends with one
clear line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import config
from .errors import SerError

EXIT_BAD_INPUT = 2


def _corpus_list(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _progress_bars():
    """A progress(stage, done, total) callback that draws one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="clip" if stage != "folds" else "fold",
                                     file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def cmd_catalog(args) -> int:
    from .corpora import build_catalog

    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    if args.json:
        rows = catalog.astype(object).where(catalog.notna(), None)  # NaN is not JSON
        for row in rows.to_dict(orient="records"):
            _print_json(row)
        return 0
    root = config.data_root(args.data_dir)
    print(f"{len(catalog)} clips under {root}")
    for corpus, part in catalog.groupby("corpus"):
        hours = part["duration"].sum() / 3600
        print(f"\n{corpus}: {len(part)} clips, {part['speaker'].nunique()} speakers, {hours:.2f} h")
        counts = part["label"].value_counts()
        print("  " + ", ".join(f"{label} {counts[label]}" for label in config.LABELS if label in counts))
    return 0


def cmd_check(args) -> int:
    from .corpora import check_health

    report = check_health(args.data_dir, _corpus_list(args.corpus))
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.summary())
    return 0


def cmd_features(args) -> int:
    from .corpora import build_catalog
    from .features import extract_features

    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    progress = _progress_bars()
    start = time.perf_counter()
    X = extract_features(catalog, args.pipeline, n_jobs=args.jobs,
                         progress=lambda done, total: progress(args.pipeline, done, total))
    for kind in _corpus_list(args.augment) or []:
        extract_features(catalog, args.pipeline, augmentation=(kind, args.seed), n_jobs=args.jobs,
                         progress=lambda done, total, kind=kind: progress(f"augment:{kind}", done, total))
    seconds = time.perf_counter() - start
    summary = {"pipeline": args.pipeline, "clips": len(catalog), "shape": list(X.shape),
               "seconds": round(seconds, 2), "clips_per_second": round(len(catalog) / seconds, 1)}
    if args.json:
        _print_json(summary)
    else:
        print(f"{args.pipeline}: {len(catalog)} clips, features {X.shape[1:]}, "
              f"{seconds:.1f} s ({summary['clips_per_second']} clips/s), cached")
    return 0


def _format_result(result) -> str:
    """The summary, the per-class table and the pooled confusion matrix, as text."""
    pooled = result.pooled
    labels = pooled["labels"]
    width = max(len(label) for label in labels) + 2
    lines = [result.summary(), "", f"{'':{width}}precision  recall  f1     support"]
    for label in labels:
        row = pooled["per_class"][label]
        lines.append(f"{label:{width}}{row['precision']:9.1%}  {row['recall']:6.1%}  {row['f1']:5.1%}  "
                     f"{row['support']:7d}")
    lines += ["", "confusion (rows: true, columns: predicted)",
              " " * width + " ".join(f"{label[:5]:>5}" for label in labels)]
    for label, row in zip(labels, pooled["confusion"]):
        lines.append(f"{label:{width}}" + " ".join(f"{count:5d}" for count in row))
    return "\n".join(lines)


def cmd_evaluate(args) -> int:
    from .corpora import build_catalog
    from .evaluation import evaluate

    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    result = evaluate(catalog, features=args.features, classifier=args.classifier, protocol=args.protocol,
                      folds=args.folds, seed=args.seed, speaker_norm=args.speaker_norm,
                      augmentation=_corpus_list(args.augment) or (), test_corpus=args.test_corpus,
                      n_jobs=args.jobs, progress=_progress_bars())
    if args.json:
        _print_json(result.to_dict())
    else:
        print(_format_result(result))
    return 0


def cmd_train(args) -> int:
    from .corpora import build_catalog
    from .training import TrainConfig, save_run, train

    base = TrainConfig.load(args.config).to_dict() if args.config else {}
    flags = {key: getattr(args, key) for key in ("model", "features", "protocol", "folds", "seed", "epochs",
                                                 "batch_size", "learning_rate", "dropout", "optimizer",
                                                 "speaker_norm", "patience")}
    if args.augment:
        flags["augmentation"] = _corpus_list(args.augment)
    if flags["model"] and not flags["features"] and "features" in base:
        base["features"] = ""  # another model: its own default features unless named
    train_config = TrainConfig.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    run = train(catalog, train_config, on_event=_training_display(), n_jobs=args.jobs)
    path = save_run(run, args.name, args.out)
    if args.json:
        _print_json({"model": str(path), "evaluation": run.result.to_dict() if run.result else None})
    else:
        if run.result:
            print(_format_result(run.result))
        print(f"saved {path}")
    return 0


def _training_display():
    """An on_event callback: progress bars for features and epochs, one line per finished fold."""
    from tqdm import tqdm

    progress, bars = _progress_bars(), {}

    def on_event(event) -> None:
        if event.kind == "features":
            progress(event.metrics["stage"], event.done, event.total)
        elif event.kind == "epoch":
            key = "final fit" if event.fold is None else f"fold {event.fold + 1}/{event.folds}"
            bar = bars.get(key)
            if bar is None:
                bar = bars[key] = tqdm(total=event.epochs, desc=key, unit="epoch", file=sys.stderr, leave=False)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in event.metrics.items() if k in ("loss", "val_accuracy")})
        elif event.kind == "fold":
            for bar in bars.values():
                bar.close()
            print(f"fold {event.fold + 1}/{event.folds}: accuracy {event.metrics['accuracy']:.1%}, "
                  f"UAR {event.metrics['uar']:.1%}", file=sys.stderr)

    return on_event


def _audio_paths(inputs: Sequence[str]) -> list[Path]:
    """Files as given, and the audio files inside folders, in a stable order."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in config.AUDIO_EXTENSIONS)
        else:
            paths.append(item)
    return paths


def cmd_predict(args) -> int:
    from .inference import Predictor

    predictor = Predictor.load(args.model)
    failures = 0
    for path in _audio_paths(args.paths):
        try:
            if args.timeline:
                record = {"path": str(path), "model": predictor.name,
                          **predictor.predict_windows(path, window=args.window, hop=args.hop).to_dict()}
            else:
                prediction = predictor.predict(path)
                record = {"path": str(path), "label": prediction.label,
                          "probabilities": prediction.probabilities, "model": predictor.name}
        except SerError as error:
            failures += 1
            if args.json:
                _print_json({"path": str(path), "error": str(error)})
            else:
                print(f"{path}\terror: {error}", file=sys.stderr)
            continue
        if args.json:
            _print_json(record)
        elif args.timeline:
            for w in record["windows"]:
                top = f"{w['probabilities'][w['label']]:.0%}" if w["probabilities"] else ""
                print(f"{path}\t{w['start']:.1f}-{w['end']:.1f} s\t{w['label']}\t{top}")
            print(f"{path}\toverall\t{record['summary']['label']}")
        else:
            print(f"{path}\t{record['label']}\t{record['probabilities'][record['label']]:.0%}")
    return 1 if failures else 0


def cmd_models(args) -> int:
    from .bundles import list_models

    models = list_models()
    if args.json:
        for info in models:
            _print_json(info)
    else:
        for info in models:
            print(f"{info['name']}\t{info['source']}\t{info.get('summary', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .classifiers import CLASSIFIERS
    from .evaluation import PROTOCOLS
    from .models import MODELS, OPTIMIZERS
    from .training import BASELINES

    parser = argparse.ArgumentParser(prog="python -m ser_core", description="SER Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help: str, data: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if data:
            p.add_argument("--data-dir", help=f"data root (default: ${config.DATA_DIR_ENV}, else data/)")
            p.add_argument("--corpus", help="corpus name(s), comma-separated (default: all found)")
        return p

    def modelling(p: argparse.ArgumentParser, features_flag: str = "--features") -> None:
        p.add_argument(features_flag, default="egemaps", help="feature pipeline (default: egemaps)")
        p.add_argument("--classifier", choices=CLASSIFIERS, default="svm")
        p.add_argument("--protocol", choices=PROTOCOLS, default=config.DEFAULT_PROTOCOL)
        p.add_argument("--folds", type=int, default=config.DEFAULT_FOLDS)
        p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
        p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")

    command("catalog", cmd_catalog, "list the clips found under the data root")
    command("check", cmd_check, "health report of the corpora: duplicates, stereo, odd rates, bad files")

    p = command("features", cmd_features, "extract features into the cache")
    p.add_argument("--pipeline", default="librosa180")
    p.add_argument("--augment", help="also cache augmented copies: noise,stretch,shift,pitch")
    p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    p.add_argument("--jobs", type=int, default=-1)

    p = command("evaluate", cmd_evaluate, "cross-validate a classifier under an evaluation protocol")
    modelling(p)
    p.add_argument("--speaker-norm", action="store_true", help="standardise features per speaker")
    p.add_argument("--augment", help="augmentations for training folds only: noise,stretch,shift,pitch")
    p.add_argument("--test-corpus", help="with --protocol corpus: the corpus held out (default: each in turn)")

    p = command("train", cmd_train, "evaluate a model under a protocol, then fit it on all data and save it")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument("--config", help="training config JSON, or a model's metadata.json to retrain it")
    p.add_argument("--model", choices=BASELINES + tuple(MODELS), help="model (default: mlp, or the config's)")
    p.add_argument("--features", help="feature pipeline (default: the model's)")
    p.add_argument("--protocol", choices=PROTOCOLS)
    p.add_argument("--folds", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--patience", type=int, help="epochs without improvement before a fit stops")
    p.add_argument("--augment", help="augmentations for training folds only: noise,stretch,shift,pitch")
    p.add_argument("--speaker-norm", action="store_true", default=None, help="standardise features per speaker")
    p.add_argument("--out", help="folder to save into (default: your user models folder)")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")

    p = command("predict", cmd_predict, "classify audio files and folders", data=False)
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--model", help="model name or bundle folder (default: the shipped default)")
    p.add_argument("--timeline", action="store_true", help="classify window by window, with a summary")
    p.add_argument("--window", type=float, default=config.WINDOW, help="window length in seconds")
    p.add_argument("--hop", type=float, default=config.HOP, help="seconds between window starts")

    command("models", cmd_models, "list shipped and user models", data=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

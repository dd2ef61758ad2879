"""`python -m ser_core`: what the app does, for scripts and reproducibility.

Every subcommand prints readable text, or JSON with --json; bad input ends with one
clear line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from . import config
from .errors import OptionError, SerError

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
    from .evaluation import extract_usable, skipped_note

    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    progress = _progress_bars()
    start = time.perf_counter()
    usable = extract_usable(catalog, args.pipeline, protocols=(), seed=args.seed,
                            augmentation=_corpus_list(args.augment) or (), n_jobs=args.jobs,
                            progress=lambda stage, done, total: progress(
                                args.pipeline if stage == "features" else stage, done, total))
    seconds = time.perf_counter() - start
    X = usable.X
    summary = {"pipeline": args.pipeline, "clips": len(X), "shape": list(X.shape), "skipped": usable.skipped,
               "seconds": round(seconds, 2), "clips_per_second": round(len(catalog) / seconds, 1)}
    if usable.skipped:
        print(f"warning: {skipped_note(usable.skipped, limit=10)}", file=sys.stderr)
    if args.json:
        _print_json(summary)
    else:
        print(f"{args.pipeline}: {len(X)} clips, features {X.shape[1:]}, "
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
                      adapt=args.adapt, voice_norm=args.voice_norm, scoring=args.scoring,
                      voice_clips=args.voice_clips, n_jobs=args.jobs, progress=_progress_bars())
    if args.json:
        _print_json(result.to_dict())
    else:
        print(_format_result(result))
    return 0



def cmd_lesson(args) -> int:
    from .corpora import build_catalog
    from .lesson import lesson_results, store_precomputed_lesson

    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    lesson = lesson_results(catalog, features=args.features, classifier=args.classifier, folds=args.folds,
                            seed=args.seed, n_jobs=args.jobs, progress=_progress_bars())
    if args.precompute:
        stored = store_precomputed_lesson(catalog, args.features, args.classifier, args.folds, args.seed, lesson)
        print(f"stored for the Lesson page in {stored}", file=sys.stderr)
    if args.json:
        _print_json(lesson)
        return 0
    for title, key in (("Random split", "random"), ("By speaker", "speaker"),
                       ("By speaker, per-speaker normalisation", "normalised")):
        result = lesson[key]
        print(f"{title}: accuracy {result['pooled']['accuracy']:.1%}, UAR {result['pooled']['uar']:.1%} "
              f"({result['description']}; {result['folds']} folds, {result['n_clips']} clips)")
    print(f"The random split adds {100 * lesson['inflation']:+.1f} points of accuracy; per-speaker normalisation "
          f"adds {100 * lesson['gain']:+.1f}, honestly.")
    if "new_corpus" in lesson:
        part = lesson["new_corpus"]
        print(f"A corpus it never heard: UAR {part['corpus']['pooled']['uar']:.1%} against "
              f"{part['speaker']['pooled']['uar']:.1%} by speaker; hearing its room gives back "
              f"{100 * part['room_gain']:+.1f} points.")
    return 0


def cmd_train(args) -> int:
    from .corpora import build_catalog
    from .evaluation import skipped_note
    from .training import TrainConfig, model_folder, save_run, train

    model_folder(args.name, args.out)  # a bad name is refused now, not after the training it would lose
    base = TrainConfig.load(args.config).to_dict() if args.config else {}
    flags = {key: getattr(args, key) for key in ("model", "features", "protocol", "folds", "seed", "epochs",
                                                 "batch_size", "learning_rate", "dropout", "optimizer",
                                                 "speaker_norm", "voice_norm", "scoring", "voice_clips", "merge_calm",
                                                 "adapt", "patience")}
    if args.augment:
        flags["augmentation"] = _corpus_list(args.augment)
    if flags["model"] and not flags["features"] and "features" in base:
        base["features"] = ""  # another model: its own default features unless named
    train_config = TrainConfig.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}})
    catalog = build_catalog(args.data_dir, _corpus_list(args.corpus))
    run = train(catalog, train_config, on_event=_training_display(), n_jobs=args.jobs)
    path = save_run(run, args.name, args.out)
    if args.json:
        _print_json({"model": str(path), "evaluation": run.result.to_dict() if run.result else None,
                     "skipped": run.skipped})
    else:
        if run.result:
            print(_format_result(run.result))
        elif run.skipped:
            print(skipped_note(run.skipped))
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
    from .audio import check_windows, printable
    from .inference import SILENCE, Predictor

    check_windows(args.window, args.hop)  # once, before any file: each would fail alike
    predictor = Predictor.load(args.model)
    if args.calibrate:
        calibration = predictor.calibrate_files(_audio_paths(args.calibrate), window=args.window, hop=args.hop)
        for message in calibration.skipped:
            print(f"warning: calibration skipped {message}", file=sys.stderr)
        print(f"calibrated {predictor.name} on {calibration.describe()}", file=sys.stderr)
    predictor.check_calibrated()  # once, not once per file
    failures = 0
    for path in _audio_paths(args.paths):
        shown = printable(path)  # a name that is not UTF-8 would stop the output (and the folder) here
        try:
            if args.timeline:
                record = {"path": shown, "model": predictor.name,
                          **predictor.predict_windows(path, window=args.window, hop=args.hop).to_dict()}
            else:
                prediction = predictor.predict(path)
                record = {"path": shown, "label": prediction.label,
                          "probabilities": prediction.probabilities, "model": predictor.name}
        except SerError as error:
            failures += 1
            if args.json:
                _print_json({"path": shown, "error": str(error)})
            else:
                print(f"{shown}\terror: {error}", file=sys.stderr)
            continue
        if args.json:
            _print_json(record)
        elif args.timeline:
            for w in record["windows"]:
                top = f"{w['probabilities'][w['label']]:.0%}" if w["probabilities"] else ""
                print(f"{shown}\t{w['start']:.1f}-{w['end']:.1f} s\t{w['label']}\t{top}")
            print(f"{shown}\toverall\t{record['summary']['label'] or SILENCE}")
        else:
            print(f"{shown}\t{record['label']}\t{record['probabilities'][record['label']]:.0%}")
    return 1 if failures else 0


def cmd_room(args) -> int:
    from .inference import Predictor

    predictor = Predictor.load(args.model).for_session()
    if not predictor.voice_norm:
        raise OptionError(f"Model {predictor.name} classifies each clip as it is: it does not use the room.")
    if args.forget:
        predictor.forget_room()
    if args.add:
        heard = predictor.hear_room_files(_audio_paths(args.add))
        for message in heard.skipped:
            print(f"warning: skipped {message}", file=sys.stderr)
    seconds = predictor.room_seconds
    if args.json:
        _print_json({"model": predictor.name, "features": predictor.pipeline.name, "seconds": round(seconds, 1)})
    else:
        print(f"this room, for {predictor.pipeline.name} models such as {predictor.name}: "
              + (f"{seconds:.0f} s of speech heard" if seconds >= 1 else "nothing heard yet"))
    return 0


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


def _write_files_atomically(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Each file into `folder` by a hidden temporary file and a rename: never a half-written file."""
    from .files import write_atomically

    try:
        return [write_atomically(folder / name, lambda path, content=content: Path(path).write_bytes(content))
                for name, content in files.items()]
    except OSError as error:
        raise OptionError(f"Cannot write the report into {folder}: {error.strerror or error}.") from None


def cmd_report(args) -> int:
    from .reports import figures_png_zip, from_bundle, html_report, predictions_csv

    data = from_bundle(args.model)
    folder = Path(args.out) if args.out else Path(f"{data.name}-report")
    files = {"report.html": html_report(data).encode("utf-8"), "figures.zip": figures_png_zip(data)}
    if data.predictions is not None:
        files["predictions.csv"] = predictions_csv(data).encode("utf-8")
    written = _write_files_atomically(folder, files)
    record = {"model": data.name, "folder": str(folder), "files": [str(path) for path in written],
              "predictions": str(folder / "predictions.csv") if data.predictions is not None else None}
    if args.json:
        _print_json(record)
    else:
        for path in written:
            print(f"wrote {path}")
    if data.predictions is None:
        print(f"note: {data.name} was saved without per-clip predictions (no predictions.csv); train it again "
              "to get them", file=sys.stderr)
    return 0


def _download_display():
    """on_stage and on_progress callbacks: a line per stage and a byte progress bar (rate, time left) on stderr."""
    from tqdm import tqdm

    bars: list[tqdm] = []

    def on_stage(text: str) -> None:
        while bars:
            bars.pop().close()
        print(f"{text}…", file=sys.stderr)

    def on_progress(done: int, total: int, rate: float, seconds_left: float | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=done, unit="B", unit_scale=True, file=sys.stderr, leave=False))
        bars[0].update(done - bars[0].n)

    return on_stage, on_progress


def cmd_download(args) -> int:
    from .downloads import SOURCES, download, downloadable, installed

    if args.list:
        found = installed(args.data_dir)
        for src in SOURCES.values():
            record = {"name": src.name, "title": src.title, "kind": src.kind, "size": src.size_text,
                      "files": src.files, "licence": src.licence, "verified_by": src.verification,
                      "page": src.page, "installed_clips": found.get(src.name, 0)}
            if args.json:
                _print_json(record)
            else:
                clips = record["installed_clips"]
                status = f"installed ({clips} clips)" if clips else src.size_text
                checked = f"\tverified by {src.verification}" if src.verification else ""
                print(f"{src.name}\t{src.title}\t{src.licence}\t{status}{checked}")
        return 0
    if not args.name:
        raise OptionError("name a corpus to download (e.g. `download ravdess`), or list them with --list")
    src = downloadable(args.name, args.data_dir)
    print(f"{src.title} ({src.size_text}) from {src.page}\nLicence: {src.licence}. {src.licence_text}\n"
          f"Cite: {src.citation}", file=sys.stderr)
    if not args.yes:
        print("Accept the licence and download? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            print("Not downloaded." + ("" if answer else " (No answer: add --yes to accept the licence without "
                                                        "a prompt.)"), file=sys.stderr)
            return 1
    on_stage, on_progress = _download_display()
    try:
        result = download(src.name, args.data_dir, on_progress=on_progress, on_stage=on_stage)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume the download", file=sys.stderr)
        return 130
    if args.json:
        _print_json({"corpus": result.name, "path": str(result.path), "clips": result.clips,
                     "speakers": result.speakers})
    else:
        print(f"{result.name}: {result.clips} clips, {result.speakers} speakers, in {result.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .classifiers import CLASSIFIERS
    from .evaluation import PROTOCOLS, SCORING_DESCRIPTIONS, SCORINGS
    from .models import MODELS, OPTIMIZERS
    from .training import BASELINES, TrainConfig, bounds_text

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

    def jobs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--jobs", type=int, default=-1, help="worker processes (default: all cores)")
        p.add_argument("--cluster", metavar="ADDRESS",
                       help=f"extract features on the workers of this Dask scheduler (tcp://host:8786; default: "
                            f"${config.CLUSTER_ENV}, else this machine); docs/deploy.md says how to start them")

    def voice_norm(p: argparse.ArgumentParser, default: bool | None = False) -> None:
        p.add_argument("--voice-norm", action="store_true", default=default,
                       help="normalise by what the model has heard (the training speakers, the room, the voice)")
        p.add_argument("--scoring", choices=SCORINGS, default=None if default is None else SCORINGS[0],
                       help="with --voice-norm, what the model has heard of a test clip's room and voice: "
                            + "; ".join(f"{name}: {text.format(clips='N')}"
                                        for name, text in SCORING_DESCRIPTIONS.items()))
        p.add_argument("--voice-clips", type=int, default=None if default is None else config.VOICE_CLIPS,
                       help="with --scoring voice, N: clips of each test speaker heard first "
                            f"(default: {config.VOICE_CLIPS})")

    def modelling(p: argparse.ArgumentParser, features_flag: str = "--features", protocol: bool = True) -> None:
        p.add_argument(features_flag, default=config.DEFAULT_FEATURES,
                       help=f"feature pipeline (default: {config.DEFAULT_FEATURES})")
        p.add_argument("--classifier", choices=CLASSIFIERS, default=config.DEFAULT_CLASSIFIER)
        if protocol:
            p.add_argument("--protocol", choices=PROTOCOLS, default=config.DEFAULT_PROTOCOL)
        p.add_argument("--folds", type=int, default=config.DEFAULT_FOLDS)
        p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
        jobs(p)

    command("catalog", cmd_catalog, "list the clips found under the data root")
    command("check", cmd_check, "health report of the corpora: duplicates, stereo, odd rates, bad files")

    p = command("features", cmd_features, "extract features into the cache")
    p.add_argument("--pipeline", default=config.DEFAULT_FEATURES,
                   help=f"feature pipeline (default: {config.DEFAULT_FEATURES})")
    p.add_argument("--augment", help="also cache augmented copies: noise,stretch,shift,pitch")
    p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    jobs(p)

    p = command("evaluate", cmd_evaluate, "cross-validate a classifier under an evaluation protocol")
    modelling(p)
    p.add_argument("--speaker-norm", action="store_true", help="standardise features per speaker")
    p.add_argument("--augment", help="augmentations for training folds only: noise,stretch,shift,pitch")
    p.add_argument("--test-corpus", help="with --protocol corpus: the corpus held out (default: each in turn)")
    p.add_argument("--adapt", action="store_true",
                   help="self-train each fold's model on its test clips, unlabelled (a transductive protocol)")
    voice_norm(p)

    p = command("lesson", cmd_lesson, "the leakage lesson: one model split at random, by speaker, and normalised "
                                      "(and, with two corpora or more, one held out whole)")
    modelling(p, protocol=False)
    p.add_argument("--precompute", action="store_true",
                   help="also store the results for the Lesson page, which then shows them at once for these "
                        "clips and settings")

    p = command("train", cmd_train, "evaluate a model under a protocol, then fit it on all data and save it")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument("--config", help="training config JSON, or a model's metadata.json to retrain it")
    p.add_argument("--model", choices=BASELINES + tuple(MODELS),
                   help=f"model (default: {TrainConfig.model}, or the config's)")
    p.add_argument("--features", help="feature pipeline (default: the model's)")
    p.add_argument("--protocol", choices=PROTOCOLS)
    for flag, kind, what in (("--folds", int, "folds"), ("--epochs", int, "epochs"),
                             ("--batch-size", int, "batch size"), ("--learning-rate", float, "learning rate"),
                             ("--dropout", float, "dropout"),
                             ("--patience", int, "epochs without improvement before a fit stops")):
        name = flag[2:].replace("-", "_")
        p.add_argument(flag, type=kind, help=f"{what}: {bounds_text(name)} (default: {getattr(TrainConfig, name):g}, "
                                             "or the config's)")
    p.add_argument("--seed", type=int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--augment", help="augmentations for training folds only: noise,stretch,shift,pitch")
    p.add_argument("--speaker-norm", action="store_true", default=None, help="standardise features per speaker")
    voice_norm(p, default=None)
    p.add_argument("--merge-calm", action="store_true", default=None, help="count RAVDESS's calm as neutral")
    p.add_argument("--adapt", action="store_true", default=None,
                   help="self-train each fold's model on its test clips, unlabelled (scikit-learn models; a "
                        "transductive protocol); the saved model is fitted on all clips as without it")
    p.add_argument("--out", help="folder to save into (default: your user models folder)")
    jobs(p)

    p = command("predict", cmd_predict, "classify audio files and folders", data=False)
    p.add_argument("paths", nargs="+", help="audio files or folders")
    p.add_argument("--model", help="model name or bundle folder (default: the shipped default)")
    p.add_argument("--timeline", action="store_true", help="classify window by window, with a summary")
    p.add_argument("--window", type=float, default=config.WINDOW, help="window length in seconds")
    p.add_argument("--hop", type=float, default=config.HOP, help="seconds between window starts")
    p.add_argument("--calibrate", action="append", metavar="PATH",
                   help="recordings (files or folders) of the speaker, for a speaker-normalised model; repeatable")

    p = command("room", cmd_room, "what models that adapt to the room have heard here: show it, add recordings "
                                  "(calibrate the room), or forget it (another room)", data=False)
    p.add_argument("--model", help="a model that adapts to the room (default: the shipped default)")
    p.add_argument("--add", nargs="+", metavar="PATH", help="recordings made in this room (files or folders), "
                                                             "unlabelled: a minute of a few speakers")
    p.add_argument("--forget", action="store_true", help="start the room over (before --add, if both)")

    command("models", cmd_models, "list shipped and user models", data=False)

    p = command("report", cmd_report, "write a saved model's evaluation report: report.html (self-contained: model "
                "card, protocol, figures, tables), figures.zip (the figures as PNG) and predictions.csv (every test "
                "clip's prediction)", data=False)
    p.add_argument("model", help="model name (shipped or yours) or bundle folder")
    p.add_argument("--out", help="folder to write into (default: MODEL-report in the current folder)")

    p = command("download", cmd_download, "download a corpus from its official source: licence first, then a "
                "resumable, verified download into the data root", data=False)
    p.add_argument("name", nargs="?", help="corpus: ravdess, tess, cremad (savee needs a registration)")
    p.add_argument("--list", action="store_true", help="list the corpora, their licences and sizes")
    p.add_argument("--yes", action="store_true", help="accept the licence without a prompt")
    p.add_argument("--data-dir", help=f"data root (default: ${config.DATA_DIR_ENV}, else data/)")
    return parser


@contextlib.contextmanager
def _cluster(address: str | None):
    """--cluster: the Dask scheduler this command's feature extraction uses (features.cache reads
    config.cluster_address), for this command only."""
    if not address:
        yield
        return
    before = os.environ.get(config.CLUSTER_ENV)
    os.environ[config.CLUSTER_ENV] = address
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(config.CLUSTER_ENV, None)
        else:
            os.environ[config.CLUSTER_ENV] = before


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _cluster(getattr(args, "cluster", None)):
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

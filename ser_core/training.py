"""Training a model to keep: any model of the zoo (or the SVM baseline) under any protocol, with live events.

`train` evaluates the model honestly (cross-validation under the config's protocol), then fits it on all
the clips, streaming events (features, epochs, folds) to a callback so the app can draw live curves.
A threading.Event stops it cleanly between batches; the best weights (by validation loss, never by the test
fold) are kept. `save_run` writes the result as a model bundle.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from . import config
from .errors import ModelError, OptionError
from .evaluation import EvaluationResult

if TYPE_CHECKING:
    from .adaptation import Prior
    from .jobs import JobQueue

BASELINES: tuple[str, ...] = ("svm", "logreg", "ridge")  # scikit-learn models train() accepts besides the Keras zoo

# The inclusive range of each numeric setting (None: no upper limit). TrainConfig checks them, the Train page's
# inputs offer them and the CLI's help names them, so the three cannot disagree.
BOUNDS: dict[str, tuple[float, float | None]] = {
    "learning_rate": (1e-5, 1.0),
    "batch_size": (1, 4096),
    "epochs": (1, 1000),
    "dropout": (0.0, 0.9),  # Keras refuses 1; above 0.9 a layer passes almost nothing on
    "folds": (2, None),     # the protocols cap them at the speakers (or clips per emotion) there are
    "voice_clips": (1, None),  # a test speaker's clips heard first under the voice scoring; the rest are scored
    "patience": (1, None),
}


def bounds_text(name: str) -> str:
    """A setting's range in words, as a message or a help text says it: "1 to 4096", "2 or more"."""
    low, high = BOUNDS[name]
    return f"{low:g} or more" if high is None else f"{low:g} to {high:g}"


def _within(value: float, name: str) -> bool:
    low, high = BOUNDS[name]
    return low <= value and (high is None or value <= high)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved in the bundle, so a run is reproducible from it."""

    model: str = "mlp"
    features: str = ""               # "" picks the model's default pipeline
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 60
    dropout: float = 0.3
    optimizer: str = "adam"
    augmentation: tuple[str, ...] = ()
    speaker_norm: bool = False
    # Normalise by what the model has heard (adaptation): trained on the population, room and voice levels, so
    # it works on a new voice's first clip and improves as the voice speaks; its folds are scored under `scoring`.
    voice_norm: bool = False
    scoring: str = "cold"
    voice_clips: int = config.VOICE_CLIPS  # clips of each test speaker heard first, under the voice scoring
    # Count RAVDESS's calm as neutral: no other corpus has calm, and on corpora it never heard a model that keeps
    # it recognises neutral far less (bench_new_voices: TESS's neutral 19% against 74%).
    merge_calm: bool = False
    adapt: bool = False              # self-train each fold's model on its test clips, unlabelled (transductive)
    protocol: str = config.DEFAULT_PROTOCOL
    folds: int = config.DEFAULT_FOLDS
    seed: int = config.DEFAULT_SEED
    patience: int = 10               # epochs without a better validation loss before a fold stops
    validation_share: float = 0.15   # of training speakers (clips under the random protocol)

    def __post_init__(self):
        from .augment import AUGMENTATIONS
        from .evaluation import PROTOCOLS, SCORINGS
        from .features import get_pipeline
        from .models import MODELS, OPTIMIZERS, check_model_features

        self._check_types()
        if self.model not in BASELINES + tuple(MODELS):
            raise OptionError(f"Unknown model {self.model!r}: choose one of {', '.join(BASELINES + tuple(MODELS))}.")
        if not self.features:
            default = MODELS[self.model][1] if self.model in MODELS else config.DEFAULT_FEATURES
            object.__setattr__(self, "features", default)
        object.__setattr__(self, "augmentation", tuple(self.augmentation))
        kind = get_pipeline(self.features).kind
        if self.model in MODELS:
            check_model_features(self.model, kind, self.features)
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.protocol in PROTOCOLS, f"protocol must be one of {', '.join(PROTOCOLS)}"),
            (set(self.augmentation) <= set(AUGMENTATIONS), f"augmentations are {', '.join(AUGMENTATIONS)}"),
            *((_within(getattr(self, name), name), f"{name.replace('_', ' ')} must be {bounds_text(name)}")
              for name in BOUNDS),
            (not self.adapt or self.model in BASELINES,
             f"only the scikit-learn models ({', '.join(BASELINES)}) adapt to the test speakers"),
            (not self.voice_norm or self.model in BASELINES,
             f"only the scikit-learn models ({', '.join(BASELINES)}) normalise by what they have heard"),
            (not (self.voice_norm and self.speaker_norm),
             "choose per-speaker normalisation or normalisation by what the model has heard, not both"),
            (self.scoring in SCORINGS, f"scoring must be one of {', '.join(SCORINGS)}"),
            (0 < self.validation_share < 0.5, "validation share must be in (0, 0.5)"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(f"Invalid training config: {message}.")

    def _check_types(self) -> None:
        """Each field of the type of its default (a hand-edited config can hold anything), so that the range
        checks compare numbers with numbers."""
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, tuple):
                ok = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            else:
                kinds = (int, float) if isinstance(default, float) else type(default)
                ok = isinstance(value, kinds) and not isinstance(value, bool)
            if not ok:
                kind = {tuple: "a list of names", bool: "true or false", int: "a whole number", float: "a number",
                        str: "text"}[type(default)]
                raise OptionError(f"Invalid training config: {f.name} must be {kind}, not {value!r}.")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "augmentation": list(self.augmentation)}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        if not isinstance(data, dict):
            raise OptionError("A training config is a JSON object of settings, like {\"model\": \"svm\"}.")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise OptionError(f"Unknown training config keys: {', '.join(sorted(map(str, unknown)))}.")
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        """From a JSON config, or from a model bundle's metadata.json (its "config"): to rerun a model."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise OptionError(f"Cannot read the training config {path}: {error}") from None
        return cls.from_dict(data.get("config", data) if isinstance(data, dict) else data)


@dataclass(frozen=True)
class Event:
    """One step of a run, for live displays.

    kind: "features" (done/total clips), "epoch" (metrics: loss, accuracy, val_loss, val_accuracy),
    "fold" (a fold's test metrics), "final" (fitting on all clips begins), "done" or "stopped".
    fold is 0-based; None for the final fit.
    """

    kind: str
    fold: int | None = None
    folds: int = 0
    epoch: int | None = None
    epochs: int | None = None
    done: int = 0
    total: int = 0
    metrics: dict = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it happened, for run_progress's estimate


def run_progress(events: list[Event]) -> tuple[float, str]:
    """Where a run stands, from its events so far: a share done (of the current stage) and words for it:
    "features: 120/240 clips, about 30 s left" (estimated from the rate measured so far), "fold 1/2, epoch 7/15",
    "fold 2/5 done", "final fit"."""
    if not events:
        return 0.0, "starting…"
    last = events[-1]
    if last.kind == "features":
        stage = last.metrics.get("stage", "features")
        text = f"{stage}: {last.done}/{last.total} clips"
        first = next(e for e in events if e.kind == "features" and e.metrics.get("stage") == stage)
        elapsed, done = last.at - first.at, last.done - first.done
        if done > 0 and elapsed > 2 and last.done < last.total:
            left = elapsed / done * (last.total - last.done)
            text += f", about {left:.0f} s left" if left < 90 else f", about {left / 60:.0f} min left"
        return last.done / max(last.total, 1), text
    folds = max(last.folds, 1)
    if last.kind == "epoch":
        share = last.epoch / max(last.epochs or 1, 1)
        where = "final fit" if last.fold is None else f"fold {last.fold + 1}/{folds}"
        return share, f"{where}, epoch {last.epoch}/{last.epochs}"
    if last.kind == "fold":
        return (last.fold + 1) / folds, f"fold {last.fold + 1}/{folds} done"
    return 1.0, "final fit on every clip" if last.kind == "final" else last.kind


@dataclass
class TrainingRun:
    """A run's outcome: honest figures, the model to keep, and each fit's epoch history."""

    config: TrainConfig
    labels: list[str]
    result: EvaluationResult | None
    model: Any
    history: dict[str, list[dict]]
    stopped: bool
    corpora: list[str]
    n_clips: int
    n_speakers: int
    label_counts: dict[str, int]
    speaker_std: np.ndarray | None = None  # the typical within-speaker std, when speaker-normalised
    prior: Prior | None = None  # the training population's statistics, when voice_norm
    adaptation: dict[str, np.ndarray] | None = None  # what a speaker-normalised ridge needs to adapt to a voice
    skipped: list[dict] = field(default_factory=list)  # clips left out as unusable ({"path", "reason"})
    held_out_speakers: list[str] = field(default_factory=list)  # config.EXAMPLE_SPEAKERS found, and left out


def train(catalog: pd.DataFrame, train_config: TrainConfig | None = None, *,
          on_event: Callable[[Event], None] | None = None, stop: threading.Event | None = None,
          n_jobs: int = -1) -> TrainingRun:
    """Cross-validate `train_config.model` on the catalog under its protocol, then fit it on every clip.

    Clips that cannot be used are left out and named in the run (see evaluation.extract_usable)."""
    from .adaptation import population_prior
    from .evaluation import (extract_usable, make_splits, normalize_speakers, run_folds, training_rows,
                             validation_rows, voice_norm_tests, voice_norm_training)
    from .features import get_pipeline, pool

    cfg = train_config or TrainConfig()
    emit = on_event or (lambda event: None)
    examples = catalog["speaker"].isin(config.EXAMPLE_SPEAKERS)  # the example clips' voices stay unheard
    held_out_speakers = sorted(catalog.loc[examples, "speaker"].unique())
    catalog = catalog[~examples]
    if catalog.empty:
        raise OptionError("There are no clips to train on: check the data folder and the corpora chosen.")
    if cfg.merge_calm:
        catalog = catalog.assign(label=catalog["label"].replace({"calm": "neutral"}))
    kind = get_pipeline(cfg.features).kind
    labels = [label for label in config.LABELS if label in set(catalog["label"])]
    if len(labels) < 2:
        raise OptionError("Training needs clips of at least two emotions.")

    usable = extract_usable(catalog, cfg.features, protocols=[cfg.protocol], folds=cfg.folds, seed=cfg.seed,
                            augmentation=cfg.augmentation, n_jobs=n_jobs,
                            progress=lambda stage, done, total: emit(Event("features", done=done, total=total,
                                                                           metrics={"stage": stage})))
    catalog, X, augmented = usable.catalog, usable.X, usable.augmented
    keras_model = cfg.model not in BASELINES
    if not keras_model:
        X, augmented = pool(X, kind), {a: pool(A, kind) for a, A in augmented.items()}
        kind = "clip"
    speaker_std = None
    if cfg.speaker_norm:
        X, augmented, speaker_std = normalize_speakers(X, catalog, augmented, kind)
    y = catalog["label"].to_numpy()
    fit = _keras_fitter(cfg, labels, emit, stop) if keras_model else _sklearn_fitter(cfg)
    history: dict[str, list[dict]] = {}
    state = {"model": None, "stopped": False, "adaptation": None, "prior": None}
    splits = make_splits(catalog, cfg.protocol, folds=cfg.folds, seed=cfg.seed)
    tests = {}  # split name -> (training Prior, test features as the model meets them), when voice_norm
    if cfg.voice_norm:
        splits, tests = voice_norm_tests(X, catalog, splits, scoring=cfg.scoring, voice_clips=cfg.voice_clips,
                                         seed=cfg.seed)

    def test_features(split) -> np.ndarray:
        return tests[split.name][1] if cfg.voice_norm else X[split.test]

    def fit_rows(rows: np.ndarray, fold: int | None, name: str, test: np.ndarray | None = None):
        fit_part, val_part = (validation_rows(catalog, rows, cfg.protocol, share=cfg.validation_share,
                                              seed=cfg.seed) if keras_model else (rows, rows[:0]))
        train_part = training_rows(X, y, fit_part, augmented)
        if cfg.voice_norm:
            prior = tests[name][0] if name in tests else population_prior(X[rows], catalog["speaker"].to_numpy()[rows])
            train_part = (voice_norm_training(train_part[0], catalog, fit_part, prior, seed=cfg.seed),
                          train_part[1])
            state["prior"] = prior
        if cfg.adapt and test is not None:  # as evaluate(adapt=True); the final fit has no test clips to adapt to
            from .classifiers import fit_adapted

            model, epochs, stopped = fit_adapted(cfg.model, *train_part, test, seed=cfg.seed), [], False
        else:
            model, epochs, stopped = fit(train_part, (X[val_part], y[val_part]), fold, len(splits))
        history[name] = epochs
        state.update(model=model, stopped=stopped)
        if fold is None and cfg.model == "ridge" and cfg.speaker_norm:  # what the saved model needs to adapt
            from .classifiers import ridge_adaptation

            state["adaptation"] = ridge_adaptation(model, train_part[0])
        return model

    def fit_predict(split, i: int):
        if stop is not None and stop.is_set():
            state["stopped"] = True
            return None
        model = fit_rows(split.train, i, split.name, test_features(split))
        if state["stopped"]:
            return None
        return _predict_labels(model, test_features(split), labels, keras_model)

    result = run_folds(catalog, splits, fit_predict,
                       on_fold=lambda i, n, fold: emit(Event("fold", fold=i, folds=n, metrics=fold)),
                       protocol=cfg.protocol, features=cfg.features, classifier=cfg.model, seed=cfg.seed,
                       speaker_norm=cfg.speaker_norm, augmentation=list(cfg.augmentation), adapted=cfg.adapt,
                       skipped=usable.skipped, voice_norm=cfg.voice_norm,
                       scoring=cfg.scoring if cfg.voice_norm else "",
                       voice_clips=cfg.voice_clips if cfg.voice_norm and cfg.scoring == "voice" else 0)
    if not state["stopped"]:
        emit(Event("final", folds=len(splits)))
        fit_rows(np.arange(len(catalog)), None, "final")
    emit(Event("stopped" if state["stopped"] else "done", folds=len(splits)))
    return TrainingRun(config=cfg, labels=labels, result=result, model=state["model"], history=history,
                       stopped=state["stopped"], corpora=sorted(catalog["corpus"].unique()),
                       n_clips=len(catalog), n_speakers=int(catalog["speaker"].nunique()),
                       label_counts={str(k): int(v) for k, v in catalog["label"].value_counts().items()},
                       speaker_std=speaker_std, adaptation=state["adaptation"], skipped=usable.skipped,
                       prior=state["prior"], held_out_speakers=held_out_speakers)


def _sklearn_fitter(cfg: TrainConfig):
    from .classifiers import fit_classifier

    def fit(train, validation, fold, folds):
        return fit_classifier(cfg.model, *train, seed=cfg.seed), [], False
    return fit


def _keras_fitter(cfg: TrainConfig, labels: list[str], emit: Callable[[Event], None],
                  stop: threading.Event | None):
    """fit(train, validation, fold, folds) -> (model with its best weights, epoch history, stopped by user)."""
    from .models import build_model, import_keras, make_optimizer

    keras = import_keras()
    index = {label: i for i, label in enumerate(labels)}

    class Monitor(keras.callbacks.Callback):
        """Events per epoch, early stopping on validation loss, best weights kept, Stop between batches."""

        def __init__(self, fold: int | None, folds: int):
            super().__init__()
            self.fold, self.folds, self.epochs = fold, folds, []
            self.best, self.best_weights, self.wait, self.stopped = math.inf, None, 0, False

        def on_train_batch_end(self, batch, logs=None):
            if stop is not None and stop.is_set():
                self.model.stop_training = self.stopped = True

        def on_epoch_end(self, epoch, logs=None):
            metrics = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
            self.epochs.append({"epoch": epoch + 1, **metrics})
            emit(Event("epoch", fold=self.fold, folds=self.folds, epoch=epoch + 1, epochs=cfg.epochs,
                       metrics=metrics))
            if metrics.get("val_loss", math.inf) < self.best:
                self.best, self.best_weights, self.wait = metrics["val_loss"], self.model.get_weights(), 0
            else:
                self.wait += 1
                if self.wait >= cfg.patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    def fit(train, validation, fold, folds):
        keras.utils.set_random_seed(cfg.seed + (0 if fold is None else fold + 1))
        (X, y), (X_val, y_val) = train, validation
        model = build_model(cfg.model, X, len(labels), dropout=cfg.dropout)
        model.compile(optimizer=make_optimizer(cfg.optimizer, cfg.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        monitor = Monitor(fold, folds)
        reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                      patience=max(2, cfg.patience // 3), min_lr=1e-5)
        codes = np.array([index[label] for label in y])
        val_codes = np.array([index[label] for label in y_val])
        model.fit(X.astype(np.float32), codes, validation_data=(X_val.astype(np.float32), val_codes),
                  epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0,
                  callbacks=[monitor, reduce_lr])
        return model, monitor.epochs, monitor.stopped
    return fit


def _predict_labels(model, X: np.ndarray, labels: list[str],
                    keras_model: bool) -> tuple[np.ndarray, pd.DataFrame | None]:
    """The labels predicted for the rows of X, and each class's probability (for per-clip predictions)."""
    from .evaluation import class_probabilities

    if not keras_model:
        return model.predict(X), class_probabilities(model, X)
    probabilities = model.predict(X.astype(np.float32), batch_size=256, verbose=0)
    return np.asarray(labels)[probabilities.argmax(axis=1)], pd.DataFrame(probabilities, columns=labels)


def model_folder(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """The folder save_run writes a model called `name` to: inside `out_dir`, else the user's models folder.

    Refuses a name that is not a plain model name, a shipped model's name (in the user's models folder), and a
    folder, file or link there that is not one of the user's own bundles; cheap, so check it before training.
    """
    from .bundles import check_model_name, check_replaceable

    check_model_name(name)
    if out_dir is None and (config.SHIPPED_MODELS_DIR / name).exists():
        raise ModelError(f"{name!r} is the name of a shipped model: choose another name for yours.")
    target = (config.user_models_dir() if out_dir is None else Path(out_dir)) / name
    check_replaceable(target)
    return target


def save_run(run: TrainingRun, name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Save a run's model as a bundle with its config and measured figures (and per-clip predictions as
    predictions.csv beside metadata.json), in model_folder(name, out_dir).
    """
    from .bundles import ADAPTATION_FILE, PREDICTIONS_FILE, adaptation_file, save_bundle
    from .evaluation import predictions_to_csv
    from .features import get_pipeline

    if run.model is None:
        raise ModelError("This run was stopped before any model was trained: there is nothing to save.")
    target = model_folder(name, out_dir)
    pipeline = get_pipeline(run.config.features)
    labels = ([str(c) for c in run.model.classes_] if run.config.model in BASELINES else run.labels)
    metadata = {
        "labels": labels,
        "features": pipeline.to_dict(),
        "sample_rate": pipeline.sample_rate,
        "window": {"length": config.WINDOW, "hop": config.HOP},
        "classifier": run.config.model,
        "speaker_norm": run.config.speaker_norm,
        "voice_norm": run.config.voice_norm,
        # Input standardisation is part of the model (a Normalization layer, or the pipeline's StandardScaler),
        # adapted on the training clips; per-speaker statistics come from calibration on the speaker's speech,
        # steadied by the training speakers' typical std.
        "normalisation": {"input": "inside the model, from the training clips",
                          "speaker": ("calibrate on the speaker first" if run.config.speaker_norm else
                                      "by what it has heard of the room and the voice" if run.config.voice_norm
                                      else "none"),
                          **({"typical_speaker_std": run.speaker_std.tolist()} if run.speaker_std is not None
                             else {}),
                          **({"prior_mean": run.prior.mean.tolist(), "prior_std": run.prior.std.tolist()}
                             if run.prior is not None else {})},
        "config": run.config.to_dict(),
        "stopped": run.stopped,
        "training": {"corpora": run.corpora, "n_clips": run.n_clips, "n_speakers": run.n_speakers,
                     "label_counts": run.label_counts, "history": run.history,
                     "held_out_speakers": run.held_out_speakers},
        "evaluation": run.result.to_dict() if run.result else None,
    }
    predictions = run.result.predictions if run.result else None
    files = {}
    if predictions is not None:
        files[PREDICTIONS_FILE] = predictions_to_csv(predictions)
    if run.adaptation is not None:
        files[ADAPTATION_FILE] = adaptation_file(run.adaptation)
    return save_bundle(target, run.model, metadata, files=files)


class _StoppedWaiting(Exception):
    """A queued training run stopped before its turn came."""


class TrainingJob:
    """A training run on a background thread, for an app page that redraws while it trains.

    Events accumulate in `events` (read them while it runs); `stop()` asks the run to end between batches;
    when `done`, `run` holds the TrainingRun or `error` the message of what went wrong.
    """

    def __init__(self, catalog: pd.DataFrame, train_config: TrainConfig, *, n_jobs: int = -1,
                 queue: JobQueue | None = None):
        self.events: list[Event] = []
        self.run: TrainingRun | None = None
        self.error: str | None = None
        self.ahead = 0  # while it waits for its turn in `queue`: how many jobs are ahead of it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(catalog, train_config, n_jobs, queue), daemon=True)
        self._thread.start()

    def _work(self, catalog: pd.DataFrame, train_config: TrainConfig, n_jobs: int, queue: JobQueue | None) -> None:
        from .errors import SerError
        from .jobs import release_memory

        try:
            with queue.slot(self._waiting) if queue is not None else nullcontext():
                self.ahead = 0
                self.run = train(catalog, train_config, on_event=self.events.append, stop=self._stop, n_jobs=n_jobs)
        except _StoppedWaiting:
            self.error = "Stopped before it started."
        except SerError as error:
            self.error = str(error)
        except Exception as error:  # shown to the user as one line, never as a traceback
            self.error = f"Training failed ({type(error).__name__}: {error})."
        finally:
            release_memory()

    def _waiting(self, ahead: int) -> None:
        """Called while the run waits in its queue: a Stop takes it out of the queue."""
        if self._stop.is_set():
            raise _StoppedWaiting
        self.ahead = ahead

    def stop(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

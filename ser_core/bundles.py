"""Model bundles: a folder with the model and a metadata.json that says how to feed it.

Keras models are saved as .keras and loaded with safe_mode on; scikit-learn models are saved
with skops (no pickle) and loaded with an explicit list of trusted types. Writes are atomic,
and a user's model never replaces a shipped one.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata as _pkg
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import config, glossary
from .errors import ModelError, OptionError
from .files import hold_lock, remove_stale

BUNDLE_FORMAT = "ser-studio-bundle"
BUNDLE_VERSION = 1
METADATA_FILE = "metadata.json"
SKLEARN_FILE = "model.skops"
KERAS_FILE = "model.keras"
PREDICTIONS_FILE = "predictions.csv"  # per-clip predictions of the evaluation's test folds, when saved
ADAPTATION_FILE = "adaptation.npz"  # what a ridge model needs to adapt to a new voice (classifiers.adapt_ridge)
ADAPTATION_ARRAYS = ("directions", "sums_of_squares", "n_clips")
LOCK_FILE = ".lock"  # in a models folder: hidden, so never listed as a model
# Types skops does not trust by default that our own classifiers contain; anything else is refused.
TRUSTED_SKOPS_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
)
VERSIONED_PACKAGES = ("numpy", "scikit-learn", "librosa", "opensmile", "skops", "tensorflow-cpu", "keras")
MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # a new model's name: its folder, never a path
KINDS = ("keras", "sklearn")


class _Maybe(NamedTuple):
    """In a shape: a key that may be absent or null."""

    shape: Any


# What every key a reader relies on must hold (see _shape_problem), so that a hand-edited or damaged
# metadata.json is reported as broken instead of failing deep inside a page, a report or a prediction.
_NUMBER = (int, float)
_EVALUATION = {
    "protocol": str, "description": str, "folds": int, "corpora": [str], "n_clips": int, "n_speakers": int,
    "adapted": _Maybe(bool), "complete": _Maybe(bool), "augmentation": _Maybe([str]),
    "pooled": {"accuracy": _NUMBER, "uar": _NUMBER, "macro_f1": _NUMBER, "labels": [str], "confusion": [[_NUMBER]],
               "per_class": {str: {"precision": _NUMBER, "recall": _NUMBER, "f1": _NUMBER, "support": _NUMBER}}},
    "per_fold": [{"name": str, "accuracy": _NUMBER, "uar": _NUMBER, "test_speakers": [str]}],
}
_METADATA = {
    "name": str, "kind": str, "model_file": _Maybe(str), "labels": [str],
    "features": {"name": str},  # the rest must be what this code computes: check_pipeline
    "classifier": _Maybe(str), "speaker_norm": _Maybe(bool), "voice_norm": _Maybe(bool), "created": _Maybe(str),
    "versions": _Maybe(dict),
    "config": _Maybe(dict), "training": _Maybe({"corpora": _Maybe([str]), "history": _Maybe({str: [dict]})}),
    # What bench/bench_new_voices.py measured of the model's recipe on a corpus held out of training (mean UAR).
    "new_corpus": _Maybe({"uar": {str: _NUMBER}, "measured": str}),
    "normalisation": _Maybe({"typical_speaker_std": _Maybe(list), "prior_mean": _Maybe([_NUMBER]),
                             "prior_std": _Maybe([_NUMBER])}),
    "evaluation": _Maybe(_EVALUATION),
}
_TYPE_NAMES = {str: "text", int: "a whole number", _NUMBER: "a number", bool: "true or false", dict: "an object",
               list: "a list"}


@dataclass
class Bundle:
    """A loaded model and its metadata."""

    path: Path
    metadata: dict
    model: Any
    adaptation: dict[str, np.ndarray] | None = None  # ADAPTATION_FILE's arrays, when the bundle has one

    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (rows of X) in the order of self.labels."""
        if self.kind == "keras":
            from keras import ops

            return ops.convert_to_numpy(self.model(np.asarray(X, dtype=np.float32), training=False))
        return self.model.predict_proba(X)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = _pkg.version(package)
        except _pkg.PackageNotFoundError:
            pass
    return versions


def _is_shipped(path: Path) -> bool:
    return path.resolve().parent == config.SHIPPED_MODELS_DIR.resolve()


def check_model_name(name: str) -> None:
    """A name for a new model, which becomes its folder: letters, digits, '-', '_' and '.' (not first), so that it
    can never reach outside the models folder nor hide there."""
    if len(name) > config.MODEL_NAME_MAX or not MODEL_NAME.fullmatch(name):
        raise OptionError(f"{name!r} is not a model name: use letters, digits, '-', '_' and '.' (not first), "
                          f"up to {config.MODEL_NAME_MAX} characters.")


def _is_plain(name: str) -> bool:
    """One file or folder name, not a path: it stays inside the folder it is joined to."""
    return name not in ("", ".", "..") and Path(name).name == name


def _is_our_bundle(path: Path) -> bool:
    """A real folder (not a link) whose metadata.json is a bundle's, however damaged the rest."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(metadata, dict) and metadata.get("format") == BUNDLE_FORMAT


def check_replaceable(target: Path) -> None:
    """Saving to `target` replaces only a user's own bundle: never a shipped model, nor a file, link or folder
    that is not a bundle of ours (it would be deleted)."""
    if not (target.exists() or target.is_symlink()):
        return
    if _is_shipped(target):
        raise ModelError(f"{target} is a shipped model and is never overwritten: choose another name.")
    if not _is_our_bundle(target):
        raise ModelError(f"{target} exists and is not a SER Studio model: it was left as it is; choose another "
                         "name.")


def save_bundle(directory: str | os.PathLike, model: Any, metadata: dict,
                files: dict[str, str | bytes] | None = None) -> Path:
    """Write a bundle atomically: a temporary sibling folder, then one rename into place.

    `files` maps other file names (e.g. PREDICTIONS_FILE) to their contents, written with the rest.
    Refuses to replace a shipped model or anything that is not a bundle (check_replaceable); replacing a user's
    own model of the same name is allowed.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(target.parent / LOCK_FILE):  # two saves of one name (two servers, the CLI) take turns
        return _save_bundle(target, model, metadata, files)


def _save_bundle(target: Path, model: Any, metadata: dict, files: dict[str, str | bytes] | None) -> Path:
    check_replaceable(target)
    remove_stale(target.parent, staging=True)  # what a killed save left
    kind = "keras" if type(model).__module__.startswith("keras") else "sklearn"
    metadata = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "name": target.name, "kind": kind,
                "model_file": KERAS_FILE if kind == "keras" else SKLEARN_FILE, "versions": library_versions(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **metadata}
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving.", dir=target.parent))
    try:
        if kind == "keras":
            model.save(staging / KERAS_FILE)
        else:
            import skops.io as sio

            sio.dump(model, staging / SKLEARN_FILE)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        for name, content in (files or {}).items():
            target_file = staging / Path(name).name
            if isinstance(content, bytes):
                target_file.write_bytes(content)
            else:
                target_file.write_text(content, encoding="utf-8")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced.", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _shape_problem(value: Any, shape: Any, where: str = "") -> str | None:
    """What in `value` does not have `shape`, or None. A shape is a type or tuple of types; [item shape]; {key:
    shape} (a _Maybe key may be absent or null); or {str: shape}, an object whose every value has that shape."""
    if isinstance(shape, _Maybe):
        return None if value is None else _shape_problem(value, shape.shape, where)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is not a list"
        return next(filter(None, (_shape_problem(item, shape[0], f"{where}[{i}]") for i, item in enumerate(value))),
                    None)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'it'} is not an object"
        items = ({key: shape[str] for key in value} if list(shape) == [str] else shape).items()
        for key, inner in items:
            name = f"{where}.{key}" if where else str(key)
            if key not in value and not isinstance(inner, _Maybe):
                return f"{name} is missing"
            problem = _shape_problem(value.get(key), inner, name)
            if problem:
                return problem
        return None
    return None if isinstance(value, shape) else f"{where} is not {_TYPE_NAMES[shape]}"


def _read_metadata(path: Path) -> dict:
    """A bundle's metadata, refused with a ModelError that says why when it is not a readable bundle's."""
    file = path / METADATA_FILE
    try:
        metadata = json.loads(file.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} is not a model bundle: it has no {METADATA_FILE}.") from None
    except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8 or JSON, or nested past the parser
        raise ModelError(f"{file} is damaged (not valid JSON): retrain or reinstall this model.") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{file} is damaged (not a JSON object): retrain or reinstall this model.")
    if metadata.get("format") != BUNDLE_FORMAT or metadata.get("format_version") != BUNDLE_VERSION:
        raise ModelError(f"{path} was saved in a bundle format this version of SER Studio cannot read "
                         f"(format {metadata.get('format')!r} v{metadata.get('format_version')}).")
    problem = _shape_problem(metadata, _METADATA)
    if not problem and metadata["kind"] not in KINDS:
        problem = f"kind {metadata['kind']!r} is not one of {', '.join(KINDS)}"
    if not problem and not _is_plain(metadata["name"]):
        problem = f"name {metadata['name']!r} is a path, not a name"
    if not problem and not _is_plain(metadata.get("model_file") or SKLEARN_FILE):
        problem = f"model_file {metadata['model_file']!r} is not a file of the bundle"
    if problem:
        raise ModelError(f"{file} is damaged ({problem}): retrain or reinstall this model.")
    return metadata


def read_metadata(model: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """A bundle's folder and metadata, by name or folder (as load_bundle finds it), without loading the model."""
    path = resolve_model(model)
    return path, _read_metadata(path)


def read_predictions(path: str | os.PathLike):
    """A bundle folder's per-clip predictions (a DataFrame), or None when it was saved without them."""
    import pandas as pd

    file = Path(path) / PREDICTIONS_FILE
    if not file.is_file():
        return None
    try:
        text = {column: str for column in ("path", "corpus", "speaker", "true_label", "predicted_label")}
        return pd.read_csv(file, dtype=text, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        raise ModelError(f"{file} is damaged (not a readable CSV): retrain this model to get its "
                         "per-clip predictions again.") from None


def check_pipeline(metadata: dict, path: Path | str = "") -> None:
    """The feature pipeline a model was trained on must be the one this code computes."""
    from .features import get_pipeline

    saved = metadata.get("features") or {}
    try:
        current = get_pipeline(saved.get("name", "")).to_dict()
    except (KeyError, ValueError):
        raise ModelError(f"Model {path} needs the feature pipeline {saved.get('name')!r}, "
                         "which this version of SER Studio does not have.") from None
    if current != saved:
        changed = sorted(key for key in current.keys() | saved.keys() if current.get(key) != saved.get(key))
        raise ModelError(f"Model {path} was trained on a different version of the {saved['name']!r} features "
                         f"({', '.join(changed)} differ): retrain it with this version of SER Studio.")


def load_bundle(model: str | os.PathLike | None = None) -> Bundle:
    """Load a bundle by folder path or model name (user models, then shipped); None for the default.

    Refuses, with a message saying what to do, a bundle whose features, labels or shapes do not match.
    """
    path = resolve_model(model)
    metadata = _read_metadata(path)
    check_pipeline(metadata, path)
    model_file = path / (metadata.get("model_file") or SKLEARN_FILE)
    if not model_file.is_file():
        raise ModelError(f"Model {path} is incomplete: {model_file.name} is missing.")
    if model_file.resolve().parent != path.resolve():
        raise ModelError(f"Model {path} is damaged: {model_file.name} links to a file outside the bundle.")
    try:
        loaded = _load_keras(model_file) if metadata["kind"] == "keras" else _load_skops(model_file, path)
    except ModelError:
        raise
    except Exception as error:  # both libraries raise many types for a damaged or foreign file
        raise ModelError(f"Model {path} could not be loaded ({type(error).__name__}): the file is damaged "
                         "or was saved by an incompatible library version; retrain it.") from None
    bundle = Bundle(path=path, metadata=metadata, model=loaded, adaptation=_load_adaptation(path))
    _check_shapes(bundle)
    return bundle


def adaptation_file(adaptation: dict[str, np.ndarray]) -> bytes:
    """ADAPTATION_FILE's contents (save_bundle's `files`): plain arrays, read back without pickle."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: adaptation[name] for name in ADAPTATION_ARRAYS})
    return buffer.getvalue()


def _load_adaptation(path: Path) -> dict[str, np.ndarray] | None:
    file = path / ADAPTATION_FILE
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in ADAPTATION_ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise ModelError(f"Model {path} is damaged: {ADAPTATION_FILE} cannot be read; retrain or reinstall "
                         "it.") from None


def _load_keras(model_file: Path):
    from .models import import_keras

    return import_keras().saving.load_model(model_file, compile=False, safe_mode=True)


def _load_skops(model_file: Path, path: Path):
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=model_file)
    refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
    if refused:
        raise ModelError(f"Model {path} contains types that are not trusted ({', '.join(refused)}); "
                         "it was not loaded.")
    return sio.load(model_file, trusted=untrusted)


def _check_shapes(bundle: Bundle) -> None:
    """The model's inputs and outputs must be what its metadata says."""
    from .features import Pipeline, pool

    pipeline = Pipeline.from_dict(bundle.metadata["features"])
    if bundle.kind == "keras":
        n_in, n_out = tuple(bundle.model.input_shape[1:]), bundle.model.output_shape[-1]
        expected_in = pipeline.shape
        classes = bundle.labels
    else:
        n_in, n_out = (getattr(bundle.model, "n_features_in_", None),), len(bundle.model.classes_)
        expected_in = (pool(np.zeros((1, *pipeline.shape), np.float32), pipeline.kind).shape[1],)
        classes = [str(c) for c in bundle.model.classes_]
    if n_in != expected_in or n_out != len(bundle.labels) or classes != bundle.labels:
        raise ModelError(f"Model {bundle.path} does not match its metadata (inputs {n_in} for {expected_in}, "
                         f"{n_out} outputs for labels {bundle.labels}): the bundle was altered or mixed up; "
                         "retrain or reinstall it.")
    if bundle.adaptation is not None:
        directions = bundle.adaptation["directions"]
        if (bundle.metadata.get("classifier") != "ridge" or directions.ndim != 2 or (directions.shape[1],) != n_in
                or bundle.adaptation["sums_of_squares"].shape != directions.shape[:1]):
            raise ModelError(f"Model {bundle.path} does not match its {ADAPTATION_FILE} (made for another model): "
                             "the bundle was altered or mixed up; retrain or reinstall it.")


def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """Turn a model name or folder into a bundle folder; None means the shipped default."""
    if model is None:
        path = config.SHIPPED_MODELS_DIR / config.DEFAULT_MODEL
        if not path.is_dir():
            raise ModelError(f"The default model {config.DEFAULT_MODEL!r} is missing from {config.SHIPPED_MODELS_DIR}: "
                             "reinstall SER Studio or pass --model.")
        return path
    candidate = Path(model)
    if candidate.is_dir():
        return candidate
    for base in (config.user_models_dir(), config.SHIPPED_MODELS_DIR):
        if _is_plain(str(model)) and (base / str(model)).is_dir():
            return base / str(model)
    names = ", ".join(info["name"] for info in list_models() if not info["broken"]) or "none"
    raise ModelError(f"No model called {str(model)!r} (available: {names}).")


def list_models() -> list[dict]:
    """Shipped and user models with a one-line summary each, without loading any model: the default first,
    then the other shipped ones, then the user's, each by name. A bundle that cannot be read is listed too, with
    "broken" saying why (None for the others), so that a page or `models` can say so and offer the rest."""
    found = []
    for source, base in (("shipped", config.SHIPPED_MODELS_DIR), ("user", config.user_models_dir())):
        # Hidden folders are saves under way (save_bundle's staging), not models.
        for path in sorted(p for p in base.glob("[!.]*") if (p / METADATA_FILE).is_file()):
            try:
                found.append(_listing(_read_metadata(path), source, path))
            except ModelError as error:
                found.append({"name": path.name, "source": source, "path": str(path), "summary": f"broken: {error}",
                              "plain": f"Cannot be used: {error}",
                              "default": False, "speaker_norm": False, "voice_norm": False, "broken": str(error)})
    return sorted(found, key=lambda m: not m["default"])  # stable: shipped before user, by name


def _plain_summary(metadata: dict, protocol: str | None, result: dict, new_corpus: dict) -> str:
    """What a class needs to know of a model, without jargon: what it needs, how often it is right on voices it
    never heard, and what chance would give."""
    labels = metadata["labels"]
    text = ("Needs 20-30 s of the speaker's voice first. " if metadata.get("speaker_norm") else
            "Adapts to each voice and room it hears. " if metadata.get("voice_norm") else "")
    heard = {"speaker": "on speakers it never heard", "corpus": "on a corpus it never heard",
             "random": "on a random split (speakers it had heard: flattering)"}.get(protocol or "")
    if result and heard:
        text += f"Right {result['accuracy']:.0%} of the time {heard}"
        if new_corpus and protocol == "speaker":
            text += f", about {next(iter(new_corpus.values())):.0%} on a corpus it never heard"
        text += f" ({glossary.chance(len(labels))})."
    return text


def _listing(metadata: dict, source: str, path: Path) -> dict:
    """list_models' entry of a readable bundle."""
    evaluation = metadata.get("evaluation") or {}
    result = evaluation.get("pooled") or {}
    protocol = evaluation.get("protocol", "?") + (", adapted" if evaluation.get("adapted") else "")
    classifier = metadata.get("classifier") or metadata["kind"]
    new_corpus = (metadata.get("new_corpus") or {}).get("uar", {})
    summary = (f"{metadata['features']['name']} + {classifier}"
               + (", per-speaker normalisation (calibrate on the speaker first)"
                  if metadata.get("speaker_norm") else "")
               + (", adapts to the voice and room it hears" if metadata.get("voice_norm") else "")
               + (f", protocol {protocol}: accuracy {result['accuracy']:.1%}, UAR {result['uar']:.1%}"
                  if result else "")
               + ("; on a corpus it never heard: UAR "
                  + ", ".join(f"{uar:.1%} {how}" for how, uar in new_corpus.items()) if new_corpus else ""))
    return {"name": metadata["name"], "source": source, "path": str(path), "summary": summary,
            "plain": _plain_summary(metadata, evaluation.get("protocol"), result, new_corpus),
            "default": source == "shipped" and metadata["name"] == config.DEFAULT_MODEL,
            "speaker_norm": bool(metadata.get("speaker_norm")), "voice_norm": bool(metadata.get("voice_norm")),
            "broken": None,
            "model": classifier, "features": metadata["features"]["name"],
            "corpora": ", ".join(evaluation.get("corpora", [])), "protocol": protocol,
            "folds": evaluation.get("folds"), "accuracy": result.get("accuracy"),
            "uar": result.get("uar"), "macro_f1": result.get("macro_f1"), "chance": 1 / len(metadata["labels"]),
            "created": metadata.get("created"),
            "new_corpus_uar": dict(new_corpus)}

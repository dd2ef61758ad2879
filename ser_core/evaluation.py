"""Honest evaluation: splits by speaker (default), by corpus, or at random (for the lesson).

A result always records the protocol that produced it. Augmented copies of a clip
are only ever added to the training side of a split, and per-speaker normalisation
uses each speaker's own statistics (no labels), so nothing leaks from test to train.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config
from .errors import OptionError

PROTOCOLS: tuple[str, ...] = ("speaker", "random", "corpus")

PROTOCOL_DESCRIPTIONS = {
    "speaker": "speaker-independent: folds by speaker, no speaker in both train and test",
    "random": "random stratified split: the same speakers (and clips' copies) on both sides; inflated",
    "corpus": "cross-corpus: train on the other corpora, test on the held-out one (shared labels only)",
}
# How a voice_norm model's test clips are standardised (adaptation.Prior.normalizer), wherever a figure made
# with it is shown: what the model has heard of the test speaker's room and voice, never their labels.
SCORINGS: tuple[str, ...] = ("cold", "room", "voice")
SCORING_DESCRIPTIONS = {
    "cold": "each test clip alone, by the training speakers' statistics (a fresh install, one upload)",
    "room": "each test clip by the statistics of its corpus's other speakers, unlabelled (a class's room and "
            "microphone after other students have spoken)",
    "voice": "each test speaker by {clips} of their clips, unlabelled, scored on their other clips (Live after "
             "a student has spoken)",
}
# What `adapt` does to each fold's model, wherever a figure made with it is shown.
ADAPTATION_DESCRIPTION = "each fold's model self-trained on its test clips, unlabelled (transductive)"

# Per-clip predictions, one row per test clip of every fold; then one "prob_<label>" column per label when the
# classifier gives probabilities.
PREDICTION_COLUMNS: tuple[str, ...] = ("fold", "path", "corpus", "speaker", "true_label", "predicted_label",
                                       "correct")
PROBABILITY_PREFIX = "prob_"


@dataclass(frozen=True)
class Split:
    """One train/test division of the rows of a catalog."""

    name: str
    train: np.ndarray
    test: np.ndarray


def make_splits(catalog: pd.DataFrame, protocol: str = config.DEFAULT_PROTOCOL, *,
                folds: int = config.DEFAULT_FOLDS, seed: int = config.DEFAULT_SEED,
                test_corpus: str | None = None) -> list[Split]:
    """Split the catalog's rows under a protocol.

    speaker: k folds of whole speakers (k = number of speakers gives leave-one-speaker-out);
    random: stratified k-fold over clips; corpus: each corpus (or `test_corpus`) held out in turn.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if protocol not in PROTOCOLS:
        raise OptionError(f"Unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}.")
    labels = catalog["label"].to_numpy()
    if protocol == "speaker":
        speakers = catalog["speaker"].to_numpy()
        n_speakers = len(np.unique(speakers))
        if n_speakers < 2:
            raise OptionError("The speaker protocol needs at least two speakers; this selection has "
                             f"{n_speakers}. Add a corpus or speakers, or use the random protocol.")
        k = min(folds, n_speakers)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(len(labels)), labels, groups=speakers)
        return [Split(f"fold {i + 1}/{k}", train, test) for i, (train, test) in enumerate(parts)]
    if protocol == "random":
        k = min(folds, int(pd.Series(labels).value_counts().min()))
        if k < 2:
            raise OptionError("The random protocol needs at least two clips of every label.")
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(len(labels)), labels)
        return [Split(f"fold {i + 1}/{k}", train, test) for i, (train, test) in enumerate(parts)]
    corpora = catalog["corpus"].to_numpy()
    names = sorted(np.unique(corpora))
    held_out = [test_corpus] if test_corpus else names
    if len(names) < 2 or any(name not in names for name in held_out):
        raise OptionError("The corpus protocol needs at least two corpora and a held-out corpus among them "
                         f"(found: {', '.join(names)}).")
    splits = []
    for name in held_out:
        test = corpora == name
        shared = np.intersect1d(labels[test], labels[~test])
        keep = np.isin(labels, shared)
        splits.append(Split(f"test on {name}", np.flatnonzero(~test & keep), np.flatnonzero(test & keep)))
    return splits


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str],
                    labels: Sequence[str] | None = None) -> dict:
    """Accuracy, UAR (macro recall), macro F1, per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = set(y_true) | set(y_pred)
    labels = [label for label in (labels or config.LABELS) if label in present]
    # Macro figures average over the labels that occur in the truth: a label never tested has no recall.
    tested = [label for label in labels if label in set(y_true)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    per_class = {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for label, p, r, f, s in zip(labels, precision, recall, f1, support)}
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "uar": float(np.mean([per_class[label]["recall"] for label in tested])),
        "macro_f1": float(np.mean([per_class[label]["f1"] for label in tested])),
        "n": int(len(y_true)),
        "labels": labels,
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


@dataclass
class EvaluationResult:
    """What a protocol measured, with everything needed to reproduce it."""

    protocol: str
    folds: int
    corpora: list[str]
    features: str
    classifier: str
    seed: int
    speaker_norm: bool
    augmentation: list[str]
    n_clips: int
    n_speakers: int
    pooled: dict
    per_fold: list[dict] = field(default_factory=list)
    adapted: bool = False  # self-trained on each test fold's unlabelled clips (classifiers.fit_adapted)
    # Trained on the population, room and voice levels (adaptation.training_features), its test clips standardised
    # under `scoring` (SCORINGS; "voice" after `voice_clips` clips of each test speaker).
    voice_norm: bool = False
    scoring: str = ""
    voice_clips: int = 0
    # Clips left out because they could not be used ({"path", "reason"}; see extract_usable): n_clips excludes them.
    skipped: list[dict] = field(default_factory=list)
    complete: bool = True  # False when a run was stopped: the figures cover the folds done
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    # Every test clip of every fold (PREDICTION_COLUMNS, then probabilities): kept out of to_dict(), so a
    # bundle's metadata.json stays small; a bundle saves them as predictions.csv beside it.
    predictions: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def description(self) -> str:
        return PROTOCOL_DESCRIPTIONS[self.protocol]

    @property
    def scoring_description(self) -> str:
        """How the test clips met the model ("" unless voice_norm)."""
        if not self.voice_norm:
            return ""
        return f"{self.scoring}: " + SCORING_DESCRIPTIONS[self.scoring].format(clips=self.voice_clips)

    def to_dict(self) -> dict:
        record = asdict(dataclasses.replace(self, predictions=None))
        del record["predictions"]
        return {**record, "description": self.description}

    def summary(self) -> str:
        """A few readable lines that always name the protocol."""
        fold_acc = [fold["accuracy"] for fold in self.per_fold]
        spread = f" (folds {min(fold_acc):.1%}-{max(fold_acc):.1%})" if len(fold_acc) > 1 else ""
        lines = [
            f"protocol: {self.protocol} ({self.description}), {self.folds} folds, seed {self.seed}"
            + ("" if self.complete else f"; stopped after {len(self.per_fold)} folds"),
            f"data: {', '.join(self.corpora)}: {self.n_clips} clips, {self.n_speakers} speakers",
            *([skipped_note(self.skipped)] if self.skipped else []),
            f"model: {self.features} features + {self.classifier}"
            + (", per-speaker normalisation" if self.speaker_norm else "")
            + (f", normalised by what it has heard: {self.scoring_description}" if self.voice_norm else "")
            + (f", adapted: {ADAPTATION_DESCRIPTION}" if self.adapted else "")
            + (f", augmentation {'+'.join(self.augmentation)} (training folds only)" if self.augmentation else ""),
            f"accuracy {self.pooled['accuracy']:.1%}{spread}, UAR {self.pooled['uar']:.1%}, "
            f"macro F1 {self.pooled['macro_f1']:.1%}",
        ]
        return "\n".join(lines)


def skipped_note(skipped: Sequence[Mapping[str, str]], limit: int = 5) -> str:
    """One line saying how many clips were left out as unusable, which, and why (the first `limit`)."""
    shown = "; ".join(f"{entry['path']} ({entry['reason']})" for entry in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return (f"{len(skipped)} {'clip' if len(skipped) == 1 else 'clips'} could not be used and "
            f"{'was' if len(skipped) == 1 else 'were'} left out: {shown}{more}")


@dataclass(frozen=True)
class UsableFeatures:
    """A catalog's features with the clips that could not be used left out (extract_usable)."""

    catalog: pd.DataFrame            # the usable rows, renumbered from 0
    X: np.ndarray                    # their features, row-aligned with catalog
    augmented: dict[str, np.ndarray]  # each augmentation's features of the same rows
    skipped: list[dict]              # {"path", "reason"} of each clip left out


def extract_usable(catalog: pd.DataFrame, features: str, *, protocols: Sequence[str],
                   folds: int = config.DEFAULT_FOLDS, seed: int = config.DEFAULT_SEED,
                   test_corpus: str | None = None, augmentation: Sequence[str] = (), n_jobs: int = -1,
                   progress: Callable[[str, int, int], None] | None = None) -> UsableFeatures:
    """Features (cached) of a catalog's clips and of their augmented copies, without the clips that cannot be
    used: what evaluate, train and the lesson all measure on.

    One bad clip in thousands (CREMA-D's release holds one of digital silence) should not cost a run: it is
    left out, and the result names it. Leaving clips out only stops the run, with a FeatureError listing them,
    when it would leave a class of the catalog without clips, or any of `protocols` (the protocols the
    features are for; none to only fill the cache) with fewer folds than the whole catalog gives (a fold with
    nothing to test or train on). `progress(stage, done, total)` reports "features" and "augment:<kind>".
    """
    from .features import FeatureError, extract_features_with_failures

    def stage(name: str):
        return (lambda done, total: progress(name, done, total)) if progress else None

    X, failed = extract_features_with_failures(catalog, features, n_jobs=n_jobs, progress=stage("features"))
    augmented = {}
    for kind in augmentation:
        augmented[kind], failed_copies = extract_features_with_failures(
            catalog, features, augmentation=(kind, seed), n_jobs=n_jobs, progress=stage(f"augment:{kind}"))
        failed = {**failed_copies, **failed}
    keep = np.ones(len(catalog), dtype=bool)
    keep[list(failed)] = False
    usable = catalog[keep].reset_index(drop=True)
    paths = catalog["path"].astype(str).to_numpy()
    if failed and protocols:
        why = _cost_of_skipping(catalog, usable, protocols, folds=folds, seed=seed, test_corpus=test_corpus)
        if why:
            raise FeatureError({paths[i]: failed[i] for i in sorted(failed)}, len(catalog), why)
    return UsableFeatures(usable, X[keep], {kind: A[keep] for kind, A in augmented.items()},
                          [{"path": paths[i], "reason": failed[i]} for i in sorted(failed)])


def _cost_of_skipping(catalog: pd.DataFrame, usable: pd.DataFrame, protocols: Sequence[str], **how) -> str:
    """What leaving out the unusable clips would break, as the end of a sentence; "" if nothing."""
    lost = [label for label in config.LABELS if label in set(catalog["label"]) - set(usable["label"])]
    if lost:
        return f", which leaves no clip of {', '.join(lost)}"
    for protocol in protocols:
        whole = len(make_splits(catalog, protocol, **how))
        try:
            left = sum(len(split.train) > 0 and len(split.test) > 0 for split in make_splits(usable, protocol, **how))
        except OptionError:
            left = 0
        if left < whole:
            return f", which leaves {whole - left} of the {protocol} protocol's {whole} folds without clips"
    return ""


def training_rows(X: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                  augmented: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The features and labels of `rows`, plus the augmented copies of those rows only."""
    copies = list((augmented or {}).values())
    return (np.concatenate([X[rows]] + [A[rows] for A in copies]),
            np.concatenate([labels[rows]] * (1 + len(copies))))


def validation_rows(catalog: pd.DataFrame, rows: np.ndarray, protocol: str, *, share: float = 0.15,
                    seed: int = config.DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (fit, validation) the way the protocol splits train from test.

    Early stopping and best-weight choice look at validation figures only, never at the test fold; under the
    speaker and corpus protocols validation speakers are held out whole, so the choice is speaker-independent.
    """
    rng = np.random.default_rng(seed)
    speakers = catalog["speaker"].to_numpy()[rows]
    names = np.unique(speakers)
    if protocol == "random" or len(names) < 2:
        # One training speaker (TESS: train on one, test on the other): validation clips come from that
        # speaker; the test fold is still a speaker never seen.
        pick = rng.random(len(rows)) < share
    else:
        held = rng.choice(names, size=min(len(names) - 1, max(1, round(share * len(names)))), replace=False)
        pick = np.isin(speakers, held)
    return rows[~pick], rows[pick]


def class_probabilities(model, X: np.ndarray) -> pd.DataFrame | None:
    """A scikit-learn classifier's probabilities for the rows of X, one column per class; None without any."""
    if not hasattr(model, "predict_proba"):
        return None
    return pd.DataFrame(model.predict_proba(X), columns=[str(c) for c in model.classes_])


def fold_predictions(catalog: pd.DataFrame, split: Split, fold: int, predicted: np.ndarray,
                     probabilities: pd.DataFrame | None = None) -> pd.DataFrame:
    """The prediction rows of one fold's test clips (fold is 1-based), with probabilities when given."""
    rows = {"fold": fold}
    for column in ("path", "corpus", "speaker"):
        rows[column] = catalog[column].to_numpy()[split.test] if column in catalog else ""
    truth = catalog["label"].to_numpy()[split.test]
    rows.update(true_label=truth, predicted_label=predicted, correct=truth == predicted)
    frame = pd.DataFrame(rows, index=range(len(split.test)))
    if probabilities is not None:
        for label in probabilities.columns:
            frame[f"{PROBABILITY_PREFIX}{label}"] = probabilities[label].to_numpy(dtype=float)
    return frame


def _pooled_predictions(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """All folds' rows; probability columns in vocabulary order, 0 where a fold's model lacked the class."""
    frame = pd.concat(parts, ignore_index=True)
    prob = [c for c in frame.columns if c.startswith(PROBABILITY_PREFIX)]
    order = {label: i for i, label in enumerate(config.LABELS)}
    prob.sort(key=lambda c: order.get(c[len(PROBABILITY_PREFIX):], len(order)))
    frame[prob] = frame[prob].fillna(0.0)
    return frame[list(PREDICTION_COLUMNS) + prob]


def predictions_to_csv(predictions: pd.DataFrame) -> str:
    """Per-clip predictions as CSV text (probabilities to 4 decimals), as a bundle's predictions.csv holds."""
    return predictions.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def run_folds(catalog: pd.DataFrame, splits: Sequence[Split],
              fit_predict: Callable[[Split, int], np.ndarray | tuple[np.ndarray, pd.DataFrame | None] | None],
              *, on_fold: Callable[[int, int, dict], None] | None = None, **how) -> EvaluationResult | None:
    """Fit and test on every split; `fit_predict(split, i)` returns the labels predicted for split.test, or
    (labels, probabilities) with probabilities a DataFrame, one column per class, rows as split.test.

    It may return None to stop early (a user pressed Stop): the result then covers the folds done (None if
    none finished). `on_fold(i, n_splits, metrics)` hears of each finished fold; `how` names what was
    evaluated (protocol, features, classifier, seed, speaker_norm, augmentation, adapted), as EvaluationResult
    records.
    The result keeps every test clip's prediction (`predictions`).
    """
    labels, speakers = catalog["label"].to_numpy(), catalog["speaker"].to_numpy()
    truth, predicted, per_fold, rows = [], [], [], []
    for i, split in enumerate(splits):
        output = fit_predict(split, i)
        if output is None:
            break
        fold_pred, probabilities = output if isinstance(output, tuple) else (output, None)
        fold_pred = np.asarray(fold_pred)
        rows.append(fold_predictions(catalog, split, i + 1, fold_pred, probabilities))
        fold = compute_metrics(labels[split.test], fold_pred)
        fold["name"] = split.name
        fold["test_speakers"] = sorted(set(speakers[split.test]))
        per_fold.append(fold)
        truth.append(labels[split.test])
        predicted.append(fold_pred)
        if on_fold:
            on_fold(i, len(splits), fold)
    if not truth:
        return None
    return EvaluationResult(
        folds=len(splits), corpora=sorted(catalog["corpus"].unique()), n_clips=len(catalog),
        n_speakers=int(catalog["speaker"].nunique()), complete=len(per_fold) == len(splits),
        pooled=compute_metrics(np.concatenate(truth), np.concatenate(predicted)), per_fold=per_fold,
        predictions=_pooled_predictions(rows), **how)


def cross_validate(X: np.ndarray, catalog: pd.DataFrame, *, classifier: str = config.DEFAULT_CLASSIFIER,
                   protocol: str = config.DEFAULT_PROTOCOL, folds: int = config.DEFAULT_FOLDS,
                   seed: int = config.DEFAULT_SEED, speaker_norm: bool = False,
                   augmented: dict[str, np.ndarray] | None = None, features: str = "",
                   test_corpus: str | None = None, adapt: bool = False, skipped: Sequence[dict] = (),
                   voice_norm: bool = False, scoring: str = "cold", voice_clips: int = config.VOICE_CLIPS,
                   progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
    """Train and test a scikit-learn classifier on every split of a protocol.

    `X` holds one row of features per catalog row (sequences and images of the pipeline named by
    `features` are pooled to mean+std); `augmented` maps an augmentation name to features of augmented
    copies of every clip, row-aligned with X: only training rows' copies are used. With `adapt`, each fold's
    model is self-trained on its test clips, unlabelled (classifiers.fit_adapted): a transductive protocol,
    which the result records, as it records the clips `skipped` (extract_usable) before X was made.
    With `voice_norm`, each fold's model is trained on the population, room and voice levels
    (adaptation.training_features) and its test clips are standardised under `scoring` (see voice_norm_tests).
    """
    from .classifiers import fit_adapted, fit_classifier
    from .features import get_pipeline, pool

    if speaker_norm and voice_norm:
        raise OptionError("Choose per-speaker normalisation or normalisation by what the model has heard, "
                          "not both.")
    augmented = dict(augmented or {})
    if X.ndim > 2:
        kind = get_pipeline(features).kind
        X = pool(X, kind)
        augmented = {name: pool(A, kind) for name, A in augmented.items()}
    if speaker_norm:
        X, augmented, _ = normalize_speakers(X, catalog, augmented)
    labels = catalog["label"].to_numpy()
    splits = make_splits(catalog, protocol, folds=folds, seed=seed, test_corpus=test_corpus)
    tests = {}  # split name -> (its training Prior, its test features as the model meets them)
    if voice_norm:
        splits, tests = voice_norm_tests(X, catalog, splits, scoring=scoring, voice_clips=voice_clips, seed=seed)

    def fit_predict(split: Split, _: int) -> tuple[np.ndarray, pd.DataFrame | None]:
        X_train, y_train = training_rows(X, labels, split.train, augmented)
        X_test = X[split.test]
        if voice_norm:
            prior, X_test = tests[split.name]
            X_train = voice_norm_training(X_train, catalog, split.train, prior, seed=seed)
        model = (fit_adapted(classifier, X_train, y_train, X_test, seed=seed) if adapt
                 else fit_classifier(classifier, X_train, y_train, seed=seed))
        return model.predict(X_test), class_probabilities(model, X_test)

    return run_folds(catalog, splits, fit_predict,
                     on_fold=(lambda i, n, _: progress(i + 1, n)) if progress else None,
                     protocol=protocol, features=features, classifier=classifier, seed=seed,
                     speaker_norm=speaker_norm, augmentation=list(augmented), adapted=adapt,
                     skipped=list(skipped), voice_norm=voice_norm, scoring=scoring if voice_norm else "",
                     voice_clips=voice_clips if voice_norm and scoring == "voice" else 0)


def voice_norm_training(X_train: np.ndarray, catalog: pd.DataFrame, rows: np.ndarray, prior,
                        levels: Sequence[str] | None = None, seed: int = config.DEFAULT_SEED) -> np.ndarray:
    """A voice_norm model's training features: the clips of `rows` (then their augmented copies, as training_rows
    stacks them), each at one of `levels` (default: all; adaptation.training_features)."""
    from .adaptation import LEVELS, training_features

    speakers, rooms = catalog["speaker"].to_numpy(), catalog["corpus"].to_numpy()  # a room is a corpus
    copies = len(X_train) // len(rows)
    return training_features(X_train, np.tile(speakers[rows], copies), np.tile(rooms[rows], copies), prior,
                             levels or LEVELS, seed)


def voice_norm_tests(X: np.ndarray, catalog: pd.DataFrame, splits: Sequence[Split], *, scoring: str,
                     voice_clips: int = config.VOICE_CLIPS, seed: int = config.DEFAULT_SEED,
                     prior=None) -> tuple[list[Split], dict]:
    """Each split's test clips standardised as a voice_norm model meets them under `scoring`, and the split's
    training Prior (`prior` where given): the splits with the clips scored as tests, and {split name: (prior,
    test features)}.

    cold: by the training speakers' statistics alone. room: by the mean of the other speakers of the test
    clip's corpus (train or test side: one room), unlabelled. voice: by `voice_clips` random clips of the test
    speaker, unlabelled, which are then left out of the test; a speaker with no clip left is not scored.
    """
    from .adaptation import SpeechStats, population_prior

    if scoring not in SCORINGS:
        raise OptionError(f"Unknown scoring {scoring!r}: choose one of {', '.join(SCORINGS)}.")
    if scoring == "voice" and voice_clips < 1:
        raise OptionError("The voice scoring needs at least one clip of each test speaker to hear first.")
    speakers, rooms = catalog["speaker"].to_numpy(), catalog["corpus"].to_numpy()  # a room is a corpus
    rng = np.random.default_rng(seed)
    scored_splits, tests = [], {}
    for split in splits:
        split_prior = prior or population_prior(X[split.train], speakers[split.train])
        scored, standardised = [], []
        for speaker in np.unique(speakers[split.test]):
            mine = split.test[speakers[split.test] == speaker]
            if scoring == "voice":
                order = rng.permutation(len(mine))
                heard, mine = mine[np.sort(order[:voice_clips])], mine[np.sort(order[voice_clips:])]
                mean, std = split_prior.normalizer(voice=SpeechStats.of(X[heard]))
            elif scoring == "room":
                room = (rooms == rooms[mine[0]]) & (speakers != speaker)
                mean, std = split_prior.normalizer(room=SpeechStats.of(X[room]))
            else:
                mean, std = split_prior.normalizer()
            scored.append(mine)
            standardised.append((X[mine] - mean) / std)
        if not sum(map(len, scored)):
            raise OptionError(f"Every test speaker of {split.name} has {voice_clips} clips or fewer: none is left to "
                              "score once those are heard. Hear fewer clips first, or choose speakers with more.")
        scored_splits.append(Split(split.name, split.train, np.concatenate(scored)))
        tests[split.name] = (split_prior, np.concatenate(standardised))
    return scored_splits, tests


def normalize_speakers(X: np.ndarray, catalog: pd.DataFrame, augmented: dict[str, np.ndarray],
                       kind: str = "clip") -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Per-speaker standardisation of X, and of the augmented copies with their originals' statistics; and the
    typical within-speaker std the speakers' stds were shrunk towards (a model keeps it for calibration).

    It uses no labels, so applying it before splitting leaks no answers: each speaker's statistics come from
    that speaker's own clips (a test speaker is normalised by themself), steadied by the spread of all the
    speakers' clips, which weighs PRIOR_CLIPS clips against a RAVDESS actor's 60.
    """
    from .features import normalize_by_speaker, speaker_stats, typical_speaker_std

    speakers = catalog["speaker"].to_numpy()
    prior_std = typical_speaker_std(X, speakers, kind)
    stats = speaker_stats(X, speakers, kind, prior_std)
    return (normalize_by_speaker(X, speakers, stats, kind),
            {name: normalize_by_speaker(A, speakers, stats, kind) for name, A in augmented.items()}, prior_std)


def evaluate(catalog: pd.DataFrame, *, features: str = config.DEFAULT_FEATURES,
             classifier: str = config.DEFAULT_CLASSIFIER,
             protocol: str = config.DEFAULT_PROTOCOL, folds: int = config.DEFAULT_FOLDS,
             seed: int = config.DEFAULT_SEED, speaker_norm: bool = False,
             augmentation: Sequence[str] = (), test_corpus: str | None = None, adapt: bool = False,
             voice_norm: bool = False, scoring: str = "cold", voice_clips: int = config.VOICE_CLIPS, n_jobs: int = -1,
             progress: Callable[[str, int, int], None] | None = None) -> EvaluationResult:
    """Extract (cached) features for a catalog and cross-validate a classifier on them.

    Clips that cannot be used are left out and named in the result (see extract_usable).
    `progress(stage, done, total)` reports feature extraction ("features", "augment:<kind>")
    and training ("folds").
    """
    make_splits(catalog, protocol, folds=folds, seed=seed, test_corpus=test_corpus)  # refused before extracting
    usable = extract_usable(catalog, features, protocols=[protocol], folds=folds, seed=seed,
                            test_corpus=test_corpus, augmentation=augmentation, n_jobs=n_jobs, progress=progress)
    return cross_validate(usable.X, usable.catalog, classifier=classifier, protocol=protocol, folds=folds,
                          seed=seed, speaker_norm=speaker_norm, augmented=usable.augmented, features=features,
                          test_corpus=test_corpus, adapt=adapt, skipped=usable.skipped, voice_norm=voice_norm,
                          scoring=scoring, voice_clips=voice_clips,
                          progress=(lambda done, total: progress("folds", done, total)) if progress else None)

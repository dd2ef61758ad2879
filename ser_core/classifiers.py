"""scikit-learn baselines: the whole evaluation runs without TensorFlow.

Each classifier standardises its input inside the pipeline, so scaling is fitted
on training folds only.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np

from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from sklearn.svm import SVC

from . import config
from .errors import OptionError

CLASSIFIERS: tuple[str, ...] = ("svm", "mlp", "logreg", "ridge")
CALIBRATION_FOLDS = 5  # internal folds that calibrate the SVM's and ridge's probabilities (fewer for fewer clips)
RIDGE_ALPHA = 1e4
ADAPT_ROUNDS = 4  # self-training rounds of fit_adapted, chosen on RAVDESS by actor
ADAPT_RANK = 64  # principal directions of its training clips a saved ridge model keeps to adapt (adapt_ridge)


def make_classifier(name: str = config.DEFAULT_CLASSIFIER, *, seed: int = 0,
                    calibration_folds: int = CALIBRATION_FOLDS) -> Pipeline:
    """A fresh, unfitted scikit-learn pipeline (scaler + classifier) that outputs probabilities."""
    if name == "svm":
        # Calibrated on internal folds of the training data so that probabilities are meaningful.
        model = CalibratedClassifierCV(SVC(kernel="rbf", C=10.0, gamma="scale"), cv=calibration_folds,
                                       ensemble=False)
    elif name == "mlp":
        # The MLPClassifier of the popular RAVDESS notebooks, with early stopping so it does not overfit a fold.
        model = MLPClassifier(hidden_layer_sizes=(256, 128), alpha=1e-3, batch_size=64,
                              learning_rate_init=1e-3, max_iter=300, early_stopping=True,
                              n_iter_no_change=15, random_state=seed)
    elif name == "logreg":
        # Strongly regularised (C=0.01) for thousands of features from a few speakers, such as "compare":
        # its probabilities come from the model itself, so it needs no calibration folds.
        model = LogisticRegression(C=0.01, max_iter=2000)
    elif name == "ridge":
        # A ridge classifier (least squares on one-vs-rest targets), calibrated like the SVM for probabilities.
        # Its alpha is the one RAVDESS by actor picks on compare_ge2e, normalised (1e3-3e4: 75.3-78.0%); with it,
        # TESS across its two speakers scores 76.9% where logreg scores 68.4%.
        model = CalibratedClassifierCV(RidgeClassifier(alpha=RIDGE_ALPHA), cv=calibration_folds, ensemble=False)
    else:
        raise OptionError(f"Unknown classifier {name!r}: choose one of {', '.join(CLASSIFIERS)}.")
    return make_pipeline(StandardScaler(), model)


def fit_classifier(name: str, X: np.ndarray, y: np.ndarray, *, seed: int = 0) -> Pipeline:
    """make_classifier fitted on (X, y). A small training set, such as a class's first recordings, calibrates
    on fewer folds; a class with a single training clip cannot be calibrated and is refused with a message."""
    labels, counts = np.unique(y, return_counts=True)
    if name in ("svm", "ridge") and counts.min() < 2:
        raise OptionError(f"Too few clips to train on: '{labels[counts.argmin()]}' has {counts.min()} in a "
                          "training fold; every emotion needs at least 2 there. Record more clips, use fewer "
                          "folds, or leave that emotion out.")
    return make_classifier(name, seed=seed, calibration_folds=min(CALIBRATION_FOLDS, int(counts.min()))).fit(X, y)


def fit_adapted(name: str, X: np.ndarray, y: np.ndarray, X_unlabelled: np.ndarray, *,
                rounds: int = ADAPT_ROUNDS, seed: int = 0) -> Pipeline:
    """fit_classifier, then self-trained on unlabelled clips of the speakers it is about to classify.

    Each round refits on the training clips plus the unlabelled clips it is surest of, labelled with its own
    guesses: a share round/rounds of them, so the last round takes all. It reads no label of those clips; it
    adapts to how those speakers sound, as per-speaker normalisation does to their average and spread.
    """
    def refit(X_new: np.ndarray, y_new: np.ndarray) -> Pipeline:
        return fit_classifier(name, np.vstack([X, X_new]), np.concatenate([y, y_new]), seed=seed)

    return _self_train(fit_classifier(name, X, y, seed=seed), X_unlabelled, refit, rounds)


def _self_train(model: Pipeline, X_unlabelled: np.ndarray, refit: Callable[[np.ndarray, np.ndarray], Pipeline],
                rounds: int) -> Pipeline:
    for done in range(1, rounds + 1):
        probabilities = model.predict_proba(X_unlabelled)
        guesses = model.classes_[probabilities.argmax(axis=1)]
        surest = np.argsort(-probabilities.max(axis=1), kind="stable")[:round(len(X_unlabelled) * done / rounds)]
        if len(surest):  # a few clips take none in the first rounds
            model = refit(X_unlabelled[surest], guesses[surest])
    return model


def ridge_adaptation(model: Pipeline, X: np.ndarray, *, rank: int = ADAPT_RANK) -> dict[str, np.ndarray]:
    """What adapt_ridge needs to know of a fitted `ridge` model's training clips X, small enough to save with it:
    their `rank` principal directions as the model's scaler sees them, and the sum of squares along each."""
    from sklearn.utils.extmath import randomized_svd

    _, singular_values, directions = randomized_svd(model[0].transform(X), min(rank, *X.shape), random_state=0)
    return {"directions": directions.astype(np.float16), "sums_of_squares": singular_values ** 2,
            "n_clips": np.array(len(X))}


def adapt_ridge(model: Pipeline, adaptation: dict[str, np.ndarray], X_unlabelled: np.ndarray, *,
                rounds: int = ADAPT_ROUNDS) -> Pipeline:
    """fit_adapted for a saved `ridge` model, without its training clips: a copy self-trained on unlabelled clips
    of a new speaker (such as their calibration speech).

    A refit on the training clips plus new ones has a closed form around the fitted weights: least squares on
    the new clips, held back by the training clips' pull. That pull is the ridge penalty plus the training
    clips' sums of squares along their principal directions (ridge_adaptation); the training clips are centred
    by the scaler, so the intercept is held back by their number. The probability calibration is kept.
    """
    ridge = _fitted_ridge(model)
    directions = adaptation["directions"].astype(np.float64).T  # features x rank
    pull = 1 / (adaptation["sums_of_squares"] + ridge.alpha)
    n_clips = float(adaptation["n_clips"])

    def refit(X_new: np.ndarray, y_new: np.ndarray) -> Pipeline:
        Z = model[0].transform(X_new)
        targets = LabelBinarizer(pos_label=1, neg_label=-1).fit(ridge.classes_).transform(y_new)  # as ridge codes
        residuals = targets - ridge.decision_function(Z).reshape(len(Z), -1)
        along = Z @ directions
        # The inverse of the training clips' pull (features x features), applied to Z.T, without forming it.
        pulled = (directions * pull) @ along.T + (Z.T - directions @ along.T) / ridge.alpha
        weights = np.linalg.solve(np.eye(len(Z)) + Z @ pulled + 1 / n_clips, residuals)
        adapted = copy.deepcopy(model)
        adapted_ridge = _fitted_ridge(adapted)
        adapted_ridge.coef_ = ridge.coef_ + (pulled @ weights).T.reshape(ridge.coef_.shape)  # 1-D for two classes
        adapted_ridge.intercept_ = ridge.intercept_ + np.reshape(weights.sum(axis=0) / n_clips,
                                                                 np.shape(ridge.intercept_))
        return adapted

    return _self_train(model, X_unlabelled, refit, rounds)


def _fitted_ridge(model: Pipeline) -> RidgeClassifier:
    """The ridge classifier inside make_classifier("ridge"), fitted on all its training clips."""
    return model[-1].calibrated_classifiers_[0].estimator

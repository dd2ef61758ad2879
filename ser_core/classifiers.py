"""scikit-learn baselines: the whole evaluation runs without TensorFlow.

Each classifier standardises its input inside the pipeline, so scaling is fitted
on training folds only.
"""
from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .errors import OptionError

CLASSIFIERS: tuple[str, ...] = ("svm", "mlp")


def make_classifier(name: str = "svm", *, seed: int = 0) -> Pipeline:
    """A fresh, unfitted scikit-learn pipeline (scaler + classifier) that outputs probabilities."""
    if name == "svm":
        # Calibrated on internal folds of the training data so that probabilities are meaningful.
        model = CalibratedClassifierCV(SVC(kernel="rbf", C=10.0, gamma="scale"), ensemble=False)
    elif name == "mlp":
        # The MLPClassifier of the popular RAVDESS notebooks, with early stopping so it does not overfit a fold.
        model = MLPClassifier(hidden_layer_sizes=(256, 128), alpha=1e-3, batch_size=64,
                              learning_rate_init=1e-3, max_iter=300, early_stopping=True,
                              n_iter_no_change=15, random_state=seed)
    else:
        raise OptionError(f"Unknown classifier {name!r}: choose one of {', '.join(CLASSIFIERS)}.")
    return make_pipeline(StandardScaler(), model)

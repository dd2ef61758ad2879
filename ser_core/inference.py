"""Classifying clips with a saved model: load a bundle once, predict many times."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .bundles import Bundle, load_bundle


@dataclass(frozen=True)
class Prediction:
    """The top label and the probability of every label the model knows."""

    label: str
    probabilities: dict[str, float]


class Predictor:
    """A loaded model with the feature pipeline it was trained on."""

    def __init__(self, bundle: Bundle):
        from .features import get_pipeline

        self.bundle = bundle
        self.pipeline = get_pipeline(bundle.metadata["features"]["name"])

    @classmethod
    def load(cls, model: str | os.PathLike | None = None) -> "Predictor":
        """By name or folder; None loads the shipped default model."""
        return cls(load_bundle(model))

    @property
    def name(self) -> str:
        return self.bundle.name

    def predict_samples(self, y: np.ndarray) -> Prediction:
        """Classify mono samples already at the pipeline's sample rate."""
        from .features import extract, pool

        x = extract(y, self.pipeline.sample_rate, self.pipeline)
        x = pool(x[None], self.pipeline.kind)
        probabilities = self.bundle.model.predict_proba(x)[0]
        classes = [str(c) for c in self.bundle.model.classes_]
        by_label = {label: float(p) for label, p in zip(classes, probabilities)}
        return Prediction(label=max(by_label, key=by_label.get), probabilities=by_label)

    def predict(self, source, *, name: str | None = None) -> Prediction:
        """Classify a path, bytes or an uploaded file; bad audio raises a typed AudioError."""
        from .audio import load_audio

        return self.predict_samples(load_audio(source, sr=self.pipeline.sample_rate, name=name))

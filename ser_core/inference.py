"""Classifying clips with a saved model: load a bundle once, then classify clips, long recordings and streams.

A long clip or a stream is classified in sliding windows (WINDOW seconds every HOP by default); silent
windows are marked silent, not classified.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from . import config
from .bundles import Bundle, load_bundle
from .errors import AudioError, ModelError, SilentAudioError

SILENCE = "silence"


@dataclass(frozen=True)
class Calibration:
    """What a calibration used (calibrate_files, or a live session's finish_calibration): windows of speech from how
    many recordings, and why each recording it could not read was skipped."""

    windows: int
    recordings: int | None  # None for a live microphone
    skipped: list[str]
    adapted: bool  # the model self-trained on those windows too (a model saved with what that needs)

    def describe(self, whose: str = "the speaker's") -> str:
        """What the pages and the command line report after "calibrated on": the windows of whose speech, from how
        many recordings, and whether the model adapted to them."""
        text = f"{self.windows} windows of {whose} speech"
        if self.recordings is not None:
            text += f", from {self.recordings} recording{'' if self.recordings == 1 else 's'}"
        return text + (", and adapted to them" if self.adapted else "")


@dataclass(frozen=True)
class Prediction:
    """The top label and the probability of every label the model knows."""

    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class WindowPrediction:
    """One window of a timeline; label is SILENCE (and probabilities empty) for a silent window."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Timeline:
    """Per-window predictions over a clip or stream, with a summary of the whole."""

    windows: list[WindowPrediction]
    labels: list[str]

    def summary(self) -> dict:
        """Mean probabilities over the voiced windows, the share of windows per top label (silence
        included), and the label with the highest mean probability (None when all is silent)."""
        voiced = [w for w in self.windows if w.label != SILENCE]
        mean = ({label: float(np.mean([w.probabilities[label] for w in voiced])) for label in self.labels}
                if voiced else {})
        share = {label: sum(w.label == label for w in self.windows) / len(self.windows)
                 for label in [*self.labels, SILENCE]} if self.windows else {}
        return {"label": max(mean, key=mean.get) if mean else None, "mean": mean, "share": share,
                "windows": len(self.windows), "voiced": len(voiced)}

    def to_dict(self) -> dict:
        return {"windows": [asdict(w) for w in self.windows], "summary": self.summary()}

    def overall(self, name: str = "the recording") -> Prediction:
        """The whole recording's prediction: the mean probabilities of its voiced windows. SilentAudioError, naming
        the recording, when none is voiced."""
        summary = self.summary()
        if summary["label"] is None:
            raise SilentAudioError(f"{name}: this recording is silent (no window of it reaches {config.SILENCE_DBFS:g} "
                                   "dBFS). Check that the microphone was on, or choose a recording with speech in it.")
        return Prediction(summary["label"], summary["mean"])


def is_long_clip(source, *, name: str | None = None) -> bool:
    """Whether a clip is classified window by window: longer than config.LONG_CLIP, or of a length its header
    omits (a browser's WebM). Reads the header only; raises the load_audio errors for a bad file."""
    from .audio import audio_info

    duration = audio_info(source, name=name).duration
    return duration is None or duration > config.LONG_CLIP


class Predictor:
    """A loaded model with the feature pipeline it was trained on."""

    def __init__(self, bundle: Bundle, speaker_stats: tuple[np.ndarray, np.ndarray] | None = None):
        from .features import Pipeline

        self.bundle = bundle
        self.trained = bundle  # as saved; calibrate() may put a copy adapted to the speaker in self.bundle
        self.pipeline = Pipeline.from_dict(bundle.metadata["features"])
        self.speaker_stats = speaker_stats

    @classmethod
    def load(cls, model: str | os.PathLike | None = None) -> "Predictor":
        """By name or folder; None loads the shipped default model."""
        return cls(load_bundle(model))

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    @property
    def needs_calibration(self) -> bool:
        """A model trained with per-speaker normalisation needs the speaker's statistics first."""
        return bool(self.bundle.metadata.get("speaker_norm")) and self.speaker_stats is None

    def check_calibrated(self) -> None:
        """Raise ModelError, saying how to calibrate, while the model still needs the speaker's statistics."""
        if self.needs_calibration:
            raise ModelError(f"Model {self.name} was trained with per-speaker normalisation: calibrate it on 20-30 s "
                             "of the speaker's speech first (the Live page does; on the command line, predict "
                             "--calibrate), or choose another model.")

    def _check_speaker_normalized(self) -> None:
        if not self.bundle.metadata.get("speaker_norm"):
            raise ModelError(f"Model {self.name} classifies each clip as it is: it needs no calibration.")

    @property
    def adapted(self) -> bool:
        """Whether calibration has adapted the model itself to the speaker, beyond normalising by them."""
        return self.bundle is not self.trained

    def calibrate(self, clips: Sequence[np.ndarray]) -> int:
        """Per-speaker statistics from the speaker's speech (mono clips or windows at the pipeline's rate), as the
        training data was normalised by each speaker's own statistics. Silent clips are skipped and each other is
        peak-normalised, as training clips were, so the microphone's level does not matter. A model saved with
        what adaptation needs (a speaker-normalised `ridge`) also self-trains on the clips, unlabelled
        (classifiers.adapt_ridge), starting again from the saved model each time. Returns clips used."""
        from .audio import is_silent, peak_normalize
        from .features import extract, speaker_stats

        self._check_speaker_normalized()
        voiced = [peak_normalize(y) for y in clips if not is_silent(y)]
        if len(voiced) < 2:
            raise ModelError("Calibration needs at least two windows of the speaker's speech (a few seconds); "
                             f"it got {len(voiced)}.")
        X = np.stack([extract(y, self.pipeline.sample_rate, self.pipeline) for y in voiced])
        stats = speaker_stats(self._model_input(X, normalize=False), ["speaker"] * len(X), self._input_kind,
                              self.typical_speaker_std)
        self.speaker_stats = stats["speaker"]
        self.bundle = self.trained
        if self.trained.adaptation is not None:
            from .classifiers import adapt_ridge

            adapted = adapt_ridge(self.trained.model, self.trained.adaptation, self._model_input(X))
            self.bundle = replace(self.trained, model=adapted)
        return len(voiced)

    def calibrate_files(self, sources: Sequence, *, window: float = config.WINDOW,
                        hop: float = config.HOP) -> Calibration:
        """calibrate() on recordings of the speaker (paths, bytes or uploads), cut into windows as a long clip is
        classified. A recording that cannot be read (not audio, damaged, too short) is skipped, and its message
        kept, so that one bad file among several loses nothing; ModelError, with those messages, when too little
        speech is left."""
        from .audio import iter_windows

        self._check_speaker_normalized()  # before decoding any recording
        sr = self.pipeline.sample_rate
        windows, skipped = [], []
        for source in sources:
            try:
                windows += [y for _, y in iter_windows(source, window, hop, sr)]
            except AudioError as error:
                skipped.append(str(error))
        try:
            used = self.calibrate(windows)
        except ModelError as error:
            raise ModelError(" ".join([str(error), *skipped])) from None
        return Calibration(used, len(sources) - len(skipped), skipped, self.adapted)

    def predict_samples(self, y: np.ndarray) -> Prediction:
        """Classify mono samples already at the pipeline's sample rate."""
        from .features import extract

        x = extract(y, self.pipeline.sample_rate, self.pipeline)
        probabilities = self.bundle.predict_proba(self._model_input(x[None]))[0]
        by_label = {label: float(p) for label, p in zip(self.labels, probabilities)}
        return Prediction(label=max(by_label, key=by_label.get), probabilities=by_label)

    def predict_proba_samples(self, clips: Sequence[np.ndarray], *, threads: int | None = None) -> np.ndarray:
        """Probabilities (one row per clip, columns in self.labels) of several clips at the pipeline's rate:
        features on `threads` threads (default: the cores, at most 4), the model once for all (what occlusion
        maps need). Threads suffice: openSMILE and numpy's FFTs run outside the GIL, and openSMILE gets a fresh
        extractor per clip (as its own multi-threaded mode does); on 2 cores this halves the time."""
        from concurrent.futures import ThreadPoolExecutor

        from .features import extract

        def features(y: np.ndarray) -> np.ndarray:
            return extract(y, self.pipeline.sample_rate, self.pipeline)

        workers = min(len(clips), threads or min(os.cpu_count() or 1, 4))
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                X = np.stack(list(pool.map(features, clips)))
        else:
            X = np.stack([features(y) for y in clips])
        return np.asarray(self.bundle.predict_proba(self._model_input(X)), dtype=np.float64)

    def predict(self, source, *, name: str | None = None) -> Prediction:
        """Classify a path, bytes or an uploaded file; bad audio raises a typed AudioError. A clip longer than
        config.LONG_CLIP (or of a length its header omits) is classified window by window, in memory bounded by a
        window, as the mean of its voiced windows (Timeline.overall)."""
        from .audio import load_audio, source_name

        if is_long_clip(source, name=name):
            return self.predict_windows(source, name=name).overall(source_name(source, name))
        return self.predict_samples(load_audio(source, sr=self.pipeline.sample_rate, name=name))

    def predict_windows(self, source, *, window: float = config.WINDOW, hop: float = config.HOP,
                        name: str | None = None) -> Timeline:
        """Classify a clip of any length window by window (decoded as it goes, so length is not limited)."""
        from .audio import iter_windows

        windows = iter_windows(source, window, hop, self.pipeline.sample_rate, name=name)
        return self.timeline(windows)

    def timeline(self, windows: Iterable[tuple[float, np.ndarray]]) -> Timeline:
        """Classify (start seconds, samples) windows, such as iter_windows or a live stream gives.

        Each voiced window is peak-normalised, as load_audio normalises a whole clip.
        """
        from .audio import is_silent, peak_normalize

        sr = self.pipeline.sample_rate
        results = []
        for start, y in windows:
            end = start + len(y) / sr
            if is_silent(y):
                results.append(WindowPrediction(start, end, SILENCE, {}))
            else:
                prediction = self.predict_samples(peak_normalize(y))
                results.append(WindowPrediction(start, end, prediction.label, prediction.probabilities))
        return Timeline(results, self.labels)

    @property
    def typical_speaker_std(self) -> np.ndarray | None:
        """The training speakers' typical std, which steadies a calibration's (None in bundles saved before it)."""
        std = self.bundle.metadata.get("normalisation", {}).get("typical_speaker_std")
        return None if std is None else np.asarray(std, dtype=np.float32)

    @property
    def _input_kind(self) -> str:
        # scikit-learn models read pooled (clip-level) features; Keras models the pipeline's own shape.
        return self.pipeline.kind if self.bundle.kind == "keras" else "clip"

    def _model_input(self, X: np.ndarray, normalize: bool = True) -> np.ndarray:
        from .features import pool

        if self.bundle.kind != "keras":
            X = pool(X, self.pipeline.kind)
        if normalize and self.bundle.metadata.get("speaker_norm"):
            self.check_calibrated()
            mean, std = self.speaker_stats
            X = (X - mean) / std
        return X

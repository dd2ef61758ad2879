"""Classifying clips with a saved model: load a bundle once, then classify clips, long recordings and streams.

A long clip or a stream is classified in sliding windows (WINDOW seconds every HOP by default); silent
windows are marked silent, not classified.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from . import config
from .bundles import Bundle, load_bundle
from .errors import AudioError, ModelError, SilentAudioError

if TYPE_CHECKING:
    from .adaptation import Prior, SpeechStats

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

    @property
    def worth_showing(self) -> bool:
        """Whether a chart over time says more than the overall answer: three voiced windows or more (a 3.3 s
        clip gives two, nearly the same)."""
        return sum(w.label != SILENCE for w in self.windows) >= 3

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
        # What a voice_norm model has heard (adaptation.SpeechStats of its pooled features): of the room (all
        # voices where it runs, e.g. adaptation.load_room) and of this voice (hear(), reset_voice()).
        self.room: SpeechStats | None = None
        self.voice: SpeechStats | None = None
        self.heard_room: SpeechStats | None = None  # what this predictor has heard since its room was set
        self.prior = _prior(bundle, self.pipeline)

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
    def voice_norm(self) -> bool:
        """Whether the model normalises by what it has heard of the room and the voice (and works cold)."""
        return self.prior is not None

    @property
    def heard_seconds(self) -> float:
        """Seconds of this voice's speech a voice_norm model has adapted to."""
        return self.voice.seconds if self.voice is not None else 0.0

    @property
    def room_seconds(self) -> float:
        """Seconds of speech this room has given a voice_norm model (what it had heard, and has since)."""
        return sum(stats.seconds for stats in (self.room, self.heard_room) if stats is not None)

    def heard_description(self, whose: str = "your") -> str:
        """What a voice_norm model has adapted to, for a page: the voice's seconds and the room's."""
        voice = (f"adapted to {self.heard_seconds:.0f} s of {whose} voice" if self.heard_seconds >= 1 else
                 f"not adapted to {whose} voice yet: it adapts as it hears more")
        room = self.room_seconds
        return voice + (f"; this room: {_duration(room)} of speech heard" if room >= 1 else "")

    def reset_voice(self) -> None:
        """Forget the voice heard so far (the next student); the room stays."""
        self.voice = None

    def for_session(self) -> Predictor:
        """A copy for one browser session or stream, normalising by what this room has heard so far
        (adaptation.load_room): what the copy hears of a voice, or a calibration, stays in it."""
        from copy import copy

        from .adaptation import load_room

        mine = copy(self)
        if mine.voice_norm:
            mine.room = load_room(mine.pipeline)
        return mine

    def share_with_room(self) -> None:
        """Add what this predictor has heard to the room's statistics on disk (adaptation.add_to_room), and
        normalise by the room as it is now. Nothing for a model that is not voice_norm or has heard nothing."""
        from .adaptation import add_to_room

        if self.voice_norm and self.heard_room is not None:
            self.room, self.heard_room = add_to_room(self.pipeline, self.heard_room), None

    def hear_room_files(self, sources: Sequence, *, window: float = config.WINDOW,
                        hop: float = config.HOP) -> Calibration:
        """Calibrate this room: add the speech of recordings made here (a minute of a few students, unlabelled)
        to what the room has heard, on disk, and normalise by it; the voice heard so far is untouched. A
        recording that cannot be read is skipped, its message kept; ModelError when none holds speech."""
        from .adaptation import SpeechStats

        if not self.voice_norm:
            raise ModelError(f"Model {self.name} classifies each clip as it is: it does not use what the room "
                             "sounds like. Choose a model that adapts to the room.")
        windows, seconds, skipped = self._read_windows(sources, window, hop)
        X, _ = self._speech_features(windows)
        if not len(X):
            raise ModelError(" ".join(["These recordings hold no speech to calibrate the room with.", *skipped]))
        pooled = self._model_input(X, normalize=False)
        # Overlapping windows count as the share of a clip they bring, as a stream's do (hear()).
        self.heard_room = (self.heard_room or SpeechStats.empty(pooled.shape[1])).add(
            pooled, seconds * len(X) / len(windows), weight=min(1.0, hop / window))
        self.share_with_room()
        return Calibration(len(X), len(sources) - len(skipped), skipped, adapted=False)

    def forget_room(self) -> None:
        """Start this room over (another classroom, another microphone): its statistics on disk, and what this
        predictor heard of it, are forgotten; the voice heard so far stays."""
        from .adaptation import forget_room

        if self.voice_norm:
            forget_room(self.pipeline)
            self.room = self.heard_room = None

    def hear(self, x: np.ndarray, seconds: float, weight: float = 1.0) -> None:
        """Add one clip's features (as the pipeline gives them) to this voice's statistics (and to `heard_room`,
        what the room has heard since it was loaded). `weight` counts overlapping windows as a share of a clip."""
        from .adaptation import SpeechStats

        pooled = self._model_input(np.asarray(x)[None], normalize=False)
        self.voice = (self.voice or SpeechStats.empty(pooled.shape[1])).add(pooled, seconds, weight)
        self.heard_room = (self.heard_room or SpeechStats.empty(pooled.shape[1])).add(pooled, seconds, weight)

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

    def _check_calibratable(self) -> None:
        if not self.bundle.metadata.get("speaker_norm") and not self.voice_norm:
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
        (classifiers.adapt_ridge), starting again from the saved model each time. A voice_norm model takes them as
        the voice it has heard, in place of what it heard before. Returns clips used."""
        from .features import speaker_stats

        self._check_calibratable()
        X, seconds = self._speech_features(clips)
        if len(X) < 2:
            raise ModelError("Calibration needs at least two windows of the speaker's speech (a few seconds); "
                             f"it got {len(X)}.")
        if self.voice_norm:
            from .adaptation import SpeechStats

            self.voice = SpeechStats.of(self._model_input(X, normalize=False), seconds)
            return len(X)
        stats = speaker_stats(self._model_input(X, normalize=False), ["speaker"] * len(X), self._input_kind,
                              self.typical_speaker_std)
        self.speaker_stats = stats["speaker"]
        self.bundle = self.trained
        if self.trained.adaptation is not None:
            from .classifiers import adapt_ridge

            adapted = adapt_ridge(self.trained.model, self.trained.adaptation, self._model_input(X))
            self.bundle = replace(self.trained, model=adapted)
        return len(X)

    def calibrate_files(self, sources: Sequence, *, window: float = config.WINDOW,
                        hop: float = config.HOP) -> Calibration:
        """calibrate() on recordings of the speaker (paths, bytes or uploads), cut into windows as a long clip is
        classified. A recording that cannot be read (not audio, damaged, too short) is skipped, and its message
        kept, so that one bad file among several loses nothing; ModelError, with those messages, when too little
        speech is left."""
        self._check_calibratable()  # before decoding any recording
        windows, _, skipped = self._read_windows(sources, window, hop)
        try:
            used = self.calibrate(windows)
        except ModelError as error:
            raise ModelError(" ".join([str(error), *skipped])) from None
        return Calibration(used, len(sources) - len(skipped), skipped, self.adapted)

    def _speech_features(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
        """The pipeline's features of each clip that holds speech (silent ones are skipped), peak-normalised first,
        as training clips were, so the microphone's level does not matter: (n, *pipeline.shape); and the seconds
        of those clips."""
        from .audio import is_silent, peak_normalize
        from .features import extract

        sr = self.pipeline.sample_rate
        voiced = [y for y in clips if not is_silent(y)]
        X = np.array([extract(peak_normalize(y), sr, self.pipeline) for y in voiced], dtype=np.float32)
        return X.reshape(-1, *self.pipeline.shape), sum(len(y) for y in voiced) / sr

    def _read_windows(self, sources: Sequence, window: float,
                      hop: float) -> tuple[list[np.ndarray], float, list[str]]:
        """The windows of recordings at the pipeline's rate, the seconds they cover, and why each recording that
        could not be read was skipped (so one bad file among several loses nothing)."""
        from .audio import iter_windows

        sr = self.pipeline.sample_rate
        windows, seconds, skipped = [], 0.0, []
        for source in sources:
            try:
                read = list(iter_windows(source, window, hop, sr))
            except AudioError as error:
                skipped.append(str(error))
                continue
            windows += [y for _, y in read]
            seconds += read[-1][0] + len(read[-1][1]) / sr if read else 0.0
        return windows, seconds, skipped

    def predict_samples(self, y: np.ndarray, *, hear: float = 0.0) -> Prediction:
        """Classify mono samples already at the pipeline's sample rate. With `hear` (the seconds of new speech
        they bring: a stream's hop), a voice_norm model then adds them to the voice it has heard."""
        from .features import extract

        x = extract(y, self.pipeline.sample_rate, self.pipeline)
        probabilities = self.bundle.predict_proba(self._model_input(x[None]))[0]
        if hear and self.voice_norm:
            self.hear(x, hear, weight=min(1.0, hear * self.pipeline.sample_rate / len(y)))
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
                        name: str | None = None, hear: bool = False) -> Timeline:
        """Classify a clip of any length window by window (decoded as it goes, so length is not limited); with
        `hear`, a voice_norm model hears each voiced window after classifying it, as a stream's."""
        from .audio import iter_windows

        windows = iter_windows(source, window, hop, self.pipeline.sample_rate, name=name)
        return self.timeline(windows, hear=hop if hear else 0.0)

    def timeline(self, windows: Iterable[tuple[float, np.ndarray]], *, hear: float = 0.0) -> Timeline:
        """Classify (start seconds, samples) windows, such as iter_windows or a live stream gives.

        Each voiced window is peak-normalised, as load_audio normalises a whole clip. With `hear` (the hop), a
        voice_norm model adds each voiced window to the voice it has heard after classifying it.
        """
        from .audio import is_silent, peak_normalize

        sr = self.pipeline.sample_rate
        results = []
        for start, y in windows:
            end = start + len(y) / sr
            if is_silent(y):
                results.append(WindowPrediction(start, end, SILENCE, {}))
            else:
                prediction = self.predict_samples(peak_normalize(y), hear=hear)
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
        if normalize and self.prior is not None:
            mean, std = self.prior.normalizer(self.room, self.voice)
            X = (X - mean) / std
        return X


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _prior(bundle: Bundle, pipeline) -> Prior | None:
    """A voice_norm bundle's training population statistics (None for other models), checked against what its
    pipeline gives, so that a mismatched metadata.json is refused at load instead of failing on a clip."""
    from .adaptation import Prior
    from .features import pool

    if not bundle.metadata.get("voice_norm"):
        return None
    stats = bundle.metadata.get("normalisation") or {}
    dims = pool(np.zeros((1, *pipeline.shape), np.float32), pipeline.kind).shape[1]
    mean, std = (np.asarray(stats.get(key) or [], dtype=np.float32) for key in ("prior_mean", "prior_std"))
    if mean.shape != (dims,) or std.shape != (dims,) or not (std > 0).all():
        raise ModelError(f"Model {bundle.name} normalises by what it hears, but its metadata.json does not hold "
                         f"the training speakers' statistics for its {dims} features (normalisation.prior_mean, "
                         "prior_std): retrain it.")
    return Prior(mean, std)

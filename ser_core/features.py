"""Feature pipelines: named, versioned recipes from a clip's samples to features, and cached batch extraction.

A pipeline's configuration (name, version, kind, sample rate and every parameter) is JSON and is saved
with each model trained on it, so a model is only ever fed the features it learned from. Outputs:
"clip" pipelines give one vector per clip, "sequence" pipelines (frames, dims), "image" pipelines
(mels, frames); sequences and images have a fixed number of frames so a catalog stacks into one array.

The spectral pipelines compute ONE short-time Fourier transform per clip and derive everything from it
(mel, log-mel, MFCC, chroma, and the frame energies that trim leading and trailing silence), with filter
banks built once per process. That is what makes a cold pass over 4240 clips take seconds. The numbers
are librosa's (tests compare them), but only librosa.filters.mel is called: the rest of librosa compiles
numba code on import, ~15 s per process in a fresh environment.

extract_features runs a whole catalog on all cores in chunks of clips and caches one entry per clip
(see _cache_file for the key, write_cache_entry for the layout), so a second pass over unchanged clips only
reads files.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import queue
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import config
from .errors import AudioError, CorruptAudioError, ModelError, OptionError

if TYPE_CHECKING:
    import pandas as pd

    from .audio import AudioSource

Source = Union[str, os.PathLike, bytes]

# name -> (version, kind, default parameters). Bump a version whenever its code changes the numbers:
# cached features and saved models of the old version are then recomputed or refused.
_RECIPES: dict[str, tuple[int, str, dict[str, Any]]] = {
    # Mean over time of 40 MFCC + 12 chroma + 128 mel powers, as in the popular RAVDESS notebooks (librosa's
    # default 2048/512 frames; 128 ms / 32 ms at 16 kHz), after trimming the ~1 s of near-silence RAVDESS
    # has at both ends (TESS is cut tight). Chroma with tuning 0: estimating it would cost as much as the rest.
    "librosa180": (1, "clip", {"n_fft": 2048, "hop_length": 512, "n_mfcc": 40, "n_chroma": 12,
                               "n_mels": 128, "trim_db": config.TRIM_TOP_DB}),
    # ZCR, RMS and 20 MFCC per 25 ms frame every 10 ms, trimmed, then centre-cropped or centre-padded with
    # digital silence to `duration` seconds: for 1D-CNN and LSTM models.
    "zcr_rms_mfcc": (1, "sequence", {"n_fft": 400, "hop_length": 160, "n_mels": 64, "n_mfcc": 20,
                                     "top_db": 80.0, "duration": 3.0, "trim_db": config.TRIM_TOP_DB}),
    # Log-mel power (dB, floor top_db below the clip's loudest bin), 25 ms / 10 ms, trimmed, centre-cropped
    # or padded with the floor to `duration` seconds: for 2D-CNN models.
    "logmel": (1, "image", {"n_fft": 400, "hop_length": 160, "n_mels": 64, "top_db": 80.0,
                            "duration": 3.0, "trim_db": config.TRIM_TOP_DB}),
    # openSMILE's eGeMAPS v02 functionals (88) of the trimmed clip; trimming uses 25 ms / 10 ms frames.
    "egemaps": (1, "clip", {"feature_set": "eGeMAPSv02", "feature_level": "Functionals",
                            "trim_frame_length": 400, "trim_hop_length": 160,
                            "trim_db": config.TRIM_TOP_DB}),
    # eGeMAPS, then the mean and std over the trimmed clip's frames of zcr_rms_mfcc's ZCR, RMS and 20 MFCC:
    # on RAVDESS by actor, 50.8% (62.4% speaker-normalised) with the SVM where eGeMAPS alone gives 48.5% (57.6%).
    "egemaps_mfcc": (1, "clip", {"feature_set": "eGeMAPSv02", "feature_level": "Functionals",
                                 "trim_frame_length": 400, "trim_hop_length": 160, "trim_db": config.TRIM_TOP_DB,
                                 "n_fft": 400, "hop_length": 160, "n_mels": 64, "n_mfcc": 20, "top_db": 80.0}),
    # openSMILE's ComParE 2016 functionals (6373) of the trimmed clip, trimmed as egemaps: with per-speaker
    # normalisation and the logreg classifier, 70.8% on RAVDESS by actor; about 80 ms a clip on one core.
    "compare": (1, "clip", {"feature_set": "ComParE_2016", "feature_level": "Functionals",
                            "trim_frame_length": 400, "trim_hop_length": 160, "trim_db": config.TRIM_TOP_DB}),
    # Functionals (mean, std, 10th/50th/90th percentile) of 46 per-frame descriptors of the trimmed clip,
    # 25 ms / 10 ms frames: 20 MFCC and their deltas, RMS, ZCR, spectral centroid, roll-off, flatness and flux;
    # then of the pitch (YIN, in semitones, voiced frames only) and its change, the voiced share and the speech
    # length. All numpy, a few ms for 3 s where eGeMAPS takes tens; on the speaker protocol with the SVM it
    # scores above eGeMAPS (see the README).
    "mfcc_prosody": (1, "clip", {"n_fft": 400, "hop_length": 160, "n_mels": 64, "n_mfcc": 20, "top_db": 80.0,
                                 "trim_db": config.TRIM_TOP_DB, "fmin": config.PITCH_FMIN, "fmax": config.PITCH_FMAX,
                                 "pitch_frame_length": 640, "pitch_step": 2, "yin_threshold": config.YIN_THRESHOLD,
                                 "voicing_threshold": config.VOICING_THRESHOLD}),
    # The speaker encoder of Resemblyzer (models/ge2e-encoder: a 3-layer LSTM trained to tell thousands of voices
    # apart) run over the trimmed clip's 40 mel powers (25 ms / 10 ms at 16 kHz, what it was trained on) brought
    # to `dbfs`: its embedding, each layer's last hidden and cell state, and the mean and std over frames of the
    # top layer's outputs (2304).
    # How a voice differs from its usual self says much about emotion: with per-speaker normalisation and logreg,
    # 73.8% on RAVDESS by actor alone, 78.4% with ComParE (compare_ge2e), where ComParE alone gives 70.8%.
    # About 30 ms for a 3 s window on one core.
    "ge2e": (1, "clip", {"trim_db": config.TRIM_TOP_DB, "dbfs": -30.0}),
    # ComParE's 6373 functionals, then ge2e's 2304 values.
    "compare_ge2e": (1, "clip", {"feature_set": "ComParE_2016", "feature_level": "Functionals",
                                 "trim_frame_length": 400, "trim_hop_length": 160, "trim_db": config.TRIM_TOP_DB,
                                 "dbfs": -30.0}),
}
PIPELINES: tuple[str, ...] = tuple(_RECIPES)
SMILE_SIZES = {"eGeMAPSv02": 88, "ComParE_2016": 6373}  # openSMILE functionals per feature set
_FIXED = {"feature_set", "feature_level"}  # recorded in the configuration, not options (they fix the shape)

FUNCTIONALS = ("mean", "std", "p10", "p50", "p90")  # what mfcc_prosody takes of each descriptor
PERCENTILES = (10, 50, 90)
ROLLOFF_SHARE = 0.85   # the spectral roll-off is the frequency below which this share of the magnitude lies
PITCH_REFERENCE_HZ = 27.5  # pitch in semitones above this (A0), as eGeMAPS counts it
# The speaker encoder's input, fixed by its training: 40 mel powers of 25 ms frames every 10 ms at 16 kHz.
ENCODER_RATE, ENCODER_N_FFT, ENCODER_HOP, ENCODER_N_MELS = 16_000, 400, 160, 40
ENCODER_LAYERS, ENCODER_SIZE = 3, 256  # LSTM layers, and units in each (values in each part below)
ENCODER_PARTS = ("embedding", "hidden_1", "hidden_2", "hidden_3", "cell_1", "cell_2", "cell_3", "mean", "std")
CHUNK_SIZE = 32        # clips per worker task: enough to hide joblib's per-task cost, small enough for progress
STD_FLOOR = 1e-8       # smallest std speaker normalisation divides by (a constant feature stays 0)
PRIOR_CLIPS = 10       # a speaker's std is shrunk towards the typical one as if from this many more clips
CACHE_SUBDIR = "features"
CACHE_FORMAT = 2       # layout of a cache entry: part of every entry's key, so bump it when the layout changes
_CHECKSUM_SIZE = 32    # bytes of the SHA-256 that starts every cache entry
# Libraries whose versions can change the numbers; part of every cache key.
_KEY_PACKAGES = ("numpy", "scipy", "librosa", "soundfile", "soxr", "opensmile", "audiomentations")


@dataclass(frozen=True)
class Pipeline:
    """A feature recipe: everything that decides the numbers, saved with every model trained on it."""

    name: str
    version: int
    kind: str
    sample_rate: int
    params: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-serialisable configuration (what model bundles store and compare)."""
        return {"name": self.name, "version": self.version, "kind": self.kind,
                "sample_rate": self.sample_rate, **self.params}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pipeline:
        """The pipeline a to_dict() describes (as saved; compare with get_pipeline to check it is current)."""
        fields = {"name", "version", "kind", "sample_rate"}
        return cls(name=data["name"], version=data["version"], kind=data["kind"],
                   sample_rate=data["sample_rate"],
                   params={k: v for k, v in data.items() if k not in fields})

    @property
    def n_frames(self) -> int | None:
        """Frames of a fixed-length output (sequence, image): those a centred STFT gives for `duration` s."""
        if self.kind == "clip":
            return None
        return 1 + int(round(self.params["duration"] * self.sample_rate)) // self.params["hop_length"]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one clip's features."""
        p = self.params
        if self.name == "librosa180":
            return (p["n_mfcc"] + p["n_chroma"] + p["n_mels"],)
        if self.name == "zcr_rms_mfcc":
            return (self.n_frames, 2 + p["n_mfcc"])
        if self.name == "logmel":
            return (p["n_mels"], self.n_frames)
        if self.name == "egemaps_mfcc":
            return (SMILE_SIZES[p["feature_set"]] + 2 * (2 + p["n_mfcc"]),)
        if self.name == "mfcc_prosody":
            return (len(feature_names(self)),)
        if self.name == "ge2e":
            return (len(ENCODER_PARTS) * ENCODER_SIZE,)
        if self.name == "compare_ge2e":
            return (SMILE_SIZES[p["feature_set"]] + len(ENCODER_PARTS) * ENCODER_SIZE,)
        return (SMILE_SIZES[p["feature_set"]],)

    @property
    def digest(self) -> str:
        """Hash of the configuration and the library versions: names this pipeline's cache folder."""
        text = json.dumps({"pipeline": self.to_dict(), "versions": _versions()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def get_pipeline(name: str, **overrides: Any) -> Pipeline:
    """A pipeline by name, with parameters (or sample_rate) changed by `overrides`.

    Raises OptionError (a ValueError) for an unknown name or parameter.
    """
    if name not in _RECIPES:
        raise OptionError(f"unknown feature pipeline {name!r}; choose one of: {', '.join(PIPELINES)}")
    version, kind, params = _RECIPES[name]
    options = set(params) - _FIXED
    unknown = sorted(set(overrides) - options - {"sample_rate"})
    if unknown:
        raise OptionError(f"pipeline {name!r} has no parameter {', '.join(unknown)} to change; "
                          f"its parameters are: sample_rate, {', '.join(sorted(options))}")
    sample_rate = overrides.pop("sample_rate", config.SAMPLE_RATE)
    if name in ("ge2e", "compare_ge2e") and sample_rate != ENCODER_RATE:
        raise OptionError(f"pipeline {name!r} works at {ENCODER_RATE} Hz only, the rate its speaker encoder "
                          "was trained at")
    return Pipeline(name, version, kind, int(sample_rate), {**params, **overrides})


def feature_names(pipeline: str | Pipeline) -> list[str]:
    """Names along the feature axis: every value for clip pipelines, one per row/column of a frame otherwise."""
    pipeline = _as_pipeline(pipeline)
    p = pipeline.params
    if pipeline.name == "librosa180":
        return ([f"mfcc_{i}" for i in range(p["n_mfcc"])] + [f"chroma_{i}" for i in range(p["n_chroma"])]
                + [f"mel_{i}" for i in range(p["n_mels"])])
    if pipeline.name == "logmel":
        return [f"mel_{i}" for i in range(p["n_mels"])]
    if pipeline.name == "zcr_rms_mfcc":
        return ["zcr", "rms"] + [f"mfcc_{i}" for i in range(p["n_mfcc"])]
    if pipeline.name == "mfcc_prosody":
        return ([f"{name}_{stat}" for name in [*_frame_descriptors(p), "pitch", "pitch_change"]
                 for stat in FUNCTIONALS] + ["voiced_share", "speech_seconds"])
    encoder_names = [f"ge2e_{part}_{i}" for part in ENCODER_PARTS for i in range(ENCODER_SIZE)]
    if pipeline.name == "ge2e":
        return encoder_names
    names = list(_smile(p["feature_set"], p["feature_level"]).feature_names)
    if pipeline.name == "compare_ge2e":
        return names + encoder_names
    if pipeline.name == "egemaps_mfcc":  # then the frame statistics, named after zcr_rms_mfcc's columns
        frame_names = feature_names(get_pipeline("zcr_rms_mfcc", n_mfcc=p["n_mfcc"]))
        names += [f"{name}_mean" for name in frame_names] + [f"{name}_std" for name in frame_names]
    return names


# --- one clip -------------------------------------------------------------------------------------------

def extract(y: np.ndarray, sr: int, pipeline: str | Pipeline = "librosa180") -> np.ndarray:
    """Features of one clip's mono samples, already at the pipeline's rate (load_audio(..., sr=...)).

    Returns float32 of shape pipeline.shape, all finite: a model given NaN crashes or, worse, answers. Raises
    CorruptAudioError for samples that are NaN or infinite (openSMILE would read them as full scale) and
    AudioError when the features come out so.
    """
    pipeline = _as_pipeline(pipeline)
    if sr != pipeline.sample_rate:
        raise ValueError(f"pipeline {pipeline.name!r} works at {pipeline.sample_rate} Hz, got samples at "
                         f"{sr} Hz: load them with load_audio(..., sr={pipeline.sample_rate})")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"extract expects mono 1-D samples, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise CorruptAudioError("These samples are damaged: they hold values that are not numbers (NaN or "
                                "infinity), which no model can use. Export or record the audio again.")
    x = _features(y, sr, pipeline)
    if not np.isfinite(x).all():
        raise AudioError(f"The {pipeline.name} features of this clip are not all numbers (NaN or infinity), so "
                         "no model can use them. Choose another recording.")
    return x


def _features(y: np.ndarray, sr: int, pipeline: Pipeline) -> np.ndarray:
    """extract's features, by pipeline."""
    p = pipeline.params
    if pipeline.name in ("egemaps", "compare"):
        return _smile_functionals(y, sr, p)
    if pipeline.name == "ge2e":
        return _speaker_encoder(y, p)
    if pipeline.name == "compare_ge2e":
        return np.concatenate([_smile_functionals(y, sr, p), _speaker_encoder(y, p)])
    frames = _frames(y, p["n_fft"], p["hop_length"])
    power = _power(frames)
    keep = _loud_span(power.sum(axis=1), p["trim_db"])  # silence trimming from the same STFT
    if pipeline.name == "librosa180":
        return _librosa180(power[keep], sr, p)
    if pipeline.name == "zcr_rms_mfcc":
        return _zcr_rms_mfcc(frames[keep], power[keep], sr, pipeline.n_frames, p)
    if pipeline.name == "mfcc_prosody":
        return _mfcc_prosody(y, frames[keep], power[keep], sr, keep, p)
    if pipeline.name == "egemaps_mfcc":  # the frames as they are, neither cropped nor padded
        frame_features = _zcr_rms_mfcc(frames[keep], power[keep], sr, len(power[keep]), p)
        return np.concatenate([_smile_functionals(y, sr, p), frame_features.mean(axis=0), frame_features.std(axis=0)])
    return _logmel(power[keep], sr, pipeline.n_frames, p)


def extract_file(source: AudioSource, pipeline: str | Pipeline = "librosa180", *,
                 name: str | None = None) -> np.ndarray:
    """Load a path, bytes or upload with load_audio at the pipeline's rate and extract its features (no cache).

    Raises load_audio's typed AudioError subclasses for input that cannot be used.
    """
    from .audio import load_audio

    pipeline = _as_pipeline(pipeline)
    return extract(load_audio(source, sr=pipeline.sample_rate, name=name), pipeline.sample_rate, pipeline)


def _as_pipeline(pipeline: str | Pipeline) -> Pipeline:
    return pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)


def _frames(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """(frames, n_fft) view of centred frames, zero-padded by n_fft // 2 at both ends like librosa.stft."""
    padded = np.pad(y, n_fft // 2)
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]


def _power(frames: np.ndarray) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window, (frames, 1 + n_fft // 2) float32: librosa.stft's numbers."""
    import scipy.fft

    spectrum = scipy.fft.rfft(frames * _window(frames.shape[1]), axis=1)
    return np.square(spectrum.real) + np.square(spectrum.imag)


def _loud_span(energy: np.ndarray, trim_db: float | None) -> slice:
    """Frames from the first to the last within trim_db of the loudest (all when None or silent)."""
    if trim_db is None:
        return slice(None)
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (-trim_db / 10))
    return slice(loud[0], loud[-1] + 1) if loud.size else slice(None)


def _span_samples(y: np.ndarray, span: slice, hop_length: int) -> np.ndarray:
    """The samples of a _loud_span of frames, as librosa.effects.trim maps frames to samples."""
    if span.start is None:
        return y
    return y[span.start * hop_length:min(len(y), span.stop * hop_length)]


def _fit_frames(a: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or centre-pad with zeros (silence) along axis 0 to n frames."""
    if len(a) >= n:
        start = (len(a) - n) // 2
        return a[start:start + n]
    before = (n - len(a)) // 2
    return np.pad(a, [(before, n - len(a) - before)] + [(0, 0)] * (a.ndim - 1))


def _log_mel(power: np.ndarray, sr: int, p: Mapping[str, Any]) -> np.ndarray:
    """(frames, n_mels) mel power in dB, floored top_db below the loudest bin."""
    return _power_to_db(power @ _mel_basis(sr, p["n_fft"], p["n_mels"]).T, p["top_db"])


def _power_to_db(power: np.ndarray, top_db: float | None) -> np.ndarray:
    """librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db)."""
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    return db if top_db is None else np.maximum(db, db.max() - top_db)


def _dct(log_mel: np.ndarray) -> np.ndarray:
    """MFCC of (frames, n_mels) log-mel, all coefficients: DCT-II, orthonormal, as librosa.feature.mfcc."""
    import scipy.fft

    return scipy.fft.dct(log_mel, axis=1, type=2, norm="ortho")


def _librosa180(power: np.ndarray, sr: int, p: Mapping[str, Any]) -> np.ndarray:
    """Means over frames of MFCC, chroma and mel power (power, not dB: what the notebooks average)."""
    mel = power @ _mel_basis(sr, p["n_fft"], p["n_mels"]).T
    mfcc = _dct(_power_to_db(mel, top_db=80.0))[:, :p["n_mfcc"]]
    chroma = power @ _chroma_basis(sr, p["n_fft"], p["n_chroma"]).T
    peak = chroma.max(axis=1, keepdims=True)  # each frame scaled to a maximum of 1, as chroma_stft does
    chroma /= np.where(peak > np.finfo(np.float32).tiny, peak, 1.0)
    return np.concatenate([mfcc.mean(axis=0), chroma.mean(axis=0), mel.mean(axis=0)]).astype(np.float32)


def _zcr_rms_mfcc(frames: np.ndarray, power: np.ndarray, sr: int, n_frames: int,
                  p: Mapping[str, Any]) -> np.ndarray:
    """(n_frames, 2 + n_mfcc); padding is digital silence: ZCR and RMS 0, MFCC of the log floor."""
    mfcc = _dct(_log_mel(_fit_frames(power, n_frames), sr, p))[:, :p["n_mfcc"]]
    return np.column_stack([_fit_frames(_zcr(frames), n_frames), _fit_frames(_rms(frames), n_frames),
                            mfcc]).astype(np.float32)


def _zcr(frames: np.ndarray) -> np.ndarray:
    """Share of sign changes between neighbouring samples, per frame."""
    return np.mean(np.signbit(frames[:, 1:]) != np.signbit(frames[:, :-1]), axis=1, dtype=np.float32)


def _rms(frames: np.ndarray) -> np.ndarray:
    """Root mean square of each frame's samples."""
    return np.sqrt(np.mean(np.square(frames), axis=1))


def _logmel(power: np.ndarray, sr: int, n_frames: int, p: Mapping[str, Any]) -> np.ndarray:
    """(n_mels, n_frames), the spectrogram orientation of image models; padding is the log floor."""
    return np.ascontiguousarray(_log_mel(_fit_frames(power, n_frames), sr, p).T)


def _frame_descriptors(p: Mapping[str, Any]) -> list[str]:
    """mfcc_prosody's per-frame descriptors, in the order of its features."""
    return ([f"mfcc_{i}" for i in range(p["n_mfcc"])] + [f"mfcc_delta_{i}" for i in range(p["n_mfcc"])]
            + ["rms", "zcr", "spectral_centroid", "spectral_rolloff", "spectral_flatness", "spectral_flux"])


def _mfcc_prosody(y: np.ndarray, frames: np.ndarray, power: np.ndarray, sr: int, keep: slice,
                  p: Mapping[str, Any]) -> np.ndarray:
    """Functionals of spectral, energy and pitch descriptors of the trimmed frames, all from numpy."""
    log_mel = _log_mel(power, sr, p)
    mfcc = _dct(log_mel)[:, :p["n_mfcc"]]
    frequencies = np.linspace(0, sr / 2, power.shape[1])
    magnitude = np.sqrt(power)
    total = np.maximum(magnitude.sum(axis=1), 1e-10)
    rolloff = frequencies[np.argmax(np.cumsum(magnitude, axis=1) >= ROLLOFF_SHARE * total[:, None], axis=1)]
    flatness = np.exp(np.mean(np.log(np.maximum(power, 1e-10)), axis=1)) / np.maximum(power.mean(axis=1), 1e-10)
    flux = np.sqrt(np.mean(np.square(np.diff(log_mel, axis=0, prepend=log_mel[:1])), axis=1))
    descriptors = np.column_stack([mfcc, _delta(mfcc), _rms(frames), _zcr(frames),
                                   magnitude @ frequencies / total, rolloff, flatness, flux])

    # pitch every pitch_step-th frame of the trimmed clip, from frames two periods of fmin long
    pitch_frames = _frames(y, p["pitch_frame_length"], p["hop_length"])[keep][::p["pitch_step"]]
    f0, aperiodicity = _yin(pitch_frames.astype(np.float64), sr, p["fmin"], p["fmax"], p["yin_threshold"])
    voiced = aperiodicity < p["voicing_threshold"]
    pitch = 12 * np.log2(f0[voiced] / PITCH_REFERENCE_HZ)
    statistics = [_functionals(a).reshape(-1) for a in (descriptors, pitch[:, None], np.diff(pitch)[:, None])]
    return np.concatenate([*statistics, [voiced.mean(), len(descriptors) * p["hop_length"] / sr]]).astype(np.float32)


def _functionals(a: np.ndarray) -> np.ndarray:
    """(descriptors, FUNCTIONALS) of (frames, descriptors); zeros when there is no frame (no voiced one)."""
    if not len(a):
        return np.zeros((a.shape[1], len(FUNCTIONALS)))
    return np.column_stack([a.mean(axis=0), a.std(axis=0), *np.percentile(a, PERCENTILES, axis=0)])


def _delta(a: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression slope over +-width frames along axis 0 (edges repeated): the usual MFCC deltas."""
    padded = np.pad(a, [(width, width), (0, 0)], mode="edge")
    n = len(a)
    slope = sum(k * (padded[width + k:width + k + n] - padded[width - k:width - k + n]) for k in range(1, width + 1))
    return slope / (2 * sum(k * k for k in range(1, width + 1)))


def _yin(frames: np.ndarray, sr: int, fmin: float, fmax: float,
         threshold: float = config.YIN_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """YIN (de Cheveigné & Kawahara 2002) on (frames, N): f0 (Hz) and aperiodicity (the dip's depth) per frame.

    The difference function comes from one FFT cross-correlation per frame; the period is the first local
    minimum of the cumulative-mean-normalised difference below `threshold` (the global minimum when none
    is), refined by parabolic interpolation.
    """
    from scipy.fft import irfft, next_fast_len, rfft

    n_frame = frames.shape[1]
    tau_min = max(2, int(np.floor(sr / fmax)))
    tau_max = min(int(np.ceil(sr / fmin)), n_frame // 2)
    w = n_frame - tau_max - 1  # the window compared with its shifts up to tau_max + 1
    size = next_fast_len(n_frame + w)
    acf = irfft(rfft(frames, size, axis=1) * np.conj(rfft(frames[:, :w], size, axis=1)), size,
                axis=1)[:, :tau_max + 2]
    taus = np.arange(tau_max + 2)
    cumulative = np.cumsum(np.pad(frames ** 2, ((0, 0), (1, 0))), axis=1)
    difference = cumulative[:, [w]] + cumulative[:, taus + w] - cumulative[:, taus] - 2 * acf
    difference[:, 0] = 0.0
    running = np.cumsum(difference[:, 1:], axis=1) / taus[1:]
    cmnd = np.ones_like(difference)
    cmnd[:, 1:] = np.where(running > 1e-12, difference[:, 1:] / np.maximum(running, 1e-12), 1.0)  # zeros: aperiodic

    search = cmnd[:, tau_min - 1:tau_max + 2]  # a neighbour on each side of [tau_min, tau_max]
    inner = search[:, 1:-1]
    minimum = (inner <= search[:, :-2]) & (inner < search[:, 2:])
    below = minimum & (inner < threshold)
    index = np.where(below.any(axis=1), np.argmax(below, axis=1), np.argmin(inner, axis=1))
    rows = np.arange(len(frames))
    left, centre, right = search[rows, index], search[rows, index + 1], search[rows, index + 2]
    curvature = left - 2 * centre + right
    shift = np.where(curvature > 0, 0.5 * (left - right) / np.where(curvature > 0, curvature, 1), 0.0)
    period = tau_min + index + np.clip(shift, -1, 1)
    return sr / period, np.clip(centre, 0.0, None)


def _smile_functionals(y: np.ndarray, sr: int, p: Mapping[str, Any]) -> np.ndarray:
    """openSMILE needs samples, not an STFT: trim the samples by frame energy, then extract."""
    frames = _frames(y, p["trim_frame_length"], p["trim_hop_length"])
    span = _loud_span(np.einsum("ij,ij->i", frames, frames), p["trim_db"])
    trimmed = _span_samples(y, span, p["trim_hop_length"])
    # openSMILE gives NaN for a segment too short (a click in silence): then keep the whole clip.
    y = trimmed if len(trimmed) >= config.MIN_DURATION * sr else y
    idle = _idle_extractors.setdefault((p["feature_set"], p["feature_level"], sr), queue.SimpleQueue())
    try:
        extractor = idle.get_nowait()
    except queue.Empty:  # none free: a first clip, or another thread is using each one
        extractor = _SmileExtractor(p["feature_set"], p["feature_level"], sr)
    features = extractor(y)  # an extractor that failed is not reused
    idle.put(extractor)
    return features


def _speaker_encoder(y: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """The ge2e values of a clip: its trimmed mel powers at p["dbfs"] through the encoder (float32, 2304)."""
    frames = _frames(y, ENCODER_N_FFT, ENCODER_HOP)
    power = _power(frames)
    keep = _loud_span(power.sum(axis=1), p["trim_db"])
    speech = _span_samples(y, keep, ENCODER_HOP)
    loudness = float(np.mean(np.square(speech, dtype=np.float64))) if len(speech) else 0.0
    gain = 10.0 ** (p["dbfs"] / 10) / max(loudness, 1e-10)  # power gain: the samples' mean square to dbfs
    mel = power[keep] @ _mel_basis(ENCODER_RATE, ENCODER_N_FFT, ENCODER_N_MELS).T * np.float32(gain)
    return encode_speaker(mel)


def encode_speaker(mel: np.ndarray) -> np.ndarray:
    """Run the speaker encoder (models/ge2e-encoder) over (frames, 40) mel powers; float32 (2304,).

    Its L2-normalised embedding (ReLU of a linear map of the top layer's last hidden state), each layer's last
    hidden and cell state, and the mean and std over frames of the top layer's outputs, in ENCODER_PARTS order.
    """
    weights = _encoder_weights()
    n = ENCODER_SIZE
    x = np.asarray(mel, dtype=np.float32)
    hidden, cell = [], []
    for layer in range(ENCODER_LAYERS):
        inputs = x @ weights[f"weight_ih_{layer}"].T + weights[f"bias_{layer}"]  # (frames, 4 n), all at once
        recurrent = np.ascontiguousarray(weights[f"weight_hh_{layer}"].T)
        h = np.zeros(n, np.float32)
        c = np.zeros(n, np.float32)
        x = np.empty((len(inputs), n), np.float32)
        for t, gates in enumerate(inputs):  # torch's gate order: input, forget, cell, output
            a = gates + h @ recurrent
            s = 0.5 + 0.5 * np.tanh(0.5 * a)  # the logistic sigmoid of all four at once, without overflow
            c = s[n:2 * n] * c + s[:n] * np.tanh(a[2 * n:3 * n])
            h = x[t] = s[3 * n:] * np.tanh(c)
        hidden.append(h)
        cell.append(c)
    embedding = np.maximum(weights["linear_weight"] @ h + weights["linear_bias"], 0)
    embedding /= max(float(np.linalg.norm(embedding)), 1e-12)
    return np.concatenate([embedding, *hidden, *cell, x.mean(axis=0), x.std(axis=0)]).astype(np.float32)


@functools.cache
def _encoder_weights() -> dict[str, np.ndarray]:
    """The speaker encoder's arrays, read once per process (plain .npz: no pickle is ever loaded)."""
    try:
        with np.load(config.GE2E_WEIGHTS, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise ModelError(f"the speaker encoder of the ge2e features cannot be read from {config.GE2E_WEIGHTS} "
                         f"({error}); restore models/ge2e-encoder from the project") from error


@functools.cache
def _window(n_fft: int) -> np.ndarray:
    """Periodic Hann, as scipy.signal.get_window("hann", n_fft) gives librosa.stft."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@functools.cache
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


@functools.cache
def _chroma_basis(sr: int, n_fft: int, n_chroma: int) -> np.ndarray:
    """librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=0.0), its defaults, ported.

    Ported rather than called: it imports librosa.util, whose numba ufuncs compile at import.
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    bins = n_chroma * np.log2(frequencies / (440.0 / 16))
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))  # 0 Hz: 1.5 octaves below the first bin
    widths = np.concatenate((np.maximum(np.diff(bins), 1.0), [1.0]))
    half = np.round(n_chroma / 2)
    distance = np.remainder(np.subtract.outer(bins, np.arange(n_chroma)).T + half + 10 * n_chroma,
                            n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / widths) ** 2)
    weights /= np.linalg.norm(weights, axis=0)
    weights *= np.exp(-0.5 * ((bins / n_chroma - 5.0) / 2.0) ** 2)  # octaves weighted around C5, width 2
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)  # first class C
    return np.ascontiguousarray(weights[:, :1 + n_fft // 2], dtype=np.float32)


@functools.cache
def _smile(feature_set: str, feature_level: str):
    """One openSMILE extractor per process: building it costs about a second."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                           feature_level=opensmile.FeatureLevel[feature_level])


_idle_extractors: dict[tuple[str, str, int], queue.SimpleQueue] = {}


class _SmileExtractor:
    """openSMILE's engine, initialised once and reset after each clip, as its API allows.

    opensmile.Smile initialises (parses its configuration) and frees an engine for every signal: a fifth of
    the time of a 3 s window. This does what Smile.process_signal does with the same configuration and gives
    the same numbers (tests/test_features.py compares them); one thread uses an extractor at a time."""

    def __init__(self, feature_set: str, feature_level: str, sr: int):
        from opensmile.core.config import config as smile_config

        smile = _smile(feature_set, feature_level)
        options = {**smile._options(), "sampleRate": sr, "nBits": 16,
                   "source": os.path.join(smile.default_config_root, smile_config.EXTERNAL_INPUT_CONFIG)}
        self._engine = smile._smile(options)
        self._source, self._sink = smile_config.EXTERNAL_SOURCE_COMPONENT, smile_config.EXTERNAL_OUTPUT_COMPONENT
        self._size = smile.num_features

    def __call__(self, y: np.ndarray) -> np.ndarray:
        rows: list[np.ndarray] = []
        self._engine.external_sink_set_callback_ex(self._sink, lambda data, meta: rows.append(data.copy()))
        del self._engine._callbacks[:-1]  # it keeps every callback alive; the earlier ones were reset away
        self._engine.external_audio_source_write_data(self._source, bytes((y * 32768).astype(np.int16)))
        self._engine.external_audio_source_set_eoi(self._source)
        self._engine.run()
        self._engine.reset()
        return rows[0].reshape(-1).astype(np.float32) if rows else np.full(self._size, np.nan, np.float32)

    def __del__(self):
        if hasattr(self, "_engine"):
            self._engine.free()


# --- a catalog, on all cores, cached ----------------------------------------------------------------------

class FeatureError(AudioError):
    """Some clips of a batch could not be used; `failed` maps each clip to the reason. `why` says what that
    costs, when it is more than the clips themselves (e.g. ", which leaves no clip of sad")."""

    def __init__(self, failed: Mapping[str, str], total: int, why: str = ""):
        self.failed = dict(failed)
        listed = [f"  {clip}: {reason}" for clip, reason in list(self.failed.items())[:10]]
        more = [f"  ... and {len(self.failed) - 10} more"] if len(self.failed) > 10 else []
        super().__init__("\n".join([f"{len(self.failed)} of {total} clips could not be used{why} (the others "
                                    "are cached); fix or remove these and run again:"] + listed + more))


def extract_features(catalog_or_paths: pd.DataFrame | Sequence[Source],
                     pipeline: str | Pipeline = "librosa180", *,
                     augmentation: tuple[str, int] | None = None,
                     cache_dir: str | os.PathLike | None = None, n_jobs: int = -1,
                     on_error: str = "raise",
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Features of every clip, stacked as (n, *pipeline.shape) float32 in the input's order.

    `catalog_or_paths` is a catalog DataFrame (its `path` column) or a sequence of paths or bytes.
    `augmentation=(kind, seed)` gives features of augmented copies: each clip is augmented with its own
    seed, drawn from `seed` and the clip's file name (content hash for bytes), so copies are the same
    on every run and wherever the corpus lives. Cached clips are read in this process; the rest are
    extracted CHUNK_SIZE clips per task on `n_jobs` processes (joblib's convention: -1 is all cores;
    1, or fewer than two chunks to do, stays in this process). `progress(done, total)` is called after
    the cache is read and as each chunk finishes, ending with (total, total).

    A clip that cannot be used (an AudioError) does not stop the run: the others are extracted and
    cached first, then on_error="raise" raises one FeatureError listing every failed clip and why, and
    on_error="nan" returns NaN rows for them instead (drop rows where np.isnan(X) is any).
    extract_features_with_failures gives the reasons with the features.
    """
    if on_error not in ("raise", "nan"):
        raise OptionError(f"on_error must be 'raise' or 'nan', not {on_error!r}")
    X, failed = extract_features_with_failures(catalog_or_paths, pipeline, augmentation=augmentation,
                                               cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)
    if failed and on_error == "raise":
        sources = _sources(catalog_or_paths)
        raise FeatureError({_label(sources[i], i): reason for i, reason in failed.items()}, len(sources))
    return X


def extract_features_with_failures(catalog_or_paths: pd.DataFrame | Sequence[Source],
                                   pipeline: str | Pipeline = "librosa180", *,
                                   augmentation: tuple[str, int] | None = None,
                                   cache_dir: str | os.PathLike | None = None, n_jobs: int = -1,
                                   progress: Callable[[int, int], None] | None = None
                                   ) -> tuple[np.ndarray, dict[int, str]]:
    """extract_features' features (NaN rows for clips that cannot be used) and {row: why} of those clips.

    The cache is best-effort: where it cannot be written, features are computed all the same and one warning
    per cache folder and process says they are not kept.
    """
    pipeline = _as_pipeline(pipeline)
    sources = _sources(catalog_or_paths)
    folder = Path(cache_dir or config.cache_dir()) / CACHE_SUBDIR / f"{pipeline.name}-{pipeline.digest}"
    X = np.empty((len(sources), *pipeline.shape), dtype=np.float32)

    todo = []  # (row, source, cache file, augmentation seed of this clip)
    for i, source in enumerate(sources):
        clip_seed = _clip_seed(source, augmentation[1]) if augmentation else None
        spec = _augment_spec(augmentation[0], clip_seed) if augmentation else None
        file = _cache_file(folder, source, spec)
        cached = _read_cached(file, pipeline.shape)
        if cached is None:
            todo.append((i, source, file, clip_seed))
        else:
            X[i] = cached
    if progress:
        progress(len(sources) - len(todo), len(sources))

    kind = augmentation[0] if augmentation else None
    chunks = [todo[i:i + CHUNK_SIZE] for i in range(0, len(todo), CHUNK_SIZE)]
    failed: dict[int, str] = {}
    unwritable = None
    done = len(sources) - len(todo)
    for results, cache_error in _run_chunks(chunks, pipeline, kind, n_jobs):
        unwritable = unwritable or cache_error
        for i, result in results:
            if isinstance(result, str):
                failed[i] = result
                X[i] = np.nan
            else:
                X[i] = result
        done += len(results)
        if progress:
            progress(done, len(sources))
    if unwritable:
        warn_unwritable(folder, unwritable)
    return X, dict(sorted(failed.items()))


def _sources(catalog_or_paths: pd.DataFrame | Sequence[Source]) -> list[Source]:
    return list(catalog_or_paths["path"]) if hasattr(catalog_or_paths, "columns") else list(catalog_or_paths)


def _run_chunks(chunks: list[list[tuple]], pipeline: Pipeline, kind: str | None, n_jobs: int):
    """Each chunk's results as it finishes: here when one process suffices, else on a loky pool."""
    if not chunks:
        return
    import joblib

    workers = min(joblib.effective_n_jobs(n_jobs), len(chunks))
    if workers == 1:
        for chunk in chunks:
            yield _extract_chunk(chunk, pipeline, kind)
        return
    parallel = joblib.Parallel(n_jobs=workers, return_as="generator_unordered")
    yield from parallel(joblib.delayed(_extract_chunk)(chunk, pipeline, kind) for chunk in chunks)


def _extract_chunk(chunk: list[tuple], pipeline: Pipeline,
                   kind: str | None) -> tuple[list[tuple[int, np.ndarray | str]], str | None]:
    """Load, augment, extract and cache a chunk of clips: (row, features or why the clip cannot be used) for
    each, and why the cache could not be written, if it could not (the chunk then stops trying)."""
    from .audio import load_audio

    sr = pipeline.sample_rate
    results, unwritable = [], None
    for i, source, file, clip_seed in chunk:
        label = _label(source, i)
        try:  # extract refuses what no model can use (samples that are not finite), as load_audio does
            y = load_audio(source, sr=sr, name=label)
            if kind:
                from .augment import augment

                y = augment(y, sr, kind, seed=clip_seed)
            x = extract(y, sr, pipeline)
        except AudioError as error:
            results.append((i, str(error).removeprefix(f"{label}: ")))
            continue
        if unwritable is None:
            unwritable = _write_cached(file, x)
        results.append((i, x))
    return results, unwritable


def _clip_seed(source: Source, seed: int) -> int:
    """A clip's own augmentation seed, from `seed` and its file name (or content): stable across runs and moves."""
    name = hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else Path(source).name
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


def _augment_spec(kind: str, clip_seed: int) -> str:
    from .augment import augment_spec_id

    return augment_spec_id(kind, clip_seed)


def _label(source: Source, i: int) -> str:
    return f"clip {i} (bytes)" if isinstance(source, bytes) else str(source)


def _cache_file(folder: Path, source: Source, augmentation_spec: str | None) -> Path:
    """<cache>/features/<pipeline>-<digest>/<2 hex>/<sha256>.bin, one file per clip.

    The folder's digest covers the pipeline configuration and library versions; the file's hash covers
    the clip (absolute path, size and mtime_ns, or the content's hash for bytes), the augmentation
    actually applied (augment_spec_id) and CACHE_FORMAT, so a rewritten file, a changed parameter or a new
    entry layout gets a new entry (an old one is never misread).
    """
    if isinstance(source, bytes):
        clip = f"sha256:{hashlib.sha256(source).hexdigest()}"
    else:
        path = os.path.abspath(source)
        try:
            stat = os.stat(path)
            clip = f"path:{path}|{stat.st_size}|{stat.st_mtime_ns}"
        except OSError:
            clip = f"path:{path}|missing"  # never written: load_audio reports the missing file
    digest = hashlib.sha256(f"{clip}|{augmentation_spec}|format {CACHE_FORMAT}".encode()).hexdigest()
    return folder / digest[:2] / f"{digest}.bin"


def _read_cached(file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached features, or None if absent, unreadable or altered (a damaged entry is simply recomputed)."""
    payload = read_cache_entry(file)
    if payload is None:
        return None
    try:
        x = np.load(io.BytesIO(payload), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return x if x.shape == shape and x.dtype == np.float32 else None


def _write_cached(file: Path, x: np.ndarray) -> str | None:
    """Cache features as an .npy payload (see write_cache_entry); why not, when the cache cannot be written."""
    buffer = io.BytesIO()
    np.save(buffer, x)
    return write_cache_entry(file, buffer.getvalue())


def read_cache_entry(file: Path) -> bytes | None:
    """A cache entry's payload, or None if absent, unreadable, cut short or altered: every entry starts with
    the SHA-256 of its payload, as a header that still parses says nothing about the values after it."""
    try:
        data = file.read_bytes()
    except OSError:
        return None
    checksum, payload = data[:_CHECKSUM_SIZE], data[_CHECKSUM_SIZE:]
    return payload if hashlib.sha256(payload).digest() == checksum else None


def write_cache_entry(file: Path, payload: bytes) -> str | None:
    """Write a cache entry (checksum, then payload) atomically, so readers never see half a file.

    Best-effort: a cache only saves time, so a folder that cannot be written (read-only, full disk) does not
    stop the work that fills it. Returns why it failed, for the caller's one warning (warn_unwritable).
    """
    from . import files

    entry = hashlib.sha256(payload).digest() + payload
    try:
        files.write_atomically(file, lambda path: Path(path).write_bytes(entry))
    except OSError as error:
        return error.strerror or str(error)
    return None


_warned_unwritable: set[str] = set()


def warn_unwritable(folder: Path, reason: str) -> None:
    """Say once per cache folder and process that results are computed but not kept there."""
    if str(folder) not in _warned_unwritable:
        _warned_unwritable.add(str(folder))
        logging.getLogger(__name__).warning(
            f"warning: the cache {folder} cannot be written ({reason}): results are computed but not kept, "
            f"so the next run computes them again; make it writable or set {config.CACHE_DIR_ENV} to another "
            "folder.")


@functools.cache
def _versions() -> dict[str, str | None]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {package: version(package) for package in _KEY_PACKAGES}


# --- helpers for models ----------------------------------------------------------------------------------

def pool(X: np.ndarray, kind: str = "sequence") -> np.ndarray:
    """Mean and std over time, (n, 2 * dims), so clip-level classifiers can use sequence or image features.

    `kind` is the pipeline's kind: time is axis 1 of "sequence" (n, frames, dims) and axis 2 of "image"
    (n, mels, frames); "clip" features (n, d) are returned as they are.
    """
    X = np.asarray(X, dtype=np.float32)
    if kind == "clip" or X.ndim == 2:
        return X
    axis = _time_axis(kind, X)
    return np.concatenate([X.mean(axis=axis), X.std(axis=axis)], axis=1)


def speaker_stats(X: np.ndarray, speakers: Sequence[str], kind: str = "sequence",
                  prior_std: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each speaker's feature mean and std (floored at STD_FLOOR) over their clips, and frames for 3-D X.

    With `prior_std` (typical_speaker_std of the training speakers), each std is shrunk towards it as if
    PRIOR_CLIPS more clips had that spread: the few clips of a calibration leave some features nearly
    constant, and dividing by their tiny std would blow those up (measured: 10 clips took a speaker-normalised
    model from 79% to 23%). For 3-D X, `kind` says which axis is time (see pool); stats keep a shape that
    broadcasts over one clip.
    """
    X = np.asarray(X)
    speakers = np.asarray(speakers)
    if len(speakers) != len(X):
        raise ValueError(f"{len(X)} rows of features but {len(speakers)} speakers")
    axes = (0,) if X.ndim == 2 else (0, _time_axis(kind, X))
    stats = {}
    for speaker in np.unique(speakers):
        rows = X[speakers == speaker].astype(np.float64)
        mean, var = rows.mean(axis=axes, keepdims=True)[0], rows.var(axis=axes, keepdims=True)[0]
        if prior_std is not None:
            var = (len(rows) * var + PRIOR_CLIPS * np.square(prior_std)) / (len(rows) + PRIOR_CLIPS)
        stats[str(speaker)] = (mean.astype(np.float32), np.maximum(np.sqrt(var), STD_FLOOR).astype(np.float32))
    return stats


def typical_speaker_std(X: np.ndarray, speakers: Sequence[str], kind: str = "sequence") -> np.ndarray:
    """Each feature's root mean within-speaker variance: how much a speaker's clips usually spread."""
    stats = speaker_stats(X, speakers, kind)
    return np.sqrt(np.mean([np.square(std) for _, std in stats.values()], axis=0)).astype(np.float32)


def normalize_by_speaker(X: np.ndarray, speakers: Sequence[str],
                         stats: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                         kind: str = "sequence", prior_std: np.ndarray | None = None) -> np.ndarray:
    """Standardise each row by its speaker's mean and std, so features describe the speaker's manner, not voice.

    `stats` (from speaker_stats) lets augmented copies be normalised with their original clips' figures;
    left out, they are computed from X itself (shrunk towards `prior_std`, see speaker_stats).
    """
    X = np.asarray(X, dtype=np.float32)
    speakers = np.asarray(speakers)
    stats = speaker_stats(X, speakers, kind, prior_std) if stats is None else stats
    out = np.empty_like(X)
    for speaker in np.unique(speakers):
        if str(speaker) not in stats:
            raise ValueError(f"no normalisation statistics for speaker {speaker!r}")
        mean, std = stats[str(speaker)]
        rows = speakers == speaker
        out[rows] = (X[rows] - mean) / std
    return out


def _time_axis(kind: str, X: np.ndarray) -> int:
    if X.ndim != 3 or kind not in ("sequence", "image"):
        raise ValueError(f"expected 3-D sequence or image features, got shape {X.shape} of kind {kind!r}")
    return 1 if kind == "sequence" else 2

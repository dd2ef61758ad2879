"""Feature pipelines: named, versioned recipes from a clip's samples to features.

A pipeline's configuration (name, version, kind, sample rate and every parameter) is JSON and is saved
with each model trained on it, so a model is only ever fed the features it learned from. Outputs:
"clip" pipelines give one vector per clip, "sequence" pipelines (frames, dims), "image" pipelines
(mels, frames); sequences and images have a fixed number of frames so a catalog stacks into one array.

The spectral pipelines compute ONE short-time Fourier transform per clip and derive everything from it
(mel, log-mel, MFCC, chroma, and the frame energies that trim leading and trailing silence), with the
kernels of dsp.py.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import config
from ..errors import AudioError, CorruptAudioError, OptionError
from . import dsp
from .cache import library_versions
from .smile import SMILE_SIZES, smile_feature_names, smile_functionals
from .speaker_encoder import ENCODER_PARTS, ENCODER_RATE, ENCODER_SIZE, speaker_encoder_features

if TYPE_CHECKING:
    from ..audio import AudioSource

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
_FIXED = {"feature_set", "feature_level"}  # recorded in the configuration, not options (they fix the shape)
FUNCTIONALS = ("mean", "std", "p10", "p50", "p90")  # what mfcc_prosody takes of each descriptor
PERCENTILES = (10, 50, 90)
ROLLOFF_SHARE = 0.85   # the spectral roll-off is the frequency below which this share of the magnitude lies
PITCH_REFERENCE_HZ = 27.5  # pitch in semitones above this (A0), as eGeMAPS counts it


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
        text = json.dumps({"pipeline": self.to_dict(), "versions": library_versions()}, sort_keys=True)
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
    pipeline = as_pipeline(pipeline)
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
    names = smile_feature_names(p["feature_set"], p["feature_level"])
    if pipeline.name == "compare_ge2e":
        return names + encoder_names
    if pipeline.name == "egemaps_mfcc":  # then the frame statistics, named after zcr_rms_mfcc's columns
        frame_names = feature_names(get_pipeline("zcr_rms_mfcc", n_mfcc=p["n_mfcc"]))
        names += [f"{name}_mean" for name in frame_names] + [f"{name}_std" for name in frame_names]
    return names


# --- one clip -------------------------------------------------------------------------------------------

def extract(y: np.ndarray, sr: int, pipeline: str | Pipeline) -> np.ndarray:
    """Features of one clip's mono samples, already at the pipeline's rate (load_audio(..., sr=...)).

    Returns float32 of shape pipeline.shape, all finite: a model given NaN crashes or, worse, answers. Raises
    CorruptAudioError for samples that are NaN or infinite (openSMILE would read them as full scale) and
    AudioError when the features come out so.
    """
    pipeline = as_pipeline(pipeline)
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
        return smile_functionals(y, sr, p)
    if pipeline.name == "ge2e":
        return speaker_encoder_features(y, p)
    if pipeline.name == "compare_ge2e":
        return np.concatenate([smile_functionals(y, sr, p), speaker_encoder_features(y, p)])
    frames = dsp.frames(y, p["n_fft"], p["hop_length"])
    power = dsp.stft_power(frames)
    keep = dsp.loud_span(power.sum(axis=1), p["trim_db"])  # silence trimming from the same STFT
    if pipeline.name == "librosa180":
        return _librosa180(power[keep], sr, p)
    if pipeline.name == "zcr_rms_mfcc":
        return _zcr_rms_mfcc(frames[keep], power[keep], sr, pipeline.n_frames, p)
    if pipeline.name == "mfcc_prosody":
        return _mfcc_prosody(y, frames[keep], power[keep], sr, keep, p)
    if pipeline.name == "egemaps_mfcc":  # the frames as they are, neither cropped nor padded
        frame_features = _zcr_rms_mfcc(frames[keep], power[keep], sr, len(power[keep]), p)
        return np.concatenate([smile_functionals(y, sr, p), frame_features.mean(axis=0), frame_features.std(axis=0)])
    return _logmel(power[keep], sr, pipeline.n_frames, p)


def extract_file(source: AudioSource, pipeline: str | Pipeline, *,
                 name: str | None = None) -> np.ndarray:
    """Load a path, bytes or upload with load_audio at the pipeline's rate and extract its features (no cache).

    Raises load_audio's typed AudioError subclasses for input that cannot be used.
    """
    from ..audio import load_audio

    pipeline = as_pipeline(pipeline)
    return extract(load_audio(source, sr=pipeline.sample_rate, name=name), pipeline.sample_rate, pipeline)


def as_pipeline(pipeline: str | Pipeline) -> Pipeline:
    """The pipeline itself, or the current one of that name."""
    return pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)


def _log_mel(power: np.ndarray, sr: int, p: Mapping[str, Any]) -> np.ndarray:
    """(frames, n_mels) mel power in dB, floored top_db below the loudest bin."""
    return dsp.power_to_db(power @ dsp.mel_basis(sr, p["n_fft"], p["n_mels"]).T, p["top_db"])


def _librosa180(power: np.ndarray, sr: int, p: Mapping[str, Any]) -> np.ndarray:
    """Means over frames of MFCC, chroma and mel power (power, not dB: what the notebooks average)."""
    mel = power @ dsp.mel_basis(sr, p["n_fft"], p["n_mels"]).T
    mfcc = dsp.dct(dsp.power_to_db(mel, top_db=80.0))[:, :p["n_mfcc"]]
    chroma = power @ dsp.chroma_basis(sr, p["n_fft"], p["n_chroma"]).T
    peak = chroma.max(axis=1, keepdims=True)  # each frame scaled to a maximum of 1, as chroma_stft does
    chroma /= np.where(peak > np.finfo(np.float32).tiny, peak, 1.0)
    return np.concatenate([mfcc.mean(axis=0), chroma.mean(axis=0), mel.mean(axis=0)]).astype(np.float32)


def _zcr_rms_mfcc(frames: np.ndarray, power: np.ndarray, sr: int, n_frames: int,
                  p: Mapping[str, Any]) -> np.ndarray:
    """(n_frames, 2 + n_mfcc); padding is digital silence: ZCR and RMS 0, MFCC of the log floor."""
    mfcc = dsp.dct(_log_mel(dsp.fit_frames(power, n_frames), sr, p))[:, :p["n_mfcc"]]
    return np.column_stack([dsp.fit_frames(dsp.zcr(frames), n_frames), dsp.fit_frames(dsp.rms(frames), n_frames),
                            mfcc]).astype(np.float32)


def _logmel(power: np.ndarray, sr: int, n_frames: int, p: Mapping[str, Any]) -> np.ndarray:
    """(n_mels, n_frames), the spectrogram orientation of image models; padding is the log floor."""
    return np.ascontiguousarray(_log_mel(dsp.fit_frames(power, n_frames), sr, p).T)


def _frame_descriptors(p: Mapping[str, Any]) -> list[str]:
    """mfcc_prosody's per-frame descriptors, in the order of its features."""
    return ([f"mfcc_{i}" for i in range(p["n_mfcc"])] + [f"mfcc_delta_{i}" for i in range(p["n_mfcc"])]
            + ["rms", "zcr", "spectral_centroid", "spectral_rolloff", "spectral_flatness", "spectral_flux"])


def _mfcc_prosody(y: np.ndarray, frames: np.ndarray, power: np.ndarray, sr: int, keep: slice,
                  p: Mapping[str, Any]) -> np.ndarray:
    """Functionals of spectral, energy and pitch descriptors of the trimmed frames, all from numpy."""
    log_mel = _log_mel(power, sr, p)
    mfcc = dsp.dct(log_mel)[:, :p["n_mfcc"]]
    frequencies = np.linspace(0, sr / 2, power.shape[1])
    magnitude = np.sqrt(power)
    total = np.maximum(magnitude.sum(axis=1), 1e-10)
    rolloff = frequencies[np.argmax(np.cumsum(magnitude, axis=1) >= ROLLOFF_SHARE * total[:, None], axis=1)]
    flatness = np.exp(np.mean(np.log(np.maximum(power, 1e-10)), axis=1)) / np.maximum(power.mean(axis=1), 1e-10)
    flux = np.sqrt(np.mean(np.square(np.diff(log_mel, axis=0, prepend=log_mel[:1])), axis=1))
    descriptors = np.column_stack([mfcc, dsp.delta(mfcc), dsp.rms(frames), dsp.zcr(frames),
                                   magnitude @ frequencies / total, rolloff, flatness, flux])

    # pitch every pitch_step-th frame of the trimmed clip, from frames two periods of fmin long
    pitch_frames = dsp.frames(y, p["pitch_frame_length"], p["hop_length"])[keep][::p["pitch_step"]]
    f0, aperiodicity = dsp.yin(pitch_frames.astype(np.float64), sr, p["fmin"], p["fmax"], p["yin_threshold"])
    voiced = aperiodicity < p["voicing_threshold"]
    pitch = 12 * np.log2(f0[voiced] / PITCH_REFERENCE_HZ)
    statistics = [_functionals(a).reshape(-1) for a in (descriptors, pitch[:, None], np.diff(pitch)[:, None])]
    return np.concatenate([*statistics, [voiced.mean(), len(descriptors) * p["hop_length"] / sr]]).astype(np.float32)


def _functionals(a: np.ndarray) -> np.ndarray:
    """(descriptors, FUNCTIONALS) of (frames, descriptors); zeros when there is no frame (no voiced one)."""
    if not len(a):
        return np.zeros((a.shape[1], len(FUNCTIONALS)))
    return np.column_stack([a.mean(axis=0), a.std(axis=0), *np.percentile(a, PERCENTILES, axis=0)])



"""Explaining a prediction: what in the sound a model relied on, and how the clip's prosody compares.

Three views, all functions over arrays and catalogs so the app, the tests and a notebook share them:

- occlusion: silence one patch of the time-frequency plane at a time (mel band x time segment) and see how
  much the predicted emotion's probability drops. It only needs the predictor's probabilities, so it explains
  every bundle, the default SVM included, which has no log-mel input to take gradients of.
- permutation_importance: shuffle one feature column at a time over a sample of corpus clips and see how much
  the model's accuracy falls, for models that read one vector per clip (mfcc_prosody, egemaps, librosa180).
- prosody and class_prosody: pitch contour, energy and speaking rate of a clip, next to the same numbers
  averaged per emotion over the corpus the model learnt from.

librosa is used for its mel filter bank and unit conversions only: its STFT, YIN and onset functions compile
numba code on first use (5-10 s in each new process), more than a whole explanation should take. The STFT is
numpy's (librosa.stft's framing), the pitch tracker a vectorised YIN, the syllable detector peak picking on
the energy envelope.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import config
from .errors import AudioError, DatasetError, ModelError, OptionError

if TYPE_CHECKING:
    from .bundles import Bundle
    from .inference import Predictor

# Occlusion: a 32 ms / 10 ms STFT at 16 kHz; clips up to EXPLAIN_WINDOW seconds are explained whole, longer
# ones one window of that length (from the start the caller picks), which keeps a map to a few seconds.
N_FFT, HOP = 512, 160
N_MELS = 64                 # rows of the log-mel image shown under the map
EXPLAIN_WINDOW = 4.0        # s
DEFAULT_BANDS, DEFAULT_SEGMENTS = 6, 8
QUIET_PATCH_DB = -40.0      # a patch this far below the loudest holds no sound: its drop counts as none
MATTERS = 0.03              # a patch whose silencing moves the answer less than this (3 points) did not matter

# Prosody: 10 ms hops; energy from 25 ms frames at 16 kHz, pitch from 64 ms frames (two periods of 60 Hz) of
# an 8 kHz copy (enough for voices up to config.PITCH_FMAX, a quarter of the work).
PROSODY_RATE, PITCH_RATE = 16_000, 8_000
ENERGY_FRAME, PROSODY_HOP = 400, 160
PITCH_FRAME, PITCH_HOP = 512, 80
SPEECH_DB = 30.0            # frames within this many dB of the loudest are speech (as silence trimming)
NUCLEUS_DB = 25.0           # a syllable nucleus is an energy peak within this of the loudest frame...
NUCLEUS_PROMINENCE = 3.0    # ...standing this many dB above the dips on both sides...
NUCLEUS_GAP = 0.1           # s: ...at least this far from the next (10 syllables a second at most)
SUMMARY = ("median_pitch_hz", "pitch_range_st", "mean_energy_db", "rate_per_s")
SUMMARY_TITLES = {"median_pitch_hz": "median pitch (Hz)", "pitch_range_st": "pitch range (semitones)",
                  "mean_energy_db": "mean energy (dB)", "rate_per_s": "speaking rate (syllables/s)"}
PROSODY_VERSION = 3         # bump when prosody's numbers change: cached class averages are then recomputed
CACHE_SUBDIR = "prosody"
CLASS_CLIPS = 40            # clips per emotion and corpus averaged by class_prosody
IMPORTANCE_CLIPS = 200      # corpus clips permutation importance scores on (the time grows with them)
IN_PROCESS = 128            # fewer clips to summarise than this: no worker processes (starting them costs more)


# --- occlusion ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Occlusion:
    """An occlusion map over one window of a clip, with the log-mel image it is drawn on.

    drops[b, s] is how much the probability of `label` falls when mel band b and time segment s are silenced
    (negative: the patch argued against the label). Times are seconds from the start of the whole clip.
    """

    label: str
    probability: float              # of label, for the explained window
    drops: np.ndarray               # (bands, segments)
    band_edges_hz: np.ndarray       # (bands + 1,), equal steps on the mel scale
    segment_edges_s: np.ndarray     # (segments + 1,)
    log_mel: np.ndarray             # (N_MELS, frames) dB below the loudest bin
    mel_hz: np.ndarray              # (N_MELS,) centre frequency of each row
    times: np.ndarray               # (frames,) s
    start: float                    # the window explained, s
    end: float
    duration: float                 # of the whole clip, s
    probabilities: dict[str, float] = field(default_factory=dict)  # of every label, for the window

    @property
    def whole_clip(self) -> bool:
        return self.start == 0 and self.end >= self.duration

    def top_patch(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((low Hz, high Hz), (start s, end s)) of the patch whose silencing lowers the label most."""
        b, s = np.unravel_index(int(np.argmax(self.drops)), self.drops.shape)
        return ((float(self.band_edges_hz[b]), float(self.band_edges_hz[b + 1])),
                (float(self.segment_edges_s[s]), float(self.segment_edges_s[s + 1])))


def describe(occ: Occlusion) -> str:
    """One or two sentences that read an occlusion map for a student."""
    (low, high), (t0, t1) = occ.top_patch()
    best = float(np.max(occ.drops))
    where = "the whole clip" if occ.whole_clip else f"{occ.start:.1f}-{occ.end:.1f} s of the clip"
    text = (f"Each patch of {where} (a band of frequencies x a stretch of time) was silenced in turn and the "
            f"sound classified again. ")
    if best <= MATTERS:
        return text + (f"No patch changed “{occ.label}” ({occ.probability:.0%}) by more than {MATTERS:.0%}: the "
                       "evidence is spread over the whole sound, not in one place.")
    text += (f"Silencing {low:.0f}-{high:.0f} Hz at {t0:.2f}-{t1:.2f} s lowered “{occ.label}” the most, from "
             f"{occ.probability:.0%} by {best:.0%}: red patches held evidence for it")
    return text + (", blue ones argued against it." if occ.drops.min() < -0.01 else ".")


def explain_window(duration: float, start: float = 0.0, window: float = EXPLAIN_WINDOW) -> tuple[float, float]:
    """The (start, end) seconds occlusion explains: the whole clip up to `window` s, else `window` s from
    `start` (moved back so the window stays inside the clip)."""
    if duration <= window:
        return 0.0, duration
    start = min(max(0.0, start), duration - window)
    return start, start + window


def occlusion(predictor: Predictor, y: np.ndarray, sr: int, *, bands: int = DEFAULT_BANDS,
              segments: int = DEFAULT_SEGMENTS, start: float = 0.0, window: float = EXPLAIN_WINDOW,
              target: str | None = None, name: str = "this clip") -> Occlusion:
    """Silence each mel band x time segment patch in turn and measure the drop of the predicted probability.

    Model-agnostic: a patch's STFT bins are set to zero, the samples resynthesised (clip minus the inverse
    STFT of the patch, so the rest is untouched), peak-normalised as every clip the model sees, and
    classified; all bands x segments copies go to the model in one batch. `target` explains another label
    than the predicted one. Clips longer than `window` s are explained one window at a time (see
    explain_window). A silent window raises SilentAudioError; a model that needs calibration, ModelError.
    """
    from .audio import _silent, is_silent, peak_normalize
    from .features import dsp

    if bands < 1 or segments < 1:
        raise OptionError(f"occlusion needs at least one band and one segment (got {bands} x {segments})")
    predictor.check_calibrated()
    y, sr = _at_rate(y, sr, predictor.pipeline.sample_rate)
    duration = len(y) / sr
    t0, t1 = explain_window(duration, start, window)
    x = np.asarray(y[int(round(t0 * sr)):int(round(t1 * sr))], dtype=np.float64)
    if is_silent(x):
        raise _silent(name if t0 == 0 and t1 >= duration else f"{name} ({t0:.1f}-{t1:.1f} s)", x.astype(np.float32))
    x = peak_normalize(x)

    stft = _Stft(x)
    band_edges = _mel_edges(bands, sr)
    segment_edges = np.linspace(0.0, len(x) / sr, segments + 1)
    frame_times = np.arange(stft.n_frames) * HOP / sr
    band_of_bin = np.clip(np.searchsorted(band_edges, np.fft.rfftfreq(N_FFT, 1 / sr), side="right") - 1, 0, bands - 1)
    segment_of_frame = np.clip(np.searchsorted(segment_edges, frame_times, side="right") - 1, 0, segments - 1)

    copies = [x]
    for b in range(bands):
        for s in range(segments):
            occluded = x - stft.inverse(np.flatnonzero(segment_of_frame == s), band_of_bin == b)
            copies.append(peak_normalize(occluded) if not is_silent(occluded) else None)
    labels = predictor.labels
    voiced = [c.astype(np.float32) for c in copies if c is not None]
    probs = iter(predictor.predict_proba_samples(voiced))
    chance = np.full(len(labels), 1.0 / len(labels))  # nothing left to hear: no evidence for any label
    rows = np.stack([next(probs) if c is not None else chance for c in copies])
    base = rows[0]
    label = target if target is not None else labels[int(np.argmax(base))]
    if label not in labels:
        raise OptionError(f"model {predictor.name} has no label {label!r}; its labels are: {', '.join(labels)}")
    k = labels.index(label)
    drops = (base[k] - rows[1:, k]).reshape(bands, segments)
    power = np.abs(stft.spectrum.T) ** 2  # (bins, frames)
    # A patch 40 dB below the loudest holds no sound to speak of (the silence before a word): whatever its
    # silencing does to the answer (peak normalisation, the noise floor), it is not evidence.
    energy = np.array([[power[band_of_bin == b][:, segment_of_frame == s].sum() for s in range(segments)]
                       for b in range(bands)])
    drops[10 * np.log10(np.maximum(energy, 1e-20) / max(energy.max(), 1e-20)) < QUIET_PATCH_DB] = 0.0

    log_mel = 10 * np.log10(np.maximum(dsp.mel_basis(sr, N_FFT, N_MELS) @ power, 1e-10))
    log_mel = np.maximum(log_mel - log_mel.max(), -80.0)
    return Occlusion(label=label, probability=float(base[k]), drops=drops, band_edges_hz=band_edges,
                     segment_edges_s=segment_edges + t0, log_mel=log_mel.astype(np.float32),
                     mel_hz=_mel_centres(sr), times=frame_times + t0, start=t0, end=t1, duration=duration,
                     probabilities={lab: float(p) for lab, p in zip(labels, base)})


class _Stft:
    """A centred Hann STFT (librosa.stft's framing) and the inverse of any patch of it, by overlap-add.

    The inverse is linear, so a clip without a patch is the clip minus the patch's inverse: only the patch's
    frames are transformed back, and the rest of the clip stays exactly as it was.
    """

    def __init__(self, x: np.ndarray):
        from .features import dsp

        self.length = len(x)
        self.window = dsp.hann_window(N_FFT).astype(np.float64)
        self.spectrum = np.fft.rfft(dsp.frames(x, N_FFT, HOP) * self.window, axis=1)  # (frames, bins)
        self.n_frames = len(self.spectrum)
        norm = np.zeros(self.length + N_FFT)
        for f in range(self.n_frames):
            norm[f * HOP:f * HOP + N_FFT] += self.window ** 2
        self.norm = np.where(norm > 1e-8, norm, 1.0)

    def inverse(self, frames: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Samples of the spectrum's `frames` (indices) restricted to `bins` (a boolean mask), others zero."""
        out = np.zeros(self.length + N_FFT)
        if frames.size:
            pieces = np.fft.irfft(np.where(bins, self.spectrum[frames], 0), N_FFT, axis=1) * self.window
            for f, piece in zip(frames, pieces):
                out[f * HOP:f * HOP + N_FFT] += piece
        return (out / self.norm)[N_FFT // 2:N_FFT // 2 + self.length]


def _at_rate(y: np.ndarray, sr: int, rate: int) -> tuple[np.ndarray, int]:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {y.shape}")
    if sr == rate:
        return y, sr
    import soxr

    return soxr.resample(y, sr, rate, quality="HQ").astype(np.float32), rate


def _mel_edges(bands: int, sr: int) -> np.ndarray:
    """Band edges in Hz, equal steps of mel from 0 to Nyquist: the ear's (and the log-mel image's) spacing."""
    import librosa

    return librosa.mel_to_hz(np.linspace(0.0, librosa.hz_to_mel(sr / 2), bands + 1))


@functools.cache
def _mel_centres(sr: int) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(N_MELS + 2, fmax=sr / 2)[1:-1]


# --- permutation importance ---------------------------------------------------------------------------------

def model_feature_names(predictor: Predictor) -> list[str]:
    """Names of the model's input columns; raises OptionError for models that read frames, not one vector."""
    from .features import feature_names

    pipeline = predictor.pipeline
    if pipeline.kind == "clip":
        return feature_names(pipeline)
    if predictor.bundle.kind == "keras":
        raise OptionError(f"Permutation importance applies to models that read one feature vector per clip "
                          f"(mfcc_prosody, egemaps, librosa180); {predictor.name} reads {pipeline.name} frames, "
                          "whose columns are not features one can shuffle. The occlusion map explains this model "
                          "instead.")
    names = feature_names(pipeline)  # a scikit-learn model on frames reads their mean and std over time
    return [f"{n} (mean)" for n in names] + [f"{n} (std)" for n in names]


def permutation_importance(predictor: Predictor | Bundle, X: np.ndarray, y: Sequence[str], *,
                           speakers: Sequence[str] | None = None, n_repeats: int = 5,
                           seed: int = config.DEFAULT_SEED, metric: str = "accuracy",
                           n_jobs: int = 1) -> pd.DataFrame:
    """How much the model's score falls when each feature column is shuffled across clips.

    `X` is the pipeline's features of labelled clips (extract_features' output), `y` their labels. A
    per-speaker-normalised model gets each clip normalised by its own speaker's statistics, so `speakers`
    is required for it (several clips per speaker). `metric` is "accuracy" or "log_loss" (the mean
    log-probability of the true label, smoother on few clips). Returns feature, importance (mean fall),
    std over the repeats and its meaning in plain words, sorted from the most important; scikit-learn's
    permutation_importance does the shuffling, on n_jobs processes (joblib's convention; the bundle is
    pickled to them, so keep 1 for Keras). Clips whose label the model does not know are left out.
    """
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    from .features import normalize_by_speaker, pool
    from .inference import Predictor

    predictor = predictor if isinstance(predictor, Predictor) else Predictor(predictor)
    names = model_feature_names(predictor)
    labels = predictor.labels
    y = np.asarray(y, dtype=object)
    known = np.isin(y, labels)
    if known.sum() < 2:
        raise DatasetError(f"Permutation importance needs labelled clips of the emotions {predictor.name} knows "
                           f"({', '.join(labels)}); got {int(known.sum())}.")
    X = pool(np.asarray(X, dtype=np.float32)[known], predictor.pipeline.kind)
    if predictor.bundle.metadata.get("speaker_norm"):
        if speakers is None:
            raise ModelError(f"Model {predictor.name} was trained with per-speaker normalisation: importance needs "
                             "each clip's speaker, to normalise it by that speaker's own statistics.")
        X = normalize_by_speaker(X, np.asarray(speakers)[known], kind="clip",
                                 prior_std=predictor.typical_speaker_std)
    if predictor.voice_norm:  # standardised as a single upload meets it: by the training speakers' statistics
        mean, std = predictor.prior.normalizer()
        X = (X - mean) / std
    if X.shape[1] != len(names):
        raise OptionError(f"{X.shape[1]} feature columns for the {len(names)} that {predictor.name} reads")
    if metric not in ("accuracy", "log_loss"):
        raise OptionError(f"metric must be 'accuracy' or 'log_loss', not {metric!r}")
    target = np.array([labels.index(label) for label in y[known]])
    bundle = predictor.bundle

    def score(_model: Any, X_: np.ndarray, y_: np.ndarray) -> float:
        probabilities = bundle.predict_proba(X_)
        if metric == "accuracy":
            return float(np.mean(np.argmax(probabilities, axis=1) == y_))
        return float(np.mean(np.log(np.maximum(probabilities[np.arange(len(y_)), y_], 1e-12))))

    result = sk_permutation_importance(_Fitted(bundle), X, target, scoring=score, n_repeats=n_repeats,
                                       random_state=seed, n_jobs=n_jobs)
    table = pd.DataFrame({"feature": names, "importance": result.importances_mean, "std": result.importances_std,
                          "meaning": [feature_meaning(name) for name in names]})
    table = table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    table.attrs.update(metric=metric, baseline=score(None, X, target), clips=len(X), n_repeats=n_repeats)
    return table


def any_feature_matters(table: pd.DataFrame) -> bool:
    """Whether shuffling some feature costs the model more than that cost varies between shuffles. Without one,
    a ranking (permutation_importance's table) orders noise: with thousands of features, one clip lost in one
    shuffle of five puts a feature on top."""
    return bool((table["importance"] > table["std"]).any())


# What a feature measures, in a student's words: (name prefix, meaning), the first prefix that matches wins.
_MEANINGS = (
    ("F0semitone", "pitch"), ("F1frequency", "first formant (vowel height)"),
    ("F2frequency", "second formant (vowel front/back)"), ("F3frequency", "third formant"),
    ("F1bandwidth", "formant bandwidth"), ("F2bandwidth", "formant bandwidth"), ("F3bandwidth", "formant bandwidth"),
    ("F1amplitude", "formant strength"), ("F2amplitude", "formant strength"), ("F3amplitude", "formant strength"),
    ("loudnessPeaksPerSec", "rate of loudness peaks (tempo)"), ("loudness", "loudness"),
    ("equivalentSoundLevel", "overall level"), ("jitter", "pitch roughness (jitter)"),
    ("shimmer", "loudness roughness (shimmer)"), ("HNR", "breathiness (harmonics to noise)"),
    ("logRelF0-H1-H2", "voice quality (breathy vs pressed)"), ("logRelF0-H1-A3", "voice quality (spectral tilt)"),
    ("alphaRatio", "energy balance: low vs high frequencies"), ("hammarbergIndex", "energy balance: sharpness"),
    ("slope", "spectral slope (bright vs dull)"), ("spectralFlux", "how fast the spectrum changes"),
    ("mfcc_delta", "how fast the timbre changes (MFCC deltas)"), ("mfcc", "timbre (MFCC)"),
    ("spectral_centroid", "brightness (spectral centroid)"), ("spectral_rolloff", "brightness (spectral roll-off)"),
    ("spectral_flatness", "noisiness (spectral flatness)"), ("spectral_flux", "how fast the spectrum changes"),
    ("pitch_change", "pitch movement"), ("pitch", "pitch"), ("voiced_share", "share of voiced speech"),
    ("speech_seconds", "length of the speech"), ("VoicedSegmentsPerSec", "tempo (voiced stretches a second)"),
    ("MeanVoicedSegment", "length of voiced stretches"), ("StddevVoicedSegment", "length of voiced stretches"),
    ("MeanUnvoicedSegment", "length of pauses"), ("StddevUnvoicedSegment", "length of pauses"),
    ("chroma", "pitch class (chroma)"), ("mel", "energy in one mel band"), ("zcr", "noisiness (zero crossings)"),
    ("rms", "loudness (RMS)"),
)


# Which statistic of the frames a feature is: (name ending, words).
_STATISTICS = (
    ("_mean", "average"), ("_amean", "average"), ("_std", "variation"), ("_stddevNorm", "variation"),
    ("_p10", "low values (10th percentile)"), ("_percentile20.0", "low values (20th percentile)"),
    ("_p50", "median"), ("_percentile50.0", "median"), ("_p90", "high values (90th percentile)"),
    ("_percentile80.0", "high values (80th percentile)"), ("_pctlrange0-2", "range"),
    ("_meanRisingSlope", "how fast it rises"), ("_stddevRisingSlope", "variation of its rises"),
    ("_meanFallingSlope", "how fast it falls"), ("_stddevFallingSlope", "variation of its falls"),
)


def feature_meaning(name: str) -> str:
    """A plain-words gloss of a feature name (eGeMAPS, mfcc_prosody, librosa180 or pooled frames), with the
    statistic it takes ("timbre (MFCC 5), median"); "" when unknown."""
    meaning = next((meaning for prefix, meaning in _MEANINGS if name.startswith(prefix)), "")
    if not meaning:
        return ""
    number = re.match(r"^(?:mfcc_delta_|mfcc_|mfcc|mel_|chroma_)(\d+)", name)
    statistic = next((words for ending, words in _STATISTICS if name.endswith(ending)), "")
    if number:
        meaning = (meaning.replace("MFCC", f"MFCC {number.group(1)}", 1) if "MFCC" in meaning
                   else f"{meaning} {number.group(1)}")
    return meaning + (f", {statistic}" if statistic else "")


class _Fitted:
    """A bundle as scikit-learn's permutation_importance wants an estimator: it only checks for fit()."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle

    def fit(self, *_: Any) -> _Fitted:
        return self  # already trained: importance never refits


def training_clips(catalog: pd.DataFrame, predictor: Predictor) -> tuple[pd.DataFrame, str, bool]:
    """Catalog rows of the corpora the model was trained on, with labels it knows; what they are in words; and
    whether they are its training corpora (False: it falls back to every corpus with such labels, when none of
    its training corpora is under the data root)."""
    metadata = predictor.bundle.metadata
    corpora = list((metadata.get("training") or {}).get("corpora")
                   or (metadata.get("evaluation") or {}).get("corpora") or [])
    usable = catalog[catalog["label"].isin(predictor.labels)]
    own = usable[usable["corpus"].isin(corpora)]
    if len(own):
        return own, f"{', '.join(sorted(own['corpus'].unique()))} (what {predictor.name} was trained on)", True
    if not len(usable):
        raise DatasetError(f"The catalog holds no clip of the emotions {predictor.name} knows "
                           f"({', '.join(predictor.labels)}).")
    found = ", ".join(sorted(usable["corpus"].unique()))
    trained = ", ".join(corpora) or "unrecorded corpora"
    return usable, f"{found} ({predictor.name} was trained on {trained}, which is not under the data root)", False


def balanced_sample(frame: pd.DataFrame, n: int, by: Sequence[str], seed: int = config.DEFAULT_SEED) -> pd.DataFrame:
    """Up to n rows spread evenly over the groups of `by` (each shuffled, then taken in turns)."""
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))]
    turn = shuffled.groupby(list(by), sort=False, dropna=False).cumcount().to_numpy()
    order = np.lexsort((rng.random(len(shuffled)), turn))
    return shuffled.iloc[order[:n]]


def importance_for(predictor: Predictor, catalog: pd.DataFrame, *, n_clips: int = IMPORTANCE_CLIPS,
                   n_repeats: int = 5, seed: int = config.DEFAULT_SEED, metric: str = "accuracy",
                   cache_dir: str | os.PathLike | None = None, n_jobs: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Permutation importance on up to n_clips corpus clips balanced over speakers and emotions.

    The clips come from the model's own training corpora where present (training_clips), so the ranking
    says what the model relies on, not what would generalise to new speakers. Features come from the disk cache
    (extract_features) after the first time, and the table itself is cached on disk too (keyed by the model,
    the clips and the settings): scoring 200 clips took 15 s for egemaps-svm and 3.3 minutes for
    compare-ge2e-ridge (2026-11-27, 2 cores). Scoring can run on n_jobs
    processes for scikit-learn models (a Keras model stays in this process); on two cores one process measured
    faster, as starting workers and sending them the model costs more than they save.
    The table's attrs say which clips were used.
    """
    from .features import extract_features
    from .features.cache import clip_identity

    model_feature_names(predictor)  # refuses frame-level Keras models before any extraction
    clips, where, seen = training_clips(catalog, predictor)
    sample = balanced_sample(clips, n_clips, ["speaker", "label"], seed)
    key = {"version": 3, "model": str(predictor.bundle.path), "created": predictor.bundle.metadata.get("created"),
           "features": predictor.pipeline.digest, "clips": [clip_identity(path) for path in sample["path"]],
           "n_repeats": n_repeats, "seed": seed, "metric": metric}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    file = Path(cache_dir or config.cache_dir()) / "importance" / f"{digest}.bin"
    cached = _read_table(file)
    if cached is not None:
        return cached
    X = extract_features(sample, predictor.pipeline, cache_dir=cache_dir, on_error="nan", progress=progress)
    ok = ~np.isnan(X.reshape(len(X), -1)).any(axis=1)
    table = permutation_importance(predictor, X[ok], sample["label"].to_numpy()[ok],
                                   speakers=sample["speaker"].to_numpy()[ok], n_repeats=n_repeats, seed=seed,
                                   metric=metric, n_jobs=1 if predictor.bundle.kind == "keras" else n_jobs)
    table.attrs.update(source=where, seen_in_training=seen, speakers=int(sample["speaker"][ok].nunique()))
    _write_table(file, table)
    return table


def _read_table(file: Path) -> pd.DataFrame | None:
    """The cached table, or None if absent, damaged or altered (see features.read_cache_entry)."""
    from .features import read_cache_entry

    payload = read_cache_entry(file)
    if payload is None:
        return None
    try:
        data = json.loads(payload)
        table = pd.DataFrame(data["rows"], columns=["feature", "importance", "std", "meaning"])
    except (ValueError, KeyError, TypeError):
        return None  # damaged: computed again
    table["meaning"] = [feature_meaning(name) for name in table["feature"]]  # today's words, not the cached ones
    table.attrs.update(data.get("attrs", {}))
    return table


def _write_table(file: Path, table: pd.DataFrame) -> None:
    """As the feature cache writes: atomically, with a checksum, and best-effort (one warning where it cannot)."""
    from .features import warn_unwritable, write_cache_entry

    unwritable = write_cache_entry(file, json.dumps({"rows": table.values.tolist(), "attrs": table.attrs}).encode())
    if unwritable:
        warn_unwritable(file.parent, unwritable)


# --- prosody -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prosody:
    """Pitch and energy contours of a clip, its syllable nuclei, and the clip-level summary numbers."""

    times: np.ndarray           # (frames,) s
    f0: np.ndarray              # (frames,) Hz, NaN where unvoiced
    energy_db: np.ndarray       # (frames,) RMS in dB relative to full scale
    nuclei: np.ndarray          # times (s) of the syllable nuclei found
    speech: tuple[float, float]  # first and last second within SPEECH_DB of the loudest frame
    summary: dict[str, float]   # SUMMARY's numbers (NaN where the clip has too little voice)


def prosody(y: np.ndarray, sr: int, *, fmin: float = config.PITCH_FMIN,
            fmax: float = config.PITCH_FMAX) -> Prosody:
    """Pitch contour (YIN, voiced where periodic and loud), RMS energy in dB, and speaking rate.

    The speaking rate counts syllable nuclei (energy peaks that stand NUCLEUS_PROMINENCE dB above their
    surroundings in voiced speech) per second of speech (from the first to the last loud frame, so the
    silence around a clip does not slow it down). Summary: median pitch (Hz), pitch range (semitones from
    the 10th to the 90th percentile), mean energy over the speech (the mean power, in dB: pauses between
    syllables barely lower it), rate (syllables per second).
    Energy is in dB of full scale of the samples as given: pass a clip as recorded (load_audio(...,
    normalize=False)) to compare it with class_prosody's averages, which are of the corpus as recorded.
    (Peak-normalised, a shouted clip reads quieter than a calm one: its peaks are higher above its mean.)
    An empty or all-zero clip raises SilentAudioError.
    """
    from scipy.signal import find_peaks

    from .audio import _silent
    from .features import dsp

    y, sr = _at_rate(y, sr, PROSODY_RATE)
    if not np.any(y):  # a quiet clip is measured (its level is the point); digital silence has nothing to measure
        raise _silent("this clip", y)
    energy_db = 20 * np.log10(np.maximum(dsp.rms(dsp.frames(y.astype(np.float64), ENERGY_FRAME, PROSODY_HOP)), 1e-5))
    low, _ = _at_rate(y, sr, PITCH_RATE)
    f0, aperiodicity = dsp.yin(dsp.frames(low, PITCH_FRAME, PITCH_HOP), PITCH_RATE, fmin, fmax)
    n = min(len(f0), len(energy_db))
    f0, aperiodicity, energy_db = f0[:n], aperiodicity[:n], energy_db[:n]
    times = np.arange(n) * PROSODY_HOP / sr
    loud = energy_db > energy_db.max() - SPEECH_DB
    voiced = loud & (aperiodicity < config.VOICING_THRESHOLD)
    f0 = np.where(voiced, f0, np.nan)

    first, last = np.flatnonzero(loud)[[0, -1]]
    span_s = (last - first + 1) * PROSODY_HOP / sr
    smooth = np.convolve(energy_db, np.ones(5) / 5, mode="same")  # 50 ms: one peak per vowel, not per period
    peaks, _ = find_peaks(smooth, prominence=NUCLEUS_PROMINENCE,
                          distance=max(1, int(NUCLEUS_GAP * sr / PROSODY_HOP)))
    near_voice = np.convolve(voiced, np.ones(5), mode="same") > 0
    peaks = peaks[(smooth[peaks] > energy_db.max() - NUCLEUS_DB) & near_voice[peaks]]

    pitched = f0[voiced]
    summary = {
        "median_pitch_hz": float(np.median(pitched)) if pitched.size else float("nan"),
        "pitch_range_st": (float(12 * np.log2(np.percentile(pitched, 90) / np.percentile(pitched, 10)))
                           if pitched.size >= 5 else float("nan")),
        "mean_energy_db": float(10 * np.log10(np.mean(10 ** (energy_db[first:last + 1] / 10)))),  # power mean
        "rate_per_s": float(len(peaks) / span_s) if span_s >= 0.2 else float("nan"),
    }
    return Prosody(times=times, f0=f0, energy_db=energy_db, nuclei=times[peaks],
                   speech=(float(times[first]), float(times[last])), summary=summary)


# --- class averages -------------------------------------------------------------------------------------------

def class_prosody(catalog: pd.DataFrame, *, per_label: int = CLASS_CLIPS, gender: str | None = None,
                  seed: int = config.DEFAULT_SEED, cache_dir: str | os.PathLike | None = None, n_jobs: int = -1,
                  progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The prosody summary averaged per emotion over up to per_label clips per emotion and corpus.

    `gender` ("female" or "male") keeps only that gender's speakers: pitch depends on the voice (men speak
    about an octave lower), so a clip compares better with voices like its own.

    Clips are spread over each corpus's speakers and read at their recorded level (energy is a level: see
    prosody). Each clip's numbers are cached on disk under config.cache_dir(), keyed like the feature cache
    by path, size and modification time, so a second call only reads files. Returns a DataFrame indexed by
    label (config.LABELS order) with SUMMARY's columns and `clips`, the number averaged. Clips that cannot
    be read are left out.
    """
    if gender is not None:
        catalog = catalog[catalog["gender"] == gender]
    if not len(catalog):
        raise DatasetError("Class averages need a corpus: the catalog is empty"
                           + (f" of {gender} voices." if gender else "."))
    sample = pd.concat([balanced_sample(group, per_label, ["speaker"], seed)
                        for _, group in catalog.groupby(["corpus", "label"], sort=True)])
    values = prosody_summaries(list(sample["path"]), cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)
    table = pd.DataFrame(values, columns=list(SUMMARY))
    table["label"] = sample["label"].to_numpy()
    table = table[np.isfinite(table[list(SUMMARY)]).any(axis=1)]
    averages = table.groupby("label")[list(SUMMARY)].mean()
    averages["clips"] = table.groupby("label").size()
    return averages.reindex([label for label in config.LABELS if label in averages.index])


def prosody_summaries(paths: Sequence[str | os.PathLike], *, cache_dir: str | os.PathLike | None = None,
                      n_jobs: int = -1, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(len(paths), len(SUMMARY)) summary numbers of each file, from the disk cache or computed in chunks on
    n_jobs processes (here when fewer than IN_PROCESS are missing); NaN rows for files that cannot be read."""
    from .features.cache import cached_rows

    folder = Path(cache_dir or config.cache_dir()) / CACHE_SUBDIR / f"summary-{_prosody_digest()}"
    values, _ = cached_rows([str(path) for path in paths], folder, (len(SUMMARY),), _summary, n_jobs=n_jobs,
                            in_process_below=IN_PROCESS, progress=progress)
    return values


def _summary(i: int, path: str, extra: None) -> np.ndarray | str:
    """A file's SUMMARY numbers, or why it cannot be loaded (a NaN row, not cached)."""
    from .audio import load_audio

    try:
        y = load_audio(path, sr=PROSODY_RATE, normalize=False)  # energy as recorded: see prosody
    except AudioError as error:
        return str(error)
    summary = prosody(y, PROSODY_RATE).summary
    return np.array([summary[key] for key in SUMMARY], dtype=np.float32)


@functools.cache
def _prosody_digest() -> str:
    """Names the cache folder: prosody's version and parameters, and the libraries that decode audio."""
    from .features.cache import library_versions

    settings = {"version": PROSODY_VERSION, "level": "as recorded",
                "rates": [PROSODY_RATE, PITCH_RATE, PITCH_FRAME, PITCH_HOP, ENERGY_FRAME, PROSODY_HOP],
                "f0": [config.PITCH_FMIN, config.PITCH_FMAX, config.YIN_THRESHOLD, config.VOICING_THRESHOLD],
                "nuclei": [SPEECH_DB, NUCLEUS_DB, NUCLEUS_PROMINENCE, NUCLEUS_GAP], "versions": library_versions()}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def genders(catalog: pd.DataFrame) -> list[str]:
    """The speaker genders a catalog records (what class_prosody's `gender` can choose)."""
    return sorted(str(g) for g in catalog["gender"].dropna().unique())


def compare_prosody(summary: dict[str, float], averages: pd.DataFrame, label: str | None = None) -> pd.DataFrame:
    """The clip's summary above the class averages: one column per quantity, rows "this clip", the predicted
    emotion's average (when `label` has one) and every emotion's (narrow enough for a page)."""
    rows = {"this clip": pd.Series(summary)[list(SUMMARY)]}
    if label is not None and label in averages.index:
        rows[f"{label} (average)"] = averages.loc[label, list(SUMMARY)]
    for other in averages.index:
        if other != label:
            rows[f"{other} (average)"] = averages.loc[other, list(SUMMARY)]
    table = pd.DataFrame(rows).astype(float)
    table.index = [SUMMARY_TITLES[key] for key in SUMMARY]
    return table.T

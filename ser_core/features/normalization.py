"""Helpers for models: pooling frames over time, and standardising features by speaker.

Per-speaker normalisation makes features describe a speaker's manner rather than their voice.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

STD_FLOOR = 1e-8       # smallest std speaker normalisation divides by (a constant feature stays 0)
PRIOR_CLIPS = 10       # a speaker's std is shrunk towards the typical one as if from this many more clips


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

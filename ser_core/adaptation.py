"""New voices and rooms: normalisation statistics that start at the training speakers' and follow what is heard.

A model trained with `voice_norm` reads features standardised by the statistics of whoever is speaking. A new
voice's are unknown at first, so a clip is standardised by the training population's statistics (cold), then by
the room's (all the speech heard where the app runs: one microphone, one room, many voices), then by the voice's
own, each level weighed by how much speech it rests on (ROOM_PRIOR, VOICE_MEAN_PRIOR, VOICE_SPREAD_PRIOR).
Nothing here reads a label. The model is trained on the same three levels (training_features), so it works at
each of them.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import config
from .features.normalization import STD_FLOOR

if TYPE_CHECKING:
    from .features import Pipeline

# How many clips (3 s windows) the level above weighs as, against a room's or a voice's own clips: with fewer
# clips than that, a level's statistics are pulled towards those above it. A voice's spread needs many clips (a
# few alike clips have a narrow spread: dividing by it blows features up), and so does its mean: a voice's mean
# from a few clips of one mood takes that mood for the voice's usual self. With 1 clip for the mean, the benchmark
# gained 2-7 points (its clips are of mixed moods), but a looped angry TESS clip in Live went from 99% angry
# windows to 40% after 12 s; with 10 it stays 98% (see docs/new-voices.md).
ROOM_PRIOR = 20.0
VOICE_MEAN_PRIOR = 10.0
VOICE_SPREAD_PRIOR = 10.0
# The levels a voice_norm model is trained on, each training clip standardised by: the population's, its corpus's
# (a room) and its speaker's statistics.
LEVELS: tuple[str, ...] = ("population", "room", "voice")


@dataclass(frozen=True)
class SpeechStats:
    """Running count, mean and sum of squared deviations of feature rows (and the seconds of speech behind them):
    merged as speech arrives, without keeping it (Chan et al.'s parallel update)."""

    count: float
    mean: np.ndarray
    m2: np.ndarray
    seconds: float = 0.0

    @classmethod
    def empty(cls, dims: int) -> SpeechStats:
        return cls(0.0, np.zeros(dims), np.zeros(dims))

    @classmethod
    def of(cls, X: np.ndarray, seconds: float = 0.0) -> SpeechStats:
        return cls.empty(np.shape(X)[-1]).add(X, seconds)

    def add(self, X: np.ndarray, seconds: float = 0.0, weight: float = 1.0) -> SpeechStats:
        """These statistics with the rows of X added, each counting as `weight` clips (overlapping windows of a
        stream count for less than whole clips)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.mean))
        if not len(X):
            return self
        mean = X.mean(axis=0)
        return self.merge(SpeechStats(weight * len(X), mean, weight * np.square(X - mean).sum(axis=0), seconds))

    def merge(self, other: SpeechStats) -> SpeechStats:
        """The statistics of both together."""
        total = self.count + other.count
        if not other.count:
            return self
        delta = other.mean - self.mean
        return SpeechStats(total, self.mean + delta * other.count / total,
                           self.m2 + other.m2 + np.square(delta) * self.count * other.count / total,
                           self.seconds + other.seconds)

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count if self.count else np.zeros_like(self.m2)


@dataclass(frozen=True)
class Prior:
    """The training population's statistics a voice_norm model starts from: the mean of its training speakers'
    means, and their typical within-speaker std."""

    mean: np.ndarray
    std: np.ndarray

    def normalizer(self, room: SpeechStats | None = None,
                   voice: SpeechStats | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) to standardise a clip by: the population's, moved towards the room's mean as the room is
        heard, then towards the voice's mean and spread as the voice is. A room mixes voices, so its spread says
        little of one voice's: only its mean is used."""
        mean, var = self.mean.astype(np.float64), np.square(self.std.astype(np.float64))
        if room is not None and room.count:
            mean = (room.count * room.mean + ROOM_PRIOR * mean) / (room.count + ROOM_PRIOR)
        if voice is not None and voice.count:
            mean = (voice.count * voice.mean + VOICE_MEAN_PRIOR * mean) / (voice.count + VOICE_MEAN_PRIOR)
            var = (voice.count * voice.var + VOICE_SPREAD_PRIOR * var) / (voice.count + VOICE_SPREAD_PRIOR)
        return mean.astype(np.float32), np.maximum(np.sqrt(var), STD_FLOOR).astype(np.float32)


def population_prior(X: np.ndarray, speakers: Sequence[str]) -> Prior:
    """The Prior of training clip features X (one row per clip) of `speakers`."""
    stats = [SpeechStats.of(X[np.asarray(speakers) == s]) for s in np.unique(speakers)]
    return Prior(np.mean([s.mean for s in stats], axis=0).astype(np.float32),
                 np.maximum(np.sqrt(np.mean([s.var for s in stats], axis=0)), STD_FLOOR).astype(np.float32))


def training_features(X: np.ndarray, speakers: Sequence[str], rooms: Sequence[str], prior: Prior,
                      levels: Sequence[str] = LEVELS, seed: int = 0) -> np.ndarray:
    """Training clips X standardised as a voice_norm model will meet them: each clip at one of `levels`, drawn
    at random (seeded): by the population's statistics, by its room's (corpus) mean, or by its speaker's, as
    Prior.normalizer would with all of that room's or speaker's clips heard. One level per clip trains as well
    as all three stacked (on the benchmark, within 0.5 points at every scoring) at a third of the cost."""
    speakers, rooms = np.asarray(speakers), np.asarray(rooms)
    level = np.asarray(levels)[np.random.default_rng(seed).integers(0, len(levels), len(X))]
    out = np.empty_like(X, dtype=np.float32)
    for name, groups in (("population", np.zeros(len(X), dtype=int)), ("room", rooms), ("voice", speakers)):
        for group in np.unique(groups[level == name]):
            members = groups == group
            heard = None if name == "population" else SpeechStats.of(X[members])
            mean, std = prior.normalizer(**({name: heard} if heard is not None else {}))
            rows = members & (level == name)
            out[rows] = (X[rows] - mean) / std
    return out


def room_file(pipeline: Pipeline) -> Path:
    """Where what voice_norm models of `pipeline` have heard in this room is kept (config.rooms_dir)."""
    return config.rooms_dir() / f"{pipeline.name}-{pipeline.digest[:16]}.npz"


def load_room(pipeline: Pipeline) -> SpeechStats | None:
    """What this room has heard through `pipeline`'s features; None when nothing yet, or the file is damaged
    or of other features (it is then rebuilt as speech is heard)."""
    try:
        with np.load(room_file(pipeline), allow_pickle=False) as saved:
            stats = SpeechStats(float(saved["count"]), saved["mean"], saved["m2"], float(saved["seconds"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None
    ok = (stats.mean.ndim == 1 and stats.m2.shape == stats.mean.shape and stats.count > 0
          and np.isfinite(stats.mean).all() and np.isfinite(stats.m2).all() and (stats.m2 >= 0).all())
    return stats if ok else None


def add_to_room(pipeline: Pipeline, heard: SpeechStats) -> SpeechStats:
    """Merge what a session heard into the room's statistics on disk (under a lock, written atomically, so two
    sessions ending at once both count); returns the room's statistics now."""
    from .files import hold_lock, write_atomically

    file = room_file(pipeline)
    file.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(file.parent / ".lock"):
        room = load_room(pipeline)
        room = heard if room is None or room.mean.shape != heard.mean.shape else room.merge(heard)
        buffer = io.BytesIO()
        np.savez(buffer, count=room.count, mean=room.mean, m2=room.m2, seconds=room.seconds)
        write_atomically(file, lambda path: Path(path).write_bytes(buffer.getvalue()))
    return room


def forget_room(pipeline: Pipeline) -> None:
    """Start the room over (a new classroom, another microphone): remove its statistics file."""
    from .files import hold_lock

    file = room_file(pipeline)
    if file.parent.is_dir():
        with hold_lock(file.parent / ".lock"):
            file.unlink(missing_ok=True)

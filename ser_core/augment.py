"""Data augmentation as the SER literature uses it: noise, time stretch, time shift, pitch shift.

Pure functions over float32 mono arrays. Each kind has one parameter; one the caller leaves out
is drawn from `seed`. The global `random` and numpy RNGs decide nothing: audiomentations draws
its parameters from them, so its transforms get one fixed value (min == max), and the noise
comes from our own generator (AddGaussianSNR would use numpy's global one). So the same
(y, kind, seed, params) always gives the same output, and augment_spec_id can name it.
"""
from __future__ import annotations

import numpy as np

from ser_core.errors import OptionError

AUGMENTATIONS: tuple[str, ...] = ("noise", "stretch", "shift", "pitch")

# kind -> (its parameter, low, high): the uniform range a left-out parameter is drawn from.
DEFAULT_RANGES: dict[str, tuple[str, float, float]] = {
    "noise": ("snr_db", 15.0, 30.0),      # white Gaussian noise at this signal-to-noise ratio
    "stretch": ("rate", 0.8, 1.25),       # > 1 is faster and shorter; pitch kept
    "shift": ("seconds", -0.5, 0.5),      # > 0 delays the clip; same length, gap zero-filled
    "pitch": ("semitones", -4.0, 4.0),    # tempo kept
}


# For a listener (the Explore page): each parameter in words, and where its slider starts, at the setting in
# DEFAULT_RANGES that changes the sound most (noise at 30 dB is hard to hear at all).
DESCRIPTIONS: dict[str, str] = {
    "noise": "noise: signal-to-noise ratio in dB (lower = noisier)",
    "stretch": "speed (above 1 = faster, below 1 = slower)",
    "shift": "shift in seconds (above 0 = starts later)",
    "pitch": "pitch shift in semitones (above 0 = higher)",
}
MOST_AUDIBLE: dict[str, float] = {"noise": 15.0, "stretch": 1.25, "shift": 0.5, "pitch": 4.0}


def augment(y: np.ndarray, sr: int, kind: str, *, seed: int = 0,
            **params: float | None) -> np.ndarray:
    """An augmented float32 copy of mono `y` at the same `sr`.

    Parameters: noise `snr_db`, stretch `rate`, shift `seconds`, pitch `semitones`; left out
    (or None) they are drawn from `seed` within DEFAULT_RANGES. With the parameter given, only
    noise still depends on `seed` (the noise realisation). Stretch changes the length to about
    len(y) / rate; shift keeps the length, drops what moves past either end and fills the gap
    with silence (no wrap-around, which would move the end of a sentence to its start).
    """
    value = _parameter(kind, seed, params)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"augment expects a mono 1-D array, got shape {y.shape}")
    if kind == "noise":
        signal_rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
        noise_rms = signal_rms / 10 ** (value / 20)
        noise = np.random.default_rng([seed, 1]).normal(0.0, noise_rms, y.shape)
        return (y + noise).astype(np.float32)
    import audiomentations  # heavy (librosa, scipy): only when used

    if kind == "stretch":
        transform = audiomentations.TimeStretch(min_rate=value, max_rate=value,
                                                leave_length_unchanged=False, p=1.0)
    elif kind == "shift":
        transform = audiomentations.Shift(min_shift=value, max_shift=value, shift_unit="seconds",
                                          rollover=False, p=1.0)
    else:
        transform = audiomentations.PitchShift(min_semitones=value, max_semitones=value, p=1.0)
    return np.asarray(transform(y, sr), dtype=np.float32)


def augment_spec_id(kind: str, seed: int = 0, **params: float | None) -> str:
    """A short stable name for exactly what augment(y, sr, kind, seed=seed, **params) does.

    Used in feature cache keys, e.g. "stretch:rate=1.25" or "noise:snr_db=20.0,seed=3": the
    parameter actually used, and the seed only where it still changes the output.
    """
    value = _parameter(kind, seed, params)
    seed_part = f",seed={seed}" if kind == "noise" else ""
    return f"{kind}:{DEFAULT_RANGES[kind][0]}={value!r}{seed_part}"


def _parameter(kind: str, seed: int, params: dict[str, float | None]) -> float:
    """The one parameter of `kind`: the caller's value, else a draw from `seed` (3 decimals)."""
    if kind not in DEFAULT_RANGES:
        raise OptionError(f"unknown augmentation {kind!r}; choose one of: "
                          f"{', '.join(AUGMENTATIONS)}")
    key, low, high = DEFAULT_RANGES[kind]
    unexpected = sorted(set(params) - {key})
    if unexpected:
        raise OptionError(f"augmentation {kind!r} takes only {key}=..., "
                          f"not {', '.join(unexpected)}")
    if params.get(key) is not None:
        return float(params[key])
    # Drawn from [seed, 0], independent of the noise stream [seed, 1]; 3 decimals keep ids short.
    return round(float(np.random.default_rng([seed, 0]).uniform(low, high)), 3)

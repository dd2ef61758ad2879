"""DSP kernels shared by the feature pipelines and explain.py: librosa's numbers from numpy and scipy.

STFT frames and power, silence trimming, mel and chroma filter banks, DCT, ZCR, RMS, deltas and a vectorised
YIN. Only librosa.filters.mel is called from librosa: the rest of it compiles numba code on import (about
15 s per process in a fresh environment), so the other kernels are ported and tests compare their numbers.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import config


def frames(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """(frames, n_fft) view of centred frames, zero-padded by n_fft // 2 at both ends like librosa.stft."""
    padded = np.pad(y, n_fft // 2)
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]


def stft_power(frames: np.ndarray) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window, (frames, 1 + n_fft // 2) float32: librosa.stft's numbers."""
    import scipy.fft

    spectrum = scipy.fft.rfft(frames * hann_window(frames.shape[1]), axis=1)
    return np.square(spectrum.real) + np.square(spectrum.imag)


def loud_span(energy: np.ndarray, trim_db: float | None) -> slice:
    """Frames from the first to the last within trim_db of the loudest (all when None or silent)."""
    if trim_db is None:
        return slice(None)
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (-trim_db / 10))
    return slice(loud[0], loud[-1] + 1) if loud.size else slice(None)


def span_samples(y: np.ndarray, span: slice, hop_length: int) -> np.ndarray:
    """The samples of a loud_span of frames, as librosa.effects.trim maps frames to samples."""
    if span.start is None:
        return y
    return y[span.start * hop_length:min(len(y), span.stop * hop_length)]


def fit_frames(a: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or centre-pad with zeros (silence) along axis 0 to n frames."""
    if len(a) >= n:
        start = (len(a) - n) // 2
        return a[start:start + n]
    before = (n - len(a)) // 2
    return np.pad(a, [(before, n - len(a) - before)] + [(0, 0)] * (a.ndim - 1))


def power_to_db(power: np.ndarray, top_db: float | None) -> np.ndarray:
    """librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db)."""
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    return db if top_db is None else np.maximum(db, db.max() - top_db)


def dct(log_mel: np.ndarray) -> np.ndarray:
    """MFCC of (frames, n_mels) log-mel, all coefficients: DCT-II, orthonormal, as librosa.feature.mfcc."""
    import scipy.fft

    return scipy.fft.dct(log_mel, axis=1, type=2, norm="ortho")


def zcr(frames: np.ndarray) -> np.ndarray:
    """Share of sign changes between neighbouring samples, per frame."""
    return np.mean(np.signbit(frames[:, 1:]) != np.signbit(frames[:, :-1]), axis=1, dtype=np.float32)


def rms(frames: np.ndarray) -> np.ndarray:
    """Root mean square of each frame's samples."""
    return np.sqrt(np.mean(np.square(frames), axis=1))


def delta(a: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression slope over +-width frames along axis 0 (edges repeated): the usual MFCC deltas."""
    padded = np.pad(a, [(width, width), (0, 0)], mode="edge")
    n = len(a)
    slope = sum(k * (padded[width + k:width + k + n] - padded[width - k:width - k + n]) for k in range(1, width + 1))
    return slope / (2 * sum(k * k for k in range(1, width + 1)))


def yin(frames: np.ndarray, sr: int, fmin: float, fmax: float,
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


@functools.cache
def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann, as scipy.signal.get_window("hann", n_fft) gives librosa.stft."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@functools.cache
def mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels), (n_mels, 1 + n_fft // 2), built once per process."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


@functools.cache
def chroma_basis(sr: int, n_fft: int, n_chroma: int) -> np.ndarray:
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


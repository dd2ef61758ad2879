"""Small synthetic clips that tests write for themselves (no corpus files in the project)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def voice(duration: float = 1.5, sr: int = 16_000, f0: float = 150.0, channels: int = 1,
          seed: int = 0, level: float = 0.5) -> np.ndarray:
    """A voiced, speech-like signal: harmonics of a gliding f0 under a syllable envelope, plus a little noise.

    Returns float32 samples, shape (n,) for mono or (n, channels).
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t - np.pi / 2)
    y = y * envelope + 0.02 * rng.standard_normal(n)
    y = (level * y / np.max(np.abs(y))).astype(np.float32)
    if channels > 1:
        y = np.stack([y * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return y


def write_clip(path: str | Path, duration: float = 1.5, sr: int = 16_000, f0: float = 150.0,
               channels: int = 1, seed: int = 0, level: float = 0.5, format: str | None = None,
               subtype: str | None = None) -> Path:
    """Write a speech-like clip with soundfile (WAV, FLAC, AIFF, OGG; format from the suffix by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, voice(duration, sr, f0, channels, seed, level), sr, format=format, subtype=subtype)
    return path


def write_mp3(path: str | Path, duration: float = 1.5, sr: int = 16_000, f0: float = 150.0,
              channels: int = 1, seed: int = 0) -> Path:
    """Write an MP3 (or any container PyAV can encode, by suffix) of a speech-like clip."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = voice(duration, sr, f0, channels, seed)
    y = y.reshape(len(y), -1).T  # (channels, n)
    # No Vorbis encoder in PyAV's wheels: .ogg gets Opus, which always encodes at 48 kHz (PyAV resamples).
    codec = {".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libopus", ".opus": "libopus",
             ".webm": "libopus"}[path.suffix]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sr if codec != "libopus" else 48_000)
        stream.layout = "mono" if channels == 1 else "stereo"
        # Planar float, one row per channel (a packed "flt" frame would need the channels interleaved).
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y, dtype=np.float32), format="fltp",
                                           layout=stream.layout.name)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path

"""A folder of hostile and odd inputs, written by the tests themselves: what careless hands, old drives and broken
encoders hand SER Studio. Each file is named `<speaker>_<kind>.<ext>`, so it also fits a class corpus's
`<label>/<speaker>_*.wav` layout."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.clips import voice, write_clip, write_mp3

# Inputs every command must classify like any clip: odd rates, channel counts, encodings and suffixes, and a
# header whose data size is a lie (the samples there are read).
READABLE = ("rate8k", "rate11k", "rate96k", "rate192k", "stereo44k", "six_channels", "pcm24", "pcm32", "float64",
            "ulaw", "flac_in_wav_suffix", "non_utf8", "huge_data_chunk")
# Inputs that cannot be classified: each must get a one-line reason.
UNUSABLE = ("random_bytes", "empty", "text", "truncated_wav_header", "truncated_flac", "truncated_ogg",
            "truncated_mp3", "truncated_m4a", "many_channels", "rate_zero", "rate_one",
            "nan", "inf", "all_nan", "silent", "constant", "too_short", "empty_flac", "dangling_link")


def _wav_header(*, channels: int, rate: int, bits: int, data_bytes: int, riff_bytes: int | None = None) -> bytes:
    """A canonical 44-byte PCM WAV header whose fields are whatever the caller claims."""
    block = channels * bits // 8
    riff_bytes = 36 + data_bytes if riff_bytes is None else riff_bytes
    return (b"RIFF" + struct.pack("<I", riff_bytes & 0xFFFFFFFF) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block & 0xFFFFFFFF, block, bits)
            + b"data" + struct.pack("<I", data_bytes & 0xFFFFFFFF))


def _pcm16(y: np.ndarray) -> bytes:
    return (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def _truncated(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])


def write_hostile_folder(folder: str | Path, speaker: str = "s1", seed: int = 0) -> dict[str, Path]:
    """Write one file of every kind in READABLE and UNUSABLE into `folder`; returns kind -> path (a non-UTF-8 name
    is returned as the str Python makes of it, with a surrogate escape)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    one_second = voice(1.5, seed=seed)
    paths: dict[str, Path] = {}

    def name(kind: str, ext: str = ".wav") -> Path:
        paths[kind] = folder / f"{speaker}_{kind}{ext}"
        return paths[kind]

    for kind, rate in (("rate8k", 8000), ("rate11k", 11025), ("rate96k", 96000), ("rate192k", 192000)):
        write_clip(name(kind), duration=1.5, sr=rate, seed=seed)
    write_clip(name("stereo44k"), duration=1.5, sr=44100, channels=2, seed=seed)
    write_clip(name("six_channels"), duration=1.5, sr=48000, channels=6, seed=seed)
    for kind, subtype in (("pcm24", "PCM_24"), ("pcm32", "PCM_32"), ("float64", "DOUBLE"), ("ulaw", "ULAW")):
        write_clip(name(kind), duration=1.5, subtype=subtype, seed=seed)
    write_clip(name("flac_in_wav_suffix"), duration=1.5, format="FLAC", seed=seed)
    # A name copied from an old FAT drive: Latin-1 bytes that are not UTF-8.
    raw = os.path.join(os.fsencode(folder), f"{speaker}_non_utf8_caf".encode() + b"\xe9.wav")
    sf.write(raw, one_second, 16_000)
    paths["non_utf8"] = Path(os.fsdecode(raw))

    name("random_bytes").write_bytes(rng.integers(0, 256, 8192, dtype=np.uint8).tobytes())
    name("empty").write_bytes(b"")
    name("text").write_bytes(b"these are lecture notes, not a recording\n" * 50)
    write_clip(name("truncated_wav_header"), duration=1.5, seed=seed)
    _truncated(paths["truncated_wav_header"], 30 / paths["truncated_wav_header"].stat().st_size)
    for kind, ext in (("truncated_flac", ".flac"), ("truncated_ogg", ".ogg")):
        write_clip(name(kind, ext), duration=1.5, seed=seed)
        _truncated(paths[kind], 0.05)
    for kind, ext in (("truncated_mp3", ".mp3"), ("truncated_m4a", ".m4a")):
        write_mp3(name(kind, ext), duration=1.5, seed=seed)
        _truncated(paths[kind], 0.02)
    # Headers that lie: a data chunk of 4 GiB holding 1.5 s, 4096 channels, a rate of 0 or 1 Hz.
    name("huge_data_chunk").write_bytes(
        _wav_header(channels=1, rate=16000, bits=16, data_bytes=0xFFFFFFF0, riff_bytes=0xFFFFFFFF)
        + _pcm16(one_second))
    name("many_channels").write_bytes(
        _wav_header(channels=4096, rate=16000, bits=16, data_bytes=4096 * 2 * 8) + bytes(4096 * 2 * 8))
    pcm = _pcm16(one_second)
    name("rate_zero").write_bytes(_wav_header(channels=1, rate=0, bits=16, data_bytes=len(pcm)) + pcm)
    name("rate_one").write_bytes(_wav_header(channels=1, rate=1, bits=16, data_bytes=len(pcm)) + pcm)
    # Float WAVs holding NaN or infinity (a broken effect plug-in writes these).
    spoilt = one_second.copy()
    spoilt[1000:1100] = np.nan
    sf.write(name("nan"), spoilt, 16_000, subtype="FLOAT")
    spoilt = one_second.copy()
    spoilt[2000] = np.inf
    sf.write(name("inf"), spoilt, 16_000, subtype="FLOAT")
    sf.write(name("all_nan"), np.full(24_000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    sf.write(name("silent"), np.zeros(32_000, dtype=np.float32), 16_000)
    sf.write(name("constant"), np.full(32_000, 0.5, dtype=np.float32), 16_000)
    sf.write(name("too_short"), one_second[:1600], 16_000)
    name("empty_flac", ".flac").write_bytes(b"")
    os.symlink(folder / "no-such-recording.wav", name("dangling_link"))
    assert set(paths) == set(READABLE) | set(UNUSABLE)
    return paths

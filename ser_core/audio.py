"""Audio input: any path, bytes or upload in; float32 mono at one sample rate out.

soundfile reads WAV, FLAC, AIFF, OGG and MP3 by their content, not their extension (TESS has
AIFF data in files named .wav); anything else ffmpeg decodes (M4A/AAC, WebM/Opus, ...) goes
through PyAV. Every failure a user can cause raises a typed error from ser_core.errors whose
message names the input and says what to do. load_audio refuses recordings longer than
MAX_DURATION; iter_windows streams recordings of any length in bounded memory.
"""
from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import soundfile as sf
import soxr

from ser_core.config import (
    AUDIO_EXTENSIONS, MAX_DURATION, MAX_SAMPLE_RATE, MIN_DURATION, MIN_SAMPLE_RATE, SAMPLE_RATE, SILENCE_DBFS, TRIM_TOP_DB,
)
from ser_core.errors import (
    AudioError, CorruptAudioError, EmptyAudioError, NotAudioError, OptionError, SilentAudioError,
    TooLongError, TooShortError,
)

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]

PEAK_LEVEL = 0.95         # peak after normalisation: full scale less a little headroom
BLOCK_FRAMES = 65_536     # frames decoded at a time; what bounds memory when streaming
RESAMPLE_QUALITY = "HQ"   # soxr quality for every rate conversion
UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's frames of a file that does not record its length (streamed FLAC)

_SUPPORTED = ", ".join(ext.lstrip(".").upper() for ext in AUDIO_EXTENSIONS)
_NOT_FINITE = ("holds samples that are not numbers (NaN or infinity), which no model can use. "
               "Export or record it again.")
_SURROGATES = re.compile("[\ud800-\udfff]")  # how Python keeps the bytes of a name that are not UTF-8
# PyAV demuxer names that read badly to a user.
_CONTAINER_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "MP4", "matroska,webm": "WEBM"}
# First bytes of MPEG audio and ADTS AAC frames (no ID3 tag in front).
_MPEG_SYNC = (b"\xff\xfb", b"\xff\xfa", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3", b"\xff\xe2",
              b"\xff\xf1", b"\xff\xf9")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read without decoding its samples.

    duration and frames are None where the container does not record its length
    (e.g. WebM from a browser recorder, FLAC from a streaming encoder).
    """

    duration: float | None
    sample_rate: int
    channels: int
    format: str
    frames: int | None


@dataclass(frozen=True)
class _Input:
    """A source resolved to a file on disk or bytes in memory, with the name errors show."""

    name: str
    head: bytes
    path: Path | None = None
    data: bytes | None = None

    def handle(self) -> str | io.BytesIO:
        """A fresh handle for PyAV, which encodes a path as the file system does."""
        return str(self.path) if self.path is not None else io.BytesIO(self.data)

    def sound_file(self) -> sf.SoundFile:
        """The input opened with soundfile; a path goes as bytes, as soundfile refuses a str that is not UTF-8."""
        return sf.SoundFile(os.fsencode(self.path) if self.path is not None else io.BytesIO(self.data))


def load_audio(source: AudioSource, sr: int = SAMPLE_RATE, *, normalize: bool = True,
               trim: bool = False, max_duration: float | None = MAX_DURATION,
               min_duration: float = MIN_DURATION, name: str | None = None) -> np.ndarray:
    """Decode a whole clip to float32 mono at `sr`, refusing what a model could not use.

    `source` is a path, raw bytes, or a file-like object with .read() (an upload; its .name
    is used in messages unless `name` is given). Channels are averaged, the rate is converted
    with soxr, silence is refused (before normalising, which would hide it), leading and
    trailing silence is trimmed if `trim`, and the peak is scaled to PEAK_LEVEL if
    `normalize`. Raises EmptyAudioError, NotAudioError, CorruptAudioError (also for samples
    that are NaN or infinite, which float files can hold), SilentAudioError,
    TooShortError (measured after trimming) or TooLongError (from the header where it has a
    length, so a huge file is never decoded whole).
    """
    inp = _resolve(source, name)
    with _decoder(inp) as (info, blocks):
        if max_duration is not None and info.duration is not None and info.duration > max_duration:
            raise _too_long(inp.name, max_duration, info.duration)
        parts, frames = [], 0
        for block in blocks:
            frames += len(block)
            if max_duration is not None and frames > max_duration * info.sample_rate:
                raise _too_long(inp.name, max_duration)
            parts.append(block)
    if not frames:
        raise EmptyAudioError(f"{inp.name}: this file holds no audio samples. "
                              "Choose a recording that has sound in it.")
    y = np.concatenate(parts)
    if is_silent(y):  # at the file's own rate: resampling rings at the edges of a constant clip
        raise _silent(inp.name, y)
    if info.sample_rate != sr:
        y = soxr.resample(y, info.sample_rate, sr, quality=RESAMPLE_QUALITY)
    if trim:
        import librosa  # heavy import, only when trimming

        y, _ = librosa.effects.trim(y, top_db=TRIM_TOP_DB)
    if len(y) < min_duration * sr:
        after = " after trimming silence" if trim else ""
        raise TooShortError(f"{inp.name}: this clip is {len(y) / sr:.2f} s long{after}; at least "
                            f"{min_duration:g} s is needed. Choose a longer recording.")
    if normalize:
        y = peak_normalize(y)
    return y.astype(np.float32, copy=False)


def audio_info(source: AudioSource, *, name: str | None = None) -> AudioInfo:
    """Duration, rate, channels and format from the header only, for showing an upload quickly.

    Raises the same errors as load_audio for empty, non-audio and damaged input.
    """
    with _decoder(_resolve(source, name)) as (info, _):
        return info


def iter_windows(source: AudioSource, window: float = 3.0, hop: float = 1.0,
                 sr: int = SAMPLE_RATE, *, normalize: bool = False,
                 name: str | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (start seconds, float32 mono window at `sr`) over a clip of any length.

    The clip is decoded block by block and resampled with a streaming resampler, so memory
    stays about one window whatever the length; there is no MAX_DURATION limit. Windows start
    every `hop` seconds and hold exactly `window` seconds, except the last: if samples remain
    after the last full window, one shorter window from the next start to the end follows,
    when it is at least MIN_DURATION long. Nothing is zero-padded (that is the caller's
    choice), so a clip shorter than `window` gives one window with the whole clip. Silent
    windows are yielded (see is_silent); `normalize` scales each non-silent window's peak to
    PEAK_LEVEL. Raises TooShortError if the whole clip is shorter than MIN_DURATION, and the
    load_audio errors for empty, non-audio and damaged input (a file damaged midway raises
    CorruptAudioError after the windows before the damage).
    """
    inp = _resolve(source, name)
    with _decoder(inp) as (info, blocks):
        chunks = _resampled(blocks, info.sample_rate, sr)
        total, covered = yield from _windowed(chunks, sr, window, hop, normalize)
    if not covered and not total:
        raise EmptyAudioError(f"{inp.name}: this file holds no audio samples. "
                              "Choose a recording that has sound in it.")
    if not covered and total < math.ceil(MIN_DURATION * sr):
        raise TooShortError(f"{inp.name}: this clip is {total / sr:.2f} s long; at least "
                            f"{MIN_DURATION:g} s is needed. Choose a longer recording.")


def windows_of(y: np.ndarray, sr: int = SAMPLE_RATE, window: float = 3.0, hop: float = 1.0, *,
               normalize: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """The windows iter_windows would give, of samples already decoded (load_audio's output)."""
    yield from _windowed([np.asarray(y, dtype=np.float32)], sr, window, hop, normalize)


def _windowed(chunks: Iterable[np.ndarray], sr: int, window: float, hop: float,
              normalize: bool) -> Iterator[tuple[float, np.ndarray]]:
    """Windows of `window` s every `hop` s over consecutive chunks, and a shorter last one (see iter_windows).

    Returns (samples seen, samples covered by yielded windows), for the caller's errors.
    """
    check_windows(window, hop)
    size, step, shortest = round(window * sr), round(hop * sr), math.ceil(MIN_DURATION * sr)
    buffer, start, covered = np.zeros(0, np.float32), 0, 0
    for chunk in chunks:
        buffer = np.concatenate([buffer, chunk])
        while len(buffer) >= size:
            yield start / sr, _scaled(buffer[:size].copy(), normalize)
            covered = start + size
            buffer, start = buffer[step:], start + step
    total = start + len(buffer)
    if total > covered and len(buffer) >= shortest:
        yield start / sr, _scaled(buffer, normalize)
        covered = total
    return total, covered


def check_windows(window: float, hop: float) -> None:
    """Raise OptionError unless 0 < hop <= window <= MAX_DURATION: a window is held in memory whole."""
    if not 0 < hop <= window <= MAX_DURATION:  # False for NaN too
        raise OptionError(f"window and hop must satisfy 0 < hop <= window <= {MAX_DURATION:g} s (got window "
                          f"{window:g} s, hop {hop:g} s). Choose a window of at most {MAX_DURATION:g} s and a "
                          "hop no longer than it.")


def is_silent(y: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """Whether the largest swing from the mean stays under `threshold_dbfs` (full scale 1.0): a constant
    offset is no sound; empty is silent."""
    return not y.size or _swing(y) < 10 ** (threshold_dbfs / 20)


def _swing(y: np.ndarray) -> float:
    return float(np.max(np.abs(y - np.mean(y))))


def to_wav_bytes(y: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV bytes of a clip, for playback in the browser (clipped to full scale).

    Raises CorruptAudioError for NaN or infinite samples, which 16-bit PCM would store as full scale.
    """
    if not np.isfinite(y).all():
        raise CorruptAudioError(f"The audio {_NOT_FINITE}")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(y, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def printable(path: str | bytes | os.PathLike) -> str:
    """A path as text any page, terminal or table takes: bytes of a name that are not UTF-8 (which Python
    keeps as surrogate escapes, os.fsdecode) become U+FFFD."""
    return _SURROGATES.sub("\ufffd", os.fsdecode(path))


def source_name(source: AudioSource, name: str | None = None) -> str:
    """How messages name an input: `name`, else a path's or an upload's file name, else "the upload"."""
    if isinstance(source, (str, os.PathLike)):
        return printable(name or Path(source).name)
    upload_name = getattr(source, "name", None)
    name = name or (Path(upload_name).name if isinstance(upload_name, str) else None)
    return printable(name) if name else "the upload"


def _resolve(source: Any, name: str | None) -> _Input:
    """Turn a path, bytes or file-like object into an _Input; refuse missing and empty input."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        label = source_name(source, name)
        try:
            with open(path, "rb") as file:
                head = file.read(16)
        except FileNotFoundError:
            raise AudioError(f"{printable(path)}: no such file. Check the path and try again.") from None
        except IsADirectoryError:
            raise AudioError(f"{printable(path)}: this is a folder, not an audio file. "
                             "Choose a recording inside it.") from None
        except OSError as error:
            raise AudioError(f"{printable(path)}: the file cannot be read ({error.strerror}). "
                             "Check that it is readable and try again.") from None
        if not head:
            raise _empty(label)
        return _Input(label, head, path=path.absolute())
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        # getvalue() (BytesIO, Streamlit's UploadedFile) gives everything whatever was read before.
        # A file object is read from its start, so that reading its header first (audio_info) loses nothing.
        if hasattr(source, "getvalue"):
            data = source.getvalue()
        else:
            if hasattr(source, "seekable") and source.seekable():
                source.seek(0)
            data = source.read()
        if not isinstance(data, bytes):
            raise TypeError("the file-like object must be opened in binary mode ('rb')")
    else:
        raise TypeError(f"expected a path, bytes or a file-like object, not {type(source).__name__}")
    label = source_name(source, name)
    if not data:
        raise _empty(label)
    return _Input(label, data[:16], data=data)


@contextmanager
def _decoder(inp: _Input) -> Iterator[tuple[AudioInfo, Iterator[np.ndarray]]]:
    """Open the input with soundfile, else PyAV; give its header info and its mono float32 blocks."""
    try:
        sound_file = inp.sound_file()
    except sf.SoundFileError:
        sound_file = None  # not a format libsndfile knows: ffmpeg may
    if sound_file is not None and sound_file.frames == UNKNOWN_FRAMES:
        sound_file.close()  # libsndfile fails reading to the end of a file that does not record its length
        sound_file = None
    if sound_file is not None:
        with sound_file:
            _check_rate(sound_file.samplerate, inp)
            info = AudioInfo(sound_file.frames / sound_file.samplerate, sound_file.samplerate,
                             sound_file.channels, sound_file.format, sound_file.frames)
            yield info, _finite(_soundfile_blocks(sound_file, inp), inp)
        return
    import av  # PyAV is only needed for compressed formats

    try:
        container = av.open(inp.handle(), metadata_errors="ignore")
    except av.FFmpegError:
        raise _unreadable(inp) from None
    with container:
        if not container.streams.audio:
            raise _not_audio(inp)
        stream = container.streams.audio[0]
        _check_rate(stream.codec_context.sample_rate, inp)
        yield _container_info(container, stream), _finite(_container_blocks(container, stream, inp), inp)


def _check_rate(rate: int, inp: _Input) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise CorruptAudioError(f"{inp.name}: this audio file is damaged: its header gives a sample rate of "
                                f"{rate} Hz, where recordings use {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz. "
                                "Export or record it again.")


def _finite(blocks: Iterator[np.ndarray], inp: _Input) -> Iterator[np.ndarray]:
    """The blocks, refusing the first that holds NaN or infinity (a float file can; no model reads them)."""
    for block in blocks:
        if not np.isfinite(block).all():
            raise CorruptAudioError(f"{inp.name}: this audio file is damaged: it {_NOT_FINITE}")
        yield block


def _soundfile_blocks(sound_file: sf.SoundFile, inp: _Input) -> Iterator[np.ndarray]:
    """Mono float32 blocks until the data ends (a file cut mid-data just ends early)."""
    while True:
        try:
            block = sound_file.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        except sf.SoundFileError:
            raise _corrupt(inp) from None
        if not len(block):
            return
        yield block.mean(axis=1)


def _container_info(container: Any, stream: Any) -> AudioInfo:
    """AudioInfo from a PyAV container's header (duration from the stream, else the container)."""
    import av

    rate = stream.codec_context.sample_rate
    if stream.duration is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    name = container.format.name
    return AudioInfo(duration, rate, stream.codec_context.channels,
                     _CONTAINER_FORMATS.get(name, name.split(",")[0].upper()),
                     None if duration is None else round(duration * rate))


def _container_blocks(container: Any, stream: Any, inp: _Input) -> Iterator[np.ndarray]:
    """Mono float32 blocks decoded frame by frame, whatever the codec's sample format or layout."""
    import av

    to_float = av.AudioResampler(format="fltp")  # keeps rate and layout: no buffering
    try:
        for frame in container.decode(stream):
            for converted in to_float.resample(frame):
                yield converted.to_ndarray().mean(axis=0)
    except av.FFmpegError:
        raise _corrupt(inp) from None


def _resampled(blocks: Iterator[np.ndarray], in_rate: int, out_rate: int) -> Iterator[np.ndarray]:
    """The blocks at `out_rate`, through one streaming resampler so block edges leave no trace."""
    if in_rate == out_rate:
        yield from blocks
        return
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    for block in blocks:
        yield stream.resample_chunk(block)
    yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def peak_normalize(y: np.ndarray) -> np.ndarray:
    """Samples with their peak scaled to PEAK_LEVEL, as every clip and window is before its features (keeps the
    dtype). Not for silence, whose noise floor would be blown up: check is_silent first."""
    return y * (PEAK_LEVEL / np.max(np.abs(y)))


def _scaled(y: np.ndarray, normalize: bool) -> np.ndarray:
    """A window peak-normalised when asked, unless silent."""
    return peak_normalize(y) if normalize and not is_silent(y) else y


def _looks_like_audio(head: bytes) -> bool:
    """Whether the first bytes carry an audio format's signature, so a failed decode means damage."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64"):
        return head[8:12] == b"WAVE"
    if head[:4] == b"FORM":
        return head[8:12] in (b"AIFF", b"AIFC")
    return (head[4:8] == b"ftyp"  # MP4 / M4A
            or head.startswith((b"fLaC", b"OggS", b"ID3", b"\x1aE\xdf\xa3", b"caff", b".snd"))
            or head.startswith(_MPEG_SYNC))


def _empty(name: str) -> EmptyAudioError:
    return EmptyAudioError(f"{name}: this file is empty (0 bytes). "
                           "Choose a recording that has sound in it.")


def _not_audio(inp: _Input) -> NotAudioError:
    return NotAudioError(f"{inp.name}: this is not an audio recording. "
                         f"Choose a sound file ({_SUPPORTED}).")


def _corrupt(inp: _Input) -> CorruptAudioError:
    return CorruptAudioError(f"{inp.name}: this audio file is damaged or cut short and cannot be "
                             "decoded. Export or record it again.")


def _unreadable(inp: _Input) -> AudioError:
    """Neither decoder opens it: damaged if it starts like audio, otherwise not audio at all."""
    return _corrupt(inp) if _looks_like_audio(inp.head) else _not_audio(inp)


def _silent(name: str, y: np.ndarray) -> SilentAudioError:
    swing = _swing(y)
    level = ("every sample is zero" if not y.any() else "every sample has the same value" if swing == 0
             else f"its loudest sound is {20 * math.log10(swing):.0f} dBFS")
    return SilentAudioError(f"{name}: this recording is silent ({level}; below {SILENCE_DBFS:g} "
                            "dBFS counts as silence). Check that the microphone was on, or choose "
                            "a recording with speech in it.")


def _too_long(name: str, max_duration: float, duration: float | None = None) -> TooLongError:
    length = f"{duration:.0f} s long" if duration is not None else f"longer than {max_duration:g} s"
    return TooLongError(f"{name}: this recording is {length}; only clips up to {max_duration:g} s "
                        "are loaded whole. Analyse it window by window (the timeline) instead, "
                        "or cut it shorter.")

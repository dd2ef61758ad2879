"""ser_core.audio on real files in every format we accept, and on the inputs users get wrong."""
from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from ser_core.audio import (
    PEAK_LEVEL, AudioInfo, audio_info, is_silent, iter_windows, load_audio, to_wav_bytes,
)
from ser_core.config import MAX_DURATION, SAMPLE_RATE
from ser_core.errors import (
    AudioError, CorruptAudioError, EmptyAudioError, NotAudioError, OptionError, SilentAudioError,
    TooLongError, TooShortError,
)
from tests.clips import voice, write_clip, write_mp3

SR = SAMPLE_RATE


def tone(path: Path, freq: float, sr: int, duration: float = 1.0, level: float = 0.5,
         format: str | None = None) -> Path:
    """A pure sine, so the dominant frequency after loading is unambiguous."""
    t = np.arange(int(duration * sr)) / sr
    sf.write(path, (level * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=format)
    return path


def dominant_frequency(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


def sparse_wav(path: Path, seconds: float, sr: int = 8_000, speech: float = 5.0) -> Path:
    """A 16-bit mono WAV of `seconds`: speech first, then zeros the filesystem does not store."""
    n_bytes = int(seconds * sr) * 2
    pcm = (voice(speech, sr) * 32767).astype("<i2").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
              + b"data" + struct.pack("<I", n_bytes))
    with open(path, "wb") as file:
        file.write(header + pcm)
        file.truncate(len(header) + n_bytes)
    return path


def webm_bytes(y: np.ndarray, sr: int = 48_000) -> bytes:
    """WebM/Opus of (channels, n) samples, written to a non-seekable sink so the header has no
    length, as browser recorders write it."""
    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, chunk: bytes) -> int:
            self.data += chunk
            return len(chunk)

    sink = Sink()
    layout = "mono" if len(y) == 1 else "stereo"
    with av.open(sink, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y, np.float32), format="fltp",
                                           layout=layout)
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return bytes(sink.data)


def png_bytes() -> bytes:
    """A real 8x8 PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(range(24)) for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def best_correlation(y: np.ndarray, reference: np.ndarray, max_lag: int) -> float:
    """Highest normalised correlation of y with the reference over lags up to max_lag (codec delay)."""
    n = min(len(y), len(reference)) - max_lag
    ref = reference[:n] / np.linalg.norm(reference[:n])
    return max(float(np.dot(y[lag:lag + n], ref) / np.linalg.norm(y[lag:lag + n]))
               for lag in range(max_lag + 1))


class Upload:
    """Stands in for an upload object: only .read() and .name."""

    def __init__(self, data: bytes, name: str) -> None:
        self._data, self.name = data, name

    def read(self) -> bytes:
        return self._data


# --- decoding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("suffix", [".wav", ".flac", ".aiff", ".ogg"])
def test_soundfile_formats_load_as_float32_mono_at_16k(tmp_path, suffix, rate, channels):
    path = write_clip(tmp_path / f"clip{suffix}", duration=1.5, sr=rate, channels=channels)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 1.5 * SR) <= 2
    assert np.max(np.abs(y)) == pytest.approx(PEAK_LEVEL, abs=1e-6)
    # The stereo channels are y and 0.9 y: their mean, normalised, is the mono clip.
    mono = load_audio(write_clip(tmp_path / f"mono{suffix}", duration=1.5, sr=rate))
    if suffix == ".ogg":  # Vorbis is lossy and codes stereo differently
        assert np.corrcoef(y, mono)[0, 1] > 0.98
    else:
        assert np.allclose(y, mono, atol=1e-3)
    assert best_correlation(y, voice(1.5, SR), max_lag=50) > 0.97


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("suffix, rate", [(".mp3", 44_100), (".m4a", 44_100), (".m4a", 16_000),
                                          (".webm", 48_000), (".ogg", 22_050)])
def test_compressed_formats_load_through_the_right_decoder(tmp_path, suffix, rate, channels):
    path = write_mp3(tmp_path / f"clip{suffix}", duration=1.5, sr=rate, channels=channels)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / SR - 1.5) < 0.11  # AAC keeps its 1024-sample priming
    assert np.max(np.abs(y)) == pytest.approx(PEAK_LEVEL, abs=1e-6)
    assert best_correlation(y, voice(1.5, SR), max_lag=int(0.11 * SR)) > 0.9


def test_channels_are_averaged(tmp_path):
    """Left and right carry different tones: the mono clip has both, equally strong."""
    sr = 48_000
    t = np.arange(sr) / sr
    stereo = 0.5 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1000 * t)])
    sf.write(tmp_path / "two_tones.wav", stereo.T, sr)
    for source in (tmp_path / "two_tones.wav", webm_bytes(stereo)):
        y = load_audio(source)
        spectrum = np.abs(np.fft.rfft(y))  # 1 s: bin k is k Hz
        assert spectrum[440] == pytest.approx(spectrum[1000], rel=0.1)
        assert spectrum[440] > 100 * np.median(spectrum)


@pytest.mark.parametrize("rate, freq", [(8_000, 1_000.0), (22_050, 440.0), (44_100, 3_000.0),
                                        (48_000, 6_000.0)])
def test_resampling_keeps_the_frequency(tmp_path, rate, freq):
    y = load_audio(tone(tmp_path / "tone.wav", freq, rate))
    assert len(y) == SR
    assert dominant_frequency(y, SR) == pytest.approx(freq, abs=2.0)


def test_other_target_rates(tmp_path):
    path = tone(tmp_path / "tone.flac", 440.0, 44_100)
    for sr in (8_000, 22_050, 44_100):
        y = load_audio(path, sr=sr)
        assert len(y) == sr and dominant_frequency(y, sr) == pytest.approx(440.0, abs=2.0)


def test_aiff_data_in_a_wav_named_file_loads(tmp_path):
    """TESS has files named .wav that hold AIFF: the content decides, not the name."""
    disguised = write_clip(tmp_path / "OAF_back_angry.wav", sr=24_414, format="AIFF")
    assert disguised.read_bytes()[:4] == b"FORM"
    assert audio_info(disguised).format == "AIFF"
    honest = write_clip(tmp_path / "same.aiff", sr=24_414)
    assert np.array_equal(load_audio(disguised), load_audio(honest))


def test_bytes_bytesio_and_uploads_load_like_the_path(tmp_path):
    for path in (write_clip(tmp_path / "a.flac", sr=22_050, channels=2),
                 write_mp3(tmp_path / "a.mp3", sr=44_100)):
        expected = load_audio(path)
        data = path.read_bytes()
        already_read = io.BytesIO(data)
        already_read.read()  # an app may have read the upload before; getvalue() still has it all
        for source in (str(path), data, bytearray(data), io.BytesIO(data), already_read,
                       Upload(data, path.name)):
            assert np.array_equal(load_audio(source), expected), type(source)
        with open(path, "rb") as file:
            assert np.array_equal(load_audio(file), expected)


def test_a_file_cut_mid_data_loads_what_is_there(tmp_path):
    data = write_clip(tmp_path / "a.wav", duration=2.0).read_bytes()
    y = load_audio(data[: len(data) // 2])
    assert abs(len(y) / SR - 1.0) < 0.01


def test_trim_removes_padded_silence(tmp_path):
    sr = 22_050
    pad = np.zeros(sr, np.float32)
    path = tmp_path / "padded.wav"
    sf.write(path, np.concatenate([pad, voice(1.0, sr), pad]), sr)
    assert abs(len(load_audio(path)) / SR - 3.0) < 0.01
    trimmed = load_audio(path, trim=True)
    assert 0.9 < len(trimmed) / SR < 1.2
    assert np.max(np.abs(trimmed)) == pytest.approx(PEAK_LEVEL, abs=1e-6)


def test_to_wav_bytes_round_trips(tmp_path):
    y = load_audio(write_clip(tmp_path / "a.wav"))
    wav = to_wav_bytes(y)
    assert wav[:4] == b"RIFF" and audio_info(wav).sample_rate == SR
    assert np.allclose(load_audio(wav, normalize=False), y, atol=1e-4)
    assert np.max(np.abs(sf.read(io.BytesIO(to_wav_bytes(2 * y)))[0])) <= 1.0  # clipped, not wrapped


# --- header info --------------------------------------------------------------------------------

def test_audio_info_reads_headers(tmp_path):
    assert audio_info(write_clip(tmp_path / "a.wav", duration=1.5, sr=44_100, channels=2)) == \
        AudioInfo(duration=1.5, sample_rate=44_100, channels=2, format="WAV", frames=66_150)
    assert audio_info(write_clip(tmp_path / "a.flac", sr=8_000)).format == "FLAC"
    for suffix, rate, fmt in [(".mp3", 44_100, "MP3"), (".m4a", 44_100, "MP4"),
                              (".webm", 48_000, "WEBM")]:
        info = audio_info(write_mp3(tmp_path / f"a{suffix}", duration=1.5, sr=rate, channels=2))
        assert (info.format, info.sample_rate, info.channels) == (fmt, rate, 2)
        assert info.duration == pytest.approx(1.5, abs=0.1)


def test_audio_info_of_a_recording_without_length():
    info = audio_info(webm_bytes(voice(2.0, 48_000)[None, :]))
    assert (info.format, info.duration, info.frames) == ("WEBM", None, None)


# --- errors a user can cause --------------------------------------------------------------------

def test_empty_input(tmp_path):
    empty = tmp_path / "upload.mp3"
    empty.write_bytes(b"")
    for source, name in [(empty, "upload.mp3"), (b"", "the upload"),
                         (Upload(b"", "voice.m4a"), "voice.m4a")]:
        with pytest.raises(EmptyAudioError, match="0 bytes") as error:
            load_audio(source)
        assert str(error.value).startswith(f"{name}: ")
    with pytest.raises(EmptyAudioError):
        audio_info(empty)


def test_a_header_without_samples_is_empty(tmp_path):
    data = write_clip(tmp_path / "a.wav").read_bytes()[:44]
    with pytest.raises(EmptyAudioError, match="header.wav: .*no audio samples"):
        load_audio(data, name="header.wav")


@pytest.mark.parametrize("content", [b"These are my notes, not a recording.\n" * 40, png_bytes(),
                                     b'{"not": "audio"}', bytes(range(256)) * 20])
def test_content_that_is_not_audio(tmp_path, content):
    path = tmp_path / "recording.wav"
    path.write_bytes(content)
    for call in (load_audio, audio_info):
        with pytest.raises(NotAudioError, match=r"recording\.wav: this is not an audio recording.*WAV"):
            call(path)
    with pytest.raises(NotAudioError, match="^picture.png: "):
        load_audio(content, name="picture.png")


def test_damaged_audio(tmp_path):
    wav = write_clip(tmp_path / "a.wav").read_bytes()
    flac = write_clip(tmp_path / "a.flac", duration=2.0).read_bytes()
    mp3 = write_mp3(tmp_path / "a.mp3").read_bytes()
    garbage = np.random.default_rng(0).integers(0, 256, 5_000, dtype=np.uint8).tobytes()
    damaged = {
        "cut_in_header.wav": wav[:30],
        "garbled_after_riff.wav": wav[:12] + garbage,
        "cut_mid_stream.flac": flac[: len(flac) // 2],
        "garbled.flac": flac[:42] + garbage,
        "garbled.mp3": mp3[:10] + garbage,
    }
    for name, data in damaged.items():
        with pytest.raises(CorruptAudioError, match=f"^{name}: .*damaged"):
            load_audio(data, name=name)
        (tmp_path / name).write_bytes(data)
        if name != "cut_mid_stream.flac":  # its header is intact: only decoding finds the damage
            with pytest.raises(CorruptAudioError):
                audio_info(tmp_path / name)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)


def test_silence_is_refused_before_normalising(tmp_path):
    sr = 22_050
    sf.write(tmp_path / "zeros.wav", np.zeros(sr, np.float32), sr)
    with pytest.raises(SilentAudioError, match="^zeros.wav: .*every sample is zero"):
        load_audio(tmp_path / "zeros.wav")
    hiss = np.random.default_rng(0).uniform(-1, 1, SR).astype(np.float32)
    sf.write(tmp_path / "hiss70.flac", hiss * 10 ** (-70 / 20), SR, subtype="PCM_24")
    with pytest.raises(SilentAudioError, match="^hiss70.flac: .*-70 dBFS"):
        load_audio(tmp_path / "hiss70.flac")
    sf.write(tmp_path / "hiss40.flac", hiss * 10 ** (-40 / 20), SR, subtype="PCM_24")
    assert np.max(np.abs(load_audio(tmp_path / "hiss40.flac"))) == pytest.approx(PEAK_LEVEL, abs=1e-6)


def test_too_short(tmp_path):
    with pytest.raises(TooShortError, match=r"^short.wav: .*0\.30 s") as error:
        load_audio(write_clip(tmp_path / "short.wav", duration=0.3, sr=44_100))
    assert "after trimming" not in str(error.value)
    sr = 22_050
    padded = np.concatenate([np.zeros(sr), voice(0.3, sr), np.zeros(sr)])
    sf.write(tmp_path / "mostly_silence.wav", padded, sr)
    assert abs(len(load_audio(tmp_path / "mostly_silence.wav")) / SR - 2.3) < 0.01
    with pytest.raises(TooShortError, match="after trimming silence"):
        load_audio(tmp_path / "mostly_silence.wav", trim=True)
    assert len(load_audio(tmp_path / "mostly_silence.wav", trim=True, min_duration=0.2)) > 0.2 * SR


def test_too_long(tmp_path):
    path = write_clip(tmp_path / "two_seconds.flac", duration=2.0)
    with pytest.raises(TooLongError, match="^two_seconds.flac: .*2 s long.*window"):
        load_audio(path, max_duration=1.0)
    assert len(load_audio(path, max_duration=None)) == 2 * SR
    # No length in the header: found while decoding.
    with pytest.raises(TooLongError, match="longer than 1 s"):
        load_audio(webm_bytes(voice(2.0, 48_000)[None, :]), max_duration=1.0)


def test_too_long_is_refused_from_the_header_without_decoding(tmp_path):
    path = sparse_wav(tmp_path / "meeting.wav", MAX_DURATION + 60)
    tracemalloc.start()
    try:
        with pytest.raises(TooLongError, match="660 s long"):
            load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # decoding it whole would take over 20 MB


def test_is_silent():
    assert is_silent(np.zeros(100, np.float32)) and is_silent(np.zeros(0, np.float32))
    tone = np.sin(np.linspace(0, 20 * np.pi, 1000, endpoint=False)).astype(np.float32)  # peak 1, mean 0
    assert is_silent(tone * 10 ** (-55 / 20))
    assert not is_silent(tone * 10 ** (-45 / 20))
    assert not is_silent(tone * 10 ** (-55 / 20), threshold_dbfs=-60.0)
    # A constant offset is no sound, however far from zero; speech riding on an offset is still speech.
    assert is_silent(np.full(100, 0.5, np.float32))
    assert not is_silent(0.5 + tone * 10 ** (-45 / 20))


# --- windows ------------------------------------------------------------------------------------

def test_windows_over_a_ten_second_clip(tmp_path):
    path = write_clip(tmp_path / "ten.wav", duration=10.0, sr=44_100)
    windows = list(iter_windows(path))
    assert [start for start, _ in windows] == [float(s) for s in range(8)]
    assert all(w.dtype == np.float32 and w.shape == (3 * SR,) for _, w in windows)
    # Streaming resampling gives what resampling the whole clip at once gives.
    whole = load_audio(path, normalize=False)
    for start, w in windows:
        i = int(start * SR)
        assert np.allclose(w, whole[i:i + 3 * SR], atol=1e-4)


def test_the_last_partial_window_covers_the_rest(tmp_path):
    windows = list(iter_windows(write_clip(tmp_path / "a.flac", duration=10.5, sr=22_050)))
    assert len(windows) == 9
    assert windows[-1][0] == 8.0 and len(windows[-1][1]) == int(2.5 * SR)
    # Without overlap: 0, 3, 6 full; 9..10.5 left over is long enough to keep.
    starts = [(s, len(w)) for s, w in iter_windows(tmp_path / "a.flac", window=3.0, hop=3.0)]
    assert starts == [(0.0, 3 * SR), (3.0, 3 * SR), (6.0, 3 * SR), (9.0, int(1.5 * SR))]
    # 0.3 s left over is under MIN_DURATION: dropped.
    write_clip(tmp_path / "b.wav", duration=9.3)
    assert [s for s, _ in iter_windows(tmp_path / "b.wav", window=3.0, hop=3.0)] == [0.0, 3.0, 6.0]


def test_windows_of_short_clips_and_compressed_input(tmp_path):
    [(start, w)] = list(iter_windows(write_clip(tmp_path / "two.wav", duration=2.0, sr=48_000)))
    assert start == 0.0 and len(w) == 2 * SR
    with pytest.raises(TooShortError, match="^tiny.wav: "):
        list(iter_windows(write_clip(tmp_path / "tiny.wav", duration=0.3)))
    with pytest.raises(NotAudioError, match="^notes.txt: "):
        list(iter_windows(b"just text, no sound at all" * 10, name="notes.txt"))
    windows = list(iter_windows(write_mp3(tmp_path / "five.webm", duration=5.0, sr=48_000),
                                window=2.0, hop=2.0))
    assert [s for s, _ in windows] == [0.0, 2.0, 4.0] and len(windows[0][1]) == 2 * SR
    assert abs(len(windows[-1][1]) / SR - 1.0) < 0.05  # 4 s .. 5 s
    with pytest.raises(OptionError, match="hop"):
        list(iter_windows(tmp_path / "two.wav", window=1.0, hop=2.0))


def test_windows_stream_a_clip_longer_than_max_duration_in_bounded_memory(tmp_path):
    path = sparse_wav(tmp_path / "meeting.wav", MAX_DURATION + 60, speech=5.0)
    tracemalloc.start()
    try:
        count, silent = 0, 0
        for start, w in iter_windows(path, normalize=True):
            assert start == count and len(w) == 3 * SR
            if start < 2:
                assert np.max(np.abs(w)) == pytest.approx(PEAK_LEVEL, abs=1e-5)
            silent += is_silent(w)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == MAX_DURATION + 60 - 2
    assert silent == count - 5  # windows reaching into the first 5 s have speech; the rest stay zeros
    assert peak < 5_000_000  # the whole clip at 16 kHz would be 42 MB

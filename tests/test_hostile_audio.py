"""Hostile input: float audio holding NaN or infinity, file names that are not UTF-8, absurd window options,
FLAC files that do not record their length (issue 28, items 5, 6 and 10)."""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_core import cli
from ser_core.audio import audio_info, iter_windows, load_audio, printable, to_wav_bytes
from ser_core.corpora import build_catalog, check_health
from ser_core.errors import CorruptAudioError, OptionError, SerError
from ser_core.features import extract
from ser_core.inference import Predictor
from ser_core.live import LiveSession
from tests.clips import voice, write_clip, write_mp3

SR = 16_000
BAD = b"\xff"  # a byte no UTF-8 text holds, as in names copied from an old FAT drive


def float_wav(path: Path | bytes, y: np.ndarray, sr: int = SR) -> Path | bytes:
    """A 32-bit float WAV, the format that can store NaN and infinity."""
    with open(path, "wb") as file:
        sf.write(file, y, sr, format="WAV", subtype="FLOAT")
    return path


def poisoned(value: float, at: float = 1.0, duration: float = 2.0) -> np.ndarray:
    """A speech-like clip with 100 samples of `value` from `at` seconds."""
    y = voice(duration, SR)
    start = int(at * SR)
    y[start:start + 100] = value
    return y


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load()  # the shipped default model, which answered "angry" to NaN audio


# --- non-finite samples -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_load_audio_refuses_non_finite_samples_as_damaged(tmp_path, value):
    path = float_wav(tmp_path / "odd.wav", poisoned(value))
    with pytest.raises(CorruptAudioError, match=r"^odd\.wav: .*damaged.*NaN or infinity"):
        load_audio(path)


def test_streaming_refuses_non_finite_samples_after_the_windows_before_them(tmp_path):
    path = float_wav(tmp_path / "odd.wav", poisoned(math.nan, at=8.0, duration=10.0))
    seen = []
    with pytest.raises(CorruptAudioError, match="NaN or infinity"):
        for start, _ in iter_windows(path, window=3.0, hop=1.0):
            seen.append(start)
    assert seen and seen[-1] < 8.0  # the windows decoded before the damage came first


def test_the_record_page_refuses_an_all_nan_upload(tmp_path):
    from ser_core.recordings import load_clip

    data = float_wav(tmp_path / "nan.wav", np.full(2 * SR, np.nan, np.float32)).read_bytes()
    with pytest.raises(CorruptAudioError):
        load_clip(data, name="nan.wav")
    with pytest.raises(CorruptAudioError):  # samples from the browser recorder go through to_wav_bytes
        load_clip(np.full(2 * SR, np.nan, np.float32), sr=SR)


def test_to_wav_bytes_refuses_non_finite_samples():
    with pytest.raises(CorruptAudioError, match="NaN or infinity"):
        to_wav_bytes(poisoned(math.inf))


@pytest.mark.parametrize("pipeline", ["egemaps", "librosa180"])
def test_features_are_never_computed_from_non_finite_samples(pipeline):
    with pytest.raises(CorruptAudioError, match="NaN or infinity"):
        extract(poisoned(math.nan), SR, pipeline)


def test_a_window_of_nan_is_an_error_not_an_emotion(predictor):
    with pytest.raises(CorruptAudioError):  # egemaps-svm used to answer "angry 67%"
        predictor.timeline([(0.0, poisoned(math.nan, at=0.0))])


def test_nan_in_a_live_stream_is_a_dropout_not_full_scale_noise(predictor):
    session = LiveSession(predictor, window=2.0, hop=2.0)
    y = voice(4.0, 48_000)  # at the browser's rate, through the resampler
    y[48_000:48_100] = np.nan
    session.push(y, 48_000)
    session.close()
    recording, _ = sf.read(io.BytesIO(session.recording_wav()))
    assert np.isfinite(recording).all() and np.max(np.abs(recording)) < 0.6  # the clip peaks at 0.5
    assert session.error is None
    assert [w.label in predictor.labels for w in session.results] == [True, True]


def test_predict_reports_a_nan_file_and_classifies_the_others(tmp_path, capsys):
    float_wav(tmp_path / "a_nan.wav", poisoned(math.nan))
    write_clip(tmp_path / "b_good.wav", 2.0)
    assert cli.main(["predict", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "a_nan.wav: this audio file is damaged" in err and "Traceback" not in err
    assert out.startswith(str(tmp_path / "b_good.wav") + "\t")


# --- file names that are not UTF-8 ----------------------------------------------------------------------

def test_printable_shows_undecodable_bytes_as_replacement_characters():
    assert printable(os.fsdecode(b"/data/clip" + BAD + b".wav")) == "/data/clip\ufffd.wav"
    assert printable(b"clip" + BAD + b".wav") == "clip\ufffd.wav"
    assert printable(Path("plain.wav")) == "plain.wav"


@pytest.mark.parametrize("suffix", [b".wav", b".mp3"])
def test_files_whose_names_are_not_utf8_are_read(tmp_path, suffix):
    good = (write_clip if suffix == b".wav" else write_mp3)(tmp_path / f"good{suffix.decode()}", 2.0)
    odd = os.path.join(os.fsencode(tmp_path), b"clip" + BAD + suffix)
    os.rename(good, odd)
    path = os.fsdecode(odd)  # how os.listdir, Path.iterdir and argv hand such a name to Python
    assert len(load_audio(path)) == pytest.approx(2 * SR, abs=2000)
    assert audio_info(path).channels == 1
    assert len(list(iter_windows(path, 1.0, 1.0))) == 2


def test_errors_show_names_that_are_not_utf8_readably(tmp_path):
    path = os.fsdecode(float_wav(os.path.join(os.fsencode(tmp_path), b"bad" + BAD + b".wav"), poisoned(math.nan)))
    with pytest.raises(CorruptAudioError, match="^bad\ufffd\\.wav: "):
        load_audio(path)
    with pytest.raises(SerError, match="no such file") as missing:
        load_audio(path + "x")
    str(missing.value).encode("utf-8")  # no surrogate left to break a page or a UTF-8 terminal


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_predict_reads_a_folder_with_a_name_that_is_not_utf8(tmp_path, capsys, json_flag):
    folder = os.fsencode(tmp_path)
    write_clip(tmp_path / "a.wav", 2.0)
    with open(os.path.join(folder, b"b" + BAD + b".wav"), "wb") as file:
        sf.write(file, voice(2.0), SR, format="WAV")
    float_wav(os.path.join(folder, b"c" + BAD + b".wav"), poisoned(math.nan))
    write_clip(tmp_path / "d.wav", 2.0)
    assert cli.main(["predict", str(tmp_path), *json_flag]) == 1  # c is damaged; nothing else stops
    out, err = capsys.readouterr()
    text = out + err
    for name in ("a.wav", "b\ufffd.wav", "d.wav"):
        assert str(tmp_path / name) in out
    assert "c\ufffd.wav" in text and "UnicodeEncodeError" not in text
    if json_flag:
        records = [json.loads(line) for line in out.splitlines()]
        assert [Path(r["path"]).name for r in records] == ["a.wav", "b\ufffd.wav", "c\ufffd.wav", "d.wav"]
        assert "error" in records[2] and all("label" in r for r in records[:2] + records[3:])


def test_catalog_skips_a_file_whose_name_is_not_utf8_and_the_check_says_why(tmp_path):
    actor = tmp_path / "ravdess" / "Actor_01"
    write_clip(actor / "03-01-01-01-01-01-01.wav")
    odd_folder = os.path.join(os.fsencode(tmp_path), b"ravdess", b"Actor_02" + BAD)
    os.mkdir(odd_folder)
    with open(os.path.join(odd_folder, b"03-01-05-01-01-01-02.wav"), "wb") as file:
        sf.write(file, voice(1.5), SR, format="WAV")
    (tmp_path / "myclass" / "happy").mkdir(parents=True)
    with open(os.path.join(os.fsencode(tmp_path), b"myclass", b"happy", b"ana" + BAD + b"_01.wav"), "wb") as file:
        sf.write(file, voice(1.5), SR, format="WAV")

    for with_audio_info in (True, False):
        catalog = build_catalog(tmp_path, with_audio_info=with_audio_info)
        assert list(catalog["path"]) == [str(actor / "03-01-01-01-01-01-01.wav")]
    report = check_health(tmp_path)
    unreadable = {path: finding.detail for finding in report.of_kind("unreadable") for path in finding.paths}
    shown = str(tmp_path / "ravdess" / "Actor_02\ufffd" / "03-01-05-01-01-01-02.wav")
    assert "not valid UTF-8" in unreadable[shown] and "rename" in unreadable[shown]
    assert str(tmp_path / "myclass" / "happy" / "ana\ufffd_01.wav") in unreadable
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")  # every path can be shown
    report.summary().encode("utf-8")


# --- absurd options and lengths ---------------------------------------------------------------------------

@pytest.mark.parametrize("option", [["--window", "inf"], ["--window", "nan"], ["--hop", "inf"], ["--hop", "-1"],
                                    ["--window", "1e300"]])
def test_predict_refuses_window_options_that_are_not_sensible_in_one_line(tmp_path, capsys, option):
    write_clip(tmp_path / "a.wav", 2.0)
    assert cli.main(["predict", "--timeline", *option, str(tmp_path / "a.wav")]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("window, hop", [(math.inf, 1.0), (3.0, math.nan), (1e300, 1.0)])
def test_windows_refuse_lengths_that_are_not_sensible(tmp_path, predictor, window, hop):
    path = write_clip(tmp_path / "a.wav", 2.0)
    with pytest.raises(OptionError):
        list(iter_windows(path, window, hop))
    with pytest.raises(OptionError):
        LiveSession(predictor, window=window, hop=hop)


def test_an_all_silent_timeline_says_silence(tmp_path, capsys):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(4 * SR, np.float32), SR)
    assert cli.main(["predict", "--timeline", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"{path}\toverall\tsilence" and "None" not in out


def unknown_length_flac(path: Path, duration: float = 2.0) -> Path:
    """A FLAC whose STREAMINFO says "total samples unknown" (0), as a streaming encoder writes it."""
    data = bytearray(write_clip(path, duration).read_bytes())
    data[21] &= 0xF0  # the 36-bit total-samples field: the low nibble of byte 21 and bytes 22-25
    data[22:26] = bytes(4)
    path.write_bytes(bytes(data))
    return path


def test_a_flac_of_unknown_length_is_read_not_reported_as_centuries_long(tmp_path):
    path = unknown_length_flac(tmp_path / "stream.flac")
    assert audio_info(path).duration is None and audio_info(path).frames is None
    assert len(load_audio(path)) == pytest.approx(2 * SR, abs=10)
    long_one = unknown_length_flac(tmp_path / "long.flac", 12.0)
    with pytest.raises(SerError, match="longer than 10 s"):
        load_audio(long_one, max_duration=10.0)


def test_the_catalog_gives_no_duration_for_a_flac_of_unknown_length(tmp_path):
    unknown_length_flac(tmp_path / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.flac")
    catalog = build_catalog(tmp_path)
    assert len(catalog) == 1 and math.isnan(catalog["duration"][0])


@pytest.mark.parametrize("rate", [1, 100, 2_000_000])
def test_a_header_with_an_absurd_rate_is_damaged_not_hours_of_audio(tmp_path, rate):
    # Read as given, a second of 16-bit samples at 1 Hz is 9 hours at 16 kHz: minutes and gigabytes of resampling.
    path = tmp_path / "rate.wav"
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as file:
        file.write(voice(1.0, SR))
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    for read in (load_audio, audio_info, lambda p: list(iter_windows(p))):
        with pytest.raises(CorruptAudioError, match=f"sample rate of {rate} Hz"):
            read(path)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_a_constant_clip_is_silent_not_an_emotion(tmp_path, rate):
    path = tmp_path / "offset.wav"
    sf.write(path, np.full(2 * rate, 0.5, np.float32), rate)
    with pytest.raises(SerError, match="silent .*every sample has the same value"):
        load_audio(path)
    # Speech on a constant offset (a cheap microphone's) is still speech.
    sf.write(path, 0.5 + 0.2 * voice(2.0, rate), rate, subtype="FLOAT")
    assert len(load_audio(path)) == 2 * SR


def test_a_long_silent_file_is_named_in_its_message(tmp_path, predictor):
    path = tmp_path / "long-silence.wav"
    sf.write(path, np.zeros(40 * 8000, np.float32), 8000)  # past LONG_CLIP: classified window by window
    for source in (path, str(path)):
        with pytest.raises(SerError, match="^long-silence.wav: this recording is silent"):
            predictor.predict(source)


def test_a_file_object_can_be_read_after_its_header(tmp_path):
    path = write_clip(tmp_path / "clip.wav", duration=1.0)
    with open(path, "rb") as file:
        assert audio_info(file).duration == pytest.approx(1.0)
        assert len(load_audio(file)) == SR

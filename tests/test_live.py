"""The live pipeline without WebRTC: browser-like frames (48 kHz, stereo s16, 20 ms) in, windows out."""
from __future__ import annotations

import csv
import io
import re
import threading
import time

import av
import numpy as np
import pytest
import soundfile as sf

from ser_core.corpora import build_catalog
from ser_core.errors import ModelError
from ser_core.inference import SILENCE, Predictor
from ser_core.live import LiveSession, frame_samples
from ser_core.training import TrainConfig, save_run, train
from tests.clips import voice
from tests.corpus_trees import EMOTION_VOICE, write_ravdess_tree

BROWSER_RATE, FRAME = 48_000, 960


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4, 5, 6), duration=1.0)
    run = train(build_catalog(root), TrainConfig(model="svm", features="librosa180", folds=2), n_jobs=1)
    return Predictor.load(save_run(run, "live", tmp_path_factory.mktemp("models")))


def browser_frames(mono: np.ndarray):
    """What Chromium sends: 20 ms frames of packed stereo s16 at 48 kHz, as PyAV AudioFrames."""
    pcm = (np.clip(mono, -1, 1) * 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, (-len(pcm)) % FRAME))
    for start in range(0, len(pcm), FRAME):
        block = np.repeat(pcm[start:start + FRAME], 2)[None, :]  # (1, 1920): L R L R ...
        frame = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
        frame.sample_rate = BROWSER_RATE
        yield frame


def angry_then_silence(seconds_voice=4.0, seconds_silence=4.0) -> np.ndarray:
    f0, level = EMOTION_VOICE[5]
    speech = voice(duration=seconds_voice, sr=BROWSER_RATE, f0=f0 * 1.14, level=level, seed=3)
    return np.concatenate([speech, np.zeros(int(seconds_silence * BROWSER_RATE), np.float32)])


def test_frames_are_downmixed_from_packed_stereo():
    left, right = np.full(960, 1000, np.int16), np.full(960, -1000, np.int16)
    packed = np.stack([left, right], axis=1).reshape(1, -1)
    assert np.allclose(frame_samples(packed, 2), 0.0)
    assert np.allclose(frame_samples(np.stack([left, left], 1).reshape(1, -1), 2), 1000 / 32768)


def test_windows_every_hop_with_silence_marked(predictor):
    session = LiveSession(predictor, window=2.0, hop=1.0, max_pending=100)  # faster than real time: keep all
    for frame in browser_frames(angry_then_silence()):
        session.push_frame(frame)
    session.close()
    windows = session.results
    assert [w.start for w in windows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(w.end - w.start == pytest.approx(2.0) for w in windows)
    assert [w.label for w in windows[:3]] == ["angry"] * 3
    assert [w.label for w in windows[-3:]] == [SILENCE] * 3  # 4-6, 5-7 and 6-8 s hold no speech
    summary = session.timeline().summary()
    assert summary["label"] == "angry" and summary["share"][SILENCE] == pytest.approx(3 / 7)


def test_frames_gathered_for_speed_still_make_each_window_as_soon_as_it_ends(predictor, monkeypatch):
    """Frames are converted a few at a time (a class of thirty pays for per-frame work), but a window must not
    wait for the batch: it is queued with the frame that completes it, and holds the same samples as when the
    audio comes in one piece."""
    audio = voice(duration=3.0, sr=BROWSER_RATE)
    whole = LiveSession(predictor, window=1.0, hop=0.25, max_pending=100)
    queued_whole = []
    monkeypatch.setattr(whole, "_enqueue", queued_whole.append)
    whole.push((np.clip(audio, -1, 1) * 32767).astype(np.int16) / 32768, BROWSER_RATE)  # as the frames carry it
    framed = LiveSession(predictor, window=1.0, hop=0.25, max_pending=100)
    queued = []  # (window start, samples, seconds of audio pushed when it was queued)
    pushed = 0.0
    monkeypatch.setattr(framed, "_enqueue", lambda item: queued.append((item[0], item[1], pushed)))
    for frame in browser_frames(audio):
        pushed += frame.samples / BROWSER_RATE
        framed.push_frame(frame)
    assert [start for start, *_ in queued] == [start for start, *_ in queued_whole] == [0.0, 0.25, 0.5, 0.75,
                                                                                         1.0, 1.25, 1.5, 1.75]
    for (start, samples, at), (_, samples_whole, _) in zip(queued, queued_whole):
        assert start + 1.0 <= at + 1e-9 and at - (start + 1.0) < 0.045  # within two frames of the window's end
        assert np.allclose(samples, samples_whole, atol=1e-5)
    framed.close()
    whole.close()


def test_recording_and_timeline_downloads(predictor):
    session = LiveSession(predictor, window=2.0, hop=1.0, max_pending=100)
    for frame in browser_frames(angry_then_silence(3.0, 1.0)):
        session.push_frame(frame)
    session.close()
    audio, sr = sf.read(io.BytesIO(session.recording_wav()))
    assert sr == predictor.pipeline.sample_rate and len(audio) / sr == pytest.approx(4.0, abs=0.05)
    rows = list(csv.DictReader(io.StringIO(session.timeline_csv())))
    assert len(rows) == len(session.results) and rows[0]["label"] == "angry"
    assert float(rows[0]["angry"]) > 0.5


def test_a_slow_model_drops_stale_windows_instead_of_queueing(predictor, monkeypatch):
    original = predictor.predict_samples

    def slow(y, **how):
        time.sleep(0.3)
        return original(y, **how)

    monkeypatch.setattr(predictor, "predict_samples", slow)
    session = LiveSession(predictor, window=1.0, hop=0.1)
    started = time.perf_counter()
    for frame in browser_frames(voice(duration=6.0, sr=BROWSER_RATE)):
        session.push_frame(frame)
    pushing = time.perf_counter() - started
    assert pushing < 3.0  # the audio side never waited for the 0.3 s model
    assert "The server is busy" in session.busy  # the page says so, rather than showing stale results as new
    session.close()
    assert session.dropped > 20 and len(session.results) + session.dropped == 51
    assert session._pending.qsize() == 0


def test_an_unexpected_error_in_the_model_is_reported_and_the_stream_still_closes(predictor, monkeypatch):
    def broken(y, **how):
        raise RuntimeError("a bug")

    monkeypatch.setattr(predictor, "predict_samples", broken)
    session = LiveSession(predictor, window=1.0, hop=0.1)
    for frame in browser_frames(voice(duration=3.0, sr=BROWSER_RATE)):
        session.push_frame(frame)
    session.close()  # before, the dead worker left close() waiting on a full queue forever
    assert session.closed and "failed unexpectedly" in session.error and not session.results


def test_the_reported_lag_runs_from_a_windows_last_sample_to_its_result(predictor, monkeypatch):
    """The Live page shows each result "shown N s after it ended" from last_ended_at, and the latencies feed the
    benchmarks: a window that waits behind others must count its wait, not only the model's time."""
    original = predictor.predict_samples

    def slow(y, **how):
        time.sleep(0.2)
        return original(y, **how)

    monkeypatch.setattr(predictor, "predict_samples", slow)
    session = LiveSession(predictor, window=1.0, hop=0.25, max_pending=100)  # keep every window: a backlog
    pushed = []
    for frame in browser_frames(voice(duration=2.5, sr=BROWSER_RATE)):
        session.push_frame(frame)
        pushed.append(time.time())
    # Windows ending at 1.0, 1.25 ... 2.25 s (the resampler holds the last few ms until the stream closes).
    while session.wait_for_result(len(session.results), timeout=10) and len(session.results) < 6:
        pass
    ready = time.time()
    latencies = list(session.latencies)
    assert len(session.results) == len(latencies) == 6
    assert pushed[0] <= session.last_ended_at <= pushed[-1]  # the newest window ended as its last frame came in
    assert session.last_ready_at <= ready and latencies[-1] == pytest.approx(session.last_ready_at
                                                                             - session.last_ended_at)
    assert all(lag >= 0.2 for lag in latencies)  # no result before the model had answered
    # Queued at about the same time, classified one after another: each waits 0.2 s longer than the one before.
    assert latencies[-1] - latencies[0] > 0.2 * 4, latencies
    assert (session.busy is not None) == (latencies[-1] > 1.0)  # late by more than a second: "delayed"
    session.close()


def test_a_server_that_gives_no_result_at_all_says_it_is_busy_before_one_comes(predictor, monkeypatch):
    """Overloaded, a server may classify nothing for seconds: the page must not leave the last result up as if
    it were now."""
    release, original = threading.Event(), predictor.predict_samples

    def stuck(y, **how):
        release.wait(10)
        return original(y, **how)

    monkeypatch.setattr(predictor, "predict_samples", stuck)
    session = LiveSession(predictor, window=1.0, hop=0.5, max_pending=100)
    for frame in browser_frames(voice(duration=1.5, sr=BROWSER_RATE)):
        session.push_frame(frame)
    assert session.busy is None  # just queued: not late yet
    time.sleep(1.3)
    assert not session.results and "results are delayed" in session.busy
    release.set()
    assert session.wait_for_result(0, timeout=10)
    session.close()


def test_a_stream_whose_audio_stops_arriving_says_so(predictor, monkeypatch):
    """Past its capacity a server (or a network) may stop taking a stream's audio in while the connection stays
    up: the page must say so rather than keep the last result up as if it were now."""
    session = LiveSession(predictor, window=1.0, hop=0.5, max_pending=100)
    assert session.busy is None  # nothing has arrived yet: still connecting, not silent
    for frame in browser_frames(voice(duration=1.5, sr=BROWSER_RATE)):
        session.push_frame(frame)
    assert session.wait_for_result(0, timeout=10) and session.busy is None
    monkeypatch.setattr(time, "time", lambda now=time.time(): now + 2.5)  # 2.5 s on, no frame since
    assert re.search(r"No sound has reached the server for [23] s", session.busy), session.busy
    monkeypatch.undo()
    session.close()


def test_a_server_that_keeps_up_says_nothing_of_being_busy(predictor):
    session = LiveSession(predictor, window=1.0, hop=0.25)
    for frame in browser_frames(voice(duration=2.0, sr=BROWSER_RATE)):  # at the pace a microphone gives it
        session.push_frame(frame)
        time.sleep(frame.samples / BROWSER_RATE)
    assert session.wait_for_result(0, timeout=5) and session.dropped == 0 and session.busy is None
    session.close()


@pytest.fixture(scope="module")
def normalised_bundle(tmp_path_factory):
    """A speaker-normalised model, trained once on four generated actors."""
    root = tmp_path_factory.mktemp("norm")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4), duration=1.0)
    run = train(build_catalog(root), TrainConfig(model="svm", features="librosa180", folds=2, speaker_norm=True),
                n_jobs=1)
    return Predictor.load(save_run(run, "norm", root / "models")).bundle


@pytest.fixture
def normalised_predictor(normalised_bundle) -> Predictor:
    """That model, loaded afresh for each test: not yet calibrated."""
    return Predictor(normalised_bundle)


def speak_in_four_voices(session: LiveSession, level: float = 1.0) -> None:
    """A new speaker, pitched above the training actors, says something in each of their voices (`level` scales
    the microphone)."""
    for code in (1, 3, 4, 5):
        f0, loudness = EMOTION_VOICE[code]
        clip = voice(duration=1.5, sr=BROWSER_RATE, f0=f0 * 1.14, level=loudness * level, seed=code)
        for frame in browser_frames(clip):
            session.push_frame(frame)


def test_calibration_enables_a_speaker_normalised_model(normalised_predictor):
    predictor = normalised_predictor
    session = LiveSession(predictor, window=1.0, hop=0.5, max_pending=100)
    session.start_calibration()
    speak_in_four_voices(session)
    calibration = session.finish_calibration()
    assert calibration.windows >= 4  # an svm model: normalised, not adapted; a microphone, not recordings
    assert calibration.describe("your") == f"{calibration.windows} windows of your speech"
    assert not predictor.needs_calibration and not session.results  # calibration speech is not classified
    for frame in browser_frames(voice(duration=2.0, sr=BROWSER_RATE, f0=EMOTION_VOICE[5][0] * 1.14, seed=9)):
        session.push_frame(frame)
    session.close()
    labels = [w.label for w in session.results]  # the generated tree's angry voice, in a new speaker's pitch
    assert session.error is None and len(labels) >= 2 and set(labels) == {"angry"}, labels


def test_calibration_on_recordings_skips_the_ones_it_cannot_read_and_says_why(tmp_path, normalised_predictor):
    predictor = normalised_predictor
    speech = tmp_path / "speech.flac"  # stereo, 44.1 kHz, quiet: a phone recording, not a corpus clip
    sf.write(speech, np.stack([voice(duration=4.0, sr=44_100, level=0.05, seed=1)] * 2, axis=1), 44_100)
    notes, short = tmp_path / "notes.wav", tmp_path / "short.wav"
    notes.write_text("not audio")
    sf.write(short, voice(duration=0.2), 16_000)

    unreadable = Predictor(predictor.bundle)
    with pytest.raises(ModelError, match="notes.wav: this is not an audio.*short.wav: this clip is 0.20 s"):
        unreadable.calibrate_files([notes, short])
    assert unreadable.needs_calibration

    calibration = predictor.calibrate_files([notes, speech, short], window=1.0, hop=0.5)
    assert calibration.windows == 7 and not predictor.needs_calibration
    assert calibration.describe() == "7 windows of the speaker's speech, from 1 recording"
    assert [message.split(":")[0] for message in calibration.skipped] == ["notes.wav", "short.wav"]


def test_an_uncalibrated_model_reports_instead_of_crashing_until_calibrated_mid_stream(normalised_predictor):
    """The Live page's order: START, the model asks for calibration, the speaker calibrates (on a quiet
    microphone), results come and the request goes."""
    session = LiveSession(normalised_predictor, window=1.0, hop=0.5)
    for frame in browser_frames(voice(duration=2.0, sr=BROWSER_RATE)):
        session.push_frame(frame)
    deadline = time.time() + 30
    while session.error is None and time.time() < deadline:
        time.sleep(0.05)
    assert "calibrate" in session.error and not session.results
    with pytest.raises(ModelError):
        session.predictor.predict_samples(voice(duration=1.0))
    session.start_calibration()
    speak_in_four_voices(session, level=0.1)
    assert session.finish_calibration().windows >= 4
    for frame in browser_frames(voice(duration=2.0, sr=BROWSER_RATE, f0=EMOTION_VOICE[5][0] * 1.14, seed=9)):
        session.push_frame(frame)
    session.close()
    labels = [w.label for w in session.results]  # the generated tree's angry voice, in a new speaker's pitch
    assert session.error is None and len(labels) >= 2 and set(labels) == {"angry"}, labels


def test_a_forgotten_session_leaves_nothing_running(predictor):
    import gc

    session = LiveSession(predictor)
    worker = session._worker
    del session  # a page reload: the browser session and its LiveSession are gone
    gc.collect()
    worker.join(timeout=5)
    assert not worker.is_alive()

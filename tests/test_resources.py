"""What keeps a shared server standing when a class uses it at once: heavy jobs queue, long clips stream, and a user
sees a short message, never a traceback."""
from __future__ import annotations

import io
import threading
import time
import tomllib
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from streamlit.config import ShowErrorDetailsConfigOptions
from streamlit.testing.v1 import AppTest

from ser_core import config
from ser_core.errors import SilentAudioError
from ser_core.inference import Predictor
from ser_core.jobs import JobQueue, one_maths_thread
from tests.clips import voice
from tests.conftest import PROJECT_ROOT


def wav(samples: np.ndarray, sr: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_the_job_bound_queues_the_next_job_and_says_how_many_are_ahead():
    queue = JobQueue(2)
    release, started, seen = threading.Event(), [], {}

    def job(name: str) -> None:
        def waiting(ahead: int) -> None:
            seen.setdefault(name, []).append(ahead)

        with queue.slot(waiting, poll=0.01):
            started.append(name)
            release.wait(10)

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b", "c", "d")]
    for thread in threads:
        thread.start()
        time.sleep(0.2)  # in this order
    assert started == ["a", "b"]  # two run; the third and fourth wait their turn
    assert seen["c"][-1] == 2 and seen["d"][-1] == 3  # ahead of them: the two running, then "c" too
    assert "a" not in seen and "b" not in seen
    release.set()
    for thread in threads:
        thread.join(10)
    assert started == ["a", "b", "c", "d"]


def test_a_job_that_leaves_the_queue_lets_the_next_one_in():
    queue = JobQueue(1)

    def leave(ahead: int) -> None:
        raise KeyboardInterrupt  # as Streamlit stops the script of a user who left

    with queue.slot():
        with pytest.raises(KeyboardInterrupt):
            with queue.slot(leave):
                pass
    with queue.slot(lambda ahead: pytest.fail(f"waited behind {ahead} jobs that are gone")):
        pass


def test_stopping_a_queued_training_run_takes_it_out_of_the_queue(monkeypatch):
    from ser_core import training

    queue, ran = JobQueue(1), []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: ran.append(args))
    with queue.slot():  # another session's job holds the only slot
        job = training.TrainingJob(pd.DataFrame(), training.TrainConfig(model="svm"), queue=queue)
        deadline = time.monotonic() + 10
        while job.ahead != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.ahead == 1 and not job.done
        job.stop()
        assert job.wait(10)
    assert job.error == "Stopped before it started." and job.run is None and not ran
    with queue.slot():  # its place was given up: the queue is free again
        pass


def test_the_server_runs_its_maths_on_one_thread_once_a_model_is_loaded():
    """A class's live windows are classified on many threads at once; BLAS's and OpenMP's own threads only spin
    beside them (the server's CPU doubled with 8 live students, bench/bench_class.py)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    Predictor.load()  # loads every BLAS library the model uses
    with threadpool_limits(limits=None):  # gives this test process its own limits back after
        one_maths_thread()
        libraries = threadpool_info()
        assert any(library["user_api"] == "blas" for library in libraries), libraries
        assert all(library["num_threads"] == 1 for library in libraries), libraries


def test_a_long_clip_is_classified_window_by_window_in_bounded_memory():
    sr = 96_000
    seconds = config.LONG_CLIP + 2
    data = wav(np.tile(voice(duration=2.0, sr=sr), int(seconds / 2)), sr)  # 12 MB as float samples at 96 kHz
    model = Predictor.load(None)
    model.predict(wav(voice(duration=1.0, sr=sr), sr))  # what the first clip loads once
    tracemalloc.start()
    try:
        prediction = model.predict(data, name="lecture.wav")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10e6, f"{peak / 1e6:.0f} MB"  # decoded whole at 96 kHz, the clip alone takes 12 MB, twice
    windows = model.predict_windows(data, name="lecture.wav")
    assert prediction == windows.overall() and prediction.label in config.LABELS
    with pytest.raises(SilentAudioError, match="quiet.wav: this recording is silent"):
        model.predict(wav(np.zeros(int(seconds * 8_000), np.float32), 8_000), name="quiet.wav")


def test_an_unexpected_error_on_a_page_is_a_short_message_not_a_traceback(monkeypatch, tmp_path):
    import ser_core.corpora

    def broken(root):
        raise RuntimeError("internal detail the user must not see")

    monkeypatch.setattr(ser_core.corpora, "list_corpora", broken)
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path))  # a root no other test cached
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    assert "Something went wrong on this page" in at.error[0].value
    assert "internal detail" not in at.error[0].value and "Traceback" not in at.error[0].value


def test_the_server_shows_no_error_details_in_the_browser():
    settings = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    shown = settings["client"]["showErrorDetails"]
    assert shown in set(ShowErrorDetailsConfigOptions) and shown == ShowErrorDetailsConfigOptions.NONE

"""The home page, run by Streamlit's AppTest: what a teacher sees on opening the app."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.clips import voice
from tests.conftest import PROJECT_ROOT, known_clip

APP = str(PROJECT_ROOT / "streamlit_app.py")


def run_home(monkeypatch, data_dir) -> AppTest:
    monkeypatch.setenv("SER_DATA_DIR", str(data_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    return at.run()


def test_home_lists_corpora_and_models_without_tensorflow(monkeypatch, shared_corpora):
    at = run_home(monkeypatch, shared_corpora)
    assert not at.exception
    text = " ".join(el.value for el in at.markdown)
    assert "ravdess" in text and "1440 clips" in text and "tess" in text and "2800 clips" in text
    assert "mfcc-prosody-logreg" in text and "egemaps-svm" in text
    # In a fresh interpreter: other tests in this process may have imported TensorFlow already.
    check = ("import sys; from streamlit.testing.v1 import AppTest; "
             f"at = AppTest.from_file({APP!r}, default_timeout=120).run(); "
             "assert not at.exception; print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "SER_DATA_DIR": str(shared_corpora)}, cwd=PROJECT_ROOT)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_home_explains_where_to_put_data(monkeypatch, tmp_path):
    at = run_home(monkeypatch, tmp_path / "empty")
    assert not at.exception
    assert any("ravdess" in el.value.lower() for el in at.info)


def _wav(samples) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, 16_000, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (b"hello, this is a text file", "not"),
    (_wav(voice(duration=0.2)), "at least 0.5 s"),
    (_wav(voice(duration=1.0) * 0), "silent"),
])
def test_bad_uploads_get_a_clear_message(monkeypatch, tmp_path, payload, message):
    at = run_home(monkeypatch, tmp_path)
    at.file_uploader[0].upload("clip.wav", payload, "audio/wav").run()
    assert not at.exception
    assert message in at.error[0].value.lower()


def test_upload_is_classified_with_the_default_model(monkeypatch, tmp_path, shared_corpora):
    at = run_home(monkeypatch, tmp_path)
    for emotion in ("angry", "sad"):  # two emotions: a model stuck on one answer fails
        clip, label = known_clip(shared_corpora, emotion)
        at.file_uploader[0].upload(clip.name, clip.read_bytes(), "audio/flac").run()
        assert not at.exception and not at.error
        assert at.metric[0].value == label, (clip.name, at.metric[0].value)


def test_an_example_is_classified_in_one_click_and_an_upload_replaces_it(monkeypatch, tmp_path, shared_corpora):
    """On a fresh install (no corpus): each example button classifies its clip, says what the actor acted,
    and a later upload takes its place."""
    from ser_core.corpora import example_clips
    from ser_core.inference import Predictor

    at = run_home(monkeypatch, tmp_path / "no-data")
    model = Predictor.load()
    clips = example_clips()
    for example in (clips[0], clips[-1]):  # two voices, two emotions
        at.button(key=f"home_clip_{example.path.stem}").click().run()
        assert not at.exception and not at.error
        expected = model.predict(example.path)
        assert at.metric[0].value == expected.label
        assert f"The actor was acting **{example.label}**" in " ".join(el.value for el in at.markdown)
    clip, label = known_clip(shared_corpora, "sad")
    at.file_uploader[0].upload(clip.name, clip.read_bytes(), "audio/flac").run()
    assert at.metric[0].value == label
    assert "The actor was acting" not in " ".join(el.value for el in at.markdown)

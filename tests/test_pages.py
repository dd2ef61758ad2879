"""The Explore, Train, Classify and Record pages, run by Streamlit's AppTest: widgets, uploads, charts, messages."""
from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from ser_core import config
from ser_core.corpora import parse_name
from ser_core.errors import OptionError
from ser_core.evaluation import ADAPTATION_DESCRIPTION
from ser_core.inference import Predictor
from ser_core.training import TrainConfig
from tests.clips import voice
from tests.conftest import PROJECT_ROOT, known_clip
from tests.corpus_trees import write_ravdess_tree
from tests.train_page import train_svm_on_page


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4), duration=1.0)
    return root


def page(name: str, monkeypatch, data_root) -> AppTest:
    monkeypatch.setenv("SER_DATA_DIR", str(data_root))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / name), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def figures(at: AppTest) -> list[dict]:
    # AppTest has no public element for Plotly charts: the figure is only in the element's protobuf.
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def titles(at: AppTest) -> list[str]:
    return [fig["layout"].get("title", {}).get("text", "") for fig in figures(at)]


def values(data) -> np.ndarray:
    """A trace's x or y: a list, or Plotly's base64 typed array ({"dtype": ..., "bdata": ...})."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.array([np.nan if v is None else v for v in data], dtype=float)


def wav(samples: np.ndarray, sr: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="WAV")
    return buffer.getvalue()


def open_tab(at: AppTest, name: str) -> AppTest:
    """Click a tab of a page whose tabs run only when open (st.tabs(on_change="rerun"))."""
    at.session_state["explore_tab"] = name
    return at.run()


def test_explore_filters_and_draws_a_clip(monkeypatch, data_root):
    at = page("1_Explore.py", monkeypatch, data_root)
    assert "**48** of 48 clips" in at.markdown[0].value
    assert not figures(at)  # tables first; the charts on request, and only the open tab runs
    assert at.dataframe[0].value.loc["sad", "ravdess"] == 12
    at.toggle(key="overview_charts").set_value(True).run()
    assert titles(at) == ["Clips per emotion and corpus", "Clips per emotion and gender", "Clip durations"]
    at.sidebar.multiselect(key="filter_label").set_value(["sad"]).run()
    assert "**12** of 48 clips" in at.markdown[0].value
    open_tab(at, "Clips")
    assert "Spectrogram" in titles(at) and "Waveform" in titles(at) and "Clip durations" not in titles(at)
    for view, title in [("MFCC", "MFCC"), ("Mel spectrogram", "Mel spectrogram"),
                        ("Pitch and energy", "Pitch and energy")]:
        at.radio(key="view_0").set_value(view).run()
        assert not at.exception and title in titles(at)
    pitch = next(fig for fig in figures(at) if fig["layout"]["title"]["text"] == "Pitch and energy")
    f0 = values(pitch["data"][0]["y"])
    assert np.isfinite(f0).any() and 70 < np.nanmedian(f0) < 120  # the sad voices of the tree are at 90-110 Hz


def test_explore_compares_and_augments(monkeypatch, data_root):
    at = page("1_Explore.py", monkeypatch, data_root)
    open_tab(at, "Clips")
    at.toggle(key="compare").set_value(True).run()
    assert titles(at).count("Waveform") == 2
    open_tab(at, "Augmentation")
    assert at.slider(key="augment_noise").value == 15.0  # the noisiest: audible at once
    at.radio(key="augment_kind").set_value("stretch").run()
    at.slider(key="augment_stretch").set_value(1.25).run()
    assert not at.exception
    before = next(f for f in figures(at) if f["layout"]["title"]["text"] == "Original")
    after = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("stretch"))
    assert values(after["data"][0]["x"])[-1] < values(before["data"][0]["x"])[-1]  # faster is shorter
    open_tab(at, "Health report")
    at.button(key="health").click().run()
    assert not at.exception and at.text and "4" in at.text[0].value


def test_explore_without_data_says_where_to_put_it(monkeypatch, tmp_path):
    at = page("1_Explore.py", monkeypatch, tmp_path)
    assert at.info and str(tmp_path) in at.info[0].value


def test_classify_shows_probabilities_and_a_timeline(monkeypatch, data_root, shared_corpora):
    at = page("3_Classify.py", monkeypatch, data_root)
    box = at.file_uploader[0]
    # The accepted types are in the widget's protobuf only: AppTest's FileUploader exposes no public attribute.
    assert box.proto.type == list(config.AUDIO_EXTENSIONS)  # the box lists and accepts every format load_audio reads
    for emotion in ("happy", "surprised"):  # real clips the default model gets right; two, so no constant answer
        clip, label = known_clip(shared_corpora, emotion)
        at.file_uploader[0].upload(clip.name, clip.read_bytes(), "audio/flac").run()
        assert not at.exception and not at.error
        assert at.metric[0].value == label, (clip.name, at.metric[0].value)
    at.file_uploader[0].upload("short.wav", wav(voice(duration=2.0)), "audio/wav").run()
    assert not at.exception and not at.error
    assert "Emotion probabilities" in titles(at) and "Emotions over time" not in titles(at)  # 3 s or less: no timeline
    long_clip = np.concatenate([voice(duration=4.0), np.zeros(4 * 16_000, np.float32), voice(duration=4.0)])
    at.file_uploader[0].upload("long.wav", wav(long_clip, 16_000), "audio/wav").run()
    assert not at.exception and "Emotions over time" in titles(at)
    assert any("windows of 3 s" in caption.value for caption in at.caption)


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (b"hello, this is a text file", "not"),
    (wav(voice(duration=0.2)), "at least 0.5 s"),
    (wav(np.zeros(16_000, np.float32)), "silent"),
])
def test_classify_bad_uploads_get_a_clear_message(monkeypatch, data_root, payload, message):
    at = page("3_Classify.py", monkeypatch, data_root)
    at.file_uploader[0].upload("clip.wav", payload, "audio/wav").run()
    assert not at.exception
    assert message in at.error[0].value.lower()


def test_classify_calibrates_a_speaker_normalised_model_on_uploads_of_the_speaker(monkeypatch, data_root,
                                                                                   shared_corpora):
    at = page("3_Classify.py", monkeypatch, data_root)
    names = at.selectbox[0].options
    at.selectbox[0].select_index(names.index("compare-ge2e-ridge (shipped)"))
    at.run()
    calibration, clip = at.file_uploader
    actor = sorted((shared_corpora / "ravdess" / "Actor_05").glob("*.flac"))
    clip.upload(actor[0].name, actor[0].read_bytes(), "audio/flac").run()
    assert not at.exception and not at.metric
    assert "recordings of this speaker" in at.info[0].value

    at.file_uploader[0].set_value([("notes.wav", b"not audio", "audio/wav")]).run()
    assert not at.exception and not at.metric
    assert "Calibration needs" in at.error[0].value and "notes.wav: this is not an audio" in at.error[0].value

    # A bad file among good recordings is skipped, and said so, not the end of the calibration.
    good = [(path.name, path.read_bytes(), "audio/flac") for path in actor[::6]]
    at.file_uploader[0].set_value([*good, ("notes.wav", b"not audio", "audio/wav")]).run()
    assert not at.exception and not at.error
    assert "Calibration skipped notes.wav: this is not an audio" in at.warning[0].value
    assert any(f"from {len(good)} recordings, and adapted to them" in caption.value for caption in at.caption)
    assert at.metric[0].value == parse_name(actor[0])["label"]  # neutral, a calibration clip
    at.file_uploader[1].upload(actor[5].name, actor[5].read_bytes(), "audio/flac").run()  # not a calibration clip
    assert at.metric[0].value == parse_name(actor[5])["label"]  # calm
    # Calibration belongs to this browser session: another one, sharing the loaded model, is asked for its own.
    other = page("3_Classify.py", monkeypatch, data_root)
    other.selectbox[0].select_index(at.selectbox[0].index).run()
    other.file_uploader[1].upload(actor[0].name, actor[0].read_bytes(), "audio/flac").run()
    assert not other.metric and "recordings of this speaker" in other.info[0].value


def test_classify_adapts_the_default_model_to_other_recordings_of_the_speaker(monkeypatch, data_root,
                                                                              shared_corpora):
    """Each upload alone is classified cold (the next may be another voice); recordings of the same speaker, given
    in the optional box, adapt the model to that voice, as Predictor.calibrate does."""
    from copy import copy

    at = page("3_Classify.py", monkeypatch, data_root)
    actor = sorted((shared_corpora / "ravdess" / "Actor_07").glob("*.flac"))
    clip, others = actor[30], actor[:12]
    at.file_uploader[0].upload(clip.name, clip.read_bytes(), "audio/flac").run()
    assert not at.exception and not at.error
    cold = Predictor.load()
    expected = cold.predict(clip)
    assert at.metric[0].value == expected.label
    assert "classified alone" in " ".join(caption.value for caption in at.caption)
    at.file_uploader[1].set_value([(path.name, path.read_bytes(), "audio/flac") for path in others]).run()
    assert not at.exception and not at.error
    assert "Adapted to" in " ".join(caption.value for caption in at.caption)
    adapted = copy(cold)
    adapted.calibrate_files(others)
    expected = adapted.predict(clip)
    assert f"{expected.probabilities[expected.label]:.0%}" != f"{cold.predict(clip).probabilities[expected.label]:.0%}"
    assert at.metric[0].value == expected.label
    assert at.metric[0].delta == f"{expected.probabilities[expected.label]:.0%} probability"


def test_classify_calibrates_this_room_and_forgets_it(monkeypatch, data_root, shared_corpora):
    """A teacher gives the room a few students' recordings (one of them not audio) before class, and forgets it
    in another room; what the room heard is on disk for every session, and named on the page."""
    from ser_core.adaptation import load_room

    at = page("3_Classify.py", monkeypatch, data_root)
    assert at.expander[-1].label == "This room: nothing heard yet"
    students = [*sorted((shared_corpora / "ravdess" / "Actor_05").glob("*.flac"))[:4],
                *sorted((shared_corpora / "tess" / "OAF_neutral").glob("*.flac"))[:4]]
    at.file_uploader(key="room_recordings").set_value(
        [(path.name, path.read_bytes(), "audio/flac") for path in students] + [("notes.wav", b"hi", "audio/wav")]).run()
    at.button(key="room_add").click().run()
    assert not at.exception and not at.error
    assert "from 8 recordings" in at.success[0].value and "notes.wav" in at.warning[0].value
    room = load_room(Predictor.load().pipeline)
    assert room is not None and room.seconds > 10
    at.run()
    assert at.expander[-1].label == f"This room: {room.seconds / 60:.1f} min of speech heard"
    clip = shared_corpora / "ravdess" / "Actor_09" / "03-01-05-01-01-01-09.flac"
    at.file_uploader[0].upload(clip.name, clip.read_bytes(), "audio/flac").run()
    after = load_room(Predictor.load().pipeline)  # the room heard the upload too
    assert after.seconds > room.seconds
    assert f"relative to the {after.seconds:.0f} s of speech heard" in " ".join(caption.value for caption in at.caption)
    at.button(key="room_forget").click().run()
    assert not at.exception and "Forgotten" in at.success[0].value and load_room(Predictor.load().pipeline) is None


def test_classify_with_the_unnormalised_compare_model_needs_no_calibration(monkeypatch, data_root, shared_corpora):
    at = page("3_Classify.py", monkeypatch, data_root)
    at.selectbox[0].select_index(at.selectbox[0].options.index("compare-ge2e-ridge-unnormalised (shipped)")).run()
    assert len(at.file_uploader) == 1  # no box for the speaker's recordings
    clip = sorted((shared_corpora / "tess").rglob("*.wav"))[0]
    at.file_uploader[0].upload(clip.name, clip.read_bytes(), "audio/wav").run()
    assert not at.exception and not at.error
    expected = Predictor.load("compare-ge2e-ridge-unnormalised").predict(clip)
    assert at.metric[0].value == expected.label
    assert at.metric[0].delta == f"{expected.probabilities[expected.label]:.0%} probability"


TRAIN = "FormSubmitter:train-Train"  # the Train page's form button


# --- Live, without a browser ------------------------------------------------------------------------------

@pytest.fixture
def webrtc_calls(monkeypatch) -> list[dict]:
    """The WebRTC widget cannot run under AppTest (it needs a browser's component session: see
    ../shared/notes/browser-and-webrtc-testing.md), so it is replaced by a stub that keeps what the page asked
    of it and reports a stream that is not playing; everything else on the page is real. The stream itself is
    tested in tests/test_live.py and, in a browser, in tests/e2e/test_live_browser.py."""
    import types

    import streamlit_webrtc

    calls = []

    def stub(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(state=types.SimpleNamespace(playing=False))

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", stub)
    return calls


def test_live_page_sets_up_the_microphone_stream(monkeypatch, data_root, webrtc_calls):
    monkeypatch.setenv(config.ICE_SERVERS_ENV, '{"urls": "stun:stun.example.org:3478"}')
    at = page("4_Live.py", monkeypatch, data_root)
    [call] = webrtc_calls
    assert call["rtc_configuration"] == {"iceServers": [{"urls": "stun:stun.example.org:3478"}]}
    assert call["media_stream_constraints"] == {  # the raw microphone: no browser gain control or denoising
        "audio": {"echoCancellation": False, "noiseSuppression": False, "autoGainControl": False}, "video": False}
    assert call["mode"].name == "SENDONLY" and "Choose microphone" in call["translations"]["select_device"]
    assert (at.slider(key="live_window").value, at.slider(key="live_hop").value) == (config.WINDOW, 0.5)
    assert any("NotAllowedError" in caption.value for caption in at.caption)
    assert not at.info and [b.key for b in at.button] == ["new_voice", "room_add", "room_forget"]  # no calibration
    session = at.session_state["live_holder"]["session"]
    assert (session.window, session.hop, session.predictor.name) == (config.WINDOW, 0.5, "mfcc-prosody-logreg")
    at.slider(key="live_hop").set_value(1.0).run()  # new settings: a new stream with them
    assert at.session_state["live_holder"]["session"].hop == 1.0 and session.closed


def test_live_page_adapts_to_a_voice_and_starts_over_for_the_next(monkeypatch, data_root, webrtc_calls,
                                                                  shared_corpora):
    from ser_core.audio import load_audio

    at = page("4_Live.py", monkeypatch, data_root)
    assert "not adapted to your voice yet" in " ".join(caption.value for caption in at.caption)
    session = at.session_state["live_holder"]["session"]
    speech = np.concatenate([load_audio(path, sr=16_000) for path in
                             sorted((shared_corpora / "ravdess" / "Actor_03").glob("*.flac"))[:3]])
    for end in range(8_000, len(speech), 8_000):  # as a microphone gives it; the worker keeps up
        session.push(speech[end - 8_000:end], 16_000)
        session.wait_for_result(max(0, (end - 48_000) // 8_000), timeout=5)
    assert session.predictor.heard_seconds >= 3
    at.run()
    assert "s of your voice" in " ".join(caption.value for caption in at.caption)
    room = f"This room: {session.predictor.room_seconds / 60:.1f} min of speech heard"
    assert at.expander[-1].label == room
    at.button(key="new_voice").click().run()
    assert session.predictor.heard_seconds == 0 and not at.exception
    assert "not adapted to your voice yet" in " ".join(caption.value for caption in at.caption)
    assert at.expander[-1].label == room  # the next student starts from the room


def test_live_page_says_what_is_wrong_with_the_ice_servers_and_starts_no_stream(monkeypatch, data_root,
                                                                             webrtc_calls):
    monkeypatch.setenv(config.ICE_SERVERS_ENV, "stun:stun.example.org")
    at = page("4_Live.py", monkeypatch, data_root)
    assert not webrtc_calls and config.ICE_SERVERS_ENV in at.error[0].value and "not valid JSON" in at.error[0].value


def test_live_page_calibrates_a_speaker_normalised_model(monkeypatch, data_root, webrtc_calls):
    at = page("4_Live.py", monkeypatch, data_root)
    at.selectbox(key="live_model").select_index(at.selectbox(key="live_model").options.index(
        "compare-ge2e-ridge (shipped)")).run()
    assert not at.exception and "needs your speech first" in at.info[0].value
    at.button(key="calibrate_start").click().run()
    session = at.session_state["live_holder"]["session"]
    assert session.predictor.needs_calibration
    session.push(voice(duration=0.3), 16_000)  # far too little speech
    at.button(key="calibrate_end").click().run()
    assert not at.exception and at.error and "calibrat" in at.error[0].value.lower()
    assert session.predictor.needs_calibration


def wait_for_job(at: AppTest, timeout: float = 240) -> None:
    job = at.session_state["job"]
    assert job.wait(timeout), "training did not finish"
    at.run()


def test_train_evaluate_save_and_compare(monkeypatch, data_root):
    at = train_svm_on_page(monkeypatch, data_root)
    assert not at.exception and not at.error
    assert "speaker-independent" in at.info[0].value
    assert float(at.metric[0].value.rstrip("%")) > 50  # f0 and loudness separate the four emotions
    assert "Confusion matrix (clips)" in titles(at)
    at.text_input(key="save_name").set_value("my-first-svm")
    at.button(key="FormSubmitter:save-Save model").click().run()
    assert "my-first-svm" in at.success[0].value
    at = page("2_Train.py", monkeypatch, data_root)
    assert "my-first-svm" in at.dataframe[0].value["name"].tolist()


def test_train_adapted_to_the_test_speakers_says_so_in_its_figures_and_model_list(monkeypatch, data_root):
    at = page("2_Train.py", monkeypatch, data_root)
    at.selectbox(key="train_features").set_value("librosa180")  # the SVM
    at.number_input(key="train_folds").set_value(2)
    at.checkbox(key="train_adapt").check()
    at.button(key=TRAIN).click().run()
    wait_for_job(at)
    assert not at.exception and not at.error
    assert f"adapted: {ADAPTATION_DESCRIPTION}" in at.info[0].value
    # The form comes back with this run's choices, so that the next run can change one thing (adapt or not).
    assert (at.selectbox(key="train_features").value, at.number_input(key="train_folds").value,
            at.checkbox(key="train_adapt").value) == ("librosa180", 2, True)
    at.text_input(key="save_name").set_value("adapted-svm")
    at.button(key="FormSubmitter:save-Save model").click().run()
    at = page("2_Train.py", monkeypatch, data_root)
    assert at.dataframe[0].value.set_index("name").loc["adapted-svm", "protocol"] == "speaker, adapted"
    at.selectbox(key="train_model").set_value("mlp").run()  # only what applies: a Keras model cannot adapt
    assert "train_adapt" not in [box.key for box in at.checkbox] and at.number_input(key="train_epochs")
    assert "(the model's default)" in at.selectbox(key="train_features").format_func("")  # named, not "default"
    at.selectbox(key="train_model").set_value("svm").run()
    assert "train_epochs" not in [box.key for box in at.number_input] and at.checkbox(key="train_adapt")


def test_train_a_model_that_adapts_to_voices_scored_after_hearing_each_test_voice(monkeypatch, data_root):
    at = page("2_Train.py", monkeypatch, data_root)
    at.selectbox(key="train_features").set_value("mfcc_prosody")  # the SVM
    at.number_input(key="train_folds").set_value(2)
    at.radio(key="train_normalisation").set_value("by what it hears")
    at.selectbox(key="train_scoring").set_value("voice")
    at.number_input(key="train_voice_clips").set_value(25)  # more than any test voice has (12): a message
    at.button(key=TRAIN).click().run()
    wait_for_job(at)
    assert "none is left to score" in at.error[0].value and not at.exception
    at.number_input(key="train_voice_clips").set_value(4)
    at.button(key=TRAIN).click().run()
    wait_for_job(at)
    assert not at.exception and not at.error
    assert "scored voice" in at.info[0].value
    result = at.session_state["job"].run.result
    assert result.voice_norm and result.voice_clips == 4
    assert result.pooled["n"] == result.n_clips - 4 * result.n_speakers  # each voice's first clips heard, not scored


def test_train_quick_demo_fills_the_form_with_a_fast_model_and_trains(monkeypatch, data_root):
    at = page("2_Train.py", monkeypatch, data_root)
    at.button(key="quick_demo").click().run()
    wait_for_job(at)
    assert not at.exception and not at.error and "Protocol: **speaker**" in at.info[0].value
    assert "Chance: 25.0% for 4 emotions: a model that guesses scores that." in [c.value for c in at.caption]
    run = at.session_state["job"].run
    assert (run.config.model, run.config.features, run.config.folds, run.n_speakers) == ("logreg", "mfcc_prosody", 3, 4)
    at.run()  # the form comes back with the demo's settings, to change one thing
    assert (at.selectbox(key="train_model").value, at.selectbox(key="train_features").value,
            at.number_input(key="train_folds").value) == ("logreg", "mfcc_prosody", 3)
    assert at.multiselect(key="train_speakers").value == ["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"]


def test_train_a_keras_model_draws_live_curves_and_stops(monkeypatch, data_root):
    at = page("2_Train.py", monkeypatch, data_root)
    at.selectbox(key="train_model").set_value("mlp").run()
    at.selectbox(key="train_features").set_value("librosa180")
    at.number_input(key="train_folds").set_value(2)
    at.number_input(key="train_epochs").set_value(200)   # it will be stopped long before
    at.number_input(key="train_batch_size").set_value(4)  # small batches, so that it is still training when Stop comes
    at.button(key=TRAIN).click().run()
    job = at.session_state["job"]
    deadline = time.time() + 120
    while not any(e.kind == "epoch" for e in job.events) and time.time() < deadline:
        time.sleep(0.2)
    at.run()
    assert "Loss per epoch" in titles(at)
    at.button(key="stop").click().run()
    wait_for_job(at)
    assert job.run.stopped and not at.exception
    assert any("Stopped" in w.value for w in at.warning)


def test_sessions_do_not_see_each_other(monkeypatch, data_root):
    first = page("2_Train.py", monkeypatch, data_root)
    first.selectbox(key="train_features").set_value("librosa180")
    first.number_input(key="train_folds").set_value(2)
    first.button(key=TRAIN).click().run()
    wait_for_job(first)
    second = page("2_Train.py", monkeypatch, data_root)
    assert [t.label for t in first.text_input] == ["Save as"]  # the first session has a result to save
    assert "job" not in second.session_state and not second.text_input  # the second sees none of it
    assert second.button(key=TRAIN).label == "Train"


def test_train_form_offers_exactly_the_settings_a_training_config_accepts(monkeypatch, data_root):
    """Each input's limits are TrainConfig's: the page neither refuses a setting the CLI accepts (it stopped at
    batch size 1024 and 500 epochs) nor offers one that training then refuses."""
    at = page("2_Train.py", monkeypatch, data_root)
    at.selectbox(key="train_model").set_value("mlp").run()  # a Keras model: every setting is on screen
    inputs = {name: at.number_input(key=f"train_{name}") for name in ("folds", "epochs", "batch_size",
                                                                       "learning_rate")}
    inputs["dropout"] = at.slider(key="train_dropout")
    for name, box in inputs.items():
        kind = type(getattr(TrainConfig, name))  # the widgets' limits come back as floats
        step = 1 if kind is int else min(box.min / 10, 0.01) or 0.01
        TrainConfig(model="svm", **{name: kind(box.min)})
        with pytest.raises(OptionError, match=name.replace("_", " ")):
            TrainConfig(model="svm", **{name: kind(box.min - step)})
        if box.max is None:
            TrainConfig(model="svm", **{name: 10 ** 6})
            continue
        TrainConfig(model="svm", **{name: kind(box.max)})
        with pytest.raises(OptionError, match=name.replace("_", " ")):
            TrainConfig(model="svm", **{name: kind(box.max + step)})


def test_record_saves_relabels_and_deletes_clips_that_explore_then_sees(monkeypatch, tmp_path):
    at = page("5_Record.py", monkeypatch, tmp_path)
    at.text_input(key="new_corpus").set_value("My Class")
    at.text_input(key="speaker").set_value("Ana")
    at.selectbox(key="label").set_value("sad")
    at.radio(key="source").set_value("Upload a file").run()
    at.file_uploader[0].upload("ana.wav", wav(voice(duration=1.0)), "audio/wav").run()
    at.button(key="save").click().run()
    assert not at.exception and not at.error
    assert "Saved sad/ana_001.wav" in at.success[0].value and at.selectbox(key="corpus").value == "my-class"
    assert at.dataframe[0].value[["file", "speaker", "label"]].values.tolist() == [["sad/ana_001.wav", "ana", "sad"]]
    assert at.button(key="save").disabled  # the uploader is cleared for the next clip
    assert "of 1 clips, 1 speakers" in page("1_Explore.py", monkeypatch, tmp_path).markdown[0].value
    at.radio(key="source").set_value("Record").run()
    at.audio_input[0].set_value(("recording.wav", wav(voice(duration=1.0, f0=220)), "audio/wav"))
    at.text_input(key="speaker").set_value("ben")
    at.selectbox(key="label").set_value("happy").run()
    at.button(key="save").click().run()
    assert not at.exception and "Saved happy/ben_001.wav" in at.success[0].value
    assert sorted(at.dataframe[0].value["file"]) == ["happy/ben_001.wav", "sad/ana_001.wav"]
    assert any("**2** speakers" in block.value for block in at.markdown)
    explore = page("1_Explore.py", monkeypatch, tmp_path)  # the catalog was read again after the change
    assert explore.sidebar.multiselect(key="filter_speaker").options == ["my-class_ana", "my-class_ben"]
    at.selectbox(key="clip").set_value("happy/ben_001.wav").run()
    at.selectbox(key="relabel_happy/ben_001.wav").set_value("angry").run()
    at.button(key="relabel").click().run()
    assert not at.exception and at.selectbox(key="clip").value == "angry/ben_001.wav"
    assert sorted(at.dataframe[0].value["label"]) == ["angry", "sad"]
    at.button(key="delete").click().run()
    assert not at.exception and "Deleted angry/ben_001.wav" in at.success[0].value
    assert at.dataframe[0].value["file"].tolist() == ["sad/ana_001.wav"]
    assert "two speakers" in at.warning[0].value


def test_record_refuses_a_non_audio_upload_and_a_missing_speaker(monkeypatch, tmp_path):
    at = page("5_Record.py", monkeypatch, tmp_path)
    at.text_input(key="new_corpus").set_value("my-class")
    at.radio(key="source").set_value("Upload a file").run()
    at.file_uploader[0].upload("notes.wav", b"hello, this is a text file", "audio/wav").run()
    assert not at.exception and "not an audio recording" in at.error[0].value
    assert at.button(key="save").disabled
    at.file_uploader[0].upload("clip.wav", wav(voice(duration=1.0)), "audio/wav").run()
    assert at.button(key="save").disabled and "To save: enter the speaker." in [c.value for c in at.caption]
    at.text_input(key="speaker").set_value("   ").run()  # blank is no name
    assert at.button(key="save").disabled and not (tmp_path / "my-class").exists()


def test_record_says_why_it_cannot_save_and_refuses_a_read_only_data_folder(monkeypatch, tmp_path):
    from ser_core import recordings

    def read_only(folder):
        raise PermissionError(13, "Read-only file system")  # what a read-only mount says, which chmod cannot make

    at = page("5_Record.py", monkeypatch, tmp_path)
    assert "To save: record or upload a clip, name the corpus, enter the speaker." in [c.value for c in at.caption]
    assert any("NotAllowedError" in c.value for c in at.caption)  # no microphone: what to do
    monkeypatch.setattr(recordings, "_probe", read_only)
    at.text_input(key="new_corpus").set_value("my-class")
    at.text_input(key="speaker").set_value("Ana")
    at.radio(key="source").set_value("Upload a file").run()
    at.file_uploader[0].upload("clip.wav", wav(voice(duration=1.0)), "audio/wav").run()
    assert "Read-only file system" in at.error[0].value and "--data-dir" in at.error[0].value
    captions = [caption.value for caption in at.caption]
    assert at.button(key="save").disabled and "To save: choose a data folder you can write to." in captions
    monkeypatch.undo()
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path))
    at.run()
    assert not at.error and not at.button(key="save").disabled

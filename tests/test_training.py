"""The Keras model zoo and the training engine: every builder trains and round-trips, runs stream events,
stop cleanly, keep their best weights, reproduce from their config; predictors classify windows."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_core import config
from ser_core.bundles import load_bundle
from ser_core.corpora import build_catalog
from ser_core.errors import ModelError, OptionError
from ser_core.evaluation import validation_rows
from ser_core.audio import load_audio
from ser_core.features import extract, extract_features, normalize_by_speaker
from ser_core.inference import SILENCE, Predictor
from ser_core.models import MODELS
from ser_core.training import BASELINES, TrainConfig, save_run, train
from tests.clips import voice
from tests.corpus_trees import EMOTION_VOICE, write_ravdess_tree

QUICK = dict(epochs=2, folds=2, batch_size=16)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4, 5, 6), duration=1.0)
    return build_catalog(root)


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_trains_and_round_trips_through_a_bundle(tmp_path, catalog, model):
    events = []
    run = train(catalog, TrainConfig(model=model, **QUICK), on_event=events.append, n_jobs=1)
    assert run.result.classifier == model and run.result.protocol == "speaker" and run.result.complete
    epochs = [e for e in events if e.kind == "epoch"]
    assert epochs and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[0].metrics)
    assert [e.fold for e in events if e.kind == "fold"] == [0, 1] and events[-1].kind == "done"

    path = save_run(run, model, tmp_path)
    assert (path / "model.keras").is_file()
    predictor = Predictor.load(path)
    X = extract_features(catalog.head(8), run.config.features, n_jobs=1)
    np.testing.assert_allclose(predictor.bundle.predict_proba(X), run.model.predict(X, verbose=0), atol=1e-5)
    prediction = predictor.predict(catalog.path.iloc[0])
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert list(prediction.probabilities) == run.labels == ["neutral", "happy", "sad", "angry"]


@pytest.mark.parametrize("model", BASELINES)
def test_each_scikit_learn_model_learns_and_round_trips_through_a_bundle_without_pickle(tmp_path, catalog, model):
    run = train(catalog, TrainConfig(model=model, features="librosa180", folds=2), n_jobs=1)
    assert run.result.classifier == model and run.result.protocol == "speaker" and run.result.complete
    assert run.result.pooled["accuracy"] > 0.5, run.result.pooled  # 4 emotions of 3 unseen actors; chance 25%

    path = save_run(run, model, tmp_path)
    assert (path / "model.skops").is_file()
    predictor = Predictor.load(path)
    X = extract_features(catalog.head(8), run.config.features, n_jobs=1)
    np.testing.assert_allclose(predictor.bundle.predict_proba(X), run.model.predict_proba(X))
    assert list(predictor.predict(catalog.path.iloc[0]).probabilities) == ["angry", "happy", "neutral", "sad"]


def test_best_weights_are_kept_by_validation_loss(catalog):
    import keras

    cfg = TrainConfig(model="mlp", features="librosa180", epochs=25, patience=25, learning_rate=0.05, folds=2)
    run = train(catalog, cfg, n_jobs=1)
    history = [epoch["val_loss"] for epoch in run.history["final"]]
    assert min(history) < history[-1]  # the learning rate is too high: validation loss goes back up
    X = extract_features(catalog, cfg.features, n_jobs=1)
    _, val = validation_rows(catalog, np.arange(len(catalog)), cfg.protocol, share=cfg.validation_share,
                             seed=cfg.seed)
    codes = np.array([run.labels.index(label) for label in catalog.label.to_numpy()[val]])
    loss = keras.losses.SparseCategoricalCrossentropy()(codes, run.model(X[val]))
    assert float(loss) == pytest.approx(min(history), rel=1e-3)


def test_validation_never_uses_test_speakers(catalog):
    train_rows = np.flatnonzero(catalog.speaker.isin(["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"]))
    fit, val = validation_rows(catalog, train_rows, "speaker", share=0.3)
    assert set(fit) | set(val) == set(train_rows)
    assert not set(catalog.speaker.iloc[fit]) & set(catalog.speaker.iloc[val])


def test_stop_ends_the_run_cleanly_with_the_best_weights_so_far(tmp_path, catalog):
    stop = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if event.kind == "epoch" and event.epoch == 2:
            stop.set()

    run = train(catalog, TrainConfig(model="cnn1d_deep", epochs=50, folds=2), on_event=on_event, stop=stop,
                n_jobs=1)
    assert run.stopped and events[-1].kind == "stopped"
    assert len([e for e in events if e.kind == "epoch"]) <= 3 and run.result is None
    path = save_run(run, "stopped", tmp_path)
    assert json.loads((path / "metadata.json").read_text())["stopped"] is True
    assert Predictor.load(path).predict(catalog.path.iloc[0]).label in run.labels


def test_training_job_survives_streamlit_cleaning_keras_after_each_script_run(catalog):
    """In the app, Streamlit clears Keras' session after every rerun of the page, while a job trains."""
    from streamlit.runtime.scriptrunner.script_runner import _clean_problem_modules

    from ser_core.training import TrainingJob

    job = TrainingJob(catalog, TrainConfig(model="mlp", features="librosa180", epochs=3, folds=3), n_jobs=1)
    while not job.done:  # the page reruns several times a second while a job trains
        _clean_problem_modules()
        time.sleep(0.02)
    assert job.error is None and job.run.result.complete


def test_a_run_is_reproducible_from_its_saved_config(tmp_path, catalog):
    cfg = TrainConfig(model="mlp", features="librosa180", **QUICK)
    first = save_run(train(catalog, cfg, n_jobs=1), "first", tmp_path)
    again = TrainConfig.load(first / "metadata.json")
    assert again == cfg
    second = train(catalog, again, n_jobs=1)
    X = extract_features(catalog, cfg.features, n_jobs=1)
    np.testing.assert_allclose(second.model.predict(X, verbose=0), load_bundle(first).predict_proba(X), atol=1e-5)


def test_bad_configs_say_what_would_work():
    with pytest.raises(OptionError, match="logmel"):
        TrainConfig(model="cnn2d", features="egemaps")
    with pytest.raises(OptionError, match="dropout"):
        TrainConfig(dropout=1.5)
    with pytest.raises(OptionError, match="optimizer"):
        TrainConfig(optimizer="lion")
    with pytest.raises(OptionError, match="wings"):
        TrainConfig.from_dict({"model": "mlp", "wings": 2})
    assert TrainConfig(model="cnn2d").features == "logmel"


def test_a_bundle_that_does_not_match_its_metadata_is_refused(tmp_path, catalog):
    run = train(catalog, TrainConfig(model="mlp", features="librosa180", **QUICK), n_jobs=1)
    path = save_run(run, "mine", tmp_path)
    metadata = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({**metadata, "labels": metadata["labels"][:3]}))
    with pytest.raises(ModelError, match="does not match"):
        load_bundle(path)
    (path / "metadata.json").write_text(json.dumps(metadata))
    (path / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="damaged"):
        load_bundle(path)


def test_user_run_never_takes_a_shipped_name(catalog):
    run = train(catalog, TrainConfig(model="svm", features="librosa180", folds=2), n_jobs=1)
    with pytest.raises(ModelError, match="shipped"):
        save_run(run, config.DEFAULT_MODEL)


def test_long_clip_timeline_marks_silence_and_summarises(tmp_path, catalog):
    run = train(catalog, TrainConfig(model="svm", features="librosa180", folds=2), n_jobs=1)
    predictor = Predictor.load(save_run(run, "svm", tmp_path))
    f0, level = EMOTION_VOICE[5]  # angry, for an unseen voice between the training actors
    sr = 16_000
    speech = voice(duration=3.0, sr=sr, f0=f0 * 1.14, level=level, seed=5)
    clip = np.concatenate([speech, np.zeros(4 * sr, np.float32), speech])
    sf.write(tmp_path / "long.wav", clip, sr)
    timeline = predictor.predict_windows(tmp_path / "long.wav", window=2.0, hop=1.0)
    labels = [w.label for w in timeline.windows]
    assert labels[0] == "angry" and labels[-1] == "angry"
    assert SILENCE in labels and all(not w.probabilities for w in timeline.windows if w.label == SILENCE)
    summary = timeline.summary()
    assert summary["label"] == "angry"
    assert sum(summary["share"].values()) == pytest.approx(1.0)
    assert timeline.windows[-1].end == pytest.approx(10.0)


def test_speaker_normalised_model_needs_calibration(tmp_path, catalog):
    run = train(catalog, TrainConfig(model="svm", features="librosa180", folds=2, speaker_norm=True), n_jobs=1)
    predictor = Predictor.load(save_run(run, "norm", tmp_path))
    assert predictor.needs_calibration
    with pytest.raises(ModelError, match="calibrate"):
        predictor.predict(catalog.path.iloc[0])
    # Calibrate on a new speaker's neutral and happy speech, then classify their angry voice.
    f0s = {label: EMOTION_VOICE[code] for code, label in [(1, "neutral"), (3, "happy"), (4, "sad"), (5, "angry")]}
    clips = [voice(duration=1.0, f0=f0 * 1.14, level=level, seed=i) for i, (f0, level) in enumerate(f0s.values())]
    predictor.calibrate(clips)
    assert not predictor.needs_calibration
    assert predictor.predict_samples(clips[3]).label == "angry"


def test_a_keras_model_keeps_its_frame_level_speaker_statistics_through_a_bundle(tmp_path, catalog):
    """Frame models normalise each feature over a speaker's clips and frames: the typical spread that steadies a
    calibration has that shape too, and survives metadata.json."""
    run = train(catalog, TrainConfig(model="cnn1d_deep", speaker_norm=True, **QUICK), n_jobs=1)
    predictor = Predictor.load(save_run(run, "norm-cnn", tmp_path))
    assert run.speaker_std.shape == (1, run.speaker_std.size)
    np.testing.assert_allclose(predictor.typical_speaker_std, run.speaker_std, rtol=1e-6)
    clips = [voice(duration=1.0, f0=EMOTION_VOICE[code][0] * 1.14, seed=code) for code in (1, 3, 4, 5)]
    assert predictor.calibrate(clips) == 4
    assert predictor.speaker_stats[1].shape == run.speaker_std.shape
    assert sum(predictor.predict_samples(clips[0]).probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_small_model_learns_real_emotions_of_unseen_actors(shared_corpora):
    catalog = build_catalog(shared_corpora, ["ravdess"])
    catalog = catalog[catalog.speaker.isin([f"ravdess_{i:02d}" for i in range(1, 9)])]
    run = train(catalog, TrainConfig(model="mlp", features="egemaps", folds=4, epochs=40))
    assert run.result.protocol == "speaker" and run.result.n_speakers == 8
    assert run.result.pooled["accuracy"] > 0.25  # chance is 12.5% over 8 emotions


def test_compare_ge2e_ridge_learns_unseen_actors_round_trips_and_calibrates_on_a_few_quiet_clips(tmp_path,
                                                                                                 shared_corpora):
    """The shipped compare-ge2e-ridge's recipe (ComParE functionals and the speaker encoder's states, per-speaker
    normalisation, ridge) on 8 actors, 4 folds by actor; then saved, loaded, calibrated on an actor's clips and
    giving the fold model's answers; then calibrated on 10 clips of an actor it never heard, played 26 dB quieter,
    as a Live session or `predict --calibrate` would, and classifying that actor's other clips."""
    ravdess = build_catalog(shared_corpora, ["ravdess"])
    catalog = ravdess[ravdess.speaker.isin([f"ravdess_{i:02d}" for i in range(1, 9)])]
    run = train(catalog, TrainConfig(model="ridge", features="compare_ge2e", folds=4, speaker_norm=True))
    assert run.result.protocol == "speaker" and run.result.pooled["accuracy"] > 0.4  # chance is 12.5%
    predictor = Predictor.load(save_run(run, "compare-ge2e", tmp_path))
    actor = catalog[catalog.speaker == "ravdess_08"]
    clips = [load_audio(path, sr=16_000) for path in actor.path]
    predictor.calibrate(clips)
    X = normalize_by_speaker(np.stack([extract(y, 16_000, "compare_ge2e") for y in clips]), actor.speaker.to_numpy(),
                             kind="clip", prior_std=run.speaker_std)
    expected = run.model.predict(X)
    assert [predictor.predict_samples(y).label for y in clips] == list(expected)

    new_actor = ravdess[ravdess.speaker == "ravdess_12"].sample(frac=1.0, random_state=0)
    clips = [load_audio(path, sr=16_000) for path in new_actor.path]
    assert predictor.calibrate([y * 0.05 for y in clips[:10]]) == 10
    correct = [predictor.predict_samples(y).label == label for y, label in zip(clips[10:], new_actor.label[10:])]
    # Per-speaker statistics from 10 clips once blew up the features they left nearly constant (23% over RAVDESS),
    # and a quiet calibration shifted every loudness feature.
    assert np.mean(correct) > 0.45, np.mean(correct)


def test_egemaps_and_the_live_page_still_work_after_tensorflow_is_loaded():
    """The app trains a Keras model, then classifies with the eGeMAPS default model and opens the Live page
    (streamlit-webrtc), in one process."""
    import subprocess
    import sys

    script = ("from ser_core.models import import_keras; import_keras(); import tensorflow; "
              "import streamlit_webrtc; "
              "from ser_core.features import extract; from tests.clips import voice; "
              "print(extract(voice(duration=2.0), 16000, 'egemaps').shape)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0 and result.stdout.strip() == "(88,)", (result.returncode, result.stderr[-2000:])

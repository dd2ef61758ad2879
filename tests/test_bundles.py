"""Model bundles: round trips, refusals, atomic writes, and the shipped default model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ser_core import config
from ser_core.audio import load_audio
from ser_core.bundles import LOCK_FILE, list_models, load_bundle, save_bundle
from ser_core.classifiers import make_classifier
from ser_core.corpora import build_catalog
from ser_core.errors import ModelError
from ser_core.features import extract_features, get_pipeline
from ser_core.inference import Predictor
from ser_core.training import TrainConfig, save_run, train
from tests.clips import write_clip
from tests.corpus_trees import EMOTION_VOICE, write_ravdess_tree


SVM = TrainConfig(model="svm", features="librosa180")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4))
    return root


@pytest.fixture
def fitted(corpus):
    catalog = build_catalog(corpus)
    X = extract_features(catalog, "librosa180", n_jobs=1)
    model = make_classifier("svm").fit(X, catalog.label.to_numpy())
    metadata = {"labels": list(model.classes_), "features": get_pipeline("librosa180").to_dict(),
                "sample_rate": config.SAMPLE_RATE, "classifier": "svm"}
    return model, metadata, X


def test_bundle_round_trip_gives_the_same_probabilities(tmp_path, fitted):
    model, metadata, X = fitted
    path = save_bundle(tmp_path / "mine", model, metadata)
    bundle = load_bundle(path)
    assert bundle.name == "mine" and bundle.labels == metadata["labels"]
    np.testing.assert_allclose(bundle.model.predict_proba(X), model.predict_proba(X))
    saved = json.loads((path / "metadata.json").read_text())
    assert saved["versions"]["scikit-learn"] and saved["created"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [LOCK_FILE]  # no staging left behind


def test_a_model_trained_on_other_features_is_refused_with_a_reason(tmp_path, fitted):
    model, metadata, _ = fitted
    changed = dict(metadata, features={**metadata["features"], "n_mfcc": 13})
    path = save_bundle(tmp_path / "old", model, changed)
    with pytest.raises(ModelError, match="retrain"):
        load_bundle(path)
    unknown = save_bundle(tmp_path / "alien", model, dict(metadata, features={"name": "wav2vec9"}))
    with pytest.raises(ModelError, match="wav2vec9"):
        load_bundle(unknown)


def test_damaged_and_untrusted_files_are_refused(tmp_path, fitted):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    model, metadata, _ = fitted
    path = save_bundle(tmp_path / "m", model, metadata)
    (path / "model.skops").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="damaged"):
        load_bundle(path)
    sio.dump(FunctionTransformer(func=os.system), path / "model.skops")
    with pytest.raises(ModelError, match="not trusted"):
        load_bundle(path)
    (path / "metadata.json").write_text("{ half")
    with pytest.raises(ModelError, match="damaged"):
        load_bundle(path)
    with pytest.raises(ModelError, match="No model called"):
        load_bundle("does-not-exist")


def test_a_failed_save_leaves_the_previous_model_intact(tmp_path, monkeypatch, fitted):
    import skops.io

    model, metadata, X = fitted
    path = save_bundle(tmp_path / "mine", model, metadata)

    def disk_full(obj, file):
        Path(file).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(skops.io, "dump", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_bundle(path, model, metadata)
    np.testing.assert_allclose(load_bundle(path).model.predict_proba(X), model.predict_proba(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "mine"]


def test_user_models_never_overwrite_shipped_ones(tmp_path, monkeypatch, fitted, corpus):
    model, metadata, _ = fitted
    shipped = tmp_path / "models"
    monkeypatch.setattr(config, "SHIPPED_MODELS_DIR", shipped)
    save_bundle(shipped / "default", model, metadata)
    with pytest.raises(ModelError, match="shipped"):
        save_bundle(shipped / "default", model, metadata)
    with pytest.raises(ModelError, match="shipped"):
        save_run(train(build_catalog(corpus), SVM, n_jobs=1), "default")
    assert [m["source"] for m in list_models()] == ["shipped"]


def test_train_then_predict_an_unseen_speaker(tmp_path, corpus):
    catalog = build_catalog(corpus)
    path = save_run(train(catalog, TrainConfig(model="svm", features="librosa180", folds=2), n_jobs=1), "pitchy")
    assert path.parent == config.user_models_dir()
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["evaluation"]["protocol"] == "speaker"
    assert metadata["training"]["n_speakers"] == 4
    predictor = Predictor.load("pitchy")
    f0, level = EMOTION_VOICE[5]  # angry
    clip = write_clip(tmp_path / "new_speaker.flac", duration=1.0, sr=44_100, f0=f0 * 1.1, level=level, seed=99)
    prediction = predictor.predict(clip)
    assert prediction.label == "angry"
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
    assert set(prediction.probabilities) == {"neutral", "happy", "sad", "angry"}


@pytest.mark.parametrize("name", [None, "compare-ge2e-ridge-unnormalised"])  # the default; the most accurate
def test_shipped_single_clip_models_classify_real_clips_without_calibration(shared_corpora, name):
    predictor = Predictor.load(name)  # None: the default, as a page or `predict` without --model loads it
    catalog = build_catalog(shared_corpora)
    sample = catalog.groupby(["corpus", "label"]).head(3)
    correct = [predictor.predict(row.path).label == row.label for row in sample.itertuples()]
    # These clips were in its training data: this checks that the model works, not how well it generalises.
    assert np.mean(correct) > 0.6


def test_shipped_speaker_normalised_model_classifies_a_calibrated_speaker(shared_corpora):
    predictor = Predictor.load("compare-ge2e-ridge")
    actor = build_catalog(shared_corpora, ["ravdess"]).query("speaker == 'ravdess_05'")
    with pytest.raises(ModelError, match="calibrate"):
        predictor.predict(actor.path.iloc[0])
    clips = [load_audio(path, sr=predictor.pipeline.sample_rate) for path in actor.path]
    predictor.calibrate(clips)
    correct = [predictor.predict_samples(y).label == label for y, label in zip(clips, actor.label)]
    # Training data again: this checks that the shipped bundle loads, calibrates and works, not how well it generalises.
    assert np.mean(correct) > 0.6


def test_model_list_puts_the_default_first_and_says_which_need_calibration():
    models = {m["name"]: m for m in list_models()}
    assert list(models)[0] == config.DEFAULT_MODEL  # what every page's model box shows first
    assert "calibrate on the speaker first" in models["compare-ge2e-ridge"]["summary"]
    assert "calibrate" not in models[config.DEFAULT_MODEL]["summary"]
    assert "calibrate" not in models["compare-ge2e-ridge-unnormalised"]["summary"]

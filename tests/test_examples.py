"""The shipped example clips: real audio from voices no model trained here has heard, with their licence."""
from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from ser_core import config
from ser_core.audio import load_audio
from ser_core.corpora import example_clips


def test_examples_are_two_voices_in_six_emotions_small_and_attributed():
    clips = example_clips()
    assert Counter(clip.voice for clip in clips) == {"a man of 50": 6, "a woman of 29": 6}
    assert {clip.label for clip in clips} == {"angry", "disgust", "fearful", "happy", "neutral", "sad"}
    for clip in clips:
        assert 1.5 < len(load_audio(clip.path, sr=16_000)) / 16_000 < 3.5
    assert sum(clip.path.stat().st_size for clip in clips) < 3_000_000
    notes = (config.EXAMPLES_DIR / "README.md").read_text()
    assert "Open Database License" in notes and "Cao" in notes and "Database Contents License" in notes


def test_no_shipped_model_heard_the_example_voices():
    for folder in sorted(p for p in config.SHIPPED_MODELS_DIR.iterdir() if (p / "metadata.json").is_file()):
        metadata = json.loads((folder / "metadata.json").read_text())
        training = metadata["training"]
        if "cremad" in training["corpora"]:
            assert set(training["held_out_speakers"]) == set(config.EXAMPLE_SPEAKERS), folder.name
        speakers = set(pd.read_csv(folder / "predictions.csv")["speaker"])  # every clip it was trained on
        assert not speakers & set(config.EXAMPLE_SPEAKERS), folder.name


def test_training_leaves_the_example_voices_out(monkeypatch, shared_corpora, tmp_path):
    from ser_core.corpora import build_catalog
    from ser_core.training import TrainConfig, save_run, train

    catalog = build_catalog(shared_corpora, ["ravdess"])
    catalog = catalog[catalog["speaker"].isin(["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"])]
    monkeypatch.setattr(config, "EXAMPLE_SPEAKERS", ("ravdess_03",))
    run = train(catalog, TrainConfig(model="logreg", features="mfcc_prosody", folds=3), n_jobs=1)
    assert run.held_out_speakers == ["ravdess_03"] and run.n_speakers == 3
    assert "ravdess_03" not in set(run.result.predictions["speaker"])
    saved = json.loads((save_run(run, "without-examples", tmp_path) / "metadata.json").read_text())
    assert saved["training"]["held_out_speakers"] == ["ravdess_03"]


@pytest.mark.parametrize("argv, expected", [
    (["--data-dir", "/srv/corpora"], "/srv/corpora"),
    (["--server.port", "8502", "--data-dir=/srv/corpora"], "/srv/corpora"),
    ([], None),
])
def test_the_app_takes_a_data_dir_after_two_dashes(monkeypatch, argv, expected):
    monkeypatch.delenv(config.DATA_DIR_ENV, raising=False)
    config.set_data_dir_from_args(argv)
    assert str(config.data_root()) == (expected or str(config.DEFAULT_DATA_DIR))

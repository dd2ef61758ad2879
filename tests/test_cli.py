"""`python -m ser_core`, run as a user runs it: a real process, real files."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_core import config
from ser_core.evaluation import ADAPTATION_DESCRIPTION
from tests.clips import write_clip
from tests.conftest import PROJECT_ROOT
from tests.corpus_trees import EMOTION_VOICE, write_ravdess_tree


def ser(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_core", *map(str, args)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "Audio_Speech_Actors_01-24", actors=(1, 2, 3, 4, 5, 6))
    return root


def test_catalog_and_check(data_dir):
    result = ser("catalog", "--data-dir", data_dir, "--json")
    assert result.returncode == 0, result.stderr
    rows = json_lines(result.stdout)
    assert len(rows) == 6 * 4 * 3
    assert {row["label"] for row in rows} == {"neutral", "happy", "sad", "angry"}
    text = ser("catalog", "--data-dir", data_dir)
    assert "72 clips" in text.stdout and "ravdess" in text.stdout
    report = ser("check", "--data-dir", data_dir, "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == {"root": str(data_dir), "counts": {"ravdess": 72}, "ok": True,
                                         "findings": []}  # generated clean: mono, 16 kHz, no duplicates


def test_evaluate_reports_its_protocol(data_dir):
    result = ser("evaluate", "--data-dir", data_dir, "--features", "librosa180", "--classifier", "svm",
                 "--protocol", "speaker", "--folds", "3", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["protocol"] == "speaker" and record["folds"] == 3 and not record["adapted"]
    assert record["pooled"]["accuracy"] > 0.5  # f0 and loudness separate these four emotions
    adapted = ser("evaluate", "--data-dir", data_dir, "--features", "librosa180", "--classifier", "svm",
                  "--protocol", "speaker", "--folds", "3", "--adapt")
    assert adapted.returncode == 0, adapted.stderr
    assert ADAPTATION_DESCRIPTION in adapted.stdout  # the figure says so
    text = ser("evaluate", "--data-dir", data_dir, "--features", "librosa180", "--protocol", "random",
               "--folds", "3", "--augment", "noise")
    assert text.returncode == 0, text.stderr
    assert "protocol: random" in text.stdout and "training folds only" in text.stdout
    assert "confusion" in text.stdout


def test_train_then_predict_files_and_folders(data_dir, tmp_path):
    trained = ser("train", "--data-dir", data_dir, "--model", "svm", "--features", "librosa180",
                  "--name", "cli-model",
                  "--out", tmp_path, "--folds", "2", "--adapt", "--json")  # adapted figures; the same model
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["evaluation"]["adapted"]
    model = json.loads(trained.stdout)["model"]
    clips = tmp_path / "clips"  # an unseen voice, pitched between the training actors
    write_clip(clips / "a.wav", f0=EMOTION_VOICE[5][0] * 1.14, level=EMOTION_VOICE[5][1], duration=0.8,
               channels=2, seed=7)
    write_clip(clips / "b.flac", f0=EMOTION_VOICE[4][0] * 1.14, level=EMOTION_VOICE[4][1], duration=0.8, seed=8)
    (clips / "notes.wav").write_text("not audio")
    result = ser("predict", clips, "--model", model, "--json")
    assert result.returncode == 1  # one file failed, and the run says so
    lines = {Path(line["path"]).name: line for line in json_lines(result.stdout)}
    assert lines["a.wav"]["label"] == "angry" and lines["b.flac"]["label"] == "sad"
    assert lines["a.wav"]["model"] == "cli-model"
    assert "error" in lines["notes.wav"]


@pytest.mark.parametrize("args, message", [
    (["catalog", "--data-dir", "/nonexistent/place"], "/nonexistent/place"),
    (["evaluate", "--data-dir", "{data}", "--features", "bogus"], "bogus"),
    (["predict", "/nonexistent/clip.wav", "--model", "nope"], "nope"),
    (["train", "--data-dir", "{data}", "--name", "x", "--model", "cnn2d", "--features", "egemaps"], "logmel"),
    (["train", "--data-dir", "{data}", "--name", "x", "--config", "/nonexistent/config.json"], "config"),
    (["train", "--data-dir", "{data}", "--name", "x", "--model", "mlp", "--adapt"], "scikit-learn"),
])
def test_bad_input_is_one_clear_line(args, message, data_dir):
    result = ser(*[arg.replace("{data}", str(data_dir)) for arg in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_predict_with_the_default_model(shared_corpora):
    clip = next((shared_corpora / "tess" / "YAF_angry").glob("*.flac"))
    result = ser("predict", clip, "--json")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert line["model"] == config.DEFAULT_MODEL == "mfcc-prosody-logreg"
    assert sum(line["probabilities"].values()) == pytest.approx(1.0)


def test_train_a_keras_model_from_a_config_then_classify_a_long_clip(data_dir, tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"model": "lstm_attention", "epochs": 2, "folds": 2, "batch_size": 16}))
    trained = ser("train", "--data-dir", data_dir, "--config", config_file, "--name", "lstm", "--out", tmp_path,
                  "--json")
    assert trained.returncode == 0, trained.stderr
    record = json.loads(trained.stdout)
    assert record["evaluation"]["classifier"] == "lstm_attention" and record["evaluation"]["protocol"] == "speaker"
    assert "fold 2/2: accuracy" in trained.stderr  # progress for the person waiting
    metadata = json.loads((Path(record["model"]) / "metadata.json").read_text())
    assert metadata["config"]["model"] == "lstm_attention" and metadata["features"]["name"] == "zcr_rms_mfcc"

    clip = write_clip(tmp_path / "long.wav", duration=7.5, f0=200.0)
    result = ser("predict", clip, "--model", record["model"], "--timeline", "--window", "3", "--hop", "1.5",
                 "--json")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert [(w["start"], w["end"]) for w in line["windows"]] == [(0.0, 3.0), (1.5, 4.5), (3.0, 6.0), (4.5, 7.5)]
    assert line["summary"]["label"] in metadata["labels"]


def test_predict_calibrates_a_speaker_normalised_model_on_the_speakers_recordings(tmp_path, shared_corpora):
    actor = sorted((shared_corpora / "ravdess" / "Actor_05").glob("*.flac"))
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio")
    calibration = [arg for path in [*actor[:12], notes] for arg in ("--calibrate", path)]
    result = ser("predict", *actor[40:44], "--model", "compare-ge2e-ridge", *calibration, "--json")
    assert result.returncode == 0, result.stderr
    assert re.search(r"calibrated compare-ge2e-ridge on \d+ windows of the speaker's speech, from 12 recordings, "
                     "and adapted to them", result.stderr)
    assert "warning: calibration skipped" in result.stderr and "notes.wav: this is not an audio" in result.stderr
    lines = json_lines(result.stdout)
    assert len(lines) == 4 and all(sum(line["probabilities"].values()) == pytest.approx(1.0) for line in lines)

    uncalibrated = ser("predict", actor[40], "--model", "compare-ge2e-ridge")
    assert uncalibrated.returncode == 2 and "--calibrate" in uncalibrated.stderr
    assert len(uncalibrated.stderr.strip().splitlines()) == 1 and not uncalibrated.stdout
    needless = ser("predict", actor[40], "--model", "egemaps-svm", "--calibrate", actor[0], "--calibrate", actor[1])
    assert needless.returncode == 2 and "needs no calibration" in needless.stderr


def test_models_lists_the_shipped_models_with_their_cards_figures():
    result = ser("models", "--json")
    assert result.returncode == 0, result.stderr
    listed = {row["name"]: row for row in json_lines(result.stdout)}
    shipped = {path.parent.name: json.loads(path.read_text())
               for path in config.SHIPPED_MODELS_DIR.glob("*/metadata.json")
               if json.loads(path.read_text()).get("format") == "ser-studio-bundle"}
    assert set(listed) == set(shipped) and len(shipped) >= 4
    assert [name for name, row in listed.items() if row["default"]] == ["mfcc-prosody-logreg"]
    for name, metadata in shipped.items():
        assert listed[name]["broken"] is None and listed[name]["source"] == "shipped"
        assert listed[name]["accuracy"] == metadata["evaluation"]["pooled"]["accuracy"]
        assert listed[name]["speaker_norm"] == metadata["speaker_norm"]
    text = ser("models").stdout
    accuracy = shipped["mfcc-prosody-logreg"]["evaluation"]["pooled"]["accuracy"]
    assert (f"mfcc-prosody-logreg\tshipped\tmfcc_prosody + logreg, adapts to the voice and room it hears, protocol "
            f"speaker: accuracy {accuracy:.1%}") in text


def test_features_caches_what_extraction_computes(data_dir):
    from ser_core.audio import load_audio
    from ser_core.corpora import build_catalog
    from ser_core.features import extract, extract_features

    result = ser("features", "--data-dir", data_dir, "--pipeline", "librosa180", "--jobs", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["pipeline"], summary["clips"], summary["shape"], summary["skipped"]) == \
        ("librosa180", 72, [72, 180], [])
    assert len(list(Path(os.environ["SER_CACHE_DIR"]).rglob("*.bin"))) == 72  # the cache this process reads too
    catalog = build_catalog(data_dir)
    cached = extract_features(catalog, "librosa180", n_jobs=1)
    direct = np.stack([extract(load_audio(path, sr=16_000), 16_000, "librosa180") for path in catalog.path[:3]])
    np.testing.assert_allclose(cached[:3], direct, rtol=1e-5, atol=1e-6)
    text = ser("features", "--data-dir", data_dir, "--pipeline", "librosa180", "--jobs", "1")
    assert text.returncode == 0 and text.stdout.startswith("librosa180: 72 clips, features (180,)")


def test_a_model_that_adapts_to_voices_from_evaluate_to_predict(data_dir, tmp_path):
    evaluated = ser("evaluate", "--data-dir", data_dir, "--features", "mfcc_prosody", "--classifier", "logreg",
                    "--voice-norm", "--scoring", "voice", "--voice-clips", "4", "--folds", "2", "--jobs", "1",
                    "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert (result["voice_norm"], result["scoring"], result["voice_clips"]) == (True, "voice", 4)
    assert result["pooled"]["n"] == result["n_clips"] - 4 * result["n_speakers"]  # the clips heard are not scored

    trained = ser("train", "--data-dir", data_dir, "--name", "voices", "--model", "logreg", "--features",
                  "mfcc_prosody", "--voice-norm", "--folds", "2", "--out", tmp_path, "--jobs", "1", "--json")
    assert trained.returncode == 0, trained.stderr
    metadata = json.loads((tmp_path / "voices" / "metadata.json").read_text())
    assert metadata["voice_norm"] and len(metadata["normalisation"]["prior_mean"]) == 242
    assert metadata["evaluation"]["scoring"] == "cold"
    clips = sorted((data_dir / "Audio_Speech_Actors_01-24" / "Actor_03").glob("*.wav"))
    cold = json_lines(ser("predict", *clips[:2], "--model", tmp_path / "voices", "--json").stdout)
    heard = ser("predict", *clips[:2], "--model", tmp_path / "voices", "--json",
                *[arg for clip in clips[2:] for arg in ("--calibrate", clip)])
    assert heard.returncode == 0, heard.stderr
    assert re.search(r"calibrated voices on \d+ windows of the speaker's speech, from 10 recordings", heard.stderr)
    assert [line["probabilities"] for line in json_lines(heard.stdout)] != [line["probabilities"] for line in cold]


def test_room_is_calibrated_with_recordings_shown_and_forgotten(shared_corpora):
    recordings = sorted((shared_corpora / "ravdess" / "Actor_05").glob("*.flac"))[:6]
    assert "nothing heard yet" in ser("room").stdout
    added = ser("room", "--add", *recordings, "--json")
    assert added.returncode == 0, added.stderr
    heard = json_lines(added.stdout)[0]
    assert heard["model"] == "mfcc-prosody-logreg" and heard["seconds"] > 10
    assert f"{heard['seconds']:.0f} s of speech heard" in ser("room").stdout  # kept on disk
    assert "nothing heard yet" in ser("room", "--forget").stdout
    refused = ser("room", "--model", "egemaps-svm")
    assert refused.returncode == 2 and "does not use the room" in refused.stderr and "Traceback" not in refused.stderr

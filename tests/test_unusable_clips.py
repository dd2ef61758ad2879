"""Unusable clips and a damaged or read-only cache must not cost a user a whole run (issue 28, items 8 and 9).

A small slice of real RAVDESS clips is copied to a temporary data root; one clip is replaced by digital silence
(as CREMA-D's 1076_MTI_SAD_XX.wav is in its official release) and one is cut short, so that its header reads but
its audio does not decode. Evaluation, training and the lesson skip both and say which; `check` finds them.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_core import cli, features, files
from ser_core.corpora import build_catalog, check_health
from ser_core.errors import SerError
from ser_core.evaluation import evaluate
from ser_core.explain import _read_table, _write_table, prosody_summaries
from ser_core.features import FeatureError, extract_features
from ser_core.lesson import leakage_lesson
from ser_core.reports import from_run, html_report
from ser_core.training import TrainConfig, save_run, train
from tests.clips import write_clip

SILENT = "Actor_02/03-01-04-01-01-01-02.flac"      # a sad clip, replaced by digital silence
TRUNCATED = "Actor_03/03-01-05-02-01-01-03.flac"   # an angry clip, cut to a fifth: its header still reads
FAST = dict(features="librosa180", classifier="svm", folds=4, n_jobs=1)


def _copy_slice(shared_corpora: Path, root: Path, actors=(1, 2, 3, 4)) -> Path:
    """Calm, happy, sad and angry clips (both intensities, statement 1, take 1) of four RAVDESS actors: 32 clips."""
    for actor in actors:
        folder = shared_corpora / "ravdess" / f"Actor_{actor:02d}"
        for source in sorted(folder.glob("03-01-0[2-5]-0[12]-01-01-*.flac")):
            target = root / "ravdess" / folder.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return root


def _silence(path: Path) -> None:
    """Overwrite a clip with digital silence of the same length and rate, as a real file would hold it."""
    info = sf.info(str(path))
    sf.write(path, np.zeros(info.frames, dtype=np.int16), info.samplerate, subtype="PCM_16")


def _cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 5])


@pytest.fixture
def data_root(shared_corpora, tmp_path) -> Path:
    root = _copy_slice(shared_corpora, tmp_path / "data")
    _silence(root / "ravdess" / SILENT)
    _cut_short(root / "ravdess" / TRUNCATED)
    return root


def _names(skipped) -> set[str]:
    return {Path(entry["path"]).name for entry in skipped}


# --- evaluation, training and the lesson skip what cannot be used -------------------------------------------

def test_evaluate_skips_unusable_clips_and_says_which(data_root):
    catalog = build_catalog(data_root)
    assert len(catalog) == 32  # both headers read: only decoding finds them out
    result = evaluate(catalog, **FAST)
    assert result.n_clips == 30 and result.complete
    assert _names(result.skipped) == {Path(SILENT).name, Path(TRUNCATED).name}
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in result.skipped}
    assert "silent" in reasons[Path(SILENT).name] and "cut short" in reasons[Path(TRUNCATED).name]
    assert not set(result.predictions["path"]) & {entry["path"] for entry in result.skipped}
    assert result.pooled["n"] == 30
    record = json.loads(json.dumps(result.to_dict()))
    assert _names(record["skipped"]) == _names(result.skipped)
    assert "2 clips could not be used" in result.summary() and Path(SILENT).name in result.summary()


def test_cli_evaluate_goes_on_and_names_the_skipped_clips(data_root, capsys):
    args = ["evaluate", "--data-dir", str(data_root), "--features", "librosa180", "--folds", "4", "--jobs", "1"]
    assert cli.main(args + ["--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["n_clips"] == 30 and _names(record["skipped"]) == {Path(SILENT).name, Path(TRUNCATED).name}
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "2 clips could not be used" in text and Path(TRUNCATED).name in text and "accuracy" in text


def test_training_run_its_report_and_bundle_name_the_skipped_clips(data_root, tmp_path):
    run = train(build_catalog(data_root), TrainConfig(model="svm", features="librosa180", folds=4), n_jobs=1)
    assert run.n_clips == 30 and _names(run.skipped) == {Path(SILENT).name, Path(TRUNCATED).name}
    assert run.result.skipped == run.skipped and run.label_counts["sad"] == 7
    report = html_report(from_run(run))
    assert Path(SILENT).name in report and "could not be used" in report
    saved = json.loads((save_run(run, "skips", tmp_path) / "metadata.json").read_text())
    assert _names(saved["evaluation"]["skipped"]) == _names(run.skipped)


def test_lesson_skips_them_in_all_three_evaluations(data_root):
    lesson = leakage_lesson(build_catalog(data_root), features="librosa180", folds=2, n_jobs=1)
    for result in (lesson.random, lesson.speaker, lesson.speaker_normalized):
        assert result.n_clips == 30 and _names(result.skipped) == {Path(SILENT).name, Path(TRUNCATED).name}


def test_a_class_left_without_clips_stops_the_run_and_lists_them(data_root):
    sad = sorted((data_root / "ravdess").rglob("03-01-04-*.flac"))
    for path in sad:
        _silence(path)
    with pytest.raises(FeatureError) as raised:
        evaluate(build_catalog(data_root), **FAST)
    message = str(raised.value)
    assert "no clip of sad" in message and f"{len(sad) + 1} of 32 clips" in message
    assert all(path.name in message for path in sad)


def test_a_fold_left_without_clips_stops_the_run(data_root):
    # Four actors in four folds: one test speaker per fold. An actor whose every clip is silent empties a fold.
    for path in (data_root / "ravdess" / "Actor_04").iterdir():
        _silence(path)
    with pytest.raises(FeatureError, match="folds without clips"):
        evaluate(build_catalog(data_root), **FAST)
    assert evaluate(build_catalog(data_root), **{**FAST, "folds": 3}).n_clips == 22  # 3 folds of 3 speakers: fine


def test_train_and_lesson_pages_warn_of_the_skipped_clips(data_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT
    from tests.train_page import train_svm_on_page

    train_page = train_svm_on_page(monkeypatch, data_root)
    lesson_page = AppTest.from_file(str(PROJECT_ROOT / "pages" / "6_Lesson.py"), default_timeout=120)
    lesson_page.run()
    lesson_page.selectbox[0].set_value("librosa180")
    lesson_page.button[0].click().run()
    for at in (train_page, lesson_page):
        assert not at.exception and not at.error
        # (The Train page's saved-model view shows the default model's own note: one CREMA-D clip of silence.)
        warnings = [w.value for w in at.warning if "could not be used" in w.value and str(data_root) in w.value]
        assert len(warnings) == 1 and "2 clips" in warnings[0] and Path(SILENT).name in warnings[0]


# --- check ---------------------------------------------------------------------------------------------------

def test_check_reports_silent_constant_and_undecodable_clips(data_root):
    constant = data_root / "ravdess" / "Actor_01/03-01-03-01-01-01-01.flac"
    sf.write(constant, np.full(16_000, 0.25, dtype=np.float32), 16_000, subtype="PCM_16")
    report = check_health(data_root)
    silent = {Path(f.paths[0]).name: f.detail for f in report.of_kind("silent")}
    assert silent.keys() == {Path(SILENT).name, constant.name}
    assert "every sample is zero" in silent[Path(SILENT).name] and "every sample has the same value" in silent[constant.name]
    unusable = {Path(f.paths[0]).name: f.detail for f in report.of_kind("unusable")}
    assert unusable.keys() == {Path(TRUNCATED).name} and "cut short" in unusable[Path(TRUNCATED).name]
    assert "evaluation and training skip" in report.summary()


def test_check_advises_dropping_both_copies_of_a_clip_under_two_labels(data_root):
    actor = data_root / "ravdess" / "Actor_01"
    shutil.copyfile(actor / "03-01-02-01-01-01-01.flac", actor / "03-01-03-01-01-01-01.flac")  # calm as happy
    shutil.copyfile(actor / "03-01-05-01-01-01-01.flac", actor / "03-01-05-01-01-02-01.flac")  # angry twice
    details = {tuple(Path(p).name for p in f.paths): f.detail for f in check_health(data_root).of_kind("duplicate")}
    conflicting = details[("03-01-02-01-01-01-01.flac", "03-01-03-01-01-01-01.flac")]
    assert "calm, happy" in conflicting and "remove every copy" in conflicting and "keep one" not in conflicting
    assert "keep one copy" in details[("03-01-05-01-01-01-01.flac", "03-01-05-01-01-02-01.flac")]


# --- the feature cache ----------------------------------------------------------------------------------------

@pytest.fixture
def clips(tmp_path) -> list[str]:
    return [str(write_clip(tmp_path / f"clip{i}.wav", duration=1.0, f0=120.0 + 50 * i, seed=i)) for i in range(3)]


@pytest.fixture
def read_only_cache(tmp_path, monkeypatch) -> Path:
    """A cache folder nobody may write into. Root writes through chmod, so there the write itself is made to
    raise the PermissionError a user gets (the tests may run as root in CI)."""
    folder = tmp_path / "read-only-cache"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = files.write_atomically

        def refuse(target, write, **kwargs):
            if Path(target).is_relative_to(folder):
                raise PermissionError(13, "Permission denied", str(target))
            return real(target, write, **kwargs)
        monkeypatch.setattr(files, "write_atomically", refuse)
    yield folder
    folder.chmod(0o755)


def _cache_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "cache" in r.getMessage()]


def test_a_read_only_cache_costs_only_the_reuse_with_one_warning(clips, read_only_cache, tmp_path, caplog):
    X = extract_features(clips, "librosa180", n_jobs=1, cache_dir=read_only_cache)
    np.testing.assert_array_equal(X, extract_features(clips, "librosa180", n_jobs=1, cache_dir=tmp_path / "ok"))
    warnings = _cache_warnings(caplog)
    assert len(warnings) == 1 and str(read_only_cache) in warnings[0] and "not kept" in warnings[0]
    assert not list(read_only_cache.rglob("*"))
    values = prosody_summaries(clips, cache_dir=read_only_cache, n_jobs=1)
    assert np.isfinite(values).all() and len(_cache_warnings(caplog)) == 2  # its own folder, its own warning


def test_cli_features_and_train_work_with_a_read_only_cache(data_root, read_only_cache, monkeypatch, tmp_path,
                                                            capsys, caplog):
    monkeypatch.setenv("SER_CACHE_DIR", str(read_only_cache))
    assert cli.main(["features", "--data-dir", str(data_root), "--jobs", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["clips"] == 30 and _names(record["skipped"]) == {Path(SILENT).name, Path(TRUNCATED).name}
    assert len(_cache_warnings(caplog)) == 1
    assert cli.main(["train", "--data-dir", str(data_root), "--model", "svm", "--features", "librosa180",
                     "--folds", "2", "--name", "m", "--out", str(tmp_path / "models"), "--jobs", "1"]) == 0
    assert "saved" in capsys.readouterr().out


def test_a_cache_entry_with_altered_values_is_recomputed(clips, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(clips, "librosa180", n_jobs=1, cache_dir=cache)
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    assert len(entries) == 3
    data = entries[0].read_bytes()
    entries[0].write_bytes(data[:-4] + np.float32(np.nan).tobytes())  # the last value: header untouched
    calls = []
    real = features.extract
    monkeypatch.setattr(features.extraction, "extract", lambda *a: calls.append(1) or real(*a))
    second = extract_features(clips, "librosa180", n_jobs=1, cache_dir=cache)
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1 and np.isfinite(second).all()
    extract_features(clips, "librosa180", n_jobs=1, cache_dir=cache)
    assert len(calls) == 1  # the recomputed entry replaced the altered one


def test_altered_prosody_and_importance_entries_are_recomputed(clips, tmp_path):
    cache = tmp_path / "cache"
    first = prosody_summaries(clips, cache_dir=cache, n_jobs=1)
    entry = next(p for p in cache.rglob("*") if p.is_file())
    entry.write_bytes(entry.read_bytes()[:-4] + np.float32(1e9).tobytes())
    np.testing.assert_array_equal(prosody_summaries(clips, cache_dir=cache, n_jobs=1), first)

    table = pd.DataFrame({"feature": ["pitch_mean", "rms_std"], "importance": [0.25, 0.0], "std": [0.01, 0.0],
                          "meaning": ["pitch, average", "loudness (RMS), variation"]})
    file = tmp_path / "importance" / "table"
    _write_table(file, table)
    pd.testing.assert_frame_equal(_read_table(file), table)
    file.write_bytes(file.read_bytes().replace(b"0.25", b"0.75"))
    assert _read_table(file) is None


def test_unusable_clips_are_never_a_traceback_in_the_cli(data_root, capsys):
    for path in (data_root / "ravdess").rglob("03-01-04-*.flac"):
        _silence(path)
    code = cli.main(["evaluate", "--data-dir", str(data_root), "--features", "librosa180", "--jobs", "1"])
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "error: 9 of 32 clips could not be used, which leaves no clip of sad" in err and "Traceback" not in err
    assert issubclass(FeatureError, SerError)

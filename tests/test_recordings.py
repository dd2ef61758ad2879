"""A class's recordings as a custom corpus: saved, cataloged, relabelled, deleted, and intact after a crash."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_core import config, recordings
from ser_core.corpora import build_catalog
from ser_core.errors import AudioError, DatasetError, OptionError, TooLongError
from ser_core.evaluation import evaluate, make_splits
from tests.clips import voice, write_clip
from tests.conftest import PROJECT_ROOT

CORPUS = "my-class"
SPEAKERS = {"ana": "female", "ben": "male", "cleo": None}
LABELS = ("happy", "sad")


def wav(samples: np.ndarray, sr: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def root(tmp_path):
    """A data root with two clips of each of three speakers, one per label, saved from samples."""
    for seed, (speaker, gender) in enumerate(SPEAKERS.items()):
        for label in LABELS:
            recordings.add_clip(CORPUS, voice(0.6, f0=120 + 30 * seed, seed=seed), sr=16_000, speaker=speaker,
                                label=label, gender=gender, data_dir=tmp_path)
    return tmp_path


def audio_files(root) -> list[str]:
    """Every file under the root, hidden ones included, relative to it."""
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def metadata(root) -> pd.DataFrame:
    return pd.read_csv(root / CORPUS / "metadata.csv", keep_default_na=False)


def test_saved_clips_are_one_custom_corpus_in_the_catalog(root):
    catalog = build_catalog(root)
    assert set(catalog["corpus"]) == {CORPUS}
    assert sorted(catalog["speaker"].unique()) == [f"{CORPUS}_{speaker}" for speaker in sorted(SPEAKERS)]
    assert catalog.groupby("speaker")["label"].apply(sorted).tolist() == [list(LABELS)] * 3
    genders = catalog.set_index("speaker")["gender"].fillna("not given").to_dict()
    assert genders == {f"{CORPUS}_ana": "female", f"{CORPUS}_ben": "male", f"{CORPUS}_cleo": "not given"}
    assert (catalog["sample_rate"] == config.RECORDING_RATE).all() and (catalog["channels"] == 1).all()
    assert (catalog["encoding"] == "PCM_16").all()
    assert audio_files(root) == sorted([f"{CORPUS}/.lock", f"{CORPUS}/metadata.csv"]  # .lock: one change at a time
                                       + [f"{CORPUS}/{label}/{speaker}_00{n}.wav"
                                          for speaker in SPEAKERS for n, label in enumerate(LABELS, 1)])
    table = metadata(root)
    assert list(table.columns) == ["file", "speaker", "label", "gender", "date"]
    assert pd.to_datetime(table["date"], format="ISO8601").notna().all()
    assert recordings.list_corpora(data_dir=root) == [CORPUS]


def test_a_speaker_independent_split_keeps_each_speaker_on_one_side(root):
    catalog = build_catalog(root)
    splits = make_splits(catalog, "speaker", folds=3)
    assert len(splits) == 3
    for split in splits:
        assert set(catalog["speaker"].iloc[split.train]).isdisjoint(catalog["speaker"].iloc[split.test])


def test_a_small_class_corpus_evaluates_by_speaker_or_says_what_is_missing(root):
    result = evaluate(build_catalog(root), features="librosa180", folds=3, n_jobs=1)
    assert result.protocol == "speaker" and result.n_speakers == 3 and len(result.per_fold) == 3
    recordings.delete_clip(CORPUS, "happy/cleo_001.wav", data_dir=root)  # now one 'happy' clip trains a fold
    with pytest.raises(OptionError, match="every emotion needs at least 2"):
        evaluate(build_catalog(root), features="librosa180", folds=3, n_jobs=1)


def test_an_upload_is_saved_as_mono_at_the_recording_rate(tmp_path):
    stereo = wav(voice(1.0, sr=44_100, channels=2), 44_100)
    row = recordings.add_clip("Mrs Smith's Class", io.BytesIO(stereo), speaker="Ana", label="angry",
                              data_dir=tmp_path)
    assert row["file"] == "angry/ana_001.wav" and row["speaker"] == "ana"  # "Ana" and "ana" are one speaker
    info = sf.info(tmp_path / "mrs-smith-s-class" / row["file"])
    assert (info.samplerate, info.channels) == (config.RECORDING_RATE, 1)
    assert info.duration == pytest.approx(1.0, abs=0.01)
    clips = recordings.list_clips("mrs-smith-s-class", data_dir=tmp_path)
    assert clips[["file", "speaker", "label"]].values.tolist() == [["angry/ana_001.wav", "ana", "angry"]]
    assert clips["duration"].iloc[0] == pytest.approx(1.0, abs=0.01)


def test_relabel_moves_the_file_and_its_row(root):
    moved = recordings.relabel_clip(CORPUS, "sad/ben_002.wav", label="angry", data_dir=root)
    assert moved["file"] == "angry/ben_002.wav" and moved["gender"] == "male"
    assert not (root / CORPUS / "sad/ben_002.wav").exists() and (root / CORPUS / "angry/ben_002.wav").exists()
    assert metadata(root).set_index("file").loc["angry/ben_002.wav", "label"] == "angry"
    catalog = build_catalog(root)
    assert len(catalog) == 6
    assert catalog.set_index("path").loc[str(root / CORPUS / "angry/ben_002.wav"), "label"] == "angry"
    with pytest.raises(OptionError, match="Unknown label 'bored'"):
        recordings.relabel_clip(CORPUS, "angry/ben_002.wav", label="bored", data_dir=root)


def test_delete_removes_the_file_its_row_and_an_emptied_folder(root):
    recordings.relabel_clip(CORPUS, "sad/ben_002.wav", label="angry", data_dir=root)
    recordings.delete_clip(CORPUS, "angry/ben_002.wav", data_dir=root)
    assert not (root / CORPUS / "angry").exists()
    assert "angry/ben_002.wav" not in metadata(root)["file"].tolist() and len(metadata(root)) == 5
    assert len(build_catalog(root)) == 5
    with pytest.raises(DatasetError, match="No clip angry/ben_002.wav"):
        recordings.delete_clip(CORPUS, "angry/ben_002.wav", data_dir=root)


def test_rename_a_speaker_renames_files_and_merges_into_an_existing_one(root):
    assert recordings.rename_speaker(CORPUS, "cleo", "Clio", data_dir=root) == 2
    assert (root / CORPUS / "happy/clio_001.wav").exists() and not (root / CORPUS / "happy/cleo_001.wav").exists()
    assert recordings.rename_speaker(CORPUS, "clio", "ana", data_dir=root) == 2
    catalog = build_catalog(root)
    assert catalog["speaker"].value_counts().to_dict() == {f"{CORPUS}_ana": 4, f"{CORPUS}_ben": 2}
    assert sorted(metadata(root)["file"]) == ["happy/ana_001.wav", "happy/ana_003.wav", "happy/ben_001.wav",
                                              "sad/ana_002.wav", "sad/ana_004.wav", "sad/ben_002.wav"]


@pytest.mark.parametrize("payload, error, message", [
    (b"", AudioError, "empty"),
    (b"hello, this is a text file", AudioError, "not an audio recording"),
    (wav(voice(duration=0.2)), AudioError, "at least 0.5 s"),
    (wav(np.zeros(16_000, np.float32)), AudioError, "silent"),
    (wav(voice(duration=31.0, sr=8_000), 8_000), TooLongError, "longer than 30 s; a corpus clip holds one"),
])
def test_bad_audio_is_refused_and_nothing_is_written(root, payload, error, message):
    before = audio_files(root)
    with pytest.raises(error, match=message):
        recordings.add_clip(CORPUS, payload, speaker="dan", label="sad", name="clip.wav", data_dir=root)
    assert audio_files(root) == before


@pytest.mark.parametrize("speaker, label, gender, message", [
    ("", "sad", None, "Enter the speaker's name"),
    ("ana maria", "sad", None, "letters and digits"),
    ("ana_b", "sad", None, "letters and digits"),
    ("../ana", "sad", None, "letters and digits"),
    ("ana", "bored", None, "Unknown label"),
    ("ana", "sad", "x", "Unknown gender"),
])
def test_bad_speakers_labels_and_genders_are_refused(tmp_path, speaker, label, gender, message):
    with pytest.raises(OptionError, match=message):
        recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker=speaker, label=label, gender=gender,
                            data_dir=tmp_path)
    assert audio_files(tmp_path) == []


def test_a_folder_holding_something_else_is_not_written_into(tmp_path):
    write_clip(tmp_path / "my-class" / "Actor_01" / "03-01-05-02-01-01-01.wav", duration=0.6)
    with pytest.raises(OptionError, match="choose another corpus name"):
        recordings.add_clip("My Class", voice(0.6), sr=16_000, speaker="ana", label="sad", data_dir=tmp_path)
    assert recordings.list_corpora(data_dir=tmp_path) == []
    assert audio_files(tmp_path) == ["my-class/Actor_01/03-01-05-02-01-01-01.wav"]


def fail_on(monkeypatch, name_ends: str) -> None:
    """Putting a file in place (os.replace, os.link) fails, as on a full disk, for targets whose name ends so."""
    for name in ("replace", "link"):
        def put(source, target, real=getattr(os, name)):
            if str(target).endswith(name_ends):
                raise OSError(28, "No space left on device")
            real(source, target)

        monkeypatch.setattr(os, name, put)


def test_a_crash_while_writing_audio_leaves_no_trace(root, monkeypatch):
    before_files, before_table = audio_files(root), metadata(root)

    real_write = Path.write_bytes

    def half_written(path, data):
        real_write(path, data[:6])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_written)
    with pytest.raises(DatasetError, match="the disk is full.*the clip was not saved"):
        recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker="dan", label="sad", data_dir=root)
    monkeypatch.undo()
    fail_on(monkeypatch, ".wav")
    with pytest.raises(DatasetError):
        recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker="dan", label="sad", data_dir=root)
    assert audio_files(root) == before_files  # no partial clip, no temporary file
    pd.testing.assert_frame_equal(metadata(root), before_table)
    assert len(build_catalog(root)) == 6


def test_a_process_killed_before_the_metadata_is_written_keeps_the_clip_and_rebuilds_its_row(root):
    before_table = metadata(root)
    killed = ("import os, signal\nfrom ser_core import recordings\nfrom tests.clips import voice\n"
              "recordings._commit = lambda *args: os.kill(os.getpid(), signal.SIGKILL)\n"
              f"recordings.add_clip({CORPUS!r}, voice(0.6), sr=16_000, speaker='ana', label='angry', "
              f"data_dir={str(root)!r})\n")
    assert subprocess.run([sys.executable, "-c", killed], cwd=PROJECT_ROOT).returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(metadata(root), before_table)  # the old table, whole
    catalog = build_catalog(root)
    assert len(catalog) == 7  # the clip is cataloged by its folder and name
    new = catalog.set_index("path").loc[str(root / CORPUS / "angry/ana_003.wav")]
    assert (new["speaker"], new["label"]) == (f"{CORPUS}_ana", "angry")
    row = recordings.list_clips(CORPUS, data_dir=root).set_index("file").loc["angry/ana_003.wav"]
    assert (row["speaker"], row["label"], row["gender"]) == ("ana", "angry", "female")  # gender from ana's clips
    assert pd.notna(pd.to_datetime(row["date"], format="ISO8601"))
    recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker="ben", label="angry", data_dir=root)
    assert len(metadata(root)) == 8  # the next change writes the rebuilt row too


def test_a_relabel_whose_metadata_cannot_be_put_in_place_leaves_the_clip_where_it_was(root, monkeypatch):
    before_table = metadata(root)
    fail_on(monkeypatch, "metadata.csv")
    with pytest.raises(DatasetError, match="the disk is full.*nothing was changed"):
        recordings.relabel_clip(CORPUS, "happy/ana_001.wav", label="calm", data_dir=root)
    catalog = build_catalog(root)
    assert len(catalog) == 6 and catalog["path"].is_unique
    assert catalog.set_index("path").loc[str(root / CORPUS / "happy/ana_001.wav"), "label"] == "happy"
    pd.testing.assert_frame_equal(metadata(root), before_table)


def test_leftover_temporary_files_are_invisible(root):
    (root / CORPUS / "sad" / ".dan_001-x1y2.tmp").write_bytes(b"RIFF\x00")  # what a killed process leaves
    assert len(build_catalog(root)) == 6 and len(recordings.list_clips(CORPUS, data_dir=root)) == 6


def test_a_metadata_table_written_by_hand_keeps_its_extra_columns(tmp_path):
    folder = tmp_path / CORPUS
    write_clip(folder / "happy" / "take1.wav", duration=0.6)
    (folder / "metadata.csv").write_text("File,Speaker,Sex,Age\ntake1.wav,Eve,F,12\n")
    recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker="eve", label="sad", data_dir=tmp_path)
    table = metadata(tmp_path)
    assert list(table.columns) == ["file", "speaker", "label", "gender", "date", "sex", "age"]
    kept = table.set_index("file").loc["happy/take1.wav"]
    assert kept[["speaker", "gender", "age"]].tolist() == ["Eve", "F", "12"] and kept["date"]  # date of the file
    catalog = build_catalog(tmp_path)  # one speaker, as the table spells her, with her gender
    assert catalog[["speaker", "gender"]].values.tolist() == [[f"{CORPUS}_Eve", "female"]] * 2


def record_page(monkeypatch, root):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(config.DATA_DIR_ENV, str(root))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "5_Record.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_with_a_class_passcode_the_record_page_changes_clips_only_for_who_typed_it(root, monkeypatch):
    monkeypatch.setenv(config.RECORD_PASSCODE_ENV, "blue-kangaroo")
    before_files, before_table = audio_files(root), metadata(root)
    at = record_page(monkeypatch, root)
    at.selectbox(key="clip").set_value("happy/ben_001.wav").run()
    at.selectbox(key="relabel_happy/ben_001.wav").set_value("calm").run()
    for typed in ("", "blue-kangaro", "Blue-Kangaroo"):
        at.text_input(key="passcode").set_value(typed).run()
        at.button(key="relabel").click().run()
        at.button(key="delete").click().run()
        at.text_input(key="rename_to").set_value("benji").run()
        at.button(key="rename").click().run()
        assert not at.exception and len(at.error) == 1 and "Enter the class passcode" in at.error[0].value
        assert audio_files(root) == before_files
        pd.testing.assert_frame_equal(metadata(root), before_table)
    at.text_input(key="passcode").set_value("blue-kangaroo").run()
    at.button(key="delete").click().run()
    assert not at.exception and not at.error and "Deleted happy/ben_001.wav" in at.success[0].value
    assert "happy/ben_001.wav" not in metadata(root)["file"].tolist()


def test_without_a_class_passcode_the_record_page_asks_for_none(root, monkeypatch):
    monkeypatch.delenv(config.RECORD_PASSCODE_ENV, raising=False)
    at = record_page(monkeypatch, root)
    assert [box.label for box in at.text_input] == ["Speaker", "New name"]
    at.button(key="delete").click().run()
    assert not at.exception and "Deleted happy/ana_001.wav" in at.success[0].value

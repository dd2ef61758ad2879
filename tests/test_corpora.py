"""Corpus recognition, catalog and health check on small generated trees in each corpus's layout."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from ser_core import config
from ser_core.corpora import (CATALOG_COLUMNS, FINDING_KINDS, NAME_COLUMNS, build_catalog, check_health,
                              list_corpora, parse_name)
from ser_core.errors import DatasetError
from tests.clips import write_clip, write_mp3

# Relative path -> what the catalog must say about it. Layouts as users unpack them, at several depths.
EXPECTED = {
    "ravdess/Actor_01/03-01-05-02-01-01-01.wav":
        dict(corpus="ravdess", speaker="ravdess_01", gender="male", label="angry", intensity="strong",
             statement="Kids are talking by the door", vocal_channel="speech"),
    "downloads/Audio_Song_Actors_01-24/Actor_02/03-02-03-01-02-02-02.flac":
        dict(corpus="ravdess", speaker="ravdess_02", gender="female", label="happy", intensity="normal",
             statement="Dogs are sitting by the door", vocal_channel="song"),
    "03-01-02-01-01-01-24.wav":
        dict(corpus="ravdess", speaker="ravdess_24", gender="female", label="calm", intensity="normal"),
    "tess/TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav":
        dict(corpus="tess", speaker="tess_OAF", gender="female", label="angry", intensity=None,
             statement="Say the word back", vocal_channel=None),
    "tess/TESS Toronto emotional speech set data/OAF_Pleasant_surprise/OAF_bar_ps.wav":
        dict(corpus="tess", speaker="tess_OAF", label="surprised", statement="Say the word bar"),
    "tess/TESS Toronto emotional speech set data/OAF_neutral/OA_bite_neutral.wav":
        dict(corpus="tess", speaker="tess_OAF", gender="female", label="neutral"),
    "tess/TESS Toronto emotional speech set data/OAF_Fear/OAF_food_fear.wav":
        dict(corpus="tess", speaker="tess_OAF", label="fearful"),
    "tess/TESS Toronto emotional speech set data/YAF_pleasant_surprised/YAF_youth_ps.wav":
        dict(corpus="tess", speaker="tess_YAF", gender="female", label="surprised", statement="Say the word youth"),
    "CREMA-D/AudioWAV/1001_DFA_ANG_XX.wav":
        dict(corpus="cremad", speaker="cremad_1001", gender="male", label="angry", intensity="unspecified",
             statement="Don't forget a jacket"),
    "CREMA-D/AudioWAV/1002_IEO_HAP_HI.wav":
        dict(corpus="cremad", speaker="cremad_1002", gender="female", label="happy", intensity="high",
             statement="It's eleven o'clock"),
    "CREMA-D/AudioWAV/1091_TSI_FEA_LO.wav":
        dict(corpus="cremad", speaker="cremad_1091", gender=None, label="fearful", intensity="low"),
    "savee/AudioData/DC/a01.wav":
        dict(corpus="savee", speaker="savee_DC", gender="male", label="angry", intensity=None, statement="a01"),
    "savee/AudioData/JE/sa03.wav":
        dict(corpus="savee", speaker="savee_JE", gender="male", label="sad", statement="sa03"),
    "SAVEE/ALL/JK_su12.wav":
        dict(corpus="savee", speaker="savee_JK", gender="male", label="surprised", statement="su12"),
    "SAVEE/ALL/KL_n30.wav":
        dict(corpus="savee", speaker="savee_KL", label="neutral", statement="n30"),
    "Mrs Smith's Class/Happy/anna_01.wav":
        dict(corpus="mrs-smith-s-class", speaker="mrs-smith-s-class_Anna", gender="female", label="happy",
             intensity=None, statement=None),
    "Mrs Smith's Class/Anger/ben-02.wav":
        dict(corpus="mrs-smith-s-class", speaker="mrs-smith-s-class_ben", gender=None, label="angry"),
    "Mrs Smith's Class/pleasant-surprise/clip3.wav":
        dict(corpus="mrs-smith-s-class", speaker="mrs-smith-s-class_Carl", gender="male", label="surprised"),
    "Mrs Smith's Class/SADNESS/ya_word_sad.wav":
        dict(corpus="mrs-smith-s-class", speaker="mrs-smith-s-class_ya", label="sad"),
    "more/recordings/fear/dan_1.wav":
        dict(corpus="recordings", speaker="recordings_dan", gender=None, label="fearful"),
    "more/recordings/disgusted/take7.wav":
        dict(corpus="recordings", speaker="recordings_unknown", label="disgust"),
    "more/recordings/surprise/eve_1.m4a":
        dict(corpus="recordings", speaker="recordings_eve", label="surprised", format="m4a"),
}

DEMOGRAPHICS = ('"ActorID","Age","Sex","Race","Ethnicity"\n'
                '1001,51,"Male","Caucasian","Not Hispanic"\n1002,21,"Female","Caucasian","Not Hispanic"\n')
METADATA = "file,speaker,label,gender\nHappy/anna_01.wav,Anna,happy,F\nclip3.wav,Carl,surprised,m\n"


def _clip(path: Path, seed: int = 0, **kwargs) -> Path:
    """A short clip; m4a through PyAV, everything else through soundfile."""
    if path.suffix == ".m4a":
        return write_mp3(path, duration=0.6, sr=16_000, seed=seed)
    return write_clip(path, duration=0.6, sr=kwargs.pop("sr", 8_000), seed=seed, **kwargs)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A data root holding a few clips of every corpus, in its usual layouts."""
    root = tmp_path_factory.mktemp("data")
    for seed, relative in enumerate(EXPECTED):
        _clip(root / relative, seed=seed)
    (root / "CREMA-D/VideoDemographics.csv").write_text(DEMOGRAPHICS)
    (root / "Mrs Smith's Class/metadata.csv").write_text(METADATA)
    _clip(root / "ravdess/.hidden/03-01-01-01-01-01-03.wav")       # hidden folders are skipped
    (root / "ravdess/Actor_01/notes.txt").write_text("not audio")   # other files are ignored
    return root


@pytest.fixture(scope="module")
def catalog(tree):
    return build_catalog(tree)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@pytest.mark.parametrize("relative", list(EXPECTED))
def test_every_layout_is_recognised_with_its_metadata(catalog, tree, relative):
    rows = catalog[catalog["path"] == str(tree / relative)]
    assert len(rows) == 1, f"{relative} is not in the catalog"
    row = rows.iloc[0]
    for column, expected in EXPECTED[relative].items():
        if expected is None:
            assert _missing(row[column]), f"{relative}: {column} is {row[column]!r}"
        else:
            assert row[column] == expected, f"{relative}: {column} is {row[column]!r}"


def test_catalog_columns_order_and_audio_info(catalog, tree):
    assert tuple(catalog.columns) == CATALOG_COLUMNS
    assert len(catalog) == len(EXPECTED)
    assert set(catalog["label"]) <= set(config.LABELS)
    assert catalog["path"].map(lambda p: Path(p).is_absolute()).all()
    wav = catalog[catalog["path"] == str(tree / "SAVEE/ALL/KL_n30.wav")].iloc[0]
    assert (wav["sample_rate"], wav["channels"], wav["format"], wav["encoding"]) == (8000, 1, "wav", "PCM_16")
    assert wav["duration"] == pytest.approx(0.6, abs=1e-3)
    assert wav["size_bytes"] == (tree / "SAVEE/ALL/KL_n30.wav").stat().st_size
    m4a = catalog[catalog["format"] == "m4a"].iloc[0]
    assert m4a["sample_rate"] == 16_000 and m4a["duration"] == pytest.approx(0.6, abs=0.1)
    key = catalog[["corpus", "speaker", "path"]].apply(tuple, axis=1).tolist()
    assert key == sorted(key)


def test_speaker_ids_never_collide_across_corpora(catalog):
    by_speaker = catalog.groupby("speaker")["corpus"].nunique()
    assert (by_speaker == 1).all()
    assert all(speaker.startswith(corpus + "_") for corpus, speaker in zip(catalog["corpus"], catalog["speaker"]))


def test_cremad_gender_is_unknown_without_demographics(tmp_path):
    _clip(tmp_path / "Crema/1001_DFA_ANG_XX.wav")
    catalog = build_catalog(tmp_path)
    assert catalog["speaker"].tolist() == ["cremad_1001"] and _missing(catalog["gender"].iloc[0])


def test_custom_corpus_never_takes_a_named_corpus_name(tmp_path):
    _clip(tmp_path / "ravdess/happy/me_1.wav")
    assert list_corpora(tmp_path) == {"ravdess-custom": 1}


@pytest.mark.parametrize("name", [
    "03-01-09-01-01-01-01.wav",        # RAVDESS emotion 09 does not exist
    "03-01-01-01-01-01-25.wav",        # RAVDESS actor 25 does not exist
    "03-01-01-01-01-01.wav",           # six fields
    "oaf_back_angry.wav",              # TESS speakers are upper case
    "OAF_back_bored.wav",              # not a TESS emotion
    "0999_DFA_ANG_XX.wav",             # CREMA-D actors are 1001..1091
    "1001_DFA_JOY_XX.wav",
    "XX_a01.wav",                      # not a SAVEE speaker
    "a01.wav",                         # SAVEE code outside a speaker folder
])
def test_names_of_no_corpus_are_rejected(name):
    assert parse_name(Path("/data/some/folder") / name) is None


def test_corpus_filter_is_case_insensitive(tree):
    catalog = build_catalog(tree, ["RAVDESS", " tess "])
    assert set(catalog["corpus"]) == {"ravdess", "tess"}
    assert len(build_catalog(tree, "savee")) == 4


def test_unknown_corpus_lists_those_found(tree):
    with pytest.raises(DatasetError, match="iemocap") as error:
        build_catalog(tree, ["ravdess", "iemocap"])
    assert "cremad, mrs-smith-s-class, ravdess, recordings, savee, tess" in str(error.value)


def test_names_only_catalog_and_list_corpora_open_no_file(tree, monkeypatch):
    import soundfile

    monkeypatch.setattr(soundfile, "SoundFile", None)  # any header read would now fail
    catalog = build_catalog(tree, with_audio_info=False)
    assert tuple(catalog.columns) == NAME_COLUMNS and len(catalog) == len(EXPECTED)
    assert list_corpora(tree) == {"cremad": 3, "mrs-smith-s-class": 4, "ravdess": 3, "recordings": 3,
                                  "savee": 4, "tess": 5}


def test_missing_root_says_where_to_unpack(tmp_path):
    missing = tmp_path / "nowhere"
    for call in (build_catalog, list_corpora):
        with pytest.raises(DatasetError) as error:
            call(missing)
        message = str(error.value)
        assert str(missing) in message and "ravdess/Actor_01/03-01-" in message
        assert "tess/OAF_angry/" in message and "--data-dir" in message and "SER_DATA_DIR" in message


def test_empty_root_says_nothing_was_recognised(tmp_path):
    _clip(tmp_path / "misc/hello.wav")
    with pytest.raises(DatasetError, match="No corpus found in .*1 audio files"):
        build_catalog(tmp_path)


def test_root_comes_from_the_environment(tree, monkeypatch):
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tree))
    assert list_corpora()["tess"] == 5


def test_linked_corpus_folders_are_followed(tree, tmp_path):
    (tmp_path / "linked").symlink_to(tree / "savee", target_is_directory=True)
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert list_corpora(tmp_path) == {"savee": 2}


# Health check: one corpus folder with a quirk of every kind planted in it.
@pytest.fixture(scope="module")
def quirky(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quirky")
    actor = root / "ravdess/Actor_01"
    for i, emotion in enumerate(("01", "02", "03", "04")):
        _clip(actor / f"03-01-{emotion}-01-01-01-01.wav", seed=i, sr=16_000)
    shutil.copyfile(actor / "03-01-01-01-01-01-01.wav", actor / "03-01-01-01-01-02-01.wav")
    _clip(actor / "03-01-05-01-01-01-01.wav", seed=5, sr=16_000, channels=2)
    _clip(actor / "03-01-06-01-01-01-01.wav", seed=6, sr=96_000)
    _clip(actor / "03-01-07-01-01-01-01.wav", seed=7, sr=16_000, format="AIFF")
    (actor / "03-01-08-01-01-01-01.wav").write_bytes(b"")
    (actor / "03-01-08-01-01-02-01.wav").write_text("this is not audio\n" * 20)
    _clip(actor / "03-01-08-01-1-01-01.wav", seed=8, sr=16_000)
    _clip(root / "tess/OAF_neutral/OA_bite_neutral.wav", seed=9, sr=24_414)
    _clip(root / "elsewhere/memo.wav", seed=10)
    return root


@pytest.fixture(scope="module")
def report(quirky):
    return check_health(quirky)


def _paths(report, kind) -> list[list[str]]:
    return [[Path(path).name for path in finding.paths] for finding in report.of_kind(kind)]


def test_health_finds_duplicates_stereo_rates_and_formats(report):
    assert _paths(report, "duplicate") == [["03-01-01-01-01-01-01.wav", "03-01-01-01-01-02-01.wav"]]
    assert _paths(report, "stereo") == [["03-01-05-01-01-01-01.wav"]]
    assert _paths(report, "unusual_sample_rate") == [["03-01-06-01-01-01-01.wav"]]
    assert "96000 Hz where ravdess clips are 16000 Hz" in report.of_kind("unusual_sample_rate")[0].detail
    assert _paths(report, "format_mismatch") == [["03-01-07-01-01-01-01.wav"]]
    assert "AIFF data in a .wav file" in report.of_kind("format_mismatch")[0].detail


def test_health_finds_unreadable_and_badly_named_files(report):
    unreadable = {Path(f.paths[0]).name: f.detail for f in report.of_kind("unreadable")}
    assert unreadable.keys() == {"03-01-08-01-01-01-01.wav", "03-01-08-01-01-02-01.wav"}
    assert "0 bytes" in unreadable["03-01-08-01-01-01-01.wav"]
    unparsed = {Path(f.paths[0]).name: f.corpus for f in report.of_kind("unparsed_name")}
    assert unparsed == {"03-01-08-01-1-01-01.wav": "ravdess", "memo.wav": None}
    assert _paths(report, "irregular_name") == [["OA_bite_neutral.wav"]]
    assert report.counts == {"ravdess": 8, "tess": 1}
    assert not report.ok


def test_health_report_serialises_and_reads(report, quirky):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"] == {"ravdess": 8, "tess": 1} and len(data["findings"]) == len(report.findings)
    assert set(data["findings"][0]) == {"kind", "paths", "detail", "corpus"}
    text = report.summary()
    assert str(quirky) in text and "ravdess/Actor_01/03-01-05-01-01-01-01.wav" in text
    for kind in {finding.kind for finding in report.findings}:
        assert FINDING_KINDS[kind] in text


def test_catalog_leaves_out_unreadable_files(quirky):
    catalog = build_catalog(quirky)
    assert len(catalog) == 9
    assert not catalog["path"].str.contains("03-01-08-01-01").any()


def test_health_check_filters_by_corpus(quirky):
    report = check_health(quirky, ["tess"])
    assert report.counts == {"tess": 1}
    assert [finding.kind for finding in report.findings] == ["irregular_name"]


def test_health_check_reports_instead_of_raising(tmp_path):
    for report in (check_health(tmp_path / "nowhere"), check_health(tmp_path)):
        assert [finding.kind for finding in report.findings] == ["no_data"]
        assert "--data-dir" in report.findings[0].detail and not report.ok
    _clip(tmp_path / "tess/OAF_angry/OAF_back_angry.wav")
    report = check_health(tmp_path, ["ravdess"])
    assert report.of_kind("no_data") and "found: tess" in report.findings[0].detail
    assert check_health(tmp_path).ok

"""The catalog and health check on the real shared RAVDESS + TESS corpora (see ../shared/corpora/README.md)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from ser_core.corpora import build_catalog, check_health, list_corpora

RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
                    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}
TESS_FOLDER_EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
                        "neutral": "neutral", "pleasant_surprise": "surprised",
                        "pleasant_surprised": "surprised", "sad": "sad"}
STEREO = {"Actor_01/03-01-02-01-01-02-01", "Actor_01/03-01-08-01-02-02-01", "Actor_05/03-01-02-01-02-02-05",
          "Actor_20/03-01-03-01-02-01-20", "Actor_20/03-01-06-01-01-02-20"}


@pytest.fixture(scope="module")
def catalog(shared_corpora):
    start = time.perf_counter()
    catalog = build_catalog(shared_corpora)
    print(f"\nbuild_catalog: {len(catalog)} clips in {time.perf_counter() - start:.2f} s")
    return catalog


@pytest.fixture(scope="module")
def report(shared_corpora):
    start = time.perf_counter()
    report = check_health(shared_corpora)
    print(f"\ncheck_health: {time.perf_counter() - start:.2f} s\n{report.summary()}")
    return report


def _relative(path: str, shared_corpora: Path) -> str:
    return Path(path).relative_to(shared_corpora).with_suffix("").as_posix()


def test_every_listed_file_is_catalogued(catalog, shared_corpora):
    listed = {line.split()[1].removeprefix("./")
              for line in (shared_corpora / "SHA256SUMS").read_text().splitlines() if line.strip()}
    assert len(listed) == 4240
    assert {Path(path).relative_to(shared_corpora).as_posix() for path in catalog["path"]} == listed


def test_ravdess_labels_and_speakers(catalog):
    ravdess = catalog[catalog["corpus"] == "ravdess"]
    assert len(ravdess) == 1440
    assert ravdess.groupby("speaker").size().to_dict() == {f"ravdess_{a:02d}": 60 for a in range(1, 25)}
    counts = ravdess["label"].value_counts().to_dict()
    assert counts == {label: 96 if label == "neutral" else 192 for label in RAVDESS_EMOTIONS.values()}
    for path, label, speaker, gender in ravdess[["path", "label", "speaker", "gender"]].itertuples(index=False):
        fields = Path(path).stem.split("-")
        assert label == RAVDESS_EMOTIONS[fields[2]]
        assert speaker == "ravdess_" + Path(path).parent.name.removeprefix("Actor_")
        assert gender == ("male" if int(fields[6]) % 2 else "female")
    assert set(ravdess["vocal_channel"]) == {"speech"}


def test_tess_labels_and_speakers_agree_with_their_folders(catalog):
    tess = catalog[catalog["corpus"] == "tess"]
    assert len(tess) == 2800
    assert tess.groupby(["speaker", "label"]).size().to_dict() == {
        (f"tess_{speaker}", label): 200 for speaker in ("OAF", "YAF")
        for label in set(TESS_FOLDER_EMOTIONS.values())}
    for path, label, speaker in tess[["path", "label", "speaker"]].itertuples(index=False):
        folder_speaker, folder_emotion = Path(path).parent.name.split("_", 1)
        assert label == TESS_FOLDER_EMOTIONS[folder_emotion.lower()]
        assert speaker == f"tess_{folder_speaker}"
    assert set(tess["gender"]) == {"female"}


def test_misspelled_tess_speaker_is_read_as_oaf(catalog, report):
    row = catalog[catalog["path"].str.endswith("OAF_neutral/OA_bite_neutral.wav")].iloc[0]
    assert (row["speaker"], row["label"]) == ("tess_OAF", "neutral")
    assert [Path(f.paths[0]).name for f in report.of_kind("irregular_name")] == ["OA_bite_neutral.wav"]


def test_health_finds_every_documented_quirk(report, shared_corpora):
    def found(kind):
        return [[_relative(path, shared_corpora) for path in finding.paths] for finding in report.of_kind(kind)]

    assert found("format_mismatch") == [["tess/YAF_angry/YAF_germ_angry"], ["tess/YAF_fear/YAF_neat_fear"]]
    assert found("unusual_sample_rate") == [["tess/OAF_Fear/OAF_food_fear"]]
    assert "96000 Hz where tess clips are 24414 Hz" in report.of_kind("unusual_sample_rate")[0].detail
    assert {path.removeprefix("ravdess/") for [path] in found("stereo")} == STEREO
    assert found("duplicate") == [["ravdess/Actor_07/03-01-03-01-02-01-07", "ravdess/Actor_07/03-01-03-01-02-02-07"]]
    assert not report.of_kind("unreadable") and not report.of_kind("unparsed_name")
    assert report.counts == {"ravdess": 1440, "tess": 2800}


def test_aiff_in_wav_files_stay_in_the_catalog(catalog):
    aiff = catalog[catalog["format"] == "aiff"]
    assert sorted(Path(path).name for path in aiff["path"]) == ["YAF_germ_angry.wav", "YAF_neat_fear.wav"]


def test_list_corpora_and_filter(shared_corpora):
    assert list_corpora(shared_corpora) == {"ravdess": 1440, "tess": 2800}
    assert set(build_catalog(shared_corpora, ["TESS"], with_audio_info=False)["corpus"]) == {"tess"}

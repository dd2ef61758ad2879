"""The leakage lesson: the real protocols on the shared corpora, and the page that shows them side by side."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from ser_core.corpora import build_catalog
from ser_core.lesson import leakage_lesson
from tests.clips import voice
from tests.test_cli import ser
from tests.test_pages import data_root, figures, page  # noqa: F401  (data_root is a fixture)


def test_random_split_inflates_accuracy_on_real_speakers(shared_corpora):
    catalog = build_catalog(shared_corpora, ["ravdess"])
    eight_actors = catalog[catalog["speaker"].isin(sorted(catalog["speaker"].unique())[:8])]
    lesson = leakage_lesson(eight_actors, features="librosa180", n_jobs=2)
    assert lesson.random.protocol == "random" and lesson.speaker.protocol == "speaker"
    assert lesson.speaker_normalized.speaker_norm and not lesson.speaker.speaker_norm
    for result in (lesson.random, lesson.speaker, lesson.speaker_normalized):  # the same data, model, folds
        assert (result.n_clips, result.features, result.classifier, result.folds) == (480, "librosa180", "svm", 5)
    # Measured on these 8 actors: random 54%, by speaker 36%, by speaker normalised 47%.
    assert lesson.inflation > 0.10, (lesson.random.pooled["accuracy"], lesson.speaker.pooled["accuracy"])
    assert lesson.normalization_gain > 0.03
    assert lesson.speaker.pooled["accuracy"] > 1 / 8 + 0.1  # honest is lower, not chance


def test_lesson_page_shows_both_protocols_side_by_side(monkeypatch, data_root):  # noqa: F811
    at = page("6_Lesson.py", monkeypatch, data_root)
    at.selectbox[0].set_value("librosa180")
    at.button[0].click().run()
    assert not at.exception and not at.error
    captions = " ".join(caption.value for caption in at.caption)
    assert "Protocol: **random**" in captions and "Protocol: **speaker**" in captions
    assert "per-speaker normalisation" in captions
    lesson = at.session_state["lesson"]
    shown = [m.value for m in at.metric]
    for key in ("random", "speaker", "normalised"):
        assert f"{lesson[key]['pooled']['accuracy']:.1%}" in shown
    assert f"{lesson['inflation']:+.1%} accuracy" in shown
    assert len(figures(at)) == 4  # a confusion matrix per side, in both comparisons
    assert any("same speakers" in block.value for block in at.markdown)


def test_lesson_page_explains_data_it_cannot_split_by_speaker(monkeypatch, tmp_path):
    for label, f0 in (("happy", 220), ("sad", 110)):  # a class corpus with one speaker so far
        (tmp_path / "myclass" / label).mkdir(parents=True)
        for n in range(6):
            sf.write(tmp_path / "myclass" / label / f"ana_{n}.wav", voice(duration=1.0, f0=f0 + 5 * n), 16_000)
    at = page("6_Lesson.py", monkeypatch, tmp_path)
    at.selectbox[0].set_value("librosa180")
    at.number_input[0].set_value(2)
    at.button[0].click().run()
    assert not at.exception
    assert "at least two speakers" in at.error[0].value and "lesson" not in at.session_state


def test_lesson_command_prints_all_three_protocols(data_root):  # noqa: F811
    result = ser("lesson", "--data-dir", str(data_root), "--features", "librosa180", "--folds", "2", "--json")
    assert result.returncode == 0, result.stderr
    lesson = json.loads(result.stdout)
    assert [lesson[k]["protocol"] for k in ("random", "speaker", "speaker_normalized")] == ["random", "speaker",
                                                                                          "speaker"]
    assert lesson["inflation"] == pytest.approx(lesson["random"]["pooled"]["accuracy"]
                                                - lesson["speaker"]["pooled"]["accuracy"])

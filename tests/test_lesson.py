"""The leakage lesson: the real protocols on the shared corpora, and the page that shows them side by side."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from ser_core.corpora import build_catalog
from ser_core.lesson import IN_SHORT, WHY_RANDOM_INFLATES, leakage_lesson
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


def test_a_corpus_never_heard_costs_more_than_new_voices_and_its_room_gives_some_back(shared_corpora):
    from ser_core.lesson import new_corpus_lesson

    catalog = build_catalog(shared_corpora, ["ravdess", "tess"])
    catalog = catalog[catalog["speaker"].isin(["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04", "tess_OAF",
                                               "tess_YAF"]) & (catalog["label"] != "calm")]
    catalog = catalog.groupby(["speaker", "label"]).head(16).reset_index(drop=True)
    lesson = new_corpus_lesson(catalog, features="mfcc_prosody", classifier="logreg", folds=2, n_jobs=1)
    assert (lesson.speaker.protocol, lesson.new_corpus.protocol, lesson.new_corpus_room.protocol) == (
        "speaker", "corpus", "corpus")
    assert lesson.new_corpus.scoring == "cold" and lesson.new_corpus_room.scoring == "room"
    # Measured on these clips: UAR 43.1% by speaker, 25.3% on the corpus never heard, 32.4% with its room heard.
    assert lesson.drop > 0.10 and lesson.room_gain > 0.04, (lesson.drop, lesson.room_gain)


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
    assert f"{100 * lesson['inflation']:+.1f} points" in shown and f"{100 * lesson['gain']:+.1f} points" in shown
    assert len(figures(at)) == 3  # a confusion matrix per protocol, "by speaker" once
    assert "chance: 25.0% for 4 emotions" in captions
    assert any("same speakers" in block.value for block in at.markdown)
    assert "Choose two corpora" in at.info[0].value  # one corpus here: nothing to hold out whole


def test_lesson_page_holds_out_a_whole_corpus_when_given_two(monkeypatch, tmp_path):
    from tests.clips import write_clip
    from tests.corpus_trees import EMOTION_VOICE, RAVDESS_LABELS, write_ravdess_tree

    write_ravdess_tree(tmp_path / "ravdess", actors=(1, 2, 3, 4), duration=1.0)
    tess_name = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"}
    for speaker, shift in (("OAF", 0.9), ("YAF", 1.2)):  # another room: other voices, a quieter recording
        for emotion, (f0, level) in EMOTION_VOICE.items():
            label = tess_name[RAVDESS_LABELS[emotion]]
            for n, word in enumerate(("back", "bar", "base", "bath")):
                write_clip(tmp_path / "tess" / f"{speaker}_{label}" / f"{speaker}_{word}_{label}.wav", duration=1.0,
                           sr=16_000, f0=f0 * shift * (1 + 0.02 * n), level=level * 0.5, seed=n)
    at = page("6_Lesson.py", monkeypatch, tmp_path)
    at.multiselect[0].set_value(["ravdess", "tess"])
    at.selectbox[0].set_value("mfcc_prosody")
    at.number_input[0].set_value(2)
    at.button[0].click().run()
    assert not at.exception and not at.error
    new_corpus = at.session_state["lesson"]["new_corpus"]
    shown = [m.value for m in at.metric]
    for key in ("speaker", "corpus", "room"):
        assert f"UAR {new_corpus[key]['pooled']['uar']:.1%}" in shown
    assert new_corpus["corpus"]["protocol"] == "corpus" and new_corpus["room"]["scoring"] == "room"
    assert any("the same studio" in block.value for block in at.markdown)


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
    assert [lesson[k]["protocol"] for k in ("random", "speaker", "normalised")] == ["random", "speaker", "speaker"]
    assert lesson["inflation"] == pytest.approx(lesson["random"]["pooled"]["accuracy"]
                                                - lesson["speaker"]["pooled"]["accuracy"])


def test_a_lesson_computed_in_advance_shows_at_once_for_the_same_clips(monkeypatch, data_root, tmp_path,  # noqa: F811
                                                                       capsys):
    """`lesson --precompute` stores the results the Lesson page then shows without running anything, for
    exactly those clips and settings; a clip more or less, or other settings, and it runs as before."""
    from ser_core import config
    from ser_core.cli import main
    from ser_core.lesson import precomputed_lesson

    monkeypatch.setattr(config, "PRECOMPUTED_LESSONS", tmp_path / "lessons.json")  # not the shipped file
    assert main(["lesson", "--data-dir", str(data_root), "--features", "librosa180", "--folds", "2", "--precompute",
                 "--json", "--jobs", "1"]) == 0
    computed = json.loads(capsys.readouterr().out)
    clips = build_catalog(data_root)
    assert precomputed_lesson(clips, "librosa180", config.DEFAULT_CLASSIFIER, 2) == computed
    assert precomputed_lesson(clips.iloc[1:], "librosa180", config.DEFAULT_CLASSIFIER, 2) is None
    assert precomputed_lesson(clips, "librosa180", config.DEFAULT_CLASSIFIER, 3) is None

    monkeypatch.setattr(config, "DEFAULT_FEATURES", "librosa180")  # the page's defaults: what was stored
    monkeypatch.setattr(config, "DEFAULT_FOLDS", 2)
    at = page("6_Lesson.py", monkeypatch, data_root)
    assert "Computed in advance" in " ".join(caption.value for caption in at.caption)
    assert f"{computed['speaker']['pooled']['accuracy']:.1%}" in [m.value for m in at.metric]
    assert "lesson" not in at.session_state  # nothing ran
    shown = " ".join(block.value for block in at.markdown)
    assert WHY_RANDOM_INFLATES in shown
    at.session_state["presentation"] = True  # presentation mode: each explanation in a sentence or two
    shown = " ".join(block.value for block in at.run().markdown)
    assert IN_SHORT[WHY_RANDOM_INFLATES] in shown and WHY_RANDOM_INFLATES not in shown

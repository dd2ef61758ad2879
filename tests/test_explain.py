"""Explaining a prediction: occlusion maps, permutation importance and prosody, on generated audio and the
shipped model; class averages on the shared corpora; the Classify page's explanation through AppTest."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ser_core import explain, plots
from ser_core.audio import PEAK_LEVEL
from ser_core.bundles import Bundle
from ser_core.corpora import build_catalog, select
from ser_core.errors import ModelError, OptionError, SilentAudioError
from ser_core.features import feature_names, get_pipeline
from ser_core.inference import Predictor
from tests.clips import voice
from tests.corpus_trees import write_ravdess_tree
from tests.test_pages import data_root, figures, page, titles, values, wav  # noqa: F401 (data_root is a fixture)

SR = 16_000


@pytest.fixture(scope="module")
def model() -> Predictor:
    return Predictor.load()


def burst_clip(segment: int, f0: float = 200.0, seconds: int = 3) -> np.ndarray:
    """Low noise for `seconds` s, and in second `segment` a voice-like tone whose harmonics stay under 754 Hz
    (the first of four mel bands), so the one patch that holds the sound is known."""
    t = np.arange(SR) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    burst = sum(np.sin(k * phase) / k for k in range(1, 4)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t - np.pi / 2))
    y = 1e-3 * np.random.default_rng(0).standard_normal(seconds * SR)
    y[segment * SR:(segment + 1) * SR] += 0.5 * burst
    return y.astype(np.float32)


def syllables(rate: float, duration: float = 3.0, f0: float = 160.0) -> np.ndarray:
    """A harmonic tone under 120 ms bumps, `rate` bumps a second: syllable nuclei at a known rate."""
    t = np.arange(int(duration * SR)) / SR
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    envelope = np.zeros_like(t)
    for centre in np.arange(0.25, duration - 0.2, 1 / rate):
        inside = np.abs(t - centre) < 0.06
        envelope[inside] += 0.5 + 0.5 * np.cos(2 * np.pi * (t[inside] - centre) / 0.12)
    y = tone * envelope + 1e-3 * np.random.default_rng(1).standard_normal(len(t))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


# --- occlusion -----------------------------------------------------------------------------------------------

def test_batch_probabilities_on_threads_match_one_clip_at_a_time(model):
    clips = [voice(duration=1.5, f0=f0, level=PEAK_LEVEL) for f0 in (120, 200, 300)]
    batch = model.predict_proba_samples(clips)
    assert np.allclose(batch, model.predict_proba_samples(clips, threads=1))
    for row, clip in zip(batch, clips):
        assert np.allclose(row, list(model.predict_samples(clip).probabilities.values()))


def test_occlusion_gives_a_finite_map_with_its_edges(model):
    occ = explain.occlusion(model, voice(duration=3.0), SR)
    assert occ.drops.shape == (explain.DEFAULT_BANDS, explain.DEFAULT_SEGMENTS) and np.isfinite(occ.drops).all()
    assert occ.band_edges_hz[0] == 0 and occ.band_edges_hz[-1] == pytest.approx(SR / 2)
    assert np.all(np.diff(occ.band_edges_hz) > 0) and np.all(np.diff(occ.segment_edges_s) > 0)
    assert occ.segment_edges_s[[0, -1]] == pytest.approx([0.0, 3.0])
    assert occ.log_mel.shape == (explain.N_MELS, len(occ.times)) and occ.log_mel.max() == 0
    assert occ.label in model.labels and occ.probability == pytest.approx(occ.probabilities[occ.label])
    clip = voice(duration=3.0, level=PEAK_LEVEL)  # what load_audio gives: the map explains what the page shows
    assert occ.probability == pytest.approx(model.predict_samples(clip).probabilities[occ.label],
                                            abs=1e-6)
    assert "Silencing" in explain.describe(occ) and occ.whole_clip


@pytest.mark.parametrize("segment", [0, 2])
def test_occlusion_is_largest_where_the_sound_is(segment):
    # egemaps-svm: silencing the burst turns its "fearful" into "angry". The default model, which reads
    # percentiles over all frames, calls the burst and the noise alone both "fearful" (a flat map, rightly).
    occ = explain.occlusion(Predictor.load("egemaps-svm"), burst_clip(segment), SR, bands=4, segments=3)
    assert np.unravel_index(np.argmax(occ.drops), occ.drops.shape) == (0, segment)
    assert occ.drops[0, segment] > 0.2
    assert occ.drops[0, segment] > abs(occ.drops[3, segment]) + 0.2  # the empty high band at the same time
    others = np.delete(occ.drops, segment, axis=1)
    assert np.abs(others).max() < 0.02  # the noise around the sound does not matter
    assert occ.top_patch() == ((0.0, pytest.approx(occ.band_edges_hz[1])),
                               (pytest.approx(float(segment)), pytest.approx(segment + 1.0)))


def test_occlusion_explains_one_window_of_a_long_clip(model):
    y = np.concatenate([voice(duration=5.0), voice(duration=5.0, f0=220, seed=1)])
    occ = explain.occlusion(model, y, SR, start=5.0, bands=2, segments=4)
    assert (occ.start, occ.end, occ.duration) == (5.0, 9.0, 10.0) and not occ.whole_clip
    assert occ.segment_edges_s[[0, -1]] == pytest.approx([5.0, 9.0]) and occ.times[0] >= 5.0
    assert explain.explain_window(10.0, start=8.0) == (6.0, 10.0)  # kept inside the clip
    assert explain.explain_window(2.5, start=1.0) == (0.0, 2.5)    # a short clip is explained whole


def test_occlusion_of_silence_says_so(model):
    with pytest.raises(SilentAudioError, match="silent"):
        explain.occlusion(model, np.zeros(2 * SR, np.float32), SR)
    y = np.concatenate([voice(duration=3.0), np.zeros(6 * SR, np.float32)])
    with pytest.raises(SilentAudioError, match=r"5\.0-9\.0 s"):
        explain.occlusion(model, y, SR, start=5.0, name="long.wav")


def test_occlusion_resamples_and_refuses_a_bad_grid(model):
    import soxr

    occ = explain.occlusion(model, soxr.resample(voice(duration=2.0), SR, 44_100), 44_100, bands=2, segments=2)
    assert occ.drops.shape == (2, 2) and occ.duration == pytest.approx(2.0, abs=1e-3)
    with pytest.raises(OptionError):
        explain.occlusion(model, voice(), SR, bands=0)


# --- permutation importance --------------------------------------------------------------------------------

def linear_bundle(X: np.ndarray, y: np.ndarray, pipeline: str = "librosa180", **metadata) -> Bundle:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(X, y)
    return Bundle(path=None, model=model, metadata={"name": "test", "kind": "sklearn", "labels": list(model.classes_),
                                                     "features": get_pipeline(pipeline).to_dict(), **metadata})


def informative(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """librosa180-shaped features where mfcc_3 decides the label and every other column is noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 180)).astype(np.float32)
    y = np.where(X[:, 3] + 0.3 * rng.standard_normal(n) > 0, "angry", "sad")
    return X, y


def test_permutation_importance_ranks_the_informative_feature_first():
    X, y = informative()
    bundle = linear_bundle(X, y)
    table = explain.permutation_importance(bundle, X, y, n_repeats=3, seed=0)
    assert list(table.columns) == ["feature", "importance", "std", "meaning"] and len(table) == 180
    assert table["feature"].iloc[0] == "mfcc_3"
    assert table["importance"].iloc[0] > 0.25
    noise = table.set_index("feature").loc["mel_100", "importance"]
    assert abs(noise) < 0.05 and table["importance"].iloc[0] > noise + 0.2
    assert table["importance"].is_monotonic_decreasing
    assert table.attrs["baseline"] > 0.85 and table.attrs["clips"] == 240
    smooth = explain.permutation_importance(bundle, X, y, n_repeats=3, metric="log_loss")
    assert smooth["feature"].iloc[0] == "mfcc_3"
    assert explain.any_feature_matters(table)


def test_a_ranking_of_losses_within_their_spread_is_noise():
    # compare-ge2e-ridge-unnormalised on 200 of its training clips (2026-11-28): of 8677 features, five each lost
    # one clip in one of five shuffles (0.001 +- 0.002), the rest none.
    names = [f"f{i}" for i in range(8677)]
    importance = np.zeros(len(names))
    importance[:5] = 0.001
    table = pd.DataFrame({"feature": names, "importance": importance, "std": np.where(importance > 0, 0.002, 0.0)})
    assert not explain.any_feature_matters(table)
    table.loc[5, ["importance", "std"]] = 0.005, 0.0  # one clip lost in every shuffle: the model does use it
    assert explain.any_feature_matters(table)


def test_permutation_importance_normalises_per_speaker_or_explains_why_not():
    X, y = informative()
    speakers = np.repeat(["a", "b", "c", "d"], 60)
    X_shifted = X + np.repeat(np.arange(4), 60)[:, None].astype(np.float32)  # each speaker's own offset
    from ser_core.features import normalize_by_speaker

    bundle = linear_bundle(normalize_by_speaker(X_shifted, speakers, kind="clip"), y, speaker_norm=True)
    with pytest.raises(ModelError, match="speaker"):
        explain.permutation_importance(bundle, X_shifted, y)
    table = explain.permutation_importance(bundle, X_shifted, y, speakers=speakers, n_repeats=2)
    assert table["feature"].iloc[0] == "mfcc_3" and table.attrs["baseline"] > 0.85


def test_permutation_importance_is_for_clip_level_models():
    keras_like = Bundle(path=None, model=None, metadata={"name": "cnn", "kind": "keras", "labels": ["sad", "angry"],
                                                         "features": get_pipeline("logmel").to_dict()})
    with pytest.raises(OptionError, match="clip"):
        explain.permutation_importance(keras_like, np.zeros((4, 64, 301)), ["sad"] * 4)
    with pytest.raises(OptionError, match="occlusion map explains"):
        explain.model_feature_names(Predictor(keras_like))


def test_importance_for_the_shipped_model_on_corpus_clips_is_cached(tmp_path, monkeypatch, model):
    write_ravdess_tree(tmp_path / "ravdess", actors=(1, 2, 3, 4), takes=2)
    catalog = build_catalog(tmp_path)
    table = explain.importance_for(model, catalog, n_clips=16, n_repeats=1, cache_dir=tmp_path / "cache")
    assert len(table) == len(feature_names(model.pipeline)) == 242
    assert (table["meaning"] != "").all()  # every feature of the default model is glossed, and of eGeMAPS
    assert all(explain.feature_meaning(name) for name in feature_names("egemaps"))
    assert table.set_index("feature").loc["pitch_mean", "meaning"] == "pitch, average"
    assert table.attrs["clips"] == 16 and table.attrs["speakers"] == 4 and "ravdess" in table.attrs["source"]
    assert table.attrs["seen_in_training"]

    def fail(*_, **__):
        raise AssertionError("scored again instead of read from the cache")

    monkeypatch.setattr(explain, "permutation_importance", fail)
    again = explain.importance_for(model, catalog, n_clips=16, n_repeats=1, cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(again, table)
    assert again.attrs == table.attrs


def test_importance_sample_is_balanced_over_speakers_and_emotions(tmp_path, model):
    write_ravdess_tree(tmp_path / "ravdess", actors=(1, 2, 3, 4), takes=3)
    catalog = build_catalog(tmp_path)
    clips, where, seen = explain.training_clips(catalog, model)
    assert len(clips) == 48 and f"{model.name} was trained on" in where and seen
    sample = explain.balanced_sample(clips, 16, ["speaker", "label"], seed=1)
    assert sample.groupby(["speaker", "label"]).size().max() == 1 and len(sample) == 16
    other = catalog.assign(corpus="my-class")
    _, where, seen = explain.training_clips(other, model)
    assert "not under the data root" in where and not seen


# --- prosody -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_prosody_finds_the_pitch_of_a_voice(f0):
    pros = explain.prosody(voice(duration=3.0, f0=f0), SR)
    assert pros.summary["median_pitch_hz"] == pytest.approx(f0, rel=0.05)
    assert np.isfinite(pros.f0).mean() > 0.8  # the voice is voiced throughout
    assert 1.0 < pros.summary["pitch_range_st"] < 4.0  # its ±8 % glide is about 2.8 semitones
    assert len(pros.times) == len(pros.f0) == len(pros.energy_db)


def test_prosody_counts_syllables():
    slow, fast = (explain.prosody(syllables(rate), SR).summary["rate_per_s"] for rate in (3, 6))
    assert slow == pytest.approx(3, rel=0.2) and fast == pytest.approx(6, rel=0.2) and fast > slow + 2


def test_prosody_energy_is_the_level_as_recorded_and_noise_is_unvoiced():
    loud, quiet = (explain.prosody(voice(duration=2.0, level=level), SR).summary["mean_energy_db"]
                   for level in (0.5, 0.05))
    assert loud - quiet == pytest.approx(20, abs=0.5)
    noise = explain.prosody(0.3 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32), SR)
    assert np.isfinite(noise.f0).mean() < 0.05 and np.isnan(noise.summary["pitch_range_st"])
    with pytest.raises(SilentAudioError):
        explain.prosody(np.zeros(SR, np.float32), SR)


def test_prosody_takes_well_under_a_second_for_three_seconds():
    import time

    y = voice(duration=3.0)
    explain.prosody(y, SR)
    start = time.perf_counter()
    explain.prosody(y, SR)
    assert time.perf_counter() - start < 1.0


def test_class_prosody_is_cached_on_disk(tmp_path, monkeypatch):
    write_ravdess_tree(tmp_path / "ravdess", actors=(1, 2), takes=2)
    catalog = build_catalog(tmp_path)
    first = explain.class_prosody(catalog, cache_dir=tmp_path / "cache")
    assert list(first.index) == ["neutral", "happy", "sad", "angry"] and (first["clips"] == 4).all()
    assert first.loc["angry", "median_pitch_hz"] > first.loc["sad", "median_pitch_hz"] * 2  # 300 Hz against 90
    female = explain.class_prosody(catalog, gender="female", cache_dir=tmp_path / "cache")  # actor 2 alone
    assert (female["clips"] == 2).all() and explain.genders(catalog) == ["female", "male"]

    def fail(*_, **__):
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(explain, "prosody", fail)
    pd.testing.assert_frame_equal(explain.class_prosody(catalog, cache_dir=tmp_path / "cache"), first)


def test_class_prosody_separates_angry_from_sad_on_tess(shared_corpora):
    catalog = select(build_catalog(shared_corpora, corpora=["tess"]), label=["angry", "sad"])
    averages = explain.class_prosody(catalog, per_label=12)
    assert (averages["clips"] == 12).all()
    assert averages.loc["angry", "median_pitch_hz"] > averages.loc["sad", "median_pitch_hz"]
    assert averages.loc["angry", "mean_energy_db"] > averages.loc["sad", "mean_energy_db"]
    table = explain.compare_prosody(explain.prosody(voice(duration=2.0), SR).summary, averages, "angry")
    assert list(table.index) == ["this clip", "angry (average)", "sad (average)"]
    assert table.loc["angry (average)", "median pitch (Hz)"] == pytest.approx(averages.loc["angry", "median_pitch_hz"])


# --- figures ---------------------------------------------------------------------------------------------------

def test_figures_draw_the_map_over_the_spectrogram_and_the_prosody(model):
    occ = explain.occlusion(model, burst_clip(1), SR, bands=4, segments=3)
    fig = plots.occlusion_overlay(occ)
    spectrogram, overlay = fig.data
    assert spectrogram.type == overlay.type == "heatmap"
    assert np.asarray(overlay.z).shape == (4, 3) and np.allclose(overlay.z, occ.drops)
    assert len(overlay.x) == 4 and len(overlay.y) == 5  # edges: the patches line up with the spectrogram
    # the colour scale is the same for every small map, so drops of 3 points look faint, not like strong evidence
    faint = plots.occlusion_overlay(replace(occ, drops=np.full_like(occ.drops, 0.03))).data[1]
    assert faint.zmax == -faint.zmin == plots.OCCLUSION_FULL_COLOUR > 0.03
    strong = plots.occlusion_overlay(replace(occ, drops=np.full_like(occ.drops, -0.6))).data[1]
    assert strong.zmax == pytest.approx(0.6)  # a larger drop widens it: nothing is clipped
    pros = explain.prosody(voice(duration=2.0), SR)
    assert [trace.name for trace in plots.prosody_contours(pros).data] == ["pitch (Hz)", "energy (dB)",
                                                                           "syllable nuclei"]
    averages = pd.DataFrame({key: [1.0, 2.0] for key in explain.SUMMARY}, index=["sad", "angry"])
    comparison = plots.prosody_comparison(pros.summary, averages, "angry")
    assert sum(trace.type == "bar" for trace in comparison.data) == len(explain.SUMMARY)
    table = pd.DataFrame({"feature": list("abc"), "importance": [0.3, 0.2, 0.1], "std": [0.01] * 3})
    bars = plots.importance_bars(table, top=2)
    assert list(bars.data[0].y) == ["b", "a"]  # the most important at the top


# --- the Classify page -----------------------------------------------------------------------------------------

def test_classify_explains_a_prediction(monkeypatch, data_root):  # noqa: F811
    at = page("3_Classify.py", monkeypatch, data_root)
    at.file_uploader[0].upload("short.wav", wav(voice(duration=2.0, f0=180)), "audio/wav").run()
    assert not at.tabs and at.button(key="explain").label == "Explain this prediction"
    at.button(key="explain").click().run()
    assert not at.exception and not at.error
    assert [tab.label for tab in at.tabs] == ["What the model listened to", "Prosody", "Features"]
    overlay = next(fig for fig in figures(at) if fig["layout"]["title"]["text"].startswith("What the model"))
    assert [trace["type"] for trace in overlay["data"]] == ["heatmap", "heatmap"]
    assert np.isfinite(values(overlay["data"][1]["z"])).all()
    assert "Pitch and energy over time" in titles(at) and "This clip against each emotion's average" in titles(at)
    pitch = next(m for m in at.metric if m.label == "median pitch (Hz)")
    assert float(pitch.value) == pytest.approx(180, rel=0.05)
    assert at.dataframe[0].value.index[0] == "this clip"
    at.radio(key="compare_voices").set_value("male voices").run()  # actors 1 and 3 of the tree
    assert not at.exception and not at.error and any("male voices" in caption.value for caption in at.caption)
    assert any("Silencing" in caption.value for caption in at.caption)
    at.run()  # the explanation stays, without computing it again
    assert any(t.startswith("What the model listened to") for t in titles(at))


def rank_features(monkeypatch, root, model: str | None = None, **settings) -> AppTest:
    """The Classify page's feature ranking for an upload, by `model` (default: the default model), ranked on
    `root`'s clips with importance_for(**settings)."""
    import functools

    import streamlit as st

    monkeypatch.setattr(explain, "importance_for", functools.partial(explain.importance_for, **settings))
    st.cache_data.clear()  # the page keeps a ranking per data root and model for the whole process
    at = page("3_Classify.py", monkeypatch, root)
    if model:
        at.selectbox[0].select_index(at.selectbox[0].options.index(f"{model} (shipped)")).run()
    at.file_uploader[0].upload("short.wav", wav(voice(duration=1.5)), "audio/wav").run()
    at.button(key="explain").click().run()
    at.button(key="importance").click().run()
    assert not at.exception and not at.error
    return at


def test_classify_ranks_the_features_of_a_clip_level_model(monkeypatch, shared_corpora):
    at = rank_features(monkeypatch, shared_corpora, n_clips=96, n_repeats=2)
    chart = next(fig for fig in figures(at) if fig["layout"]["title"]["text"].startswith("Which features"))
    assert len(chart["data"][0]["y"]) == 15 and chart["layout"]["xaxis"]["title"]["text"].startswith("accuracy")
    assert values(chart["data"][0]["x"]).max() > 0  # some feature costs accuracy when shuffled
    assert any("96 clips of ravdess, tess" in caption.value and "2 shuffles" in caption.value
               and "seen in training" in caption.value for caption in at.caption)


@pytest.mark.parametrize("clips, why", [
    # compare-ge2e-ridge-unnormalised, measured: 0% of this tree's synthetic voices; 98% of 48 of its training
    # clips, where no one of its 8677 features' shuffles costs more than the shuffles vary.
    ("generated", "gets none of these clips right"),
    ("corpus", "stand in for each other"),
])
def test_classify_says_why_when_no_single_feature_matters(monkeypatch, data_root, shared_corpora, clips,  # noqa: F811
                                                          why):
    at = rank_features(monkeypatch, data_root if clips == "generated" else shared_corpora,
                       model="compare-ge2e-ridge-unnormalised", n_clips=48, n_repeats=2, n_jobs=2)
    assert not any(fig["layout"]["title"]["text"].startswith("Which features") for fig in figures(at))
    assert any("its 8677 features" in info.value and why in info.value for info in at.info)


def test_classify_explanation_without_a_corpus_says_how_to_get_one(monkeypatch, tmp_path):
    at = page("3_Classify.py", monkeypatch, tmp_path)
    at.file_uploader[0].upload("short.wav", wav(voice(duration=1.5)), "audio/wav").run()
    at.button(key="explain").click().run()
    assert not at.exception and not at.error
    assert any(t.startswith("What the model listened to") for t in titles(at))
    assert "Pitch and energy over time" in titles(at)
    assert any("Get the corpora" in info.value for info in at.info)


def test_classify_explains_a_window_of_a_long_clip(monkeypatch, data_root):  # noqa: F811
    at = page("3_Classify.py", monkeypatch, data_root)
    long_clip = np.concatenate([voice(duration=2.0), np.zeros(4 * SR, np.float32), voice(duration=2.0)])
    at.file_uploader[0].upload("long.wav", wav(long_clip), "audio/wav").run()
    at.slider(key="explain_start").set_value(2.0).run()
    at.button(key="explain").click().run()
    assert not at.exception and "silent" in at.error[0].value  # 2-6 s is the pause
    at.slider(key="explain_start").set_value(4.0).run()
    at.button(key="explain").click().run()
    assert not at.exception and not at.error
    overlay = next(fig for fig in figures(at) if fig["layout"]["title"]["text"].startswith("What the model"))
    assert values(overlay["data"][1]["x"])[[0, -1]].tolist() == pytest.approx([4.0, 8.0])

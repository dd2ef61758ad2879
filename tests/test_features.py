"""Feature pipelines on real (generated) audio through the real code: shapes, meaning, cache, errors, helpers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_core import config, features
from ser_core.audio import load_audio
from ser_core.errors import OptionError
from ser_core.features import speaker_encoder
from ser_core.features import (
    PIPELINES, PRIOR_CLIPS, FeatureError, Pipeline, extract, extract_features, extract_file, feature_names,
    get_pipeline, normalize_by_speaker, pool, speaker_stats, typical_speaker_std,
)
from tests.clips import voice, write_clip
from tests.conftest import PROJECT_ROOT

SR = 16_000


@pytest.fixture
def extract_calls(monkeypatch) -> list[int]:
    """Counts the clips actually extracted (in this process: use n_jobs=1)."""
    calls = []
    real = features.extract

    def counting(y, sr, pipeline):
        calls.append(1)
        return real(y, sr, pipeline)

    monkeypatch.setattr(features.extraction, "extract", counting)  # where extract_features looks it up
    return calls


@pytest.fixture
def clips(tmp_path) -> list[str]:
    return [str(write_clip(tmp_path / f"clip{i}.wav", duration=1.0 + 0.2 * i, f0=120.0 + 40 * i, seed=i))
            for i in range(4)]


# --- pipelines and one clip -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_gives_its_declared_finite_shape(name):
    pipeline = get_pipeline(name)
    for duration in (0.6, 2.0, 4.5):  # shorter and longer than the fixed-length pipelines' 3 s
        x = extract(voice(duration, SR), SR, pipeline)
        assert x.shape == pipeline.shape and x.dtype == np.float32 and np.isfinite(x).all()
    click = np.zeros(SR, np.float32)
    click[SR // 2:SR // 2 + 40] = 0.5  # trimming leaves almost nothing: still finite features
    assert np.isfinite(extract(click, SR, pipeline)).all()
    names = feature_names(pipeline)
    assert len(names) == len(set(names)) == x.shape[1 if pipeline.kind == "sequence" else 0]


def test_declared_shapes_and_names():
    assert get_pipeline("librosa180").shape == (180,)
    assert feature_names("librosa180")[:2] == ["mfcc_0", "mfcc_1"] and feature_names("librosa180")[-1] == "mel_127"
    assert get_pipeline("zcr_rms_mfcc").shape == (301, 22)
    assert feature_names("zcr_rms_mfcc")[:3] == ["zcr", "rms", "mfcc_0"]
    assert get_pipeline("logmel").shape == (64, 301)
    assert get_pipeline("logmel", duration=2.0).shape == (64, 201)
    assert get_pipeline("egemaps").shape == (88,) and feature_names("egemaps")[0].startswith("F0semitone")
    assert get_pipeline("egemaps_mfcc").shape == (132,)
    assert feature_names("egemaps_mfcc")[:88] == feature_names("egemaps")
    assert feature_names("egemaps_mfcc")[88:91] == ["zcr_mean", "rms_mean", "mfcc_0_mean"]
    assert feature_names("egemaps_mfcc")[-1] == "mfcc_19_std"
    assert get_pipeline("compare").shape == (6373,) and len(feature_names("compare")) == 6373
    assert get_pipeline("mfcc_prosody").shape == (242,)
    assert feature_names("mfcc_prosody")[:2] == ["mfcc_0_mean", "mfcc_0_std"]
    assert feature_names("mfcc_prosody")[-12:-10] == ["pitch_mean", "pitch_std"]
    assert feature_names("mfcc_prosody")[-2:] == ["voiced_share", "speech_seconds"]


def test_egemaps_mfcc_adds_frame_statistics_to_egemaps():
    y = voice(2.0, SR, level=0.2)
    names = feature_names("egemaps_mfcc")
    quiet, loud = extract(y, SR, "egemaps_mfcc"), extract(2 * y, SR, "egemaps_mfcc")
    np.testing.assert_array_equal(quiet[:88], extract(y, SR, "egemaps"))
    rms = names.index("rms_mean")
    assert loud[rms] == pytest.approx(2 * quiet[rms], rel=1e-4)  # the same frames, twice the amplitude
    zcr_std = names.index("zcr_std")
    assert quiet[zcr_std] > 0 and loud[zcr_std] == pytest.approx(quiet[zcr_std], rel=1e-4)
    # Frames as they are: a clip with a second of silence after it (trimmed) keeps its statistics.
    padded = np.concatenate([y, np.zeros(SR, np.float32)])
    np.testing.assert_allclose(extract(padded, SR, "egemaps_mfcc")[88:], quiet[88:], rtol=1e-3, atol=1e-3)


def test_ge2e_runs_resemblyzers_speaker_encoder_as_torch_does():
    """The converted weights through numpy give what the original PyTorch encoder gave (saved at conversion)."""
    with np.load(config.GE2E_WEIGHTS) as saved:
        mel, expected = saved["reference_mel"], saved["reference_features"]
    encoded = features.encode_speaker(mel)
    np.testing.assert_allclose(encoded, expected, atol=2e-5)
    embedding = encoded[:256]
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5) and embedding.min() >= 0


def test_ge2e_hears_the_voice_not_the_volume():
    y = voice(2.0, SR, f0=120.0, level=0.1)
    quiet, loud = extract(y, SR, "ge2e"), extract(4 * y, SR, "ge2e")
    np.testing.assert_allclose(loud, quiet, atol=1e-4)  # brought to the same loudness first
    higher = extract(voice(2.0, SR, f0=240.0, level=0.1), SR, "ge2e")
    assert np.abs(higher - quiet).max() > 0.1  # another voice moves the encoder
    together = extract(y, SR, "compare_ge2e")
    np.testing.assert_array_equal(together[:6373], extract(y, SR, "compare"))
    np.testing.assert_array_equal(together[6373:], quiet)
    assert feature_names("compare_ge2e")[6373:6375] == ["ge2e_embedding_0", "ge2e_embedding_1"]
    with pytest.raises(OptionError, match="16000 Hz"):
        get_pipeline("ge2e", sample_rate=22_050)  # the encoder was trained at 16 kHz


def test_ge2e_without_its_weights_says_what_is_missing(monkeypatch, tmp_path):
    from ser_core.errors import ModelError

    monkeypatch.setattr(config, "GE2E_WEIGHTS", tmp_path / "weights.npz")
    speaker_encoder._encoder_weights.cache_clear()
    try:
        with pytest.raises(ModelError, match="restore models/ge2e-encoder"):
            extract(voice(1.0, SR), SR, "ge2e")
    finally:
        speaker_encoder._encoder_weights.cache_clear()


def test_config_is_json_that_round_trips_and_overrides_change_it():
    for name in PIPELINES:
        pipeline = get_pipeline(name)
        saved = json.loads(json.dumps(pipeline.to_dict()))
        assert saved["name"] == name and saved["sample_rate"] == SR and "version" in saved and "trim_db" in saved
        assert Pipeline.from_dict(saved) == pipeline
    changed = get_pipeline("librosa180", n_mfcc=20)
    assert changed.shape == (160,) and changed.to_dict() != get_pipeline("librosa180").to_dict()
    assert changed.digest != get_pipeline("librosa180").digest
    with pytest.raises(OptionError, match="librosa180"):
        get_pipeline("wav2vec9")
    with pytest.raises(OptionError, match="n_fft"):
        get_pipeline("logmel", n_ftt=512)
    with pytest.raises(OptionError, match="feature_set"):
        get_pipeline("egemaps", feature_set="ComParE_2016")  # would change the shape: not an option


def test_librosa180_is_what_librosa_computes_from_one_stft():
    import librosa

    y = voice(2.0, SR)
    x = extract(y, SR, get_pipeline("librosa180", trim_db=None))
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    reference = np.concatenate([librosa.feature.mfcc(y=y, sr=SR, n_mfcc=40).mean(axis=1),
                                librosa.feature.chroma_stft(S=power, sr=SR, tuning=0.0).mean(axis=1),
                                librosa.feature.melspectrogram(y=y, sr=SR).mean(axis=1)])
    np.testing.assert_allclose(x, reference, rtol=1e-4, atol=1e-4)


def test_features_tell_a_low_voice_from_a_high_one():
    low, high, tritone = (voice(1.5, SR, f0=f0) for f0 in (150.0, 300.0, 212.0))
    x_low, x_high, x_tritone = (extract(y, SR, "librosa180") for y in (low, high, tritone))
    np.testing.assert_array_equal(x_low, extract(low, SR, "librosa180"))
    mfcc, chroma = slice(0, 40), slice(40, 52)
    assert np.linalg.norm(x_low[mfcc] - x_high[mfcc]) > 0.1 * np.linalg.norm(x_low[mfcc])
    # Chroma is a pitch class: an octave up peaks in the same class, half an octave up 6 classes away.
    assert x_low[chroma].argmax() == x_high[chroma].argmax()
    assert abs(int(x_tritone[chroma].argmax()) - int(x_low[chroma].argmax())) == 6
    assert np.abs(x_low[chroma] - x_tritone[chroma]).max() > 0.3
    pitch = feature_names("egemaps").index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert extract(high, SR, "egemaps")[pitch] - extract(low, SR, "egemaps")[pitch] == pytest.approx(12, abs=1.5)


def test_mfcc_prosody_measures_pitch_its_movement_voicing_and_length():
    names = feature_names("mfcc_prosody")

    def measured(y):
        return dict(zip(names, extract(y, SR, "mfcc_prosody")))

    t = np.arange(2 * SR) / SR
    for f0 in (80.0, 150.0, 300.0, 450.0):  # a steady tone: its pitch in semitones above 27.5 Hz, and no movement
        tone = measured((0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32))
        assert tone["pitch_p50"] == pytest.approx(12 * np.log2(f0 / 27.5), abs=0.1)
        assert tone["voiced_share"] > 0.95 and abs(tone["pitch_change_std"]) < 0.05
    low, high = measured(voice(2.0, SR, f0=150.0)), measured(voice(2.0, SR, f0=300.0))
    assert high["pitch_mean"] - low["pitch_mean"] == pytest.approx(12, abs=0.5)  # an octave
    assert low["pitch_std"] > 0.5 and low["pitch_change_std"] > 0.05  # voice() glides +-8 % three times a second
    assert low["spectral_centroid_mean"] < high["spectral_centroid_mean"]
    noise = measured(np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32))
    assert noise["voiced_share"] < 0.1 and noise["spectral_flatness_mean"] > 10 * low["spectral_flatness_mean"]
    # Silence around the speech is trimmed: the length is the speech's, the statistics barely move.
    padded = measured(np.concatenate([np.zeros(SR, np.float32), voice(2.0, SR, f0=150.0), np.zeros(SR, np.float32)]))
    assert padded["speech_seconds"] == pytest.approx(2.0, abs=0.1)
    assert low["speech_seconds"] == pytest.approx(2.0, abs=0.05)
    assert padded["pitch_mean"] == pytest.approx(low["pitch_mean"], abs=0.2)
    loud = measured(2 * voice(2.0, SR, f0=150.0))
    assert loud["rms_mean"] == pytest.approx(2 * low["rms_mean"], rel=1e-3)
    assert loud["pitch_mean"] == pytest.approx(low["pitch_mean"], abs=1e-3)


@pytest.mark.parametrize("name", ["egemaps", "compare"])
def test_smile_features_are_opensmiles_own_numbers_clip_after_clip_and_across_threads(name):
    """One openSMILE engine is reset and reused between clips: each clip must get exactly what a fresh
    opensmile.Smile computes for it, whatever came before and whichever thread asks."""
    from concurrent.futures import ThreadPoolExecutor

    import opensmile

    pipeline = get_pipeline(name, trim_db=None)  # the samples as given, as Smile sees them
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet[pipeline.params["feature_set"]],
                            feature_level=opensmile.FeatureLevel.Functionals)
    clips = [voice(duration, SR, f0=f0, seed=seed, level=level)
             for duration, f0, seed, level in [(1.0, 120, 1, 0.3), (3.0, 260, 2, 0.8), (0.6, 180, 3, 0.5),
                                               (2.0, 90, 4, 0.1)]]
    expected = [smile.process_signal(y, SR).to_numpy(dtype=np.float32)[0] for y in clips]
    for _ in range(2):
        for y, x in zip(clips, expected):
            np.testing.assert_array_equal(extract(y, SR, pipeline), x)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda y: extract(y, SR, pipeline), clips * 3))
    for y_index, x in enumerate(got):
        np.testing.assert_array_equal(x, expected[y_index % len(clips)])


def test_silence_around_speech_is_trimmed():
    y = voice(1.5, SR)
    padded = np.concatenate([np.zeros(SR, np.float32), y, np.zeros(SR, np.float32)])
    trimmed, untrimmed = get_pipeline("librosa180"), get_pipeline("librosa180", trim_db=None)
    np.testing.assert_allclose(extract(padded, SR, trimmed), extract(y, SR, trimmed), rtol=0.05, atol=0.5)
    assert not np.allclose(extract(padded, SR, untrimmed), extract(y, SR, untrimmed), rtol=0.05, atol=0.5)


def test_fixed_length_outputs_are_centre_padded_with_silence():
    short = extract(voice(1.0, SR), SR, "logmel")  # 101 frames of speech in 301
    floor = short.min()
    assert (short[:, :90] == floor).all() and (short[:, -90:] == floor).all()
    assert (short[:, 110:190] > floor).any()
    sequence = extract(voice(1.0, SR), SR, "zcr_rms_mfcc")
    assert (sequence[:90, :2] == 0).all() and (sequence[150, :2] > 0).all()  # zcr, rms of silence and speech


def test_spectral_pipelines_compile_no_numba_code(tmp_path):
    # Most of librosa compiles numba code on import: ~15 s per worker process in a fresh environment.
    code = ("from numba.core import event\n"
            "from ser_core.features import extract\n"
            "from tests.clips import voice\n"
            "with event.install_recorder('numba:compile') as compiled:\n"
            "    for name in ('librosa180', 'zcr_rms_mfcc', 'logmel', 'mfcc_prosody'):\n"
            "        extract(voice(1.0), 16000, name)\n"
            "print(len(compiled.buffer))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})  # an empty numba cache
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_extract_refuses_samples_at_another_rate():
    with pytest.raises(ValueError, match="16000 Hz"):
        extract(voice(1.0, 22_050), 22_050, "librosa180")


def test_extract_file_loads_paths_and_bytes(tmp_path):
    path = write_clip(tmp_path / "a.flac", sr=24_414)
    x = extract_file(path, "librosa180")
    np.testing.assert_array_equal(x, extract_file(path.read_bytes(), "librosa180"))
    np.testing.assert_array_equal(x, extract(load_audio(path), SR, "librosa180"))


# --- catalogs: cache, augmentation, progress, errors -----------------------------------------------------

def test_second_run_reads_the_cache_and_spawns_nothing(clips, extract_calls, monkeypatch):
    first = extract_features(clips, "librosa180", n_jobs=1)
    assert first.shape == (4, 180) and len(extract_calls) == 4

    import joblib

    def no_workers(*args, **kwargs):
        raise AssertionError("a fully cached run started worker processes")

    monkeypatch.setattr(joblib, "Parallel", no_workers)
    seen = []
    second = extract_features(clips, "librosa180", n_jobs=2, progress=lambda *p: seen.append(p))
    np.testing.assert_array_equal(first, second)
    assert len(extract_calls) == 4 and seen == [(4, 4)]


def test_a_rewritten_clip_is_recomputed(clips, extract_calls):
    before = extract_features(clips, "librosa180", n_jobs=1)
    write_clip(clips[1], duration=1.9, f0=310.0)  # new content, size and mtime
    after = extract_features(clips, "librosa180", n_jobs=1)
    assert len(extract_calls) == 5
    np.testing.assert_array_equal(before[[0, 2, 3]], after[[0, 2, 3]])
    assert not np.allclose(before[1], after[1])


def test_a_changed_parameter_uses_other_cache_entries(clips, extract_calls, tmp_path):
    extract_features(clips, "librosa180", n_jobs=1, cache_dir=tmp_path / "c")
    X = extract_features(clips, get_pipeline("librosa180", n_mfcc=13), n_jobs=1, cache_dir=tmp_path / "c")
    assert X.shape == (4, 153) and len(extract_calls) == 8
    assert len(list((tmp_path / "c" / "features").iterdir())) == 2


def test_a_damaged_cache_entry_is_recomputed(clips, extract_calls, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(clips, "librosa180", n_jobs=1, cache_dir=cache)
    entries = sorted(cache.rglob("*.bin"))
    assert len(entries) == 4 and not list(cache.rglob("*.tmp"))
    entries[0].write_bytes(b"\x93NUMPY garbage")
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # cut short
    second = extract_features(clips, "librosa180", n_jobs=1, cache_dir=cache)
    np.testing.assert_array_equal(first, second)
    assert len(extract_calls) == 6


def test_parallel_chunks_match_one_process(clips, monkeypatch, tmp_path):
    monkeypatch.setattr(features.cache, "CHUNK_SIZE", 1)  # four chunks, so two workers really start
    seen = []
    parallel = extract_features(clips, "zcr_rms_mfcc", n_jobs=2, cache_dir=tmp_path / "a",
                                progress=lambda *p: seen.append(p))
    serial = extract_features(clips, "zcr_rms_mfcc", n_jobs=1, cache_dir=tmp_path / "b")
    np.testing.assert_allclose(parallel, serial, rtol=1e-5, atol=1e-4)  # BLAS threads sum in another order
    assert seen[0] == (0, 4) and seen[-1] == (4, 4) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_catalog_rows_and_bytes_are_accepted(clips, extract_calls):
    import pandas as pd

    catalog = pd.DataFrame({"path": clips[::-1], "speaker": ["a", "a", "b", "b"]})
    X = extract_features(catalog, "librosa180", n_jobs=1)
    np.testing.assert_array_equal(X, extract_features(clips, "librosa180", n_jobs=1)[::-1])
    data = [open(path, "rb").read() for path in clips[:2]]
    B = extract_features(data, "librosa180", n_jobs=1)
    extract_features(data, "librosa180", n_jobs=1)  # cached by content
    np.testing.assert_array_equal(B, X[[3, 2]])
    assert len(extract_calls) == 6


def test_augmented_copies_differ_and_are_reproducible(clips, tmp_path):
    original = extract_features(clips, "librosa180", n_jobs=1)
    noisy = extract_features(clips, "librosa180", augmentation=("noise", 1), n_jobs=1)
    again = extract_features(clips, "librosa180", augmentation=("noise", 1), n_jobs=1, cache_dir=tmp_path / "x")
    other_seed = extract_features(clips, "librosa180", augmentation=("noise", 2), n_jobs=1)
    assert noisy.shape == original.shape and np.isfinite(noisy).all()
    assert not np.isclose(noisy, original).all(axis=1).any()
    np.testing.assert_array_equal(noisy, again)  # recomputed from scratch: the same
    assert not np.isclose(noisy, other_seed).all(axis=1).any()
    stretched = extract_features(clips, "logmel", augmentation=("stretch", 1), n_jobs=1)
    assert not np.isclose(stretched, extract_features(clips, "logmel", n_jobs=1)).all(axis=(1, 2)).any()


def test_each_clip_gets_its_own_augmentation_seed(tmp_path):
    # The same recording under two names: two different noise draws (seeds come from the name).
    same = [write_clip(tmp_path / "x.wav"), write_clip(tmp_path / "y.wav")]
    plain = extract_features(same, "librosa180", n_jobs=1)
    np.testing.assert_array_equal(plain[0], plain[1])
    noisy = extract_features(same, "librosa180", augmentation=("noise", 0), n_jobs=1)
    assert not np.allclose(noisy[0], noisy[1])


def test_unusable_clips_are_listed_after_the_others_are_cached(clips, tmp_path, extract_calls):
    silent = tmp_path / "silent.wav"
    write_clip(silent, level=1e-6)
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    sources = [clips[0], str(silent), clips[1], str(text)]
    seen = []
    with pytest.raises(FeatureError) as raised:
        extract_features(sources, "librosa180", n_jobs=1, progress=lambda *p: seen.append(p))
    error = raised.value
    assert set(error.failed) == {str(silent), str(text)} and seen[-1] == (4, 4)
    assert "2 of 4 clips" in str(error) and "silent" in str(error) and "not an audio" in str(error)
    X = extract_features(sources, "librosa180", n_jobs=1, on_error="nan")
    assert len(extract_calls) == 2  # the good clips came from the cache
    assert np.isnan(X[[1, 3]]).all() and np.isfinite(X[[0, 2]]).all()


def test_empty_input_gives_an_empty_array():
    assert extract_features([], "logmel").shape == (0, 64, 301)


# --- helpers for models -----------------------------------------------------------------------------------

def test_pool_takes_mean_and_std_over_time():
    rng = np.random.default_rng(0)
    sequence = rng.normal(size=(5, 30, 4)).astype(np.float32)
    pooled = pool(sequence)
    assert pooled.shape == (5, 8)
    np.testing.assert_allclose(pooled[:, :4], sequence.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(pooled[:, 4:], sequence.std(axis=1), rtol=1e-5)
    image = np.swapaxes(sequence, 1, 2)
    np.testing.assert_allclose(pool(image, "image"), pooled, rtol=1e-5)
    clip = rng.normal(size=(5, 7))
    np.testing.assert_array_equal(pool(clip, "clip"), clip.astype(np.float32))


def test_speaker_normalisation_standardises_each_speaker():
    rng = np.random.default_rng(0)
    speakers = np.array(["a"] * 30 + ["b"] * 20)
    X = rng.normal(size=(50, 6)) * np.where(speakers == "a", 5.0, 0.5)[:, None] + np.arange(6)
    X[:, 5] = 3.0  # a constant feature stays finite (std floor)
    Z = normalize_by_speaker(X, speakers)
    for speaker in "ab":
        rows = Z[speakers == speaker]
        np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(rows[:, :5].std(axis=0), 1, rtol=1e-4)
    assert (Z[:, 5] == 0).all()

    stats = speaker_stats(X, speakers)
    copies = X + 1.0  # e.g. augmented rows: normalised with the originals' figures, not their own
    a = speakers == "a"
    expected = (copies[a, :5] - X[a, :5].mean(axis=0)) / X[a, :5].std(axis=0)
    np.testing.assert_allclose(normalize_by_speaker(copies, speakers, stats)[a, :5], expected, rtol=1e-4)
    with pytest.raises(ValueError, match="c"):
        normalize_by_speaker(X[:2], ["c", "c"], stats)


def test_a_few_calibration_clips_cannot_blow_up_a_feature_they_leave_nearly_constant():
    """Three clips of a new speaker that happen to agree on a feature: alone they would divide it by ~0."""
    rng = np.random.default_rng(2)
    training_speakers = np.repeat(["a", "b", "c"], 40)
    X = rng.normal(size=(120, 4)) * [1.0, 2.0, 3.0, 4.0]
    typical = typical_speaker_std(X, training_speakers, "clip")
    np.testing.assert_allclose(typical, [1.0, 2.0, 3.0, 4.0], rtol=0.2)

    few = rng.normal(size=(3, 4)) * [1.0, 2.0, 3.0, 4.0]
    few[:, 3] = 7.0 + np.array([0.0, 1e-6, -1e-6])
    mean, std = speaker_stats(few, ["new"] * 3, "clip", prior_std=typical)["new"]
    k = PRIOR_CLIPS
    np.testing.assert_allclose(std[3], np.sqrt(k / (3 + k)) * typical[3], rtol=1e-4)  # from the prior alone
    np.testing.assert_allclose(std[:3], np.sqrt((3 * few[:, :3].var(axis=0) + k * typical[:3] ** 2) / (3 + k)),
                               rtol=1e-4)
    new_clip = np.array([[0.0, 0.0, 0.0, 9.0]])  # 2 units off on the feature that looked constant
    assert abs(normalize_by_speaker(new_clip, ["new"], {"new": (mean, std)}, "clip")[0, 3]) < 2
    assert abs(normalize_by_speaker(new_clip, ["new"], speaker_stats(few, ["new"] * 3, "clip"), "clip")[0, 3]) > 1e5
    # Forty clips of a speaker outweigh the prior: their statistics stay close to their own.
    own = speaker_stats(X, training_speakers, "clip", prior_std=typical)["a"][1]
    np.testing.assert_allclose(own, X[training_speakers == "a"].std(axis=0), rtol=0.1)


@pytest.mark.parametrize("kind, feature_axis", [("sequence", 2), ("image", 1)])
def test_speaker_normalisation_of_frames_is_per_feature_over_all_frames(kind, feature_axis):
    rng = np.random.default_rng(1)
    speakers = np.array(["a"] * 6 + ["b"] * 4)
    X = rng.normal(3.0, 2.0, size=(10, 12, 5)).astype(np.float32)
    Z = normalize_by_speaker(X, speakers, kind=kind)
    assert Z.shape == X.shape
    for speaker in "ab":
        rows = np.moveaxis(Z[speakers == speaker], feature_axis, -1).reshape(-1, X.shape[feature_axis])
        np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(rows.std(axis=0), 1, rtol=1e-4)


# --- the shared corpora ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_slice(shared_corpora):
    from ser_core.corpora import build_catalog

    catalog = build_catalog(shared_corpora)
    return catalog.iloc[np.linspace(0, len(catalog) - 1, 20).astype(int)].reset_index(drop=True)


def test_ge2e_embeddings_tell_real_speakers_apart(shared_corpora):
    """The converted encoder still does its first job: a clip's nearest clip, by embedding, is the same actor's."""
    from ser_core.corpora import build_catalog

    catalog = build_catalog(shared_corpora, ["ravdess"])
    clips = catalog[catalog["speaker"].isin(["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"])]
    clips = clips.groupby("speaker").head(5)  # 4 actors (2 men, 2 women), 5 clips each
    embeddings = extract_features(clips, "ge2e", n_jobs=1)[:, :256]
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -1)
    speakers = clips["speaker"].to_numpy()
    assert (speakers[similarity.argmax(axis=1)] == speakers).all()


def frames_as_librosa_computes_them(y: np.ndarray, name: str) -> np.ndarray:
    """(frames, values) of the whole clip, untrimmed and unpadded, computed by librosa (log-mel, MFCC) and numpy
    (ZCR is left out, RMS): an independent reference for logmel and zcr_rms_mfcc."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=400, hop_length=160, n_mels=64, pad_mode="constant")
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    if name == "logmel":
        return log_mel.T
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(y, 200), 400)[::160].astype(np.float64)
    rms = np.sqrt(np.mean(windows ** 2, axis=1))
    return np.column_stack([rms, librosa.feature.mfcc(S=log_mel, n_mfcc=20).T])


def assert_a_run_of(ours: np.ndarray, reference: np.ndarray, atol: float) -> None:
    """`ours` (frames, values), trimmed at a start of its own, is a run of consecutive reference frames."""
    start = int(np.argmin(np.abs(reference - ours[0]).max(axis=1)))
    np.testing.assert_allclose(ours, reference[start:start + len(ours)], atol=atol)


@pytest.mark.parametrize("name", PIPELINES)
def test_real_corpus_clips(corpus_slice, name):
    assert set(corpus_slice["corpus"]) == {"ravdess", "tess"}
    X = extract_features(corpus_slice, name, n_jobs=1)
    pipeline = get_pipeline(name)
    assert X.shape == (20, *pipeline.shape) and np.isfinite(X).all()
    assert len(np.unique(X.reshape(20, -1), axis=0)) == 20
    assert len(list(Path(os.environ["SER_CACHE_DIR"]).rglob("*.bin"))) == 20  # the default cache
    if name in ("logmel", "zcr_rms_mfcc"):  # the values themselves, against librosa and numpy, on a few clips
        for path, x in zip(corpus_slice.path[::7], X[::7]):
            reference = frames_as_librosa_computes_them(load_audio(path, sr=SR), name)
            if name == "logmel":
                frames = x.T[~np.all(x.T == x.min(), axis=1)]  # not the padding (the floor)
                # The floor is 80 dB under the loudest kept frame; librosa's, under the clip's loudest.
                assert_a_run_of(frames, np.maximum(reference, x.min()), atol=0.01)
            else:
                frames = x[x[:, 1] > 0][:, 1:]  # not the padding (digital silence); RMS and MFCC
                assert_a_run_of(frames[:, :1], reference[:, :1], atol=1e-6)
                assert_a_run_of(frames, reference, atol=0.01)

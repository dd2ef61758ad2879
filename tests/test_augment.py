"""ser_core.augment: each kind changes the signal the way its name says, reproducibly."""
from __future__ import annotations

import random

import numpy as np
import pytest

from ser_core.augment import AUGMENTATIONS, DEFAULT_RANGES, augment, augment_spec_id
from ser_core.errors import OptionError
from tests.clips import voice

SR = 16_000


def tone(freq: float, duration: float = 1.0) -> np.ndarray:
    t = np.arange(int(duration * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(y: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spectrum)])


def spec_value(spec: str, key: str) -> float:
    """The parameter value in an augment_spec_id string."""
    return float(spec.split(f"{key}=")[1].split(",")[0])


def onset(y: np.ndarray) -> float:
    """Seconds until the signal first reaches a tenth of its peak."""
    return int(np.argmax(np.abs(y) > 0.1 * np.max(np.abs(y)))) / SR


@pytest.mark.parametrize("rate", [1.25, 0.8])
def test_stretch_changes_length_not_pitch(rate):
    y = tone(220.0, 2.0)
    out = augment(y, SR, "stretch", rate=rate)
    assert out.dtype == np.float32
    assert len(out) == pytest.approx(len(y) / rate, rel=0.01)
    assert dominant_frequency(out) == pytest.approx(220.0, rel=0.02)


@pytest.mark.parametrize("semitones, factor", [(12, 2.0), (-12, 0.5), (4, 2 ** (4 / 12))])
def test_pitch_moves_the_frequency_not_the_length(semitones, factor):
    y = tone(220.0, 2.0)
    out = augment(y, SR, "pitch", semitones=semitones)
    assert out.dtype == np.float32 and len(out) == len(y)
    assert dominant_frequency(out) == pytest.approx(220.0 * factor, rel=0.02)


def test_shift_moves_the_onset_and_fills_with_silence():
    y = np.concatenate([np.zeros(SR // 2, np.float32), voice(1.5, SR)])
    assert onset(y) == pytest.approx(0.5, abs=0.01)
    later = augment(y, SR, "shift", seconds=0.3)
    earlier = augment(y, SR, "shift", seconds=-0.3)
    assert len(later) == len(earlier) == len(y)
    assert onset(later) == pytest.approx(0.8, abs=0.01)
    assert onset(earlier) == pytest.approx(0.2, abs=0.01)
    # Zero-filled, not rolled: the end of the clip does not come round to its start.
    speech = voice(1.0, SR)
    assert np.all(augment(speech, SR, "shift", seconds=0.25)[: SR // 4] == 0)
    assert np.all(augment(speech, SR, "shift", seconds=-0.25)[-SR // 4:] == 0)


@pytest.mark.parametrize("snr_db", [10.0, 25.0])
def test_noise_has_the_asked_snr(snr_db):
    y = voice(1.5, SR)
    out = augment(y, SR, "noise", snr_db=snr_db)
    noise = out.astype(np.float64) - y
    measured = 10 * np.log10(np.sum(np.square(y, dtype=np.float64)) / np.sum(noise ** 2))
    assert out.dtype == np.float32 and len(out) == len(y)
    assert measured == pytest.approx(snr_db, abs=0.3)


@pytest.mark.parametrize("kind", AUGMENTATIONS)
def test_same_seed_same_output_other_seed_other_output(kind):
    y = voice(1.0, SR)
    first = augment(y, SR, kind, seed=7)
    assert np.array_equal(first, augment(y, SR, kind, seed=7))
    assert not np.array_equal(first, augment(y, SR, kind, seed=8))
    assert np.array_equal(y, voice(1.0, SR))  # the input is left alone


@pytest.mark.parametrize("kind, params", [("stretch", {"rate": 1.1}), ("shift", {"seconds": 0.2}),
                                          ("pitch", {"semitones": -3.0})])
def test_explicit_parameters_make_the_seed_irrelevant(kind, params):
    y = voice(1.0, SR)
    assert np.array_equal(augment(y, SR, kind, seed=1, **params), augment(y, SR, kind, seed=2, **params))


def test_noise_seed_changes_only_the_realisation():
    y = voice(1.0, SR)
    a, b = (augment(y, SR, "noise", seed=s, snr_db=20.0) for s in (1, 2))
    assert not np.array_equal(a, b)
    assert np.std(a - y) == pytest.approx(np.std(b - y), rel=0.05)


def test_global_random_state_neither_used_nor_disturbed():
    y = voice(1.0, SR)
    outputs = []
    for global_seed in (1, 2):
        random.seed(global_seed)
        np.random.seed(global_seed)
        before = np.random.get_state()[1].copy()
        outputs.append([augment(y, SR, kind, seed=3) for kind in AUGMENTATIONS])
        assert np.array_equal(np.random.get_state()[1], before)
    for a, b in zip(*outputs):
        assert np.array_equal(a, b)


def test_default_parameters_are_drawn_within_their_ranges():
    for kind, (key, low, high) in DEFAULT_RANGES.items():
        values = {spec_value(augment_spec_id(kind, seed), key) for seed in range(30)}
        assert len(values) > 20 and all(low <= v <= high for v in values)


def test_spec_id_names_exactly_what_augment_does():
    assert augment_spec_id("stretch", 5, rate=1.25) == "stretch:rate=1.25"
    assert augment_spec_id("stretch", 6, rate=1.25) == "stretch:rate=1.25"
    assert augment_spec_id("noise", 3, snr_db=10) == "noise:snr_db=10.0,seed=3"
    assert augment_spec_id("pitch", 0) == augment_spec_id("pitch", 0)
    assert augment_spec_id("pitch", 0) != augment_spec_id("pitch", 1)
    # A drawn parameter, given back explicitly, is the same augmentation with the same id.
    y = voice(1.0, SR)
    for kind in AUGMENTATIONS:
        key = DEFAULT_RANGES[kind][0]
        spec = augment_spec_id(kind, 4)
        assert len(spec) <= 30, spec  # short enough to read in a cache key
        value = spec_value(spec, key)
        assert augment_spec_id(kind, 4, **{key: value}) == spec
        assert np.array_equal(augment(y, SR, kind, seed=4), augment(y, SR, kind, seed=4, **{key: value}))


def test_bad_requests():
    y = voice(1.0, SR)
    with pytest.raises(OptionError, match="noise, stretch, shift, pitch"):
        augment(y, SR, "reverb")
    with pytest.raises(OptionError, match="noise, stretch, shift, pitch"):
        augment_spec_id("reverb", 0)
    with pytest.raises(OptionError, match="takes only rate"):
        augment(y, SR, "stretch", semitones=2)
    with pytest.raises(ValueError, match="mono"):
        augment(np.stack([y, y]), SR, "noise")


def test_float64_input_gives_float32():
    out = augment(voice(1.0, SR).astype(np.float64), SR, "pitch", semitones=2.0)
    assert out.dtype == np.float32



def test_each_slider_starts_at_the_most_audible_end_of_its_range():
    """The Explore page's sliders start where original and copy sound most different: noise at 30 dB SNR,
    where it started before, is barely heard."""
    from ser_core.augment import DESCRIPTIONS, MOST_AUDIBLE

    assert set(DESCRIPTIONS) == set(MOST_AUDIBLE) == set(AUGMENTATIONS)
    assert all(MOST_AUDIBLE[kind] in (low, high) for kind, (_, low, high) in DEFAULT_RANGES.items())
    y = voice(duration=1.0)
    _, noisiest, mildest = DEFAULT_RANGES["noise"]
    added = {snr: np.std(augment(y, SR, "noise", snr_db=snr) - y) for snr in (noisiest, mildest)}
    assert MOST_AUDIBLE["noise"] == noisiest and added[noisiest] > 5 * added[mildest]

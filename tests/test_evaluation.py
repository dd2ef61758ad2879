"""Evaluation protocols: who is tested on what, and what the figures mean."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_core.classifiers import make_classifier
from ser_core.errors import OptionError
from ser_core.corpora import build_catalog
from ser_core.evaluation import ADAPTATION_DESCRIPTION, compute_metrics, cross_validate, evaluate, make_splits

LABELS4 = ["neutral", "happy", "sad", "angry"]


def table(n_speakers=8, per_label=10, corpora=("ravdess",), labels=LABELS4) -> pd.DataFrame:
    rows = []
    for s in range(n_speakers):
        corpus = corpora[s % len(corpora)]
        for label in labels:
            rows += [{"corpus": corpus, "speaker": f"{corpus}_{s:02d}", "label": label}] * per_label
    return pd.DataFrame(rows)


def speaker_dominated_features(catalog: pd.DataFrame, seed=0, signal=0.6, speaker_spread=4.0) -> np.ndarray:
    """Weak emotion signal, strong speaker identity: the situation real SER corpora are in."""
    rng = np.random.default_rng(seed)
    d = 12
    label_dirs = {label: rng.standard_normal(d) for label in catalog["label"].unique()}
    speaker_offsets = {s: speaker_spread * rng.standard_normal(d) for s in catalog["speaker"].unique()}
    # Each speaker expresses each emotion in their own way, which only a split that shares speakers can learn.
    speaker_style = {(s, label): 1.5 * rng.standard_normal(d)
                     for s in catalog["speaker"].unique() for label in label_dirs}
    X = np.stack([signal * label_dirs[row.label] + speaker_offsets[row.speaker]
                  + speaker_style[(row.speaker, row.label)] + 0.5 * rng.standard_normal(d)
                  for row in catalog.itertuples()])
    return X


def test_speaker_folds_never_share_a_speaker_and_test_every_clip_once():
    catalog = table(n_speakers=10)
    splits = make_splits(catalog, "speaker", folds=5, seed=1)
    assert len(splits) == 5
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(len(catalog)))
    for split in splits:
        train_speakers = set(catalog.speaker.iloc[split.train])
        test_speakers = set(catalog.speaker.iloc[split.test])
        assert train_speakers.isdisjoint(test_speakers)
        assert len(train_speakers | test_speakers) == 10


def test_speaker_folds_become_leave_one_speaker_out_when_few_speakers():
    catalog = table(n_speakers=2)  # like TESS: train on one speaker, test on the other
    splits = make_splits(catalog, "speaker", folds=5)
    assert len(splits) == 2
    assert [catalog.speaker.iloc[s.test].nunique() for s in splits] == [1, 1]


def test_random_folds_are_stratified_and_share_speakers():
    catalog = table(n_speakers=4)
    splits = make_splits(catalog, "random", folds=5, seed=0)
    for split in splits:
        counts = catalog.label.iloc[split.test].value_counts()
        assert counts.max() - counts.min() <= 1
        assert set(catalog.speaker.iloc[split.test]) & set(catalog.speaker.iloc[split.train])


def test_corpus_protocol_holds_out_a_corpus_and_keeps_shared_labels():
    a = table(n_speakers=2, corpora=("ravdess",), labels=LABELS4 + ["calm"])
    b = table(n_speakers=2, corpora=("tess",), labels=LABELS4 + ["surprised"])
    catalog = pd.concat([a, b], ignore_index=True)
    splits = make_splits(catalog, "corpus", test_corpus="tess")
    assert len(splits) == 1
    split = splits[0]
    assert set(catalog.corpus.iloc[split.test]) == {"tess"}
    assert set(catalog.corpus.iloc[split.train]) == {"ravdess"}
    assert set(catalog.label.iloc[split.train]) == set(catalog.label.iloc[split.test]) == set(LABELS4)
    assert len(make_splits(catalog, "corpus")) == 2


@pytest.mark.parametrize("protocol, catalog", [
    ("speaker", table(n_speakers=1)),
    ("corpus", table(n_speakers=3)),
    ("bogus", table()),
])
def test_impossible_protocols_say_why(protocol, catalog):
    with pytest.raises(OptionError) as error:
        make_splits(catalog, protocol)
    assert protocol in str(error.value) or "speaker" in str(error.value)


def test_metrics_match_a_hand_count():
    truth = ["sad", "sad", "sad", "sad", "happy", "happy"]
    guess = ["sad", "sad", "sad", "happy", "happy", "sad"]
    m = compute_metrics(truth, guess)
    assert m["labels"] == ["happy", "sad"]  # vocabulary order
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["uar"] == pytest.approx((3 / 4 + 1 / 2) / 2)  # unweighted: the small class counts as much
    assert m["per_class"]["sad"]["precision"] == pytest.approx(3 / 4)
    assert m["per_class"]["happy"]["support"] == 2
    assert m["confusion"] == [[1, 1], [1, 3]]
    f1_sad, f1_happy = 2 * .75 * .75 / 1.5, 2 * .5 * .5 / 1.0
    assert m["macro_f1"] == pytest.approx((f1_sad + f1_happy) / 2)


def test_random_split_inflates_accuracy_and_speaker_norm_recovers_some():
    catalog = table(n_speakers=10, per_label=12)
    X = speaker_dominated_features(catalog)
    honest = cross_validate(X, catalog, protocol="speaker", folds=5)
    leaky = cross_validate(X, catalog, protocol="random", folds=5)
    normalised = cross_validate(X, catalog, protocol="speaker", folds=5, speaker_norm=True)
    assert leaky.pooled["accuracy"] > honest.pooled["accuracy"] + 0.15
    assert normalised.pooled["accuracy"] > honest.pooled["accuracy"] + 0.05
    assert honest.protocol == "speaker" and leaky.protocol == "random"
    assert "speaker-independent" in honest.summary() and "random" in leaky.summary()


def test_augmented_copies_of_test_clips_never_reach_training():
    rng = np.random.default_rng(3)
    catalog = table(n_speakers=6, per_label=8)
    X = rng.standard_normal((len(catalog), 20))  # no signal at all: honest accuracy is chance
    copies = {"noise": X + 1e-3 * rng.standard_normal(X.shape)}  # near-identical copies of every clip
    result = cross_validate(X, catalog, protocol="random", folds=4, augmented=copies)
    assert result.pooled["accuracy"] < 0.45
    assert result.augmentation == ["noise"]
    # Control: augmenting before splitting (every clip's copy in training) lets the same classifier
    # memorise the test clips.
    labels = catalog.label.to_numpy()
    split = make_splits(catalog, "random", folds=4)[0]
    leaky_train = np.concatenate([split.train, np.arange(len(X))])
    model = make_classifier("svm").fit(np.concatenate([X[split.train], copies["noise"]]), labels[leaky_train])
    assert np.mean(model.predict(X[split.test]) == labels[split.test]) > 0.8


def test_result_records_how_it_was_made():
    catalog = table(n_speakers=4, per_label=6)
    X = speaker_dominated_features(catalog, speaker_spread=0.0, signal=3.0)
    result = cross_validate(X, catalog, classifier="mlp", protocol="speaker", folds=2, seed=7,
                            features="librosa180")
    record = result.to_dict()
    for key, value in {"protocol": "speaker", "folds": 2, "classifier": "mlp", "seed": 7,
                       "features": "librosa180", "corpora": ["ravdess"], "n_speakers": 4}.items():
        assert record[key] == value
    assert len(record["per_fold"]) == 2
    assert record["pooled"]["accuracy"] > 0.6  # the signal is there, and the MLP finds it
    assert sum(map(sum, record["pooled"]["confusion"])) == len(catalog)


def test_ridge_recognises_emotions_across_the_two_tess_speakers_and_adapts_to_the_unseen_one(shared_corpora):
    """TESS cross-speaker, the harder of the issue's targets: trained on one speaker, tested on the other, both
    ways (on all of TESS: 76.9%; adapted, 84.5%). 40 clips per emotion and speaker. Adapting (self-training on
    the test speaker's clips) must lift it without reading a single label of theirs."""
    tess = build_catalog(shared_corpora, ["tess"])
    catalog = tess.groupby(["speaker", "label"]).head(40).reset_index(drop=True)
    how = dict(features="compare_ge2e", classifier="ridge", folds=2, speaker_norm=True, n_jobs=1)
    plain = evaluate(catalog, **how)
    assert plain.protocol == "speaker" and plain.n_speakers == 2 and not plain.adapted
    assert plain.predictions.groupby("fold").speaker.nunique().tolist() == [1, 1]  # one speaker per fold
    # Measured 58.6% (adapted: 76.6%) on 2026-12-06; ridge on cached features is deterministic, so the margin
    # covers only library updates. Chance is 14.3% over 7 emotions.
    assert plain.pooled["accuracy"] > 0.55, plain.pooled["accuracy"]

    adapted = evaluate(catalog, **how, adapt=True)
    assert adapted.adapted and ADAPTATION_DESCRIPTION in adapted.summary()
    assert adapted.pooled["accuracy"] > plain.pooled["accuracy"] + 0.08, (plain.pooled, adapted.pooled)

    scrambled = catalog.copy()  # OAF's labels shuffled: where OAF is the test speaker, nothing may change
    oaf = scrambled["speaker"] == "tess_OAF"
    scrambled.loc[oaf, "label"] = np.random.default_rng(0).permutation(scrambled.loc[oaf, "label"].to_numpy())
    again = evaluate(scrambled, **how, adapt=True)

    def oaf_guesses(result):
        rows = result.predictions.query("speaker == 'tess_OAF'").set_index("path")
        return rows["predicted_label"].sort_index()

    pd.testing.assert_series_equal(oaf_guesses(again), oaf_guesses(adapted))

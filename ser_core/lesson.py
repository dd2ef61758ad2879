"""The leakage lesson: one feature set and one classifier, evaluated under the random split and by speaker.

The same features (extracted once, from the disk cache) and the same classifier go through three protocols:
the random split most notebooks use, the speaker-independent folds this project reports, and those folds with
per-speaker normalisation. The first two side by side show how much a random split inflates a figure; the last
two show what normalising each voice by itself recovers honestly. A third lesson (new_corpus_lesson) holds out a
whole corpus: the figure closest to a class at a laptop microphone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import config
from .evaluation import EvaluationResult, cross_validate, extract_usable

WHY_RANDOM_INFLATES = (
    "A random split puts clips of the **same speakers** on both sides: the model is tested on voices it has "
    "already heard, often on the very sentences it learned from (and, in notebooks that augment before "
    "splitting, on noisy or pitch-shifted **copies of its own training clips**). It can score by recognising "
    "the speaker and the recording instead of the emotion. Folds by speaker keep every test voice unheard, as "
    "for a student who speaks into the app tomorrow: that figure is lower, and it is the one to believe."
)
WHY_NORMALISATION_HELPS = (
    "Voices differ before emotions do: pitch, loudness and timbre vary more between people than between one "
    "person's moods. Per-speaker normalisation describes every clip relative to its own speaker's average "
    "(from that speaker's clips only, no labels), so the model compares a voice with itself. It stays "
    "honest: test speakers are still never heard in training. In the live page, calibration on the new voice "
    "gives the model the same reference: the more, and the more varied, speech, the closer it comes to the "
    "figure here, which takes each test speaker's average over all their clips."
)


WHY_A_NEW_CORPUS_IS_HARDER = (
    "Folds by speaker keep every test **voice** new, but not the **recording**: the same studio, microphone, "
    "sentences and acting style are on both sides. Holding out a whole corpus changes all of them at once, as a "
    "class speaking into a laptop does, and the figure falls, often close to chance. Part of it comes back "
    "without a single label: standardising each clip by the average of the other voices heard in the same room "
    "(here, the rest of the held-out corpus), as the app does with what it hears where it runs."
)

# The same three points in a sentence or two, for a projector (presentation mode).
IN_SHORT = {
    WHY_RANDOM_INFLATES: "A random split tests the model on voices it has already heard, the **same speakers** on "
                         "both sides. Folds by speaker keep every test voice new, as for a student tomorrow: the "
                         "lower figure is the one to believe.",
    WHY_NORMALISATION_HELPS: "Voices differ more between people than between one person's moods. Describing each "
                             "clip relative to its own speaker's average lets the model compare a voice with itself.",
    WHY_A_NEW_CORPUS_IS_HARDER: "A corpus it never heard changes the studio, microphone, sentences and acting style "
                                "at once, as a class at a laptop does. Hearing the room's other voices, without "
                                "labels, gives part of it back.",
}


@dataclass(frozen=True)
class Lesson:
    """Three evaluations of one model on one catalog; `random` is the inflated one."""

    random: EvaluationResult
    speaker: EvaluationResult
    speaker_normalized: EvaluationResult

    @property
    def inflation(self) -> float:
        """Accuracy points the random split adds over folds by speaker."""
        return self.random.pooled["accuracy"] - self.speaker.pooled["accuracy"]

    @property
    def normalization_gain(self) -> float:
        """Accuracy points per-speaker normalisation adds under folds by speaker."""
        return self.speaker_normalized.pooled["accuracy"] - self.speaker.pooled["accuracy"]


def leakage_lesson(catalog: pd.DataFrame, *, features: str = config.DEFAULT_FEATURES,
                   classifier: str = config.DEFAULT_CLASSIFIER,
                   folds: int = config.DEFAULT_FOLDS, seed: int = config.DEFAULT_SEED, n_jobs: int = -1,
                   progress: Callable[[str, int, int], None] | None = None) -> Lesson:
    """Evaluate `classifier` on `features` of `catalog` under the random split, by speaker, and by speaker with
    per-speaker normalisation: the same features, the same seed, the same number of folds.

    Clips that cannot be used are left out of all three, and each result names them (see extract_usable).
    `progress(stage, done, total)` reports feature extraction ("features") and each evaluation ("random",
    "speaker", "speaker, normalised"), as evaluation.evaluate does.
    """
    def stage(name: str):
        return (lambda done, total: progress(name, done, total)) if progress else None

    usable = extract_usable(catalog, features, protocols=("random", "speaker"), folds=folds, seed=seed,
                            n_jobs=n_jobs, progress=progress)
    runs = {}
    for name, protocol, speaker_norm in (("random", "random", False), ("speaker", "speaker", False),
                                         ("speaker, normalised", "speaker", True)):
        runs[name] = cross_validate(usable.X, usable.catalog, classifier=classifier, protocol=protocol, folds=folds,
                                    seed=seed, speaker_norm=speaker_norm, features=features,
                                    skipped=usable.skipped, progress=stage(name))
    return Lesson(runs["random"], runs["speaker"], runs["speaker, normalised"])


@dataclass(frozen=True)
class CorpusLesson:
    """One model that normalises by what it has heard (voice_norm), by speaker within its corpora, on a corpus
    it never heard clip by clip, and on that corpus with the room's other voices heard first."""

    speaker: EvaluationResult
    new_corpus: EvaluationResult
    new_corpus_room: EvaluationResult

    @property
    def drop(self) -> float:
        """UAR points lost from new voices of known corpora to a corpus never heard (positive: a loss)."""
        return self.speaker.pooled["uar"] - self.new_corpus.pooled["uar"]

    @property
    def room_gain(self) -> float:
        """UAR points that hearing the held-out corpus's other voices gives back."""
        return self.new_corpus_room.pooled["uar"] - self.new_corpus.pooled["uar"]


def new_corpus_lesson(catalog: pd.DataFrame, *, features: str = config.DEFAULT_FEATURES,
                      classifier: str = config.DEFAULT_CLASSIFIER, folds: int = config.DEFAULT_FOLDS,
                      seed: int = config.DEFAULT_SEED, n_jobs: int = -1,
                      progress: Callable[[str, int, int], None] | None = None) -> CorpusLesson:
    """Evaluate `classifier` on `features` of a catalog of two or more corpora, normalised by what it has heard:
    by speaker (each clip alone), each corpus held out in turn (each clip alone), and held out with the room
    heard. UAR compares them fairly, as the held-out corpus may lack some emotions (RAVDESS's calm).
    `progress(stage, done, total)` reports "features", then "by speaker", "new corpus", "new corpus, room"."""
    usable = extract_usable(catalog, features, protocols=("speaker", "corpus"), folds=folds, seed=seed,
                            n_jobs=n_jobs, progress=progress)
    runs = []
    for name, protocol, scoring in (("by speaker", "speaker", "cold"), ("new corpus", "corpus", "cold"),
                                    ("new corpus, room", "corpus", "room")):
        runs.append(cross_validate(usable.X, usable.catalog, classifier=classifier, protocol=protocol, folds=folds,
                                   seed=seed, features=features, skipped=usable.skipped, voice_norm=True,
                                   scoring=scoring,
                                   progress=(lambda done, total, name=name: progress(name, done, total))
                                   if progress else None))
    return CorpusLesson(*runs)


def lesson_results(catalog: pd.DataFrame, *, features: str = config.DEFAULT_FEATURES,
                   classifier: str = config.DEFAULT_CLASSIFIER, folds: int = config.DEFAULT_FOLDS,
                   seed: int = config.DEFAULT_SEED, n_jobs: int = -1,
                   progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Every part of the Lesson page as plain data (JSON): the leakage lesson, and with two corpora or more the
    new-corpus lesson."""
    lesson = leakage_lesson(catalog, features=features, classifier=classifier, folds=folds, seed=seed,
                            n_jobs=n_jobs, progress=progress)
    shown = {"random": lesson.random.to_dict(), "speaker": lesson.speaker.to_dict(),
             "normalised": lesson.speaker_normalized.to_dict(),
             "inflation": lesson.inflation, "gain": lesson.normalization_gain}
    if catalog["corpus"].nunique() > 1:
        corpus = new_corpus_lesson(catalog, features=features, classifier=classifier, folds=folds, seed=seed,
                                   n_jobs=n_jobs, progress=progress)
        shown["new_corpus"] = {"speaker": corpus.speaker.to_dict(), "corpus": corpus.new_corpus.to_dict(),
                               "room": corpus.new_corpus_room.to_dict(), "drop": corpus.drop,
                               "room_gain": corpus.room_gain}
    return shown


def lesson_key(catalog: pd.DataFrame, features: str, classifier: str, folds: int, seed: int) -> str:
    """What identifies a lesson's results: the settings, and the clips by file name (the same corpus unpacked
    anywhere gives the same key; a clip more or less, another)."""
    import hashlib

    names = "\n".join(sorted(Path(path).name for path in catalog["path"]))
    return (f"{','.join(sorted(catalog['corpus'].unique()))}|{features}|{classifier}|{folds}|{seed}|"
            f"{hashlib.sha256(names.encode()).hexdigest()[:16]}")


def precomputed_lesson(catalog: pd.DataFrame, features: str, classifier: str, folds: int,
                       seed: int = config.DEFAULT_SEED) -> dict | None:
    """The shipped results (config.PRECOMPUTED_LESSONS) for exactly these clips and settings, so a class sees
    the lesson at once; None when there are none, or the file cannot be read."""
    import json

    try:
        stored = json.loads(config.PRECOMPUTED_LESSONS.read_text())
    except (OSError, ValueError):
        return None
    key = lesson_key(catalog, features, classifier, folds, seed)
    found = stored.get(key) if isinstance(stored, dict) else None
    return found if isinstance(found, dict) else None


def store_precomputed_lesson(catalog: pd.DataFrame, features: str, classifier: str, folds: int, seed: int,
                             results: dict) -> Path:
    """Add these results to config.PRECOMPUTED_LESSONS (under a lock, written atomically)."""
    import json

    from .files import hold_lock, write_atomically

    file = config.PRECOMPUTED_LESSONS
    config.cache_dir().mkdir(parents=True, exist_ok=True)
    with hold_lock(config.cache_dir() / "lessons.lock"):
        try:
            stored = json.loads(file.read_text())
        except (OSError, ValueError):
            stored = {}
        stored[lesson_key(catalog, features, classifier, folds, seed)] = results
        text = json.dumps(stored, indent=1, sort_keys=True, default=str)
        write_atomically(file, lambda path: Path(path).write_text(text))
    return file

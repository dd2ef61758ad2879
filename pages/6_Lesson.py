"""The leakage lesson: the same features and model under a random split and by speaker, side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_common import catalog_or_message, page_config
from ser_core import config, plots
from ser_core.errors import SerError

page_config("Lesson")
st.title("Why a random split lies")
st.write("Most speech-emotion demos report accuracy from a random split of the clips. Run the same features and "
         "the same classifier twice on the same data, once split at random and once by speaker, and compare.")


@st.cache_data(show_spinner=False, max_entries=8)
def run_lesson(chosen: pd.DataFrame, features: str, classifier: str, folds: int, _progress=None) -> dict:
    """The three evaluations as dicts; cached, so a class that opens the page again sees them at once."""
    from ser_core.lesson import leakage_lesson, new_corpus_lesson

    lesson = leakage_lesson(chosen, features=features, classifier=classifier, folds=folds, progress=_progress)
    shown = {"random": lesson.random.to_dict(), "speaker": lesson.speaker.to_dict(),
             "normalised": lesson.speaker_normalized.to_dict(),
             "inflation": lesson.inflation, "gain": lesson.normalization_gain}
    if chosen["corpus"].nunique() > 1:
        corpus = new_corpus_lesson(chosen, features=features, classifier=classifier, folds=folds,
                                   progress=_progress)
        shown["new_corpus"] = {"speaker": corpus.speaker.to_dict(), "corpus": corpus.new_corpus.to_dict(),
                               "room": corpus.new_corpus_room.to_dict(), "drop": corpus.drop,
                               "room_gain": corpus.room_gain}
    return shown


def show_side(result: dict, heading: str, key: str) -> None:
    st.subheader(heading)
    pooled = result["pooled"]
    a, b = st.columns(2)
    a.metric("Accuracy", f"{pooled['accuracy']:.1%}")
    b.metric("UAR (mean recall)", f"{pooled['uar']:.1%}")
    st.caption(f"Protocol: **{result['protocol']}** ({result['description']})"
               + (", per-speaker normalisation" if result["speaker_norm"] else "")
               + f" · {result['folds']} folds · {result['n_clips']} clips, {result['n_speakers']} speakers")
    st.plotly_chart(plots.confusion(pooled, normalize=True), key=f"lesson_cm_{key}")


def compare(first: tuple[str, dict, str], second: tuple[str, dict, str], what: str, gain: float, why: str) -> None:
    """Two (heading, result, key) side by side, the accuracy one adds over the other, and why."""
    for column, (heading, result, key) in zip(st.columns(2), (first, second)):
        with column:
            show_side(result, heading, key)
    st.metric(what, f"{gain:+.1%} accuracy", delta_color="off")
    st.markdown(why)


clips = catalog_or_message()
if clips is None:
    st.stop()

from ser_core.classifiers import CLASSIFIERS  # noqa: E402
from ser_core.corpora import select  # noqa: E402
from ser_core.evaluation import skipped_note  # noqa: E402
from ser_core.features import PIPELINES  # noqa: E402
from ser_core.lesson import (  # noqa: E402
    WHY_A_NEW_CORPUS_IS_HARDER, WHY_NORMALISATION_HELPS, WHY_RANDOM_INFLATES,
)

names = sorted(clips["corpus"].unique())
with st.form("lesson_settings"):
    left, middle, right = st.columns(3)
    corpora = left.multiselect("Corpora", names, default=["ravdess"] if "ravdess" in names else names[:1])
    features = middle.selectbox("Features", list(PIPELINES), index=list(PIPELINES).index(config.DEFAULT_FEATURES))
    classifier = middle.selectbox("Classifier", list(CLASSIFIERS),
                                  index=list(CLASSIFIERS).index(config.DEFAULT_CLASSIFIER))
    folds = right.number_input("Folds", 2, 10, config.DEFAULT_FOLDS)
    go = st.form_submit_button("Run the lesson", type="primary")
if go:
    bar = st.progress(0.0, text="Extracting features (cached after the first run)…")
    try:
        st.session_state["lesson"] = run_lesson(
            select(clips, corpus=corpora), features, classifier, int(folds),
            _progress=lambda stage, done, total: bar.progress(done / max(total, 1), text=f"{stage}: {done}/{total}"))
    except SerError as error:
        st.error(str(error))
    bar.empty()

lesson = st.session_state.get("lesson")
if lesson is None:
    st.caption("eGeMAPS features of RAVDESS take about half a minute the first time, then a few seconds.")
    st.stop()

if lesson["speaker"].get("skipped"):
    st.warning(skipped_note(lesson["speaker"]["skipped"], limit=3))
compare(("Random split", lesson["random"], "random"), ("By speaker", lesson["speaker"], "speaker"),
        "What the random split adds", lesson["inflation"], WHY_RANDOM_INFLATES)
st.header("Per-speaker normalisation")
compare(("By speaker", lesson["speaker"], "speaker_raw"),
        ("By speaker, each voice normalised by itself", lesson["normalised"], "normalised"),
        "What normalisation adds, honestly", lesson["gain"], WHY_NORMALISATION_HELPS)
st.header("A corpus it never heard")
new_corpus = lesson.get("new_corpus")
if new_corpus is None:
    st.info("Choose two corpora or more above and run the lesson again: this part holds one out whole.")
    st.stop()
for column, (heading, result) in zip(st.columns(3), (("New voices, known corpora", new_corpus["speaker"]),
                                                     ("A corpus never heard", new_corpus["corpus"]),
                                                     ("...after hearing its room", new_corpus["room"]))):
    column.metric(heading, f"UAR {result['pooled']['uar']:.1%}")
    column.caption(result["description"] + (f"; {result['scoring']}" if result.get("scoring") else ""))
st.metric("What a new corpus costs", f"{-new_corpus['drop']:+.1%} UAR; the room gives back "
          f"{new_corpus['room_gain']:+.1%}", delta_color="off")
st.markdown(WHY_A_NEW_CORPUS_IS_HARDER)

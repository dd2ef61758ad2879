"""The leakage lesson: the same features and model under a random split and by speaker, side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_common import catalog_or_message, page_config
from ser_core import config, glossary, plots
from ser_core.errors import SerError

page_config("Lesson")
st.title("Why a random split lies")
st.write("Most speech-emotion demos report accuracy from a random split of the clips. Run the same features and "
         "the same classifier twice on the same data, once split at random and once by speaker, and compare.")


@st.cache_data(show_spinner=False, max_entries=8)
def run_lesson(chosen: pd.DataFrame, features: str, classifier: str, folds: int, _progress=None) -> dict:
    """Every part of the lesson as plain data; cached, so a class that opens the page again sees it at once."""
    from ser_core.lesson import lesson_results

    return lesson_results(chosen, features=features, classifier=classifier, folds=folds, progress=_progress)


def show_side(result: dict, heading: str, key: str) -> None:
    st.subheader(heading)
    pooled = result["pooled"]
    a, b = st.columns(2)
    a.metric("Accuracy", f"{pooled['accuracy']:.1%}", help=glossary.TERMS["accuracy"])
    b.metric("UAR", f"{pooled['uar']:.1%}", help=glossary.TERMS["UAR"])
    st.caption(f"{glossary.chance(len(pooled['labels']))} · Protocol: **{result['protocol']}** "
               f"({result['description']})" + (", per-speaker normalisation" if result["speaker_norm"] else "")
               + f" · {result['folds']} folds · {result['n_clips']} clips, {result['n_speakers']} speakers")
    st.plotly_chart(plots.confusion(pooled, normalize=True), key=f"lesson_cm_{key}")


def why(text: str) -> str:
    """The explanation, in a sentence or two in presentation mode (read from the back of a room)."""
    return IN_SHORT[text] if st.session_state.get("presentation") else text


def points(gain: float) -> str:
    """A difference between two shares, in percentage points: "+13.0 points"."""
    return f"{100 * gain:+.1f} points"


clips = catalog_or_message()
if clips is None:
    st.stop()

from ser_core.classifiers import CLASSIFIERS  # noqa: E402
from ser_core.corpora import select  # noqa: E402
from ser_core.evaluation import skipped_note  # noqa: E402
from ser_core.features import PIPELINES  # noqa: E402
from ser_core.lesson import (  # noqa: E402
    IN_SHORT, WHY_A_NEW_CORPUS_IS_HARDER, WHY_NORMALISATION_HELPS, WHY_RANDOM_INFLATES, precomputed_lesson,
)

names = sorted(clips["corpus"].unique())
with st.form("lesson_settings"):
    left, middle, right = st.columns([2, 1, 1])  # the corpora's names whole
    shipped = [name for name in ("ravdess", "tess") if name in names]  # the lesson shipped precomputed
    corpora = left.multiselect("Corpora", names, default=shipped or names[:1])
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
    lesson = precomputed_lesson(select(clips, corpus=corpora), features, classifier, int(folds))
    if lesson is None:
        st.caption("The first run extracts every clip's features (then they are kept), and evaluates the model "
                   "several times over.")
        st.stop()
    st.caption("Computed in advance on these clips and settings: **Run the lesson** computes it again.")

if lesson["speaker"].get("skipped"):
    st.warning(skipped_note(lesson["speaker"]["skipped"], limit=3))
for column, (heading, key) in zip(st.columns(2), (("Random split", "random"), ("By speaker", "speaker"))):
    with column:
        show_side(lesson[key], heading, key)
st.metric("What the random split adds", points(lesson["inflation"]), delta_color="off",
          help="Accuracy under the random split minus accuracy by speaker.")
st.markdown(why(WHY_RANDOM_INFLATES))
st.header("Per-speaker normalisation")
left, right = st.columns(2)
with left:
    show_side(lesson["normalised"], "By speaker, each voice normalised by itself", "normalised")
right.metric("What normalisation adds, honestly", points(lesson["gain"]), delta_color="off",
             help="Accuracy by speaker with normalisation minus accuracy by speaker (above) without it.")
right.markdown(why(WHY_NORMALISATION_HELPS))
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
st.metric("What a new corpus costs", f"{points(-new_corpus['drop'])} of UAR; the room gives back "
          f"{points(new_corpus['room_gain'])}", delta_color="off")
st.markdown(why(WHY_A_NEW_CORPUS_IS_HARDER))

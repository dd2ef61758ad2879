"""Classify: upload a clip, see the emotion probabilities, for long clips how they change over time, and on request
an explanation (occlusion map, prosody against the corpus's emotions, feature importance)."""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from app_common import (audio_uploader, calibrated_predictor, catalog, classify_upload, clip_to_classify, heavy_job,
                        model_picker, page_config, predictor, room_panel, session_predictor, show_prediction,
                        upload_samples)
from ser_core import config, explain, plots
from ser_core.errors import SerError

KEEP_EXPLANATIONS = 4  # per session: explanations are a few hundred kB each


@st.cache_data(show_spinner=False, max_entries=16)
def class_averages(root: str, model_path: str, gender: str | None) -> tuple[pd.DataFrame, str, list[str]]:
    clips, where, _ = explain.training_clips(catalog(root), predictor(model_path))
    return explain.class_prosody(clips, gender=gender), where, explain.genders(clips)


@st.cache_data(show_spinner=False, max_entries=8)
def feature_importance(root: str, model_path: str) -> pd.DataFrame:
    return explain.importance_for(predictor(model_path), catalog(root))


def corpus_advice(error: SerError) -> None:
    root = config.data_root()
    st.info(f"{error}\n\nThis needs a corpus: unpack RAVDESS or TESS under `{root}` (or set `{config.DATA_DIR_ENV}`), "
            "or download one on the Explore page (Get the corpora).")


def explanation(model, model_path: str, upload, y, sr: int) -> None:
    """The "Explain this prediction" section: computed on a click, kept per clip, model and window; `y` is the clip
    as recorded (upload_samples)."""
    from ser_core.audio import peak_normalize

    st.subheader("Why this answer?")
    duration = len(y) / sr
    start = 0.0
    if duration > explain.EXPLAIN_WINDOW:
        start = st.slider(f"Explain the {explain.EXPLAIN_WINDOW:g} s starting at (s)", 0.0,
                          float(duration - explain.EXPLAIN_WINDOW), 0.0, 0.5, key="explain_start")
        st.caption(f"Explanations cover {explain.EXPLAIN_WINDOW:g} s at a time (a map of the whole clip would take "
                   "minutes): pick the window, then explain it.")
    key = (hashlib.sha1(upload.getvalue()).hexdigest(), model_path, start)
    store = st.session_state.setdefault("explanations", {})
    if st.button("Explain this prediction", key="explain", type="primary") and key not in store:
        with heavy_job("explaining it"), st.spinner("Silencing one patch of the spectrogram at a time and "
                                                    "classifying again…"):
            try:
                occ = explain.occlusion(model, peak_normalize(y), sr, start=start, name=upload.name)
                pros = explain.prosody(y[int(occ.start * sr):int(occ.end * sr)], sr)
            except SerError as error:
                st.error(str(error))
                return
        while len(store) >= KEEP_EXPLANATIONS:
            store.pop(next(iter(store)))
        store[key] = {"occlusion": occ, "prosody": pros}
    if key not in store:
        st.caption("Which parts of the sound the model relied on, how the voice's pitch, energy and rate compare "
                   "with each emotion in the corpus, and which features the model weighs most.")
        return
    occ, pros = store[key]["occlusion"], store[key]["prosody"]
    listened, prosody_tab, features_tab = st.tabs(["What the model listened to", "Prosody", "Features"])
    with listened:
        st.plotly_chart(plots.occlusion_overlay(occ), key="occlusion_chart")
        st.caption(explain.describe(occ) + " The map is coarse on purpose: each patch is classified again, so a "
                   "finer grid takes longer. A model can lean on sounds a person would not.")
    with prosody_tab:
        prosody_panel(pros, occ.label, model_path)
    with features_tab:
        features_panel(model, model_path)


def prosody_panel(pros, label: str, model_path: str) -> None:
    names = explain.SUMMARY_TITLES
    for column, key in zip(st.columns(len(explain.SUMMARY)), explain.SUMMARY):
        value = pros.summary[key]
        column.metric(names[key], "–" if pd.isna(value) else f"{value:.1f}")
    st.plotly_chart(plots.prosody_contours(pros), key="prosody_chart")
    root = str(config.data_root())
    voices = {"all voices": None, "female voices": "female", "male voices": "male"}
    choice = st.radio("Compare with", list(voices), horizontal=True, key="compare_voices",
                      help="Pitch depends on the voice: men speak about an octave lower than women.")
    try:
        with heavy_job("averaging the corpus"), st.spinner("Averaging each emotion's prosody over the corpus "
                                                           "(once; cached on disk)…"):
            averages, where, found = class_averages(root, model_path, voices[choice])
    except SerError as error:
        corpus_advice(error)
        return
    st.plotly_chart(plots.prosody_comparison(pros.summary, averages, label), key="prosody_comparison")
    st.dataframe(explain.compare_prosody(pros.summary, averages, label).style.format("{:.1f}"))
    st.caption(f"Averages of up to {explain.CLASS_CLIPS} clips per emotion and corpus of {where}"
               + (f", {choice}" if voices[choice] else f"; speakers' genders recorded: {', '.join(found) or 'none'}")
               + ". Energy is "
               "the level as recorded: a quiet microphone lowers it whatever the emotion. The rate counts "
               "syllable-like energy peaks per second of speech.")


def features_panel(model, model_path: str) -> None:
    try:
        n_features = len(explain.model_feature_names(model))
    except SerError as error:
        st.info(str(error))
        return
    done = st.session_state.setdefault("importance_done", set())
    if model_path not in done:
        st.caption(f"Shuffle each of the model's {n_features} features in turn over {explain.IMPORTANCE_CLIPS} corpus "
                   "clips and see how much the model's accuracy falls: the features it leans on most. The first time "
                   "takes a while (on a 2-core machine, 15 s for egemaps-svm's 88 features, three to four minutes for "
                   "the compare-ge2e models' 8677); then it is remembered.")
        if not st.button("Rank the features", key="importance"):
            return
    try:
        with heavy_job("ranking the features"), st.spinner("Shuffling each feature in turn and scoring the model "
                                                           "again…"):
            table = feature_importance(str(config.data_root()), model_path)
    except SerError as error:
        corpus_advice(error)
        return
    done.add(model_path)
    if not explain.any_feature_matters(table):  # so with the compare-ge2e models: 8677 features, none alone matters
        baseline = table.attrs["baseline"]
        st.info(f"On {table.attrs['clips']} clips of {table.attrs['source']} this model is right {baseline:.0%} of "
                f"the time, and shuffling any one of its {n_features} features costs it no more than that cost varies "
                "from one shuffle to the next, so no single feature matters on its own here: "
                + ("they stand in for each other (many measure the same thing). A model with fewer features, such "
                   "as egemaps-svm, gives a readable ranking." if baseline > 0 else
                   "it gets none of these clips right, so there is nothing to lose."))
        return
    st.plotly_chart(plots.importance_bars(table), key="importance_chart")
    st.caption(f"Accuracy on {table.attrs['clips']} clips of {table.attrs['source']}, {table.attrs['speakers']} "
               f"speakers: {table.attrs['baseline']:.0%} before shuffling; bars are the points lost, with the spread "
               f"over {table.attrs['n_repeats']} shuffles. "
               + ("These clips were seen in training, so this shows what the model relies on, not what works for new "
                  "voices. " if table.attrs.get("seen_in_training") else "")
               + "Features that measure the same thing (many do) stand in for each other, so each one alone loses "
               "little.")

page_config("Classify")
st.title("Classify a clip")

choice = model_picker()
needs_calibration = choice is not None and choice["speaker_norm"]
adapts = choice is not None and choice["voice_norm"]
recordings = []
if needs_calibration:
    recordings = audio_uploader("Recordings of the same speaker, to calibrate on", "calibration", multiple=True)
    st.caption("This model hears how a voice departs from its usual self: give it 20-30 s or more of this "
               "speaker's speech, in several moods if you can (the clip to classify may be one of them).")
upload, example = clip_to_classify("classify_clip")
if adapts:
    recordings = audio_uploader("Optional: other recordings of the same speaker, to adapt to their voice",
                                "calibration", multiple=True)
if upload is not None and needs_calibration and not recordings:
    st.info("Upload some recordings of this speaker above first: this model classifies only a voice it has been "
            "calibrated on.")
elif upload is not None and choice is not None:
    model_path = choice["path"]
    try:
        if recordings:
            model, calibration = calibrated_predictor(model_path, recordings)
            for message in calibration.skipped:
                st.warning(f"Calibration skipped {message}")
            st.caption(("Adapted to " if adapts else "Calibrated on ") + calibration.describe("this speaker's") + ".")
        else:
            model = session_predictor(model_path)
        sr = model.pipeline.sample_rate
        prediction, timeline = classify_upload(model, upload, hear=example is None)
        y = upload_samples(upload, sr)
    except SerError as error:
        st.error(str(error))
    else:
        if adapts and not recordings and example is None:
            heard = (f"relative to the {model.room_seconds:.0f} s of speech heard in this room so far"
                     if model.room_seconds >= 1 else "by the voices it was trained on (this room is not heard yet)")
            st.caption(f"Each clip is classified alone, {heard}; add other recordings of the speaker above to adapt "
                       "to their voice.")
        show_prediction(prediction, example=example)
        st.audio(upload)
        st.plotly_chart(plots.waveplot(y, sr))
        if timeline is not None and timeline.worth_showing:
            summary = timeline.summary()
            st.subheader("Over time")
            st.caption(f"{len(timeline.windows)} windows of {config.WINDOW:g} s every {config.HOP:g} s; "
                       f"{summary['voiced']} with speech. Overall: **{summary['label'] or 'silence'}**.")
            st.plotly_chart(plots.timeline(timeline.windows, model.labels))
        evaluation = (model.bundle.metadata.get("evaluation") or {}).get("description", "not evaluated")
        st.caption(f"Model {model.name}: {evaluation}. "
                   "Acted English speech; read its card on the Train page before trusting a label.")
        explanation(model, model_path, upload, y, sr)
if adapts:
    try:
        room_panel(session_predictor(choice["path"]))
    except SerError as error:
        st.error(str(error))

"""Explore: browse the corpora, listen, look at a clip from waveplot to pitch, hear what augmentation does."""
from __future__ import annotations

import streamlit as st

from app_common import catalog_or_message, clip_samples, corpus_downloads, heavy_job, page_config
from ser_core import config, plots
from ser_core.corpora import FILTERS, select
from ser_core.errors import SerError

page_config("Explore")
st.title("Explore the corpora")

clips = catalog_or_message()
if clips is None:
    corpus_downloads({})
    st.stop()

with st.sidebar:
    st.header("Filter")
    chosen = {}
    for column in FILTERS:
        values = sorted(clips[column].dropna().unique(), key=str)
        if len(values) > 1:
            chosen[column] = st.multiselect(column.capitalize(), values, key=f"filter_{column}")
selected = select(clips, **chosen)

st.write(f"**{len(selected)}** of {len(clips)} clips, {selected['speaker'].nunique()} speakers, "
         f"{selected['duration'].sum() / 60:.0f} minutes.")
overview, clip_tab, augment_tab, health_tab, get_tab = st.tabs(["Overview", "Clips", "Augmentation", "Health report",
                                                                "Get the corpora"])

with overview:
    if selected.empty:
        st.info("No clip matches these filters.")
    else:
        left, right = st.columns(2)
        left.plotly_chart(plots.class_counts(selected, "corpus"))
        right.plotly_chart(plots.class_counts(selected, "gender"))
        left.plotly_chart(plots.durations(selected))
        right.dataframe(selected.groupby("speaker").size().rename("clips"), height=300)
        st.dataframe(selected[["corpus", "speaker", "gender", "label", "intensity", "statement", "duration",
                               "sample_rate", "channels", "path"]], hide_index=True, height=300)


def show_clip(row, key: str) -> None:
    try:
        y = clip_samples(row.path)
    except SerError as error:  # a damaged clip in a corpus: say so here, and let the rest of the page be
        st.error(str(error))
        return
    st.audio(row.path)
    st.caption(f"{row.corpus} · {row.speaker} · {row.label} · {len(y) / config.SAMPLE_RATE:.1f} s")
    st.plotly_chart(plots.waveplot(y, config.SAMPLE_RATE), key=f"wave_{key}")
    view = st.radio("View", ["Spectrogram", "Mel spectrogram", "MFCC", "Pitch and energy"], horizontal=True,
                    key=f"view_{key}")
    if view == "Pitch and energy":
        with st.spinner("Tracking pitch…"):
            st.plotly_chart(plots.pitch_and_energy(y, config.SAMPLE_RATE), key=f"pitch_{key}")
    else:
        kind = {"Spectrogram": "linear", "Mel spectrogram": "mel", "MFCC": "mfcc"}[view]
        st.plotly_chart(plots.spectrogram(y, config.SAMPLE_RATE, kind), key=f"spec_{key}")


def clip_label(i) -> str:
    row = selected.loc[i]
    return f"{row.corpus} · {row.speaker} · {row.label} · {row.path.rsplit('/', 1)[-1]}"


with clip_tab:
    if selected.empty:
        st.info("No clip matches these filters.")
    else:
        compare = st.toggle("Compare two clips side by side", key="compare")
        columns = st.columns(2) if compare else [st.container()]
        for n, column in enumerate(columns):
            with column:
                index = st.selectbox("Clip", selected.index, format_func=clip_label, key=f"clip_{n}",
                                     index=min(n, len(selected) - 1))
                show_clip(selected.loc[index], str(n))

with augment_tab:
    from ser_core.augment import DEFAULT_RANGES, augment

    if selected.empty:
        st.info("No clip matches these filters.")
    else:
        index = st.selectbox("Clip", selected.index, format_func=clip_label, key="augment_clip")
        y = clip_samples(selected.loc[index].path)
        kind = st.radio("Augmentation", ["noise", "stretch", "shift", "pitch"], horizontal=True, key="augment_kind")
        name, low, high = DEFAULT_RANGES[kind]  # the range training draws from
        value = st.slider(f"{kind}: {name}", low, high, high, key=f"augment_{kind}")
        augmented = augment(y, config.SAMPLE_RATE, kind, seed=0, **{name: value})
        before, after = st.columns(2)
        with before:
            st.audio(y, sample_rate=config.SAMPLE_RATE)
            st.plotly_chart(plots.waveplot(y, config.SAMPLE_RATE, "Original"), key="augment_before")
        with after:
            st.audio(augmented, sample_rate=config.SAMPLE_RATE)
            st.plotly_chart(plots.waveplot(augmented, config.SAMPLE_RATE, f"{kind}: {value:g}"), key="augment_after")
        st.caption("In training, augmented copies are only ever added to the training folds: a copy of a test "
                   "clip in training would let the model recognise the clip instead of the emotion.")

with health_tab:
    from ser_core.corpora import check_health

    if st.button("Run the health check", key="health"):
        with heavy_job("checking every file"), st.spinner("Checking every file…"):
            report = check_health(config.data_root())
        st.text(report.summary())

with get_tab:
    corpus_downloads(clips["corpus"].value_counts().to_dict())

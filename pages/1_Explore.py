"""Explore: browse the corpora, listen, look at a clip from waveplot to pitch, hear what augmentation does."""
from __future__ import annotations

import streamlit as st

from app_common import catalog_or_message, clip_samples, corpus_downloads, heavy_job, page_config
from ser_core import config, plots
from ser_core.corpora import FILTERS, clip_counts, select
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

if "downloaded" in st.session_state:  # a corpus downloaded from the page without data, now in the catalog
    st.success(st.session_state.pop("downloaded"))
st.write(f"**{len(selected)}** of {len(clips)} clips, {selected['speaker'].nunique()} speakers, "
         f"{selected['duration'].sum() / 60:.0f} minutes.")
TABLE_ROWS = 200  # rows of the clip table sent to the browser; the filters narrow it


def overview() -> None:
    if selected.empty:
        st.info("No clip matches these filters.")
        return
    left, right = st.columns([3, 2])
    left.markdown("**Clips per emotion and corpus**")
    left.dataframe(clip_counts(selected, "corpus"))
    right.markdown("**Clips per speaker**")
    right.dataframe(selected.groupby("speaker").size().rename("clips"), height=250)
    if st.toggle("Charts: emotions by corpus and by gender, clip durations", key="overview_charts"):
        left, middle, right = st.columns(3)
        left.plotly_chart(plots.class_counts(selected, "corpus"))
        middle.plotly_chart(plots.class_counts(selected, "gender"))
        right.plotly_chart(plots.durations(selected))
    st.dataframe(selected[["corpus", "speaker", "gender", "label", "intensity", "statement", "duration",
                           "sample_rate", "channels", "path"]].head(TABLE_ROWS), hide_index=True, height=300)
    if len(selected) > TABLE_ROWS:
        st.caption(f"The first {TABLE_ROWS} of {len(selected)} clips: filter in the sidebar to see others.")


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


def clips_tab() -> None:
    if selected.empty:
        st.info("No clip matches these filters.")
        return
    compare = st.toggle("Compare two clips side by side", key="compare")
    columns = st.columns(2) if compare else [st.container()]
    for n, column in enumerate(columns):
        with column:
            index = st.selectbox("Clip", selected.index, format_func=clip_label, key=f"clip_{n}",
                                 index=min(n, len(selected) - 1))
            show_clip(selected.loc[index], str(n))


def augmentation() -> None:
    from ser_core.augment import DEFAULT_RANGES, DESCRIPTIONS, MOST_AUDIBLE, augment

    if selected.empty:
        st.info("No clip matches these filters.")
        return
    index = st.selectbox("Clip", selected.index, format_func=clip_label, key="augment_clip")
    y = clip_samples(selected.loc[index].path)
    kind = st.radio("Augmentation", ["noise", "stretch", "shift", "pitch"], horizontal=True, key="augment_kind")
    name, low, high = DEFAULT_RANGES[kind]  # the range training draws from
    value = st.slider(DESCRIPTIONS[kind], low, high, MOST_AUDIBLE[kind], key=f"augment_{kind}",
                      help="The range training draws from.")
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


def health() -> None:
    from ser_core.corpora import check_health

    if st.button("Run the health check", key="health"):
        with heavy_job("checking every file"), st.spinner("Checking every file…"):
            report = check_health(config.data_root())
        st.text(report.summary())


# Only the open tab runs and is drawn: all five at once kept the browser busy for 4-5 s (bench/bench_pages.py).
TABS = {"Overview": overview, "Clips": clips_tab, "Augmentation": augmentation, "Health report": health,
        "Get the corpora": lambda: corpus_downloads(clips["corpus"].value_counts().to_dict())}
for tab, draw in zip(st.tabs(list(TABS), key="explore_tab", on_change="rerun"), TABS.values()):
    if tab.open:
        with tab:
            draw()

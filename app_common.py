"""What every page of the app shares: its setup, cached catalog and models, and one way to show a bad input.

Heavy objects are shared between browser sessions through Streamlit's caches; per-user state (uploads,
training runs) lives in st.session_state.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from ser_core import config
from ser_core.errors import SerError


def page_config(title: str | None = None) -> None:
    """Each page's tab title and layout, and the app's own sidebar even on the first page a fresh server serves."""
    from streamlit.runtime.pages_manager import PagesManager

    # Streamlit 1.67 runs the first page a fresh server serves (a bookmarked /Classify, say) as an old-style
    # pages/ app, without streamlit_app.py, so its sidebar says "streamlit app" in place of Home. Telling it that
    # streamlit_app.py names the pages, as its st.navigation call would, and rerunning shows the app's own sidebar.
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.set_page_config(page_title=f"{title} · SER Studio" if title else "SER Studio", page_icon="🎙️",
                       layout="wide")


@st.cache_data(ttl=300, show_spinner="Reading the corpora…")
def catalog(root: str) -> pd.DataFrame:
    from ser_core.corpora import build_catalog

    return build_catalog(root)


def catalog_or_message() -> pd.DataFrame | None:
    """The catalog of the data root, or None after telling the user where to put data."""
    root = config.data_root()
    try:
        found = catalog(str(root))
    except SerError as error:
        st.info(f"{error}\n\nUnpack RAVDESS or TESS anywhere under `{root}` (or set `{config.DATA_DIR_ENV}`), or "
                "download a corpus on the Explore page (Get the corpora).")
        return None
    return found


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def predictor(model: str | None):
    from ser_core.inference import Predictor

    return Predictor.load(model)


def calibrated_predictor(model: str, recordings: list):
    """This browser session's copy of a speaker-normalised model, calibrated on uploads of the speaker, and the
    Calibration (windows used, recordings skipped); the shared, cached model is never calibrated, so one user's
    voice never reaches another's session. Raises SerError."""
    from copy import copy
    from hashlib import sha1

    key = (model, tuple(sha1(recording.getvalue()).hexdigest() for recording in recordings))
    store = st.session_state.setdefault("calibrated_predictor", {})
    if key not in store:
        calibrated = copy(predictor(model))
        with st.spinner("Calibrating on the speaker's recordings…"):
            calibration = calibrated.calibrate_files(recordings)
        store.clear()
        store[key] = calibrated, calibration
    return store[key]


@st.cache_data(max_entries=32, show_spinner=False)
def clip_samples(path: str):
    from ser_core.audio import load_audio

    return load_audio(path, sr=config.SAMPLE_RATE)


def model_picker(label: str = "Model", key: str | None = None) -> dict | None:
    """A select box of shipped and user models, the default first; returns the chosen one's list_models entry
    (its "path", whether it needs calibration, ...) without loading it."""
    from ser_core.bundles import list_models

    models = list_models()
    if not models:
        st.error("No model is installed: train one on the Train page, or reinstall SER Studio.")
        return None
    choice = st.selectbox(label, models, key=key,
                          format_func=lambda m: f"{m['name']} ({m['source']}{', default' if m['default'] else ''})")
    st.caption(choice["summary"])
    return choice


def audio_uploader(label: str = "A recording of one person speaking", key: str | None = None, *,
                   multiple: bool = False):
    """The one upload box; it states the formats SER Studio reads and the size limit under the button itself."""
    return st.file_uploader(label, type=[ext.lstrip(".") for ext in config.AUDIO_EXTENSIONS], key=key,
                            accept_multiple_files=multiple)


def show_prediction(prediction, container=st) -> None:
    """The top emotion and every emotion's probability."""
    from ser_core import plots

    top = prediction.probabilities[prediction.label]
    container.metric("Emotion", prediction.label, f"{top:.0%} probability", delta_color="off", delta_arrow="off")
    container.plotly_chart(plots.probabilities(prediction.probabilities))


def corpus_downloads(found: dict[str, int]) -> None:
    """The "Get the corpora" section: each corpus with its licence, then a button that downloads it with a bar.

    `found` is clips per corpus already in the catalog. The download runs in this script run, so its progress
    shows as it goes; leaving the page interrupts it, and the next click resumes it.
    """
    from ser_core import downloads

    root = config.data_root()
    st.subheader("Get the corpora")
    if "downloaded" in st.session_state:
        st.success(st.session_state.pop("downloaded"))
    st.caption(f"From their official sources into `{root}`, verified, then added to the catalog. Read each licence "
               "first: RAVDESS and TESS are for non-commercial use only; CREMA-D's ODbL asks for attribution and "
               "share-alike. An interrupted download resumes where it stopped.")
    for src in downloads.SOURCES.values():
        with st.container(border=True):
            st.markdown(f"**{src.title}**: {src.files} clips, {src.size_text}, from [{src.page}]({src.page})")
            st.markdown(f"Licence: **{src.licence}**. {src.licence_text}")
            st.caption(f"Cite: {src.citation}" + (f" · Verified by {src.verification}." if src.verification else ""))
            if found.get(src.name):
                st.write(f"Installed: {found[src.name]} clips.")
            elif src.kind == "manual":
                st.info(src.advice(root))
            elif st.button(f"Accept the licence and download {src.title}", key=f"download_{src.name}"):
                _download(src, root)


def _download(src, root) -> None:
    """Download one corpus under a progress bar; on success the caches are cleared so every page sees it."""
    from ser_core import downloads

    bar = st.progress(0.0, text="Starting…")
    shown = {"stage": "Starting", "fraction": 0.0}

    def on_stage(text: str) -> None:
        shown["stage"] = text
        bar.progress(shown["fraction"], text=f"{text}…")

    def on_progress(done: int, total: int, rate: float, seconds_left: float | None) -> None:
        shown["fraction"] = min(done / total, 1.0) if total else 0.0
        bar.progress(shown["fraction"],
                     text=f"{shown['stage']}: {downloads.format_progress(done, total, rate, seconds_left)}")

    try:
        result = downloads.download(src.name, root, on_progress=on_progress, on_stage=on_stage)
    except SerError as error:
        bar.empty()
        st.error(str(error))
        return
    st.cache_data.clear()  # the catalog, and the home page's list of corpora
    st.session_state["downloaded"] = (f"{src.title}: {result.clips} clips from {result.speakers} speakers, "
                                      f"in `{result.path}`.")
    st.rerun()

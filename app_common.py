"""What every page of the app shares: cached catalog and models, and one way to show a bad input.

Heavy objects are shared between browser sessions through Streamlit's caches; per-user state (uploads,
training runs) lives in st.session_state.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from ser_core import config
from ser_core.errors import SerError


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
        st.info(f"{error}\n\nUnpack RAVDESS or TESS anywhere under `{root}` (or set `{config.DATA_DIR_ENV}`).")
        return None
    return found


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def predictor(model: str | None):
    from ser_core.inference import Predictor

    return Predictor.load(model)


@st.cache_data(max_entries=32, show_spinner=False)
def clip_samples(path: str):
    from ser_core.audio import load_audio

    return load_audio(path, sr=config.SAMPLE_RATE)


def model_picker(label: str = "Model", key: str | None = None) -> str | None:
    """A select box of shipped and user models, the default first; returns a bundle path."""
    from ser_core.bundles import list_models

    models = sorted(list_models(), key=lambda m: (not m["default"], m["source"] != "shipped", m["name"]))
    if not models:
        st.error("No model is installed: train one on the Train page, or reinstall SER Studio.")
        return None
    choice = st.selectbox(label, models, key=key,
                          format_func=lambda m: f"{m['name']} ({m['source']}{', default' if m['default'] else ''})")
    st.caption(choice["summary"])
    return choice["path"]


def audio_uploader(key: str | None = None):
    """The one upload box: the formats SER Studio reads and the size limit, stated."""
    return st.file_uploader(f"WAV, FLAC, MP3, OGG, M4A or WebM, up to {config.MAX_UPLOAD_MB} MB",
                            type=[ext.lstrip(".") for ext in config.AUDIO_EXTENSIONS], key=key)


def show_prediction(prediction, container=st) -> None:
    """The top emotion and every emotion's probability."""
    from ser_core import plots

    top = prediction.probabilities[prediction.label]
    container.metric("Emotion", prediction.label, f"{top:.0%} probability", delta_color="off", delta_arrow="off")
    container.plotly_chart(plots.probabilities(prediction.probabilities))

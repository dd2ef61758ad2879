"""SER Studio: the home page (what the app does, what data and models it found, a quick classify box) and the
navigation between the pages in pages/."""
from __future__ import annotations

import streamlit as st

from app_common import audio_uploader, catch_all, heavy_job, page_config, predictor, show_prediction, usable_models
from ser_core import config
from ser_core.errors import SerError


@st.cache_data(ttl=60, show_spinner=False)
def found_corpora(root: str) -> dict[str, int]:
    from ser_core.corpora import list_corpora

    return list_corpora(root)


def home() -> None:
    """What the app does, what data and models it found, and a quick classify box."""
    page_config()
    st.title("SER Studio")
    st.write(
        "Speech Emotion Recognition, taught honestly: explore emotional speech corpora, train models and "
        "see how well they really do on **speakers they have never heard**, then classify your own clips."
    )

    root = config.data_root()
    left, right = st.columns(2)
    with left:
        st.subheader("Corpora")
        try:
            corpora = found_corpora(str(root))
        except SerError as error:
            corpora = {}
            st.info(str(error))
        for name, count in corpora.items():
            st.write(f"**{name}**: {count} clips")
        st.caption(f"Data root: `{root}` (set `{config.DATA_DIR_ENV}` to use another folder). Download RAVDESS, "
                   "TESS or CREMA-D on the Explore page (Get the corpora), unpack a corpus anywhere under it, or add a "
                   "folder with one sub-folder per emotion for your own clips.")
    with right:
        st.subheader("Models")
        for info in usable_models():
            default = ", default" if info["default"] else ""
            st.write(f"**{info['name']}** ({info['source']}{default}): {info['summary']}")

    st.caption("In the sidebar: **Explore** the corpora, **Train** and evaluate models, **Classify** a clip and see "
               "why, speak to the **Live** microphone, **Record** your class's own corpus, and the **Lesson**: why a "
               "random split lies.")
    st.subheader("Classify a clip")
    upload = audio_uploader()
    if upload is not None:
        st.audio(upload)
        try:
            with heavy_job("classifying your clip"):
                prediction = predictor(None).predict(upload, name=upload.name)
        except SerError as error:
            st.error(str(error))
        else:
            show_prediction(prediction)


# Listed here (not found by Streamlit in pages/) so that the home page is called Home in the sidebar. Every page runs
# inside the catch-all: an unexpected error is a short message on the page, its traceback in the server log.
with catch_all():
    st.navigation([st.Page(home, title="Home", default=True),
                   *(st.Page(f"pages/{name}.py") for name in
                     ("1_Explore", "2_Train", "3_Classify", "4_Live", "5_Record", "6_Lesson"))]).run()

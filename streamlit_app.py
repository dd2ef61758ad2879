"""SER Studio: the home page (classify a clip first, then what data and models it found) and the navigation
between the pages in pages/."""
from __future__ import annotations

import streamlit as st

from app_common import (catch_all, clip_to_classify, heavy_job, page_config, predictor, presentation_toggle,
                        show_prediction, usable_models)
from ser_core import config
from ser_core.errors import SerError


@st.cache_data(ttl=60, show_spinner=False)
def found_corpora(root: str) -> dict[str, int]:
    from ser_core.corpora import list_corpora

    return list_corpora(root)


def home() -> None:
    """Classify a clip first (an example in one click, or an upload), then the corpora and models found."""
    page_config()
    st.title("SER Studio")
    st.write("Which emotion does a voice carry? Try a clip, then explore the corpora, train models and see how well "
             "they really do on **voices they have never heard**.")
    source, example = clip_to_classify("home_clip")
    if source is not None:
        try:
            with heavy_job("classifying your clip"):
                prediction = predictor(None).predict(source, name=source.name)
        except SerError as error:
            st.error(str(error))
        else:
            show_prediction(prediction, example=example)
            st.audio(source)  # not for a file that is not audio: an empty player says nothing

    root = config.data_root()
    left, right = st.columns(2)
    with left:
        st.subheader("Corpora")
        try:
            corpora = found_corpora(str(root))
        except SerError:
            corpora = {}
        for name, count in corpora.items():
            st.write(f"**{name}**: {count} clips")
        if not corpora:
            st.info(f"No corpus found in `{root}`. Download RAVDESS or TESS on the **Explore** page, or start the "
                    f"app with `streamlit run streamlit_app.py -- --data-dir FOLDER` (or set `{config.DATA_DIR_ENV}`).")
        else:
            st.caption(f"From `{root}`.")
    with right:
        st.subheader("Models")
        for info in usable_models():
            default = " (default)" if info["default"] else ""
            st.markdown(f"**{info['name']}**{default}: {info['plain']}")
    st.caption("In the sidebar: **Explore** the corpora, **Train** and evaluate models, **Classify** a clip and see "
               "why, speak to the **Live** microphone, **Record** your class's own corpus, and the **Lesson**: why a "
               "random split lies.")


# Listed here (not found by Streamlit in pages/) so that the home page is called Home in the sidebar. Every page runs
# inside the catch-all: an unexpected error is a short message on the page, its traceback in the server log.
with catch_all():
    config.set_data_dir_from_args()
    navigation = st.navigation([st.Page(home, title="Home", default=True),
                   *(st.Page(f"pages/{name}.py") for name in
                     ("1_Explore", "2_Train", "3_Classify", "4_Live", "5_Record", "6_Lesson"))])
    presentation_toggle()
    navigation.run()

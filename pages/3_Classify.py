"""Classify: upload a clip, see the emotion probabilities, and for long clips how they change over time."""
from __future__ import annotations

import streamlit as st

from app_common import audio_uploader, model_picker, predictor, show_prediction
from ser_core import config, plots
from ser_core.errors import SerError

st.set_page_config(page_title="Classify · SER Studio", page_icon="🎙️", layout="wide")
st.title("Classify a clip")

model_path = model_picker()
upload = audio_uploader()
if upload is not None and model_path is not None:
    from ser_core.audio import load_audio, windows_of

    try:
        model = predictor(model_path)
        sr = model.pipeline.sample_rate
        y = load_audio(upload, sr=sr, name=upload.name)
        prediction = model.predict_samples(y)
        long_clip = len(y) / sr > config.WINDOW
        timeline = model.timeline(windows_of(y, sr, config.WINDOW, config.HOP)) if long_clip else None
    except SerError as error:
        st.error(str(error))
    else:
        st.audio(upload)
        left, right = st.columns(2)
        show_prediction(prediction, left)
        right.plotly_chart(plots.waveplot(y, sr))
        if timeline is not None:
            summary = timeline.summary()
            st.subheader("Over time")
            st.caption(f"{len(timeline.windows)} windows of {config.WINDOW:g} s every {config.HOP:g} s; "
                       f"{summary['voiced']} with speech. Overall: **{summary['label'] or 'silence'}**.")
            st.plotly_chart(plots.timeline(timeline.windows, model.labels))
        st.caption(f"Model {model.name}: {(model.bundle.metadata.get('evaluation') or {}).get('description', 'not evaluated')}. "
                   "Acted English speech; read its card on the Train page before trusting a label.")

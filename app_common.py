"""What every page of the app shares: its setup, cached catalog and models, and one way to show a bad input.

Heavy objects are shared between browser sessions through Streamlit's caches; per-user state (uploads,
training runs) lives in st.session_state.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.logger import get_logger

from ser_core import config, jobs
from ser_core.errors import SerError

_log = get_logger("ser_studio")
# For Live and Record: what to do when the browser gives no microphone.
MICROPHONE_ADVICE = (
    "No microphone? *NotAllowedError*: the browser refused it: allow the microphone for this site (the icon left of "
    "the address bar) and reload. *NotFoundError*, or \"An error has occurred\": this computer has no microphone "
    "the browser can use: plug one in and reload."
)
UNEXPECTED = ("Something went wrong on this page (not with your input). Reload the page to try again; if it "
              "happens again, tell whoever runs the server: the details are in its log.")


# The predicted emotion and its probability, readable from the back of a room.
PROJECTOR_CSS = """
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
.st-key-prediction [data-testid="stMetricValue"] { font-size: 3.5rem; font-weight: 700; }
.st-key-prediction [data-testid="stMetricDelta"] { font-size: 1.6rem; }
.st-key-prediction [data-testid="stMetricDelta"] div { font-size: 1.6rem; }
"""


# Presentation mode: everything larger, for a projector at the front of a room (Streamlit sizes in rem).
PRESENTATION_CSS = """
html { font-size: 22px; }
[data-testid="stSidebar"] { font-size: 0.9rem; }
"""


def presentation_toggle() -> None:
    """The sidebar's "Presentation mode" switch (also ?present=1 in the address), kept across pages: the app's
    text and controls become large enough to read from the back of a classroom."""
    if "presentation" not in st.session_state:
        st.session_state["presentation"] = st.query_params.get("present") == "1"
    if st.sidebar.toggle("Presentation mode", key="presentation",
                         help="Larger text for a projector. Add ?present=1 to the address to start in it."):
        st.html(f"<style>{PRESENTATION_CSS}</style>")


def page_config(title: str | None = None) -> None:
    """Each page's tab title and layout, and the app's own sidebar even on the first page a fresh server serves."""
    from ser_core.compat import claim_pages_from_directory

    # Streamlit 1.67 runs the first page a fresh server serves (a bookmarked /Classify, say) as an old-style
    # pages/ app, without streamlit_app.py, so its sidebar says "streamlit app" in place of Home. Telling it that
    # streamlit_app.py names the pages, as its st.navigation call would, and rerunning shows the app's own sidebar.
    if claim_pages_from_directory():
        st.rerun()
    st.set_page_config(page_title=f"{title} · SER Studio" if title else "SER Studio", page_icon="🎙️",
                       layout="wide")
    st.html(f"<style>{PROJECTOR_CSS}</style>")


@st.cache_data(ttl=300, show_spinner="Reading the corpora…")
def catalog(root: str) -> pd.DataFrame:
    from ser_core.corpora import build_catalog

    return build_catalog(root)


@contextmanager
def catch_all() -> Iterator[None]:
    """Around every page (streamlit_app.py runs each inside it): a SerError shows its one-line message, anything
    unexpected a short apology while its traceback goes to the server log, so a user never sees a traceback.
    Streamlit's rerun and stop signals are BaseExceptions and pass through. Then the memory the run freed goes
    back to the system."""
    try:
        yield
    except SerError as error:
        st.error(str(error))
    except Exception:
        _log.exception("Unexpected error on a page")
        st.error(UNEXPECTED)
    finally:
        jobs.release_memory()  # after a heavy job: what the run freed (a decoded clip, its charts), to the system


@contextmanager
def heavy_job(what: str) -> Iterator[None]:
    """Run the body in a heavy-job slot (ser_core.jobs), saying meanwhile how many others are ahead of it."""
    box = st.empty()
    with jobs.HEAVY.slot(lambda ahead: box.info(waiting_message(ahead, what))):
        box.empty()
        yield


def waiting_message(ahead: int, what: str) -> str:
    return (f"Waiting for {ahead} other job{'' if ahead == 1 else 's'} to finish before {what} (this server runs "
            f"{jobs.HEAVY.limit} at a time)…")


def upload_samples(upload, sr: int) -> np.ndarray:
    """An upload's samples at `sr` as recorded (not normalised), for its waveform and explanation. A long clip is
    decoded window by window, never whole at the file's rate (its last half second may be left out). Raises
    SerError."""
    from ser_core.audio import iter_windows, load_audio
    from ser_core.inference import is_long_clip

    if not is_long_clip(upload, name=upload.name):
        return load_audio(upload, sr=sr, normalize=False, name=upload.name)
    return np.concatenate([y for _, y in iter_windows(upload, config.WINDOW, config.WINDOW, sr, name=upload.name)])


def classify_upload(model, upload, hear: bool = True):
    """An upload's Prediction and, for a clip longer than one window, its Timeline (else None), in a heavy-job
    slot; kept for the upload and model in this session, so a rerun (a click, a slider) does not classify again.
    A clip longer than LONG_CLIP is classified window by window (Predictor.predict_windows), in bounded memory.
    With `hear`, a voice_norm model's room hears it (not an example clip: a studio, not this room).
    Raises SerError."""
    from copy import copy
    from hashlib import sha1

    from ser_core.audio import peak_normalize, windows_of
    from ser_core.inference import is_long_clip

    key = (sha1(upload.getvalue()).hexdigest(), model.name, id(model))
    kept = st.session_state.get("classified")
    if kept is not None and kept[0] == key:
        return kept[1]
    st.session_state.pop("classified", None)  # the previous upload's result goes before this one is computed
    # A voice_norm model hears this clip on a copy: the next upload may be another voice. The room keeps it.
    listener = copy(model) if model.voice_norm and hear else model
    with heavy_job("classifying your clip"):
        if is_long_clip(upload, name=upload.name):
            timeline = listener.predict_windows(upload, name=upload.name, hear=hear)
            result = timeline.overall(upload.name), timeline
        else:
            sr = model.pipeline.sample_rate
            y = peak_normalize(upload_samples(upload, sr))
            long_clip = len(y) / sr > config.WINDOW
            result = (listener.predict_samples(y, hear=len(y) / sr if hear else 0.0),
                      model.timeline(windows_of(y, sr, config.WINDOW, config.HOP)) if long_clip else None)
        if model.voice_norm and hear:
            listener.share_with_room()
            model.room = listener.room
    st.session_state["classified"] = key, result
    return result


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

    loaded = Predictor.load(model)
    jobs.one_maths_thread()  # a server for a class: many sessions at once, one maths thread each
    return loaded


def session_predictor(model: str):
    """This browser session's copy of a model, in this room: what a voice_norm model hears of a voice stays in
    the session (the shared, cached model never hears anyone); the room is everyone's. Raises SerError."""
    store = st.session_state.setdefault("session_predictor", {})
    if model not in store:
        store.clear()
        store[model] = predictor(model).for_session()
    return store[model]


def voice_state(model, whose: str = "your") -> None:
    """For a voice_norm model: what it has adapted to, and a button that starts over for the next speaker."""
    left, right = st.columns([2, 1])
    left.caption(f"This model adapts to each voice as it hears it ({model.heard_description(whose)}).")
    if right.button("New voice", key="new_voice", help="Forget the voice heard so far, for the next speaker"):
        model.reset_voice()
        st.rerun()


def room_panel(model) -> None:
    """For a voice_norm model: what this room has heard, a teacher's "calibrate this room" (recordings of a few
    students, unlabelled) and "forget this room" (another classroom, another microphone)."""
    seconds = model.room_seconds
    heard = f"{seconds / 60:.1f} min of speech heard" if seconds >= 1 else "nothing heard yet"
    with st.expander(f"This room: {heard}"):
        st.caption("The model learns what this room and microphone sound like from every voice it hears here "
                   "(averages of features, never audio). In a new room, give it a minute of a few students first.")
        recordings = audio_uploader("Recordings made in this room (a few speakers, any mood)", "room_recordings",
                                    multiple=True)
        left, right = st.columns(2)
        if left.button("Add to this room", key="room_add", disabled=not recordings,
                       help="Upload recordings above first" if not recordings else None):
            try:
                with heavy_job("learning this room"), st.spinner("Listening to the room's recordings…"):
                    added = model.hear_room_files(recordings)
            except SerError as error:
                st.error(str(error))
            else:
                for message in added.skipped:
                    st.warning(f"Skipped {message}")
                st.success(f"Added {added.describe('this room’s')}.")
        if right.button("Forget this room", key="room_forget",
                        help="Start over in another room or with another microphone"):
            model.forget_room()
            st.success("Forgotten: the model starts again from its training voices.")


def calibrated_predictor(model: str, recordings: list):
    """This browser session's copy of a speaker-normalised model, calibrated on uploads of the speaker, and the
    Calibration (windows used, recordings skipped); the shared, cached model is never calibrated, so one user's
    voice never reaches another's session. Raises SerError."""
    from hashlib import sha1

    key = (model, tuple(sha1(recording.getvalue()).hexdigest() for recording in recordings))
    store = st.session_state.setdefault("calibrated_predictor", {})
    if key not in store:
        calibrated = predictor(model).for_session()
        with heavy_job("calibrating"), st.spinner("Calibrating on the speaker's recordings…"):
            calibration = calibrated.calibrate_files(recordings)
        store.clear()
        store[key] = calibrated, calibration
    return store[key]


@st.cache_data(max_entries=32, show_spinner=False)
def clip_samples(path: str):
    from ser_core.audio import load_audio

    return load_audio(path, sr=config.SAMPLE_RATE)


def usable_models() -> list[dict]:
    """list_models' entries that can be used; a one-line warning for each broken bundle, saying why."""
    from ser_core.bundles import list_models

    models = list_models()
    for info in models:
        if info["broken"]:
            st.warning(f"{info['name']} ({info['source']}) cannot be used: {info['broken']}")
    return [info for info in models if not info["broken"]]


def model_picker(label: str = "Model", key: str | None = None) -> dict | None:
    """A select box of shipped and user models, the default first; returns the chosen one's list_models entry
    (its "path", whether it needs calibration, ...) without loading it."""
    models = usable_models()
    if not models:
        st.error("No model is installed: train one on the Train page, or reinstall SER Studio.")
        return None
    choice = st.selectbox(label, models, key=key,
                          format_func=lambda m: f"{m['name']} ({m['source']}{', default' if m['default'] else ''})")
    st.caption(choice["plain"])
    return choice


def audio_uploader(label: str = "A recording of one person speaking", key: str | None = None, *,
                   multiple: bool = False):
    """The one upload box; it states the formats SER Studio reads and the size limit under the button itself."""
    return st.file_uploader(label, type=[ext.lstrip(".") for ext in config.AUDIO_EXTENSIONS], key=key,
                            accept_multiple_files=multiple)


def clip_to_classify(key: str, label: str = "Or your own recording of one person speaking"):
    """The example buttons (two voices no model here has heard, one button per emotion), then the upload box.
    Returns what was chosen last, as an upload (with a name), and its Example, or None for an upload."""
    import io

    from ser_core.corpora import example_clips

    state = st.session_state.setdefault(key, {"example": None, "upload": None})
    clips = example_clips()
    if clips:
        st.markdown("**Try an example**: actors that no model here has heard, one click each")
        per_row = 3 if st.session_state.get("presentation") else 6  # larger buttons need more room each
        for voice in dict.fromkeys(clip.voice for clip in clips):
            mine = [clip for clip in clips if clip.voice == voice]
            st.caption(voice.capitalize())
            for row in range(0, len(mine), per_row):
                for column, clip in zip(st.columns(per_row, gap="small"), mine[row:row + per_row]):
                    if column.button(clip.label, key=f"{key}_{clip.path.stem}", use_container_width=True):
                        state["example"] = clip
    upload = audio_uploader(label, key=f"{key}_upload")
    seen = (upload.name, upload.size) if upload is not None else None
    if seen != state["upload"]:  # a new upload (or the box emptied) replaces the example
        state.update(upload=seen, example=None)
    example = state["example"]
    if example is None:
        return upload, None
    chosen = io.BytesIO(example.path.read_bytes())
    chosen.name = example.path.name
    return chosen, example


def show_prediction(prediction, container=st, example=None) -> None:
    """The top emotion and its probability, large enough for a projector, and every emotion's probability; for
    an example clip, what the actor was asked to act."""
    from ser_core import plots

    top = prediction.probabilities[prediction.label]
    with container.container(key="prediction"):
        left, right = st.columns([2, 3])
        left.metric("Emotion", prediction.label, f"{top:.0%} probability", delta_color="off", delta_arrow="off")
        if example is not None:
            verdict = "right" if example.label == prediction.label else "wrong this time"
            left.markdown(f"The actor was acting **{example.label}**: the model is {verdict}.")
        right.plotly_chart(plots.probabilities(prediction.probabilities))


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

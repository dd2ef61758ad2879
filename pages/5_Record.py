"""Class recordings: record or upload clips, label them, and keep them as a corpus that Explore and Train read."""
from __future__ import annotations

import streamlit as st

import app_common
from ser_core import config, recordings
from ser_core.errors import SerError

app_common.page_config("Class recordings")
st.title("Class recordings")
st.caption(f"Record or upload clips, label them, and keep them as a corpus under `{config.data_root()}`: one folder "
           "per emotion, mono WAV, and a metadata.csv of speakers, labels and dates. Explore, Train and the command "
           "line then use it like any corpus, and speaker-independent evaluation keeps each speaker on one side.")

NEW = "New corpus…"
GENDER_CHOICES = ("not given",) + recordings.GENDERS
state = st.session_state
state.setdefault("round", 0)  # part of the recorder's and uploader's keys: a new round clears them
for key in ("corpus", "clip"):  # a selection made by the last change, applied before its widget exists
    if f"next_{key}" in state:
        state[key] = state.pop(f"next_{key}")
if "done" in state:
    st.success(state.pop("done"))


def changed(message: str, **select: str) -> None:
    """After a change: the catalog is read again, the page redrawn with the message and the new selection."""
    app_common.catalog.clear()
    state["done"] = message
    for key, value in select.items():
        state[f"next_{key}"] = value
    st.rerun()


def allowed() -> bool:
    """Whether a change that loses clips or labels may go ahead: anyone who reaches the port can use the page, so
    with a class passcode set, only who typed it."""
    if recordings.passcode_matches(state.get("passcode", "")):
        return True
    st.error("Enter the class passcode above to relabel, delete or rename; ask your teacher for it.")
    return False


choice = st.selectbox("Corpus", recordings.list_corpora() + [NEW], key="corpus")
corpus = choice
if choice == NEW:
    typed = st.text_input("Name of the new corpus", key="new_corpus", placeholder="e.g. my-class")
    try:
        corpus = recordings.corpus_name(typed) if typed.strip() else None
    except SerError as error:
        st.error(str(error))
        corpus = None
    if corpus:
        st.caption(f"Saved as `{corpus}`, the name Explore and Train will show.")

st.subheader("New clip")
left, middle, right = st.columns(3)
speaker = left.text_input("Speaker", key="speaker", placeholder="a first name or a code such as s01",
                          help="Required: speaker-independent evaluation keeps each speaker's clips together.")
gender = middle.selectbox("Gender", GENDER_CHOICES, key="gender")
label = right.selectbox("Emotion", config.LABELS, key="label")
source = st.radio("Source", ("Record", "Upload a file"), horizontal=True, key="source")
if source == "Record":
    clip = st.audio_input("Record one utterance", sample_rate=config.RECORDING_RATE, key=f"record_{state['round']}")
    st.caption(app_common.MICROPHONE_ADVICE + " Or choose **Upload a file**.")
else:
    clip = app_common.audio_uploader(key=f"upload_{state['round']}")
usable = False
if clip is not None:
    try:
        y = recordings.load_clip(clip, name=clip.name)
    except SerError as error:
        st.error(str(error))
    else:
        usable = True
        if source != "Record":  # the recorder plays its own recording back
            st.audio(y, sample_rate=config.RECORDING_RATE)
        st.caption(f"{len(y) / config.RECORDING_RATE:.1f} s; saved as mono {config.RECORDING_RATE} Hz WAV.")
try:
    recordings.check_writable()
    writable = True
except SerError as error:
    st.error(str(error))
    writable = False
needed = (("record or upload a clip", usable), ("name the corpus", corpus), ("enter the speaker", speaker.strip()),
          ("choose a data folder you can write to", writable))
missing = [what for what, ok in needed if not ok]
if missing:
    st.caption("To save: " + ", ".join(missing) + ".")
if st.button("Save clip", type="primary", disabled=bool(missing), key="save"):
    try:
        row = recordings.add_clip(corpus, clip, name=clip.name, speaker=speaker, label=label,
                                  gender=None if gender == GENDER_CHOICES[0] else gender)
    except SerError as error:
        st.error(str(error))
    else:
        state["round"] += 1
        changed(f"Saved {row['file']} ({row['speaker']}, {row['label']}).", corpus=corpus)

if corpus:
    try:
        clips = recordings.list_clips(corpus)
    except SerError as error:
        st.error(str(error))
        st.stop()
    st.subheader(f"Clips in {corpus}")
    if clips.empty:
        st.info("No clips yet: save one above.")
        st.stop()
    speakers = clips["speaker"].nunique()
    counts = ", ".join(f"{name} {count}" for name, count in clips["label"].value_counts().items())
    st.markdown(f"**{len(clips)}** clip{'s' * (len(clips) != 1)}, **{speakers}** speaker{'s' * (speakers != 1)}: "
                f"{counts}.")
    st.dataframe(clips[["file", "speaker", "label", "gender", "date", "duration"]], hide_index=True,
                 column_config={"duration": st.column_config.NumberColumn("duration (s)", format="%.1f")})
    if speakers < 2:
        st.warning("Speaker-independent evaluation needs clips of at least two speakers.")
    st.caption(f"Explore and Train list this corpus as **{corpus}**; on the command line, `--corpus {corpus}`.")

    st.subheader("Change a clip")
    if recordings.passcode_required():
        st.text_input("Class passcode", type="password", key="passcode",
                      help="Relabelling, deleting and renaming need the passcode this app was started with.")
    file = st.selectbox("Clip", clips["file"], key="clip")
    row = clips[clips["file"] == file].iloc[0]
    st.audio(row["path"])
    left, right = st.columns(2)
    new_label = left.selectbox("Move to emotion", config.LABELS, index=config.LABELS.index(row["label"]),
                               key=f"relabel_{file}")
    if left.button("Relabel", key="relabel", disabled=new_label == row["label"]) and allowed():
        try:
            moved = recordings.relabel_clip(corpus, file, label=new_label)
        except SerError as error:
            st.error(str(error))
        else:
            changed(f"Moved {file} to {moved['file']}.", clip=moved["file"])
    with right.popover("Delete"):
        st.write(f"Delete {file} for good?")
        if st.button("Delete the clip", key="delete", type="primary") and allowed():
            try:
                recordings.delete_clip(corpus, file)
            except SerError as error:
                st.error(str(error))
            else:
                changed(f"Deleted {file}.")

    with st.expander("Rename a speaker (or merge two)"):
        old = st.selectbox("Speaker", sorted(clips["speaker"].unique()), key="rename_from")
        new = st.text_input("New name", key="rename_to")
        if st.button("Rename", key="rename", disabled=not new.strip()) and allowed():
            try:
                count = recordings.rename_speaker(corpus, old, new)
            except SerError as error:
                st.error(str(error))
            else:
                changed(f"Renamed {old} to {recordings.validate_speaker(new)} in {count} clips.")

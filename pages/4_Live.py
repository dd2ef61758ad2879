"""Live: speak into the microphone and watch the emotion of the last few seconds, then read a summary."""
from __future__ import annotations

import time

import streamlit as st

from app_common import MICROPHONE_ADVICE, model_picker, page_config, predictor, room_panel, voice_state
from ser_core import config, glossary, plots
from ser_core.errors import SerError

REDRAW = 0.25  # s; how often the input level meter is redrawn while no result comes

page_config("Live")
st.title("Live microphone")
st.caption("Press START and speak: the emotion of your last few seconds appears as you talk. Your audio stays "
           "on this server and is kept only if you download it.")

from streamlit_webrtc import AudioSinkTrack, WebRtcMode, webrtc_streamer  # noqa: E402

from ser_core.live import LiveSession  # noqa: E402

choice = model_picker(key="live_model")
left, right = st.columns(2)
window = left.slider("Window (s)", 1.0, 6.0, config.WINDOW, 0.5, key="live_window", help=glossary.TERMS["window"])
hop = right.slider("Hop (s)", 0.25, 2.0, 0.5, 0.25, key="live_hop", help=glossary.TERMS["hop"])
st.caption(f"Each result is the last {window:g} s of sound (the window); a new one comes every {hop:g} s (the hop).")
if choice is None:
    st.stop()
model_path = choice["path"]
try:
    model = predictor(model_path)
    ice = config.ice_servers()
except (SerError, ValueError) as error:
    st.error(str(error))
    st.stop()

def new_session(previous: LiveSession | None = None) -> LiveSession:
    """A fresh stream; it keeps the previous stream's calibration (the same speaker at this browser)."""
    # A copy of the shared predictor: calibration, and the voice a model has heard, belong to this browser
    # session only; the room it starts from is everyone's here.
    if previous:
        return LiveSession(previous.predictor, window=window, hop=hop)
    return LiveSession(model.for_session(), window=window, hop=hop)


# The audio callback runs on another thread and outlives reruns: it reads the session through this holder,
# which is per browser session, so a new session (new settings, a new START) takes effect at once.
holder = st.session_state.setdefault("live_holder", {})
settings = (model_path, window, hop)
if holder.get("settings") != settings:
    if holder.get("session") is not None:
        holder["session"].close()
    holder.update(session=new_session(), settings=settings)
live: LiveSession = holder["session"]

if live.predictor.voice_norm:
    voice_state(live.predictor)
elif live.predictor.bundle.metadata.get("speaker_norm"):
    st.info("This model hears how your voice departs from its usual self, so it needs your speech first: "
            "calibrate for 20-30 s, in your everyday voice and a few moods if you can. On actors it had never "
            "heard, the shipped compare-ge2e-ridge, adapting to their calibration speech, was right 72% of the "
            "time after about 14 s of it and 76% after about 35 s; on TESS's speakers, 81% after about 60 s.")
    a, b = st.columns(2)
    if a.button("Start calibration (speak for 20-30 s)", key="calibrate_start"):
        live.start_calibration()
    if b.button("Finish calibration", key="calibrate_end"):
        try:
            st.success("Calibrated on " + live.finish_calibration().describe("your") + ".")
        except SerError as error:
            st.error(str(error))


# Each audio frame goes to the session straight from the WebRTC event loop (push_frame only buffers): a frame
# callback would add a thread and two queues per student, which a class of thirty pays for (bench/bench_class.py).
sink = holder.setdefault("sink", AudioSinkTrack(lambda frame: holder["session"].push_frame(frame)))
context = webrtc_streamer(
    key="live-microphone", mode=WebRtcMode.SENDONLY, sink_audio_track=sink,
    media_stream_constraints={"audio": {"echoCancellation": False, "noiseSuppression": False,
                                        "autoGainControl": False}, "video": False},
    rtc_configuration={"iceServers": ice},
    translations={"select_device": "Choose microphone ▾"})  # reads as a control, not as plain text
st.caption(MICROPHONE_ADVICE)
with st.expander("Using it from another computer"):
    st.markdown(f"On one machine no extra servers are needed. Across a network, the browser and this server must "
                f"reach each other: set `{config.ICE_SERVERS_ENV}` to a JSON list of STUN (and, behind strict "
                "firewalls, TURN) servers, and open the app over HTTPS, which browsers require for a microphone.")
if live.predictor.voice_norm:
    room_panel(live.predictor)


def draw_results(live: LiveSession, results: list, playing: bool) -> None:
    """The newest window's emotion and bars, and the rolling timeline."""
    last = results[-1]
    if last.probabilities:
        st.metric("Now", last.label, f"{last.probabilities[last.label]:.0%}", delta_color="off")
    else:
        st.metric("Now", "silence")
    if playing:  # data-* let bench/bench_live_page.py and bench_class.py time the result's way to the page
        st.caption(f'Window {last.start:.1f}–{last.end:.1f} s of the stream, <span data-ended="'
                   f'{live.last_ended_at * 1000:.0f}" data-ready="{live.last_ready_at * 1000:.0f}" data-dropped="'
                   f'{live.dropped}">shown {time.time() - live.last_ended_at:.2f} s after it ended</span>.',
                   unsafe_allow_html=True)
        # Light SVG charts while streaming: redrawing Plotly charts every hop made results reach the page
        # about 0.2 s later (bench/bench_live_page.py).
        left, right = st.columns([2, 3])
        if last.probabilities:
            left.markdown(plots.probability_bars_svg(last.probabilities), unsafe_allow_html=True)
        right.markdown(plots.timeline_svg(results[-60:], live.predictor.labels), unsafe_allow_html=True)
    else:
        if last.probabilities:
            st.plotly_chart(plots.probabilities(last.probabilities, "Last window"), key="live_bars")
        st.plotly_chart(plots.timeline(results[-60:], live.predictor.labels), key="live_timeline")
    if live.dropped:
        st.caption(f"{live.dropped} windows skipped to keep up.")
    if live.predictor.voice_norm:
        st.caption(live.predictor.heard_description().capitalize() + ".")


def draw_summary(live: LiveSession) -> None:
    summary = live.timeline().summary()
    st.subheader("Session summary")
    st.write(f"Mostly **{summary['label'] or 'silence'}** over {summary['windows']} windows "
             f"({summary['voiced']} with speech).")
    if summary["mean"]:
        a, b = st.columns(2)
        a.plotly_chart(plots.probabilities(summary["mean"], "Mean probabilities"), key="live_mean")
        b.plotly_chart(plots.probabilities(summary["share"], "Share of time as the top emotion"), key="live_share")
        st.caption(f"Silence: {summary['share'].get('silence', 0):.0%} of the windows.")
    a, b = st.columns(2)
    a.download_button("Recording (WAV)", live.recording_wav(), "live-session.wav", "audio/wav")
    b.download_button("Timeline (CSV)", live.timeline_csv(), "live-timeline.csv", "text/csv")


@st.fragment
def live_view() -> None:
    """While the stream plays, draw each result the moment it is ready (the loop ends when the page reruns:
    STOP, a widget, a reload); when it stops, the summary."""
    playing = context.state.playing
    live = holder["session"]
    if playing and live.closed:  # START again after a finished session: begin a new one
        live = holder["session"] = new_session(live)
    if not playing:
        if not live.closed and live.results:
            live.close()  # the stream stopped: classify what is queued, stop the worker
        if live.results:
            draw_results(live, live.results, playing=False)
            draw_summary(live)
        return
    level, notice, shown = st.empty(), st.empty(), st.empty()
    shown.caption(f"Listening… the first result comes after {live.window:g} s.")
    drawn, noticed = 0, None
    while not live.closed:
        has_new = live.wait_for_result(drawn, timeout=REDRAW)
        level.progress(min(1.0, max(0.0, (live.level_dbfs + 60) / 60)), text=f"input level {live.level_dbfs:.0f} dBFS")
        busy = live.busy
        if busy != noticed:  # said even while no result comes, so a stale one never passes for now
            noticed = busy
            if noticed:
                notice.warning(noticed)
            else:
                notice.empty()
        if live.error:
            shown.error(live.error)
        elif has_new:
            results = live.results
            drawn = len(results)
            with shown.container():
                draw_results(live, results, playing=True)


live_view()

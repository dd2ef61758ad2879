"""A student's Live page without a browser: Streamlit's WebSocket protocol plus an aiortc WebRTC client.

    python bench/class_client.py SECONDS OUT.json URL CLIP.wav [URL CLIP.wav ...]   (one student per pair)

bench/bench_class.py runs many of these against one app server. Each does what the browser does on the Live
page: it asks for the page, answers the webrtc component with an SDP offer (as its frontend does), streams a
WAV file as Opus over WebRTC in real time, and reads every result the page draws from the page's own messages
(the caption's data-ended time, so the lag is measured exactly as the browser test measures it). Each file is
Opus-encoded once, with aiortc's own encoder and settings, and its packets replayed in real time: encoding it
again for every student would make the benchmark's students, not the server, what fills the cores.
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

RESULT = re.compile(r'Window (?P<start>[\d.]+)–[\d.]+ s of the stream, <span data-ended="(?P<ended>\d+)" '
                    r'data-ready="\d+" data-dropped="(?P<dropped>\d+)"')
BUSY = ("The server is busy", "No sound has reached the server")  # what the Live page says past capacity
FRAME = 960  # samples of one 20 ms Opus packet at 48 kHz


@cache
def opus_packets(wav: str) -> tuple[bytes, ...]:
    """The file (16-bit PCM) as the Opus packets a browser would send (aiortc's encoder, 20 ms each)."""
    encoder, packets = OpusEncoder(), []
    as_microphone = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    with av.open(wav) as container:
        for frame in container.decode(audio=0):
            for mono in as_microphone.resample(frame):
                packets += encoder.encode(mono)[0]
    return tuple(packets)


class OpusReplay(MediaStreamTrack):
    """A microphone track that plays pre-encoded packets, looped, at real-time pace."""
    kind = "audio"

    def __init__(self, packets: tuple[bytes, ...]) -> None:
        super().__init__()
        self.packets, self.sent, self.started = packets, 0, None

    async def recv(self) -> av.Packet:
        self.started = self.started or time.time()
        await asyncio.sleep(max(0.0, self.started + self.sent * FRAME / 48_000 - time.time()))
        packet = av.Packet(self.packets[self.sent % len(self.packets)])
        packet.pts, packet.time_base = self.sent * FRAME, Fraction(1, 48_000)
        self.sent += 1
        return packet


@dataclass
class StudentRecord:
    """What one student's page showed: when each window's result arrived, and what went wrong."""
    lags_ms: list[float] = field(default_factory=list)  # window end -> result in this client, per result
    starts: list[float] = field(default_factory=list)  # stream time of each result's window
    dropped: int = 0  # windows the server skipped to keep up, as the page last said
    busy_shown: int = 0  # results drawn with the page's "server is busy" warning
    connected_after_s: float | None = None  # START -> first result
    error: str | None = None
    last_result_at: float = 0.0
    stream_end: float = 0.0  # when this student pressed STOP
    connection: str = ""  # the WebRTC connection's state then
    audio_sent_s: float = 0.0  # seconds of speech this client's WebRTC sender took from its microphone


class LivePage:
    """One browser session's WebSocket to the app, speaking Streamlit's protobuf messages."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.page_hash = ""
        self.component_id: str | None = None
        self.answer: str | None = None

    async def rerun(self, component_value: dict | None = None, page_name: str = "") -> None:
        widgets = []
        if component_value is not None:
            widgets.append(WidgetState(id=self.component_id, json_value=json.dumps(component_value)))
        state = ClientState(query_string="", page_script_hash=self.page_hash, page_name=page_name,
                            widget_states=WidgetStates(widgets=widgets))
        await self.socket.send(BackMsg(rerun_script=state).SerializeToString())

    async def messages(self):
        """Elements the page draws, as (kind, element) pairs; remembers the page and the webrtc component."""
        async for raw in self.socket:
            message = ForwardMsg()
            message.ParseFromString(raw)
            kind = message.WhichOneof("type")
            if kind == "navigation":  # the page this run shows, which every rerun must name again
                self.page_hash = message.navigation.page_script_hash
            elif kind == "script_finished":
                yield kind, None
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                element = message.delta.new_element
                what = element.WhichOneof("type")
                if what == "component_instance" and "webrtc" in element.component_instance.component_name:
                    self.component_id = element.component_instance.id
                    self.answer = json.loads(element.component_instance.json_args).get("sdp_answer_json")
                yield what, element


async def first(messages, condition, timeout: float, what: str):
    """The first element for which condition holds; `what` names it if it never comes."""
    async def wait():
        async for what, element in messages:
            if condition(what, element):
                return what, element
        raise ConnectionError("the app closed the connection")
    try:
        return await asyncio.wait_for(wait(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no {what} within {timeout:g} s") from None


async def run_student(url: str, wav: str, seconds: float, record: StudentRecord) -> None:
    """Open the Live page, press START, stream `wav` (looped) for `seconds`, note every result, press STOP."""
    peer = RTCPeerConnection()
    microphone = OpusReplay(opus_packets(wav))
    try:
        async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                      max_size=None, open_timeout=60, ping_interval=None) as socket:
            page = LivePage(socket)
            messages = page.messages()
            await page.rerun(page_name="Live")
            await first(messages, lambda what, _: what == "script_finished" and page.component_id, 120, "Live page")
            peer.addTransceiver(microphone, direction="sendonly")
            await peer.setLocalDescription(await peer.createOffer())  # aiortc gathers its candidates here
            started = time.time()
            offer = {"type": "offer", "sdp": peer.localDescription.sdp}
            await page.rerun({"playing": False, "sdpOffer": offer, "iceCandidates": {}})
            await first(messages, lambda what, _: what == "component_instance" and page.answer, 60, "SDP answer")
            await peer.setRemoteDescription(RTCSessionDescription(**json.loads(page.answer)))
            await page.rerun({"playing": True, "sdpOffer": "", "iceCandidates": {}})
            end = time.time() + seconds

            async def listen() -> None:
                async for what, element in messages:
                    if what == "alert" and element.alert.body.startswith(BUSY):
                        record.busy_shown += 1
                    if what != "markdown":
                        continue
                    found = RESULT.search(element.markdown.body)
                    if found:
                        now = time.time()
                        record.lags_ms.append(now * 1000 - int(found["ended"]))
                        record.starts.append(float(found["start"]))
                        record.dropped = int(found["dropped"])
                        record.last_result_at = now
                        if record.connected_after_s is None:
                            record.connected_after_s = now - started
            try:
                await asyncio.wait_for(listen(), max(1.0, end - time.time()))
            except asyncio.TimeoutError:
                pass
            record.stream_end, record.connection = time.time(), peer.connectionState
            record.audio_sent_s = microphone.sent * FRAME / 48_000
            await page.rerun({"playing": False, "sdpOffer": "", "iceCandidates": {}})
    except Exception as error:  # a lost session is a result of the benchmark, not its end
        record.error = f"{type(error).__name__}: {error}"
    finally:
        microphone.stop()
        await peer.close()


async def run_class(students: list[tuple[str, str]], seconds: float) -> list[StudentRecord]:
    """Students, each an (app URL, speech file) pair, all pressing START at once."""
    records = [StudentRecord() for _ in students]
    await asyncio.gather(*(run_student(url, clip, seconds, record)
                           for (url, clip), record in zip(students, records)))
    return records


if __name__ == "__main__":
    seconds, out, *pairs = sys.argv[1:]
    records = asyncio.run(run_class(list(zip(pairs[::2], pairs[1::2])), float(seconds)))
    Path(out).write_text(json.dumps([asdict(record) for record in records]))

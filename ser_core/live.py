"""Live classification of a stream (a browser microphone): frames in, a window classified every hop.

The audio callback only converts and buffers (never waits for the model); a worker thread classifies the
queued windows. When the worker falls behind, the oldest windows are dropped, not queued without bound: a live
display wants the present. Memory is bounded: about one window of buffer, at most MAX_RECORDING seconds of
recording.
"""
from __future__ import annotations

import csv
import io
import logging
import queue
import threading
import time
import weakref
from collections import deque
from typing import Sequence

import numpy as np

from . import config
from .inference import SILENCE, Calibration, Predictor, Timeline, WindowPrediction

MAX_RECORDING = 600.0   # seconds of the session kept for the WAV download
MAX_PENDING = 2         # windows waiting for the worker before the oldest is dropped
BUSY_DELAY = 1.0        # s from a window's end to its result beyond which the page says results are late
BUSY_MEMORY = 5.0       # s for which a dropped window keeps the page saying so
NO_SOUND = 2.0          # s without a frame, once the stream has begun, after which the page says none arrives
FRAME_BATCH = 0.1       # s of WebRTC frames (20 ms each) converted together, unless a window ends sooner


def frame_samples(data: np.ndarray, channels: int, *, dtype: str = "s16") -> np.ndarray:
    """Mono float32 from a PyAV frame's ndarray: packed (1, n * channels) or planar (channels, n); s16 or float."""
    data = np.asarray(data)
    scale = 32768.0 if dtype.startswith("s16") else 1.0
    if data.ndim == 2 and data.shape[0] == 1 and channels > 1:
        data = data.reshape(-1, channels).T          # packed: interleaved samples
    mono = data.reshape(channels, -1).astype(np.float32).mean(axis=0) if channels > 1 else data.reshape(-1)
    return (mono.astype(np.float32) / scale).astype(np.float32)


class LiveSession:
    """One stream's buffers, worker and results; one per browser session."""

    def __init__(self, predictor: Predictor, *, window: float = config.WINDOW, hop: float = config.HOP,
                 max_pending: int = MAX_PENDING):
        from .audio import check_windows

        check_windows(window, hop)
        self.predictor, self.window, self.hop = predictor, window, hop
        self.sr = predictor.pipeline.sample_rate
        self._size, self._step = int(round(window * self.sr)), int(round(hop * self.sr))
        self._buffer = np.zeros(0, np.float32)   # the samples from the next window's start on
        self._buffer_start = 0                   # its first sample's index in the stream (at self.sr)
        self._next_end = self._size              # where the next window ends
        self._recording: list[np.ndarray] = []
        self._recorded = 0
        self._resampler = None
        self._in_rate = None
        self._frames: list[np.ndarray] = []     # WebRTC frames not yet converted, how many samples they hold,
        self._framed = 0                         # and their (channels, sample format, rate)
        self._frame_format = (1, "s16", 48_000)
        self._frames_lock = threading.Lock()
        self._calibrating: list[np.ndarray] | None = None
        self._lock = threading.Lock()
        self._new_result = threading.Condition(self._lock)  # lets a display wake as soon as a result is in
        self._pending: queue.Queue = queue.Queue(maxsize=max_pending)
        self._results: list[WindowPrediction] = []
        self.last_ended_at = 0.0                 # wall time at which the newest result's window ended
        self.last_ready_at = 0.0                 # and at which its result was ready
        self.dropped = 0
        self.last_dropped_at = 0.0               # wall time of the newest window dropped to keep up
        self.last_frame_at = 0.0                 # wall time of the newest WebRTC frame
        self.latencies: deque[float] = deque(maxlen=1000)  # seconds from a window's last sample to its result
        self._working_on: float | None = None    # when the window the worker is classifying was queued
        self.level_dbfs = -120.0
        self.error: str | None = None
        # The worker holds the session weakly: when a browser session ends (a reload, a closed tab) and its
        # LiveSession is collected, the worker ends too; nothing is left running.
        self._worker = threading.Thread(target=_work, args=(weakref.ref(self), self._pending), daemon=True)
        self._running = True
        self._worker.start()

    # --- the audio side: called for every frame, never blocks on the model --------------------------------

    def push(self, samples: np.ndarray, sample_rate: int, *, last: bool = False) -> None:
        """Add mono float32 samples at `sample_rate`; queue a window every hop. `last` flushes the resampler.

        Samples that are not numbers (a float frame can carry NaN or infinity) count as dropouts, silence: they
        would poison the resampler for the rest of the stream and reach the recording at full scale.
        """
        import soxr

        if sample_rate != self._in_rate:
            self._in_rate = sample_rate
            self._resampler = (None if sample_rate == self.sr else
                               soxr.ResampleStream(sample_rate, self.sr, 1, dtype="float32"))
        y = np.asarray(samples, dtype=np.float32)
        if not np.isfinite(y).all():
            y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y, last=last)
        if not len(y):
            return
        with self._lock:
            self.level_dbfs = float(20 * np.log10(max(float(np.sqrt(np.dot(y, y) / len(y))), 1e-6)))
            if self._recorded < MAX_RECORDING * self.sr:
                self._recording.append((np.clip(y, -1, 1) * 32767).astype(np.int16))  # half of float32
                self._recorded += len(y)
            if self._calibrating is not None:
                self._calibrating.append(y)
            self._buffer = np.concatenate([self._buffer, y])
            while self._buffer_start + len(self._buffer) >= self._next_end:
                begin = self._next_end - self._size - self._buffer_start
                if self._calibrating is None:  # calibration speech is the speaker's baseline, not classified
                    self._enqueue(((self._next_end - self._size) / self.sr,
                                   self._buffer[begin:begin + self._size].copy(), time.time()))
                self._next_end += self._step
            drop = max(0, self._next_end - self._size - self._buffer_start)  # keep from the next window's start
            self._buffer, self._buffer_start = self._buffer[drop:], self._buffer_start + drop

    def push_frame(self, frame) -> None:
        """Add a PyAV AudioFrame (what streamlit-webrtc hands over every 20 ms). Frames are converted and pushed
        FRAME_BATCH seconds at a time, or as soon as they complete a window: converting each frame on its own
        costs more than everything else a live student asks of the server but the model (bench/bench_class.py)."""
        self.last_frame_at = time.time()
        with self._frames_lock:
            self._frames.append(frame.to_ndarray())
            self._framed += frame.samples
            self._frame_format = len(frame.layout.channels), frame.format.name, frame.sample_rate
            until_window = (self._next_end - self._buffer_start - len(self._buffer)) * frame.sample_rate / self.sr
            if self._framed >= min(FRAME_BATCH * frame.sample_rate, until_window):
                self._push_frames()

    def _push_frames(self) -> None:
        """Convert and push the frames gathered so far (with _frames_lock held)."""
        if self._frames:
            channels, dtype, rate = self._frame_format
            data, self._frames, self._framed = np.concatenate(self._frames, axis=-1), [], 0
            self.push(frame_samples(data, channels, dtype=dtype), rate)

    def _enqueue(self, item) -> None:
        while True:
            try:
                self._pending.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._pending.get_nowait()   # the oldest window is stale now
                    self.dropped += 1
                    self.last_dropped_at = time.time()
                except queue.Empty:
                    pass

    @property
    def busy(self) -> str | None:
        """What the page says when this server cannot keep up (no audio for NO_SOUND seconds, a window waiting or
        its newest result coming more than BUSY_DELAY after its window, or a window dropped in the last
        BUSY_MEMORY seconds), rather than showing stale results as if they were now; None while it keeps up."""
        unheard = time.time() - self.last_frame_at
        if self.last_frame_at and unheard > NO_SOUND:  # a network or a server too busy to take the audio in
            return (f"No sound has reached the server for {unheard:.0f} s: the network or the server is too busy. "
                    "If it lasts, press STOP, then START.")
        late = self.latencies[-1] if self.latencies else 0.0
        waiting = self._waiting()
        if waiting > max(late, BUSY_DELAY):  # an overloaded server may give no result at all for a while
            return f"The server is busy: results are delayed (the next is {waiting:.1f} s late so far)."
        if late > BUSY_DELAY:
            return f"The server is busy: results are delayed (the last came {late:.1f} s after you spoke)."
        if time.time() - self.last_dropped_at < BUSY_MEMORY:
            return "The server is busy: some moments were skipped to keep up with you."
        return None

    def _waiting(self) -> float:
        """Seconds the oldest window without a result has waited since it was queued (0 when none waits)."""
        oldest = self._working_on
        if oldest is None:
            try:
                oldest = self._pending.queue[0][2]
            except (IndexError, TypeError):  # nothing queued, or only the end of the stream
                return 0.0
        return time.time() - oldest

    # --- the end of a stream ---------------------------------------------------------------------------------

    def close(self) -> None:
        """End the stream: the resampler's last samples go in, queued windows are classified, the worker stops,
        and what a voice_norm model heard joins the room's statistics (Predictor.share_with_room)."""
        if self._running:
            with self._frames_lock:
                self._push_frames()
            if self._in_rate:
                self.push(np.zeros(0, np.float32), self._in_rate, last=True)
            self._pending.put(None)
            self._worker.join(timeout=30)
            with self._new_result:
                self._running = False
                self._new_result.notify_all()
            try:
                self.predictor.share_with_room()
            except OSError as error:  # a read-only or full disk: the session's results stand, the room waits
                self.error = f"What this session heard could not be kept for the room: {error}"

    @property
    def closed(self) -> bool:
        return not self._running

    # --- calibration ---------------------------------------------------------------------------------------

    def start_calibration(self) -> None:
        """Collect the speaker's speech from now until finish_calibration()."""
        with self._lock:
            self._calibrating = []

    def finish_calibration(self) -> Calibration:
        """Use the speech collected since start_calibration as the speaker's statistics; says what it used."""
        with self._lock:
            audio = np.concatenate(self._calibrating) if self._calibrating else np.zeros(0, np.float32)
            self._calibrating = None
        from .audio import windows_of

        windows = self.predictor.calibrate([y for _, y in windows_of(audio, self.sr, self.window, self.hop)])
        return Calibration(windows, None, [], self.predictor.adapted)

    # --- what the page shows and downloads -----------------------------------------------------------------

    @property
    def results(self) -> list[WindowPrediction]:
        with self._lock:
            return list(self._results)

    def wait_for_result(self, seen: int, timeout: float) -> bool:
        """Block until there are more than `seen` results or `timeout` seconds pass; True if there are.

        A display that waits here draws a result the moment it is ready instead of on its next timer tick."""
        with self._new_result:
            return self._new_result.wait_for(lambda: len(self._results) > seen or not self._running, timeout)

    def timeline(self) -> Timeline:
        return Timeline(self.results, self.predictor.labels)

    def recording_wav(self) -> bytes:
        from .audio import to_wav_bytes

        with self._lock:
            audio = np.concatenate(self._recording) if self._recording else np.zeros(0, np.int16)
        return to_wav_bytes(audio.astype(np.float32) / 32767, self.sr)

    def timeline_csv(self) -> str:
        labels: Sequence[str] = self.predictor.labels
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["start_s", "end_s", "label", *labels])
        for w in self.results:
            writer.writerow([f"{w.start:.2f}", f"{w.end:.2f}", w.label,
                             *[("" if w.label == SILENCE else f"{w.probabilities[label]:.4f}") for label in labels]])
        return out.getvalue()


def _work(session_ref: "weakref.ref[LiveSession]", pending: queue.Queue) -> None:
    """The worker: classify queued windows until the session closes or is collected."""
    from .errors import SerError

    while True:
        try:
            item = pending.get(timeout=0.5)
        except queue.Empty:
            if session_ref() is None:
                return
            continue
        session = session_ref()
        try:
            if item is None or session is None:
                return
            start, samples, queued = item
            session._working_on = queued
            # A voice_norm model hears each voiced window after classifying it: the hop is its new speech.
            [result] = session.predictor.timeline([(start, samples)], hear=session.hop).windows
            with session._new_result:
                session.error = None  # a stream that failed (say, before calibration) works again
                session._results.append(result)
                session.last_ended_at, session.last_ready_at = queued, time.time()
                session.latencies.append(session.last_ready_at - queued)
                session._new_result.notify_all()
        except SerError as error:
            session.error = str(error)
        except Exception:  # a bug must not stop the worker: close() would then wait on a full queue forever
            logging.getLogger(__name__).exception("classifying a live window failed")
            session.error = "Classifying this window failed unexpectedly; the server's log says why."
        session._working_on = None
        del session  # hold it only while classifying, so that a forgotten session can be collected

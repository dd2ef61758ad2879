"""Plotly figures the app draws: functions over arrays, results and catalogs, so pages stay thin and tested.

Signal views (waveplot, spectrograms, MFCC, pitch and energy) are computed for one clip at a time.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import config

MAX_WAVE_POINTS = 4000   # a waveplot draws min/max envelopes beyond this many samples
N_FFT, HOP = 512, 160    # 32 ms / 10 ms at 16 kHz for the signal views
EMOTION_COLOURS = {
    "neutral": "#7f7f7f", "calm": "#17becf", "happy": "#f2c14e", "sad": "#1f77b4",
    "angry": "#d62728", "fearful": "#9467bd", "disgust": "#2ca02c", "surprised": "#ff7f0e", "silence": "#dddddd",
}


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 280) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height,
                      margin=dict(l=50, r=20, t=40, b=40))
    return fig


def waveplot(y: np.ndarray, sr: int, title: str = "Waveform") -> go.Figure:
    """Amplitude over time; long clips as a min/max envelope so the browser gets a few thousand points."""
    y = np.asarray(y, dtype=np.float32)
    if len(y) > MAX_WAVE_POINTS:
        step = int(np.ceil(len(y) / (MAX_WAVE_POINTS // 2)))
        blocks = np.pad(y, (0, (-len(y)) % step)).reshape(-1, step)
        t = np.arange(len(blocks)) * step / sr
        fig = go.Figure([go.Scatter(x=t, y=blocks.max(axis=1), line=dict(width=0.6), name="max"),
                         go.Scatter(x=t, y=blocks.min(axis=1), line=dict(width=0.6), name="min",
                                    fill="tonexty")])
    else:
        fig = go.Figure([go.Scatter(x=np.arange(len(y)) / sr, y=y, line=dict(width=0.8), name="amplitude")])
    fig.update_layout(showlegend=False)
    return _layout(fig, title, "time (s)", "amplitude")


def spectrogram(y: np.ndarray, sr: int, kind: str = "linear", title: str | None = None) -> go.Figure:
    """Power spectrogram in dB: "linear" (Hz), "mel" (64 mel bands) or "mfcc" (20 coefficients)."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    if kind == "linear":
        image, axis = librosa.power_to_db(power, ref=np.max), librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
        y_title = "frequency (Hz)"
    elif kind == "mel":
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64)
        image, axis, y_title = librosa.power_to_db(mel, ref=np.max), np.arange(64), "mel band"
    elif kind == "mfcc":
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64)
        image = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
        axis, y_title = np.arange(20), "coefficient"
    else:
        raise ValueError(f"unknown spectrogram kind {kind!r}")
    times = np.arange(image.shape[1]) * HOP / sr
    fig = go.Figure(go.Heatmap(z=image, x=times, y=axis, colorscale="Magma" if kind != "mfcc" else "RdBu",
                               colorbar=dict(title="dB" if kind != "mfcc" else "")))
    names = {"linear": "Spectrogram", "mel": "Mel spectrogram", "mfcc": "MFCC"}
    return _layout(fig, title or names[kind], "time (s)", y_title)


def pitch_and_energy(y: np.ndarray, sr: int, title: str = "Pitch and energy") -> go.Figure:
    """Pitch contour (pYIN, 60-500 Hz, unvoiced frames left blank) and RMS energy in dB, on two axes."""
    import librosa

    f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=HOP * 2)
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=HOP * 2)[0]
    t = np.arange(len(f0)) * HOP * 2 / sr
    fig = go.Figure([
        go.Scatter(x=t, y=np.where(voiced, f0, np.nan), name="pitch (Hz)", line=dict(color="#d62728")),
        go.Scatter(x=t[:len(rms)], y=20 * np.log10(np.maximum(rms, 1e-5)), name="energy (dB)", yaxis="y2",
                   line=dict(color="#1f77b4", width=1)),
    ])
    fig.update_layout(yaxis2=dict(title="energy (dB)", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.25))
    return _layout(fig, title, "time (s)", "pitch (Hz)")


def probabilities(probs: dict[str, float], title: str = "Emotion probabilities") -> go.Figure:
    labels = [label for label in config.LABELS if label in probs]
    fig = go.Figure(go.Bar(x=[probs[label] for label in labels], y=labels, orientation="h",
                           marker_color=[EMOTION_COLOURS[label] for label in labels],
                           text=[f"{probs[label]:.0%}" for label in labels], textposition="auto"))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return _layout(fig, title, "probability", "")


def timeline(windows: Sequence, labels: Sequence[str], title: str = "Emotions over time") -> go.Figure:
    """Each label's probability per window (at the window's centre); silent windows shaded."""
    centres = [(w.start + w.end) / 2 for w in windows]
    fig = go.Figure([go.Scatter(x=centres, y=[w.probabilities.get(label, np.nan) if w.probabilities else np.nan
                                            for w in windows], name=label, mode="lines+markers",
                                line=dict(color=EMOTION_COLOURS.get(label)))
                     for label in labels])
    for w in windows:
        if not w.probabilities:
            fig.add_vrect(x0=w.start, x1=w.end, fillcolor=EMOTION_COLOURS["silence"], opacity=0.3, line_width=0)
    fig.update_layout(yaxis=dict(range=[0, 1], tickformat=".0%"))
    return _layout(fig, title, "time (s)", "probability", height=320)


def confusion(pooled: dict, normalise: bool = False, title: str | None = None) -> go.Figure:
    """Confusion matrix heatmap from compute_metrics output: counts, or each true row as shares."""
    labels = pooled["labels"]
    matrix = np.asarray(pooled["confusion"], dtype=float)
    if normalise:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    text = [[f"{v:.0%}" if normalise else f"{int(v)}" for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", text=text,
                               texttemplate="%{text}", showscale=False))
    fig.update_layout(yaxis=dict(autorange="reversed"))
    return _layout(fig, title or ("Confusion matrix (share of each true emotion)" if normalise else
                                  "Confusion matrix (clips)"), "predicted", "true", height=420)


def training_curves(events: Iterable, metric: str = "loss") -> go.Figure:
    """Training and validation `metric` per epoch, one pair of lines per fold (and the final fit)."""
    series: dict[str, list] = {}
    for event in events:
        if event.kind != "epoch":
            continue
        fold = "final fit" if event.fold is None else f"fold {event.fold + 1}"
        series.setdefault(fold, []).append((event.epoch, event.metrics.get(metric),
                                            event.metrics.get(f"val_{metric}")))
    fig = go.Figure()
    for i, (fold, points) in enumerate(series.items()):
        epochs, train, val = zip(*points)
        colour = f"hsl({(i * 67) % 360}, 60%, 45%)"
        fig.add_scatter(x=epochs, y=train, name=f"{fold} train", line=dict(color=colour))
        fig.add_scatter(x=epochs, y=val, name=f"{fold} validation", line=dict(color=colour, dash="dash"))
    return _layout(fig, f"{'Loss' if metric == 'loss' else 'Accuracy'} per epoch", "epoch", metric)


def class_counts(catalog: pd.DataFrame, by: str = "corpus") -> go.Figure:
    """Clips per emotion, grouped by `by` (corpus or gender)."""
    counts = catalog.groupby(["label", by]).size().unstack(fill_value=0)
    counts = counts.reindex([label for label in config.LABELS if label in counts.index])
    fig = go.Figure([go.Bar(x=counts.index, y=counts[col], name=str(col)) for col in counts.columns])
    fig.update_layout(barmode="group")
    return _layout(fig, f"Clips per emotion and {by}", "emotion", "clips")


def durations(catalog: pd.DataFrame) -> go.Figure:
    fig = go.Figure([go.Histogram(x=group["duration"], name=corpus, opacity=0.7, nbinsx=40)
                     for corpus, group in catalog.groupby("corpus")])
    fig.update_layout(barmode="overlay")
    return _layout(fig, "Clip durations", "seconds", "clips")

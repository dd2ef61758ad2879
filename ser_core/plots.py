"""Plotly figures the app draws: functions over arrays, results and catalogs, so pages stay thin and tested.

Signal views (waveplot, spectrograms, MFCC, pitch and energy) are computed for one clip at a time.
"""
from __future__ import annotations

from html import escape
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import config

MAX_WAVE_POINTS = 4000   # a waveplot draws min/max envelopes beyond this many samples
N_FFT, HOP = 512, 160    # 32 ms / 10 ms at 16 kHz for the signal views
OCCLUSION_FULL_COLOUR = 0.2  # an occlusion drop this large (20 points) is drawn in full colour, smaller ones
                             # fainter: the scale only widens for larger drops, so weak evidence looks weak
# Magma with silence black: Streamlit's chart theme takes a few near-black colours (Magma's own first, #000004,
# among them) for placeholders of its theme colours, which drew silence salmon-pink.
SPECTROGRAM_COLOURS = [[i / 9, colour] for i, colour in enumerate(
    ("#000000", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"))]
# Training curves: folds in clearly different hues (Okabe-Ito, readable with colour-blindness), the final fit grey
# (on light and dark themes alike).
FOLD_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
FINAL_FIT_COLOUR = "#808080"
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
    fig = go.Figure(go.Heatmap(z=image, x=times, y=axis, colorscale=SPECTROGRAM_COLOURS if kind != "mfcc" else "RdBu",
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
    # Every value beside its bar, upright and large enough to read from the back of a room.
    fig = go.Figure(go.Bar(x=[probs[label] for label in labels], y=labels, orientation="h",
                           marker_color=[EMOTION_COLOURS[label] for label in labels],
                           text=[f"{probs[label]:.0%}" for label in labels], textposition="outside",
                           textfont=dict(size=18), cliponaxis=False))
    fig.update_layout(xaxis=dict(range=[0, 1.12], tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1]),
                      yaxis=dict(autorange="reversed", tickfont=dict(size=16)))
    return _layout(fig, title, "probability", "", height=max(280, 48 * len(labels) + 80))


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


def confusion(pooled: dict, normalize: bool = False, title: str | None = None) -> go.Figure:
    """Confusion matrix heatmap from compute_metrics output: counts, or each true row as shares."""
    labels = pooled["labels"]
    matrix = np.asarray(pooled["confusion"], dtype=float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    text = [[f"{v:.0%}" if normalize else f"{int(v)}" for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", text=text,
                               texttemplate="%{text}", showscale=False))
    fig.update_layout(yaxis=dict(autorange="reversed"))
    return _layout(fig, title or ("Confusion matrix (share of each true emotion)" if normalize else
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
        colour = FINAL_FIT_COLOUR if fold == "final fit" else FOLD_COLOURS[i % len(FOLD_COLOURS)]
        fig.add_scatter(x=epochs, y=train, name=f"{fold} train", line=dict(color=colour))
        fig.add_scatter(x=epochs, y=val, name=f"{fold} validation", line=dict(color=colour, dash="dash"))
    return _layout(fig, f"{'Loss' if metric == 'loss' else 'Accuracy'} per epoch", "epoch", metric)


def class_counts(catalog: pd.DataFrame, by: str = "corpus") -> go.Figure:
    """Clips per emotion, grouped by `by` (corpus or gender)."""
    from .corpora import clip_counts

    counts = clip_counts(catalog, by)
    fig = go.Figure([go.Bar(x=counts.index, y=counts[col], name=str(col)) for col in counts.columns])
    fig.update_layout(barmode="group")
    return _layout(fig, f"Clips per emotion and {by}", "emotion", "clips")


def durations(catalog: pd.DataFrame) -> go.Figure:
    fig = go.Figure([go.Histogram(x=group["duration"], name=corpus, opacity=0.7, nbinsx=40)
                     for corpus, group in catalog.groupby("corpus")])
    fig.update_layout(barmode="overlay")
    return _layout(fig, "Clip durations", "seconds", "clips")


# --- explaining a prediction (ser_core.explain) ------------------------------------------------------------

_HZ_TICKS = (250, 500, 1000, 2000, 4000, 8000)


def occlusion_overlay(occ, title: str | None = None) -> go.Figure:
    """The log-mel spectrogram in grey with the occlusion map over it: red patches supported the label
    (silencing them lowers its probability), blue ones argued against it. Frequency on the mel scale."""
    import librosa

    top = max(float(np.max(np.abs(occ.drops))), OCCLUSION_FULL_COLOUR)
    band_mel = librosa.hz_to_mel(occ.band_edges_hz)
    custom = np.stack(np.broadcast_arrays(occ.band_edges_hz[:-1, None], occ.band_edges_hz[1:, None],
                                          occ.segment_edges_s[None, :-1], occ.segment_edges_s[None, 1:]), axis=-1)
    fig = go.Figure([
        go.Heatmap(z=occ.log_mel, x=occ.times, y=librosa.hz_to_mel(occ.mel_hz), colorscale="Greys",
                   showscale=False, name="log-mel", hovertemplate="%{x:.2f} s: %{z:.0f} dB<extra>spectrogram</extra>"),
        go.Heatmap(z=occ.drops, x=occ.segment_edges_s, y=band_mel, zmin=-top, zmax=top, zmid=0, customdata=custom,
                   colorscale=[[0, "rgba(31,119,180,0.65)"], [0.5, "rgba(255,255,255,0)"], [1, "rgba(214,39,40,0.7)"]],
                   colorbar=dict(title=f"drop in<br>P({occ.label})", tickformat=".0%"), name="occlusion",
                   hovertemplate=("%{customdata[0]:.0f}-%{customdata[1]:.0f} Hz, %{customdata[2]:.2f}-"
                                  "%{customdata[3]:.2f} s<br>silenced: P falls by %{z:.1%}<extra>occlusion</extra>")),
    ])
    ticks = [hz for hz in _HZ_TICKS if hz <= occ.band_edges_hz[-1]]
    fig.update_yaxes(tickvals=librosa.hz_to_mel(ticks), ticktext=[f"{hz // 1000}k" if hz >= 1000 else str(hz)
                                                                   for hz in ticks])
    fig.update_xaxes(range=[occ.start, occ.end])
    return _layout(fig, title or f"What the model listened to for “{occ.label}” ({occ.probability:.0%})",
                   "time (s)", "frequency (Hz, mel scale)", height=360)


def importance_bars(table: pd.DataFrame, top: int = 15, title: str | None = None) -> go.Figure:
    """The `top` most important features of a permutation_importance table, the most important at the top,
    with one standard deviation over the repeats as error bars."""
    rows = table.head(top).iloc[::-1]
    accuracy = table.attrs.get("metric", "accuracy") == "accuracy"
    scale = 100.0 if accuracy else 1.0
    meanings = rows["meaning"] if "meaning" in rows else [""] * len(rows)
    labels = [f"{meaning}<br><i>{feature}</i>" if meaning else feature  # the words first, the raw name below
              for feature, meaning in zip(rows["feature"], meanings)]
    fig = go.Figure(go.Bar(x=rows["importance"] * scale, y=labels, orientation="h",
                           error_x=dict(type="data", array=rows["std"] * scale), marker_color="#d62728",
                           hovertemplate="%{y}: %{x:.1f}<extra></extra>"))
    fig.update_layout(yaxis=dict(automargin=True))
    return _layout(fig, title or f"Which features the model leans on (top {min(top, len(table))})",
                   "accuracy lost when shuffled (points)" if accuracy else "log-likelihood lost when shuffled",
                   "", height=max(280, (34 if any(meanings) else 22) * len(rows) + 90))


def prosody_contours(pros, title: str = "Pitch and energy over time") -> go.Figure:
    """Pitch contour (voiced frames), energy in dB on a second axis, and the syllable nuclei counted."""
    nuclei = np.searchsorted(pros.times, pros.nuclei)
    fig = go.Figure([
        go.Scatter(x=pros.times, y=pros.f0, name="pitch (Hz)", mode="lines+markers", marker=dict(size=3),
                   line=dict(color="#d62728", width=2), connectgaps=False),
        go.Scatter(x=pros.times, y=pros.energy_db, name="energy (dB)", yaxis="y2", line=dict(color="#1f77b4", width=1)),
        go.Scatter(x=pros.nuclei, y=pros.energy_db[np.clip(nuclei, 0, len(pros.times) - 1)], yaxis="y2",
                   mode="markers", name="syllable nuclei",
                   marker=dict(symbol="triangle-down", size=9, color="#1f77b4")),
    ])
    fig.update_layout(yaxis2=dict(title="energy (dB)", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.3))
    return _layout(fig, title, "time (s)", "pitch (Hz)", height=320)


def prosody_comparison(summary: dict, averages: pd.DataFrame, label: str | None = None,
                       title: str = "This clip against each emotion's average") -> go.Figure:
    """One panel per prosody number: each emotion's corpus average as a bar (the predicted one solid),
    and this clip as a black line across."""
    from plotly.subplots import make_subplots

    from .explain import SUMMARY, SUMMARY_TITLES

    fig = make_subplots(rows=1, cols=len(SUMMARY), subplot_titles=[SUMMARY_TITLES[key] for key in SUMMARY],
                        horizontal_spacing=0.06)
    emotions = list(averages.index)
    for col, key in enumerate(SUMMARY, start=1):
        values = averages[key].to_numpy(dtype=float)
        floor = 0.0
        if key == "mean_energy_db":  # negative dB: bars rise from a floor below every value, not hang from 0
            floor = float(np.floor(np.nanmin([*values, summary.get(key, np.nan)]) / 5) * 5 - 5)
        fig.add_bar(x=emotions, y=values - floor, base=floor, customdata=values, row=1, col=col, showlegend=False,
                    name=key, marker_color=[EMOTION_COLOURS.get(e, "#888") for e in emotions],
                    marker_opacity=[1.0 if e == label else 0.4 for e in emotions],
                    hovertemplate="%{x}: %{customdata:.1f}<extra>average</extra>")
        if np.isfinite(summary.get(key, np.nan)):
            fig.add_scatter(x=emotions, y=[summary[key]] * len(emotions), mode="lines", row=1, col=col,
                            line=dict(color="black", width=2), name="this clip", showlegend=col == 1,
                            hovertemplate=f"this clip: {summary[key]:.1f}<extra></extra>")
    fig.update_annotations(font_size=12)
    fig.update_layout(legend=dict(orientation="h", y=-0.35))
    return _layout(fig, title, "", "", height=340)


# --- light charts for the live view: SVG text, drawn in a few milliseconds -------------------------------------
# A Plotly chart redrawn every hop cost the Live page more time than classifying the window (bench_live_page.py).

def probability_bars_svg(probs: dict[str, float], width: int = 400) -> str:
    """A horizontal bar per label (in config.LABELS order), its share of `width` and its percentage."""
    labels = [label for label in config.LABELS if label in probs] + sorted(set(probs) - set(config.LABELS))
    row, left, right = 24, 90, 48
    span = width - left - right
    parts = []
    for i, label in enumerate(labels):
        y, p = i * row, min(1.0, max(0.0, float(probs[label])))
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{p * span:.1f}" height="{row - 6}" '
                     f'fill="{EMOTION_COLOURS.get(label, "#888888")}" data-label="{escape(label)}"/>'
                     f'<text x="{left + p * span + 6:.1f}" y="{y + 16}">{p:.0%}</text>')
    summary = ", ".join(f"{label} {probs[label]:.0%}" for label in labels)
    return _svg(width, row * len(labels), f"Emotion probabilities: {summary}", "".join(parts))


def timeline_svg(windows: Sequence, labels: Sequence[str], width: int = 720, height: int = 220) -> str:
    """Each label's probability per window (a line through the windows' centres, broken where a window is
    silent), silent windows shaded grey one hop wide, the time axis in seconds of the stream; a legend on top."""
    left, top, bottom, right = 40, 28, 22, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    centres = np.array([(w.start + w.end) / 2 for w in windows], dtype=float)
    step = float(np.median(np.diff(centres))) if len(centres) > 1 else (windows[0].end - windows[0].start
                                                                       if windows else 1.0)
    t0 = centres[0] - step / 2 if len(centres) else 0.0
    scale = plot_w / max(len(centres) * step, 1e-9)

    def x(t: float) -> float:
        return left + (t - t0) * scale

    def y(p: float) -> float:
        return top + (1 - p) * plot_h

    parts = [f'<rect x="{x(c - step / 2):.1f}" y="{top}" width="{step * scale:.1f}" height="{plot_h}" '
             f'fill="{EMOTION_COLOURS["silence"]}" class="silence"/>'
             for c, w in zip(centres, windows) if not w.probabilities]
    for p in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(p):.1f}" y2="{y(p):.1f}" stroke="#cccccc"/>'
                     f'<text x="{left - 4}" y="{y(p) + 4:.1f}" text-anchor="end">{p:.0%}</text>')
    t1 = t0 + len(centres) * step
    tick = max(1, int(np.ceil((t1 - t0) / 6)))
    for t in range(int(np.ceil(t0 / tick)) * tick, int(t1) + 1, tick):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle">{t} s</text>')
    spacing = min(84.0, (width - left) / max(len(labels), 1))
    for i, label in enumerate(labels):
        colour = EMOTION_COLOURS.get(label, "#888888")
        parts.append(f'<rect x="{left + i * spacing:.0f}" y="6" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{left + i * spacing + 14:.0f}" y="15">{escape(label)}</text>')
        runs, run = [], []
        for c, w in zip(centres, windows):
            if w.probabilities:
                run.append(f"{x(c):.1f},{y(w.probabilities.get(label, 0.0)):.1f}")
            elif run:
                runs, run = runs + [run], []
        for points in runs + [run]:
            if points:
                parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                             f'stroke-width="2" data-label="{escape(label)}"/>')
    return _svg(width, height, "Emotion probabilities over time", "".join(parts))


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" style="max-width:100%;height:auto;font:12px sans-serif" role="img" '
            f'aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>{body}</svg>')

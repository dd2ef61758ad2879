"""Reports of a model's evaluation, to keep or hand in: a self-contained HTML page, its figures as PNG files,
and the per-clip predictions as CSV.

The HTML report holds the model card (name, features, model, corpora, speakers, dates, library versions), the
protocol with its plain description, accuracy/UAR/macro F1, the per-fold table, the confusion matrix (counts and
shares of each true emotion), the per-class table and, for Keras models, the training curves. Its figures are
PNG images drawn with matplotlib (Agg: no display, no browser) and embedded as data: URIs, so the report is one
file of a few hundred kB that opens offline in any browser, prints and can be mailed; it has no script and
fetches nothing. (Plotly's interactive figures would need plotly.js inlined, 4.6 MB per report, and plotly's
own PNG export needs Kaleido and a Chrome install, which a user's machine may not have.)

Every function here returns str or bytes and writes nothing; the CLI (`python -m ser_core report`) and the
Train page's download buttons decide where the result goes. A report is made from a TrainingRun, an
EvaluationResult, a bundle's metadata (dict) or a bundle folder / model name: see `report_data`.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from . import config
from .errors import ModelError
from .evaluation import ADAPTATION_DESCRIPTION, PROTOCOL_DESCRIPTIONS, skipped_note

PROTOCOL_EXPLANATIONS = {
    "speaker": "Every test fold holds speakers that the model never heard in training, so these figures estimate "
               "how well it recognises the emotions of a new voice.",
    "random": "Clips were split at random: the same speakers (and augmented copies of the same clips) sit on both "
              "sides of the split, so the model is partly tested on voices it already knows. These figures are "
              "higher than what a new voice would get; compare them with the speaker protocol.",
    "corpus": "Each corpus was held out in turn and the model trained on the others, on the emotions they share: "
              "these figures say how well it carries over to recordings made elsewhere.",
}
_KERAS_ONLY = ("learning_rate", "batch_size", "epochs", "dropout", "optimizer", "patience", "validation_share")
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)  # fixed, so the same report gives the same bytes


@dataclass
class ReportData:
    """What a report shows, gathered from a run, a result or a saved bundle."""

    name: str
    evaluation: dict                                  # EvaluationResult.to_dict()
    card: dict[str, str] = field(default_factory=dict)  # model card fields, in display order
    versions: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    history: dict[str, list[dict]] = field(default_factory=dict)  # epoch histories per fit
    predictions: pd.DataFrame | None = None
    _figures: dict[str, bytes] | None = field(default=None, repr=False, compare=False)  # drawn once

    @property
    def has_curves(self) -> bool:
        return any(self.history.values())


def _vocabulary_order(label: str) -> int:
    return config.LABELS.index(label) if label in config.LABELS else len(config.LABELS)


def _join(values: Iterable) -> str:
    return ", ".join(str(v) for v in values)


def _card(evaluation: dict, *, name: str, model: str, features: str, corpora: list[str], n_clips: int,
          n_speakers: int, labels: list[str], speaker_norm: bool, augmentation: list[str],
          created: str | None) -> dict[str, str]:
    skipped = evaluation.get("skipped") or []
    card = {"name": name, "model": model, "features": features, "corpora": _join(corpora),
            "clips": str(n_clips) + (f" ({len(skipped)} more left out: could not be used)" if skipped else ""),
            "speakers": str(n_speakers),
            "emotions": _join(sorted(labels, key=_vocabulary_order)),
            "speaker normalisation": "yes (calibrate on the speaker first)" if speaker_norm else "no",
            "augmentation": ("+".join(augmentation) + " (training folds only)") if augmentation else "none"}
    if evaluation.get("adapted"):
        card["adaptation"] = ADAPTATION_DESCRIPTION
    if evaluation.get("voice_norm"):
        card["normalised by what it hears"] = f"yes: the room and the voice; test clips scored {evaluation['scoring']}"
    if created:
        card["saved"] = created
    card["evaluated"] = evaluation.get("date", "")
    return card


def from_result(result, *, name: str | None = None) -> ReportData:
    """A report of an EvaluationResult (cross_validate / evaluate), with this install's library versions."""
    from .bundles import library_versions

    evaluation = result.to_dict()
    name = name or f"{result.features} + {result.classifier}"
    return ReportData(name=name, evaluation=evaluation, versions=library_versions(),
                      predictions=result.predictions,
                      card=_card(evaluation, name=name, model=result.classifier, features=result.features,
                                 corpora=result.corpora, n_clips=result.n_clips, n_speakers=result.n_speakers,
                                 labels=result.pooled["labels"], speaker_norm=result.speaker_norm,
                                 augmentation=result.augmentation, created=None))


def from_run(run, *, name: str | None = None) -> ReportData:
    """A report of a TrainingRun (not saved yet, or saved under `name`)."""
    from .bundles import library_versions

    if run.result is None:
        raise ModelError("This run was stopped before a fold finished: there is no evaluation to report.")
    evaluation = run.result.to_dict()
    name = name or f"{run.config.model} on {run.config.features} (not saved)"
    return ReportData(name=name, evaluation=evaluation, versions=library_versions(),
                      config=run.config.to_dict(), history=dict(run.history), predictions=run.result.predictions,
                      card=_card(evaluation, name=name, model=run.config.model, features=run.config.features,
                                 corpora=run.corpora, n_clips=run.n_clips, n_speakers=run.n_speakers,
                                 labels=run.labels, speaker_norm=run.config.speaker_norm,
                                 augmentation=list(run.config.augmentation), created=None))


def from_metadata(metadata: dict, predictions: pd.DataFrame | None = None) -> ReportData:
    """A report of a saved bundle's metadata.json (and its predictions.csv, when given)."""
    evaluation = metadata.get("evaluation")
    name = metadata.get("name", "model")
    if not evaluation:
        raise ModelError(f"Model {name!r} was saved without an evaluation: there is nothing to report.")
    training = metadata.get("training") or {}
    features = (metadata.get("features") or {}).get("name", evaluation.get("features", "?"))
    settings = metadata.get("config") or {}
    return ReportData(
        name=name, evaluation=evaluation, versions=dict(metadata.get("versions") or {}), config=settings,
        history=dict(training.get("history") or {}), predictions=predictions,
        card=_card(evaluation, name=name, model=metadata.get("classifier", metadata.get("kind", "?")),
                   features=features, corpora=training.get("corpora", evaluation.get("corpora", [])),
                   n_clips=training.get("n_clips", evaluation.get("n_clips")),
                   n_speakers=training.get("n_speakers", evaluation.get("n_speakers")),
                   labels=metadata.get("labels", evaluation["pooled"]["labels"]),
                   speaker_norm=bool(metadata.get("speaker_norm", evaluation.get("speaker_norm"))),
                   augmentation=list(evaluation.get("augmentation") or []), created=metadata.get("created")))


def from_bundle(model: str | Path | None = None) -> ReportData:
    """A report of a saved model, by name or folder (shipped or user), without loading the model itself."""
    from .bundles import read_metadata, read_predictions

    path, metadata = read_metadata(model)
    return from_metadata(metadata, read_predictions(path))


def history_from_events(events: Iterable) -> dict[str, list[dict]]:
    """Epoch histories per fit from training events (as TrainingRun.history holds them)."""
    history: dict[str, list[dict]] = {}
    for event in events:
        if getattr(event, "kind", None) == "epoch":
            fit = "final" if event.fold is None else f"fold {event.fold + 1}/{event.folds}"
            history.setdefault(fit, []).append({"epoch": event.epoch, **event.metrics})
    return history


def report_data(source: Any, *, events: Iterable | None = None) -> ReportData:
    """ReportData from a ReportData, TrainingRun, EvaluationResult, bundle metadata (dict) or a bundle folder or
    model name; `events` (a run's training events) supply the training curves when given."""
    from .evaluation import EvaluationResult
    from .training import TrainingRun

    if isinstance(source, ReportData):
        data = source
    elif isinstance(source, TrainingRun):
        data = from_run(source)
    elif isinstance(source, EvaluationResult):
        data = from_result(source)
    elif isinstance(source, dict):
        data = from_metadata(source)
    elif isinstance(source, (str, Path)):
        data = from_bundle(source)
    else:
        raise TypeError(f"cannot make a report from {type(source).__name__}")
    if events is not None:
        history = history_from_events(events)
        if history:
            data = dataclasses.replace(data, history=history, _figures=None)
    return data


# ----- PNG figures (matplotlib, object-oriented API: no pyplot state, safe on any thread) -----

def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _new_figure(width: float, height: float, *, left: float = 0.8, right: float = 0.25, bottom: float = 1.1,
                top: float = 0.45):
    """A figure with fixed margins in inches: a layout engine (constrained, tight) costs 2-3 times the drawing."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    return fig


def _confusion_png(pooled: dict, normalize: bool) -> bytes:
    labels = pooled["labels"]
    matrix = np.asarray(pooled["confusion"], dtype=float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.6 * len(labels)
    fig = _new_figure(size + 1.6, size, left=1.2, right=0.7, bottom=1.1)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else max(matrix.max(), 1))
    top = 1 if normalize else max(matrix.max(), 1)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.0%}" if normalize else f"{int(value)}", ha="center", va="center", fontsize=9,
                color="white" if value > 0.6 * top else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (share of each true emotion)" if normalize else "Confusion matrix (clips)",
                 fontsize=11)
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, format="{x:.0%}" if normalize else None)
    return _png(fig)


def _per_class_png(pooled: dict) -> bytes:
    labels = pooled["labels"]
    x = np.arange(len(labels))
    fig = _new_figure(2.5 + 0.9 * len(labels), 4, left=0.6, bottom=0.8)
    ax = fig.subplots()
    for k, (metric, colour) in enumerate([("precision", "#4c72b0"), ("recall", "#dd8452"), ("f1", "#55a868")]):
        ax.bar(x + (k - 1) * 0.27, [pooled["per_class"][label][metric] for label in labels], width=0.27,
               label="F1" if metric == "f1" else metric, color=colour)
    ax.axhline(1 / max(len(labels), 1), color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.set_title("Per class (pooled over the test folds)", fontsize=11)
    ax.legend(fontsize=8, ncols=4, loc="upper left")
    return _png(fig)


def _per_fold_png(per_fold: list[dict], pooled: dict) -> bytes:
    names = [fold["name"] for fold in per_fold]
    x = np.arange(len(names))
    fig = _new_figure(2.5 + 0.8 * max(len(names), 2), 4, left=0.6, bottom=0.9)
    ax = fig.subplots()
    ax.bar(x - 0.2, [fold["accuracy"] for fold in per_fold], width=0.4, label="accuracy", color="#4c72b0")
    ax.bar(x + 0.2, [fold["uar"] for fold in per_fold], width=0.4, label="UAR", color="#dd8452")
    ax.axhline(pooled["accuracy"], color="#4c72b0", linestyle="--", linewidth=1, label="pooled accuracy")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.set_title("Per test fold", fontsize=11)
    ax.legend(fontsize=8, ncols=3, loc="upper left")
    return _png(fig)


def _curves_png(history: dict[str, list[dict]]) -> bytes:
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    fig = _new_figure(12, 4, left=0.7, right=2.0, bottom=0.6)
    axes = fig.subplots(1, 2)
    fig.subplots_adjust(wspace=0.25)
    fits = [("final fit" if fit == "final" else fit, epochs) for fit, epochs in history.items() if epochs]
    colours = [colormaps["tab20"](i % 20) for i in range(len(fits))]
    for ax, metric, title in zip(axes, ("loss", "accuracy"), ("Loss per epoch", "Accuracy per epoch")):
        for colour, (fit, epochs) in zip(colours, fits):
            x = [e["epoch"] for e in epochs]
            ax.plot(x, [e.get(metric, np.nan) for e in epochs], color=colour)
            ax.plot(x, [e.get(f"val_{metric}", np.nan) for e in epochs], color=colour, linestyle="--")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
    # One entry per fit (its colour) and one per line style, however many folds there were.
    handles = [Line2D([], [], color="black", label="training"),
               Line2D([], [], color="black", linestyle="--", label="validation")]
    named = list(zip(colours, fits))
    named = named if len(named) <= 20 else named[:19] + named[-1:]  # the final fit is listed last
    handles += [Line2D([], [], color=colour, label=fit) for colour, (fit, _) in named]
    axes[1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _png(fig)


def figures_png(source: Any, *, events: Iterable | None = None) -> dict[str, bytes]:
    """The report's figures as PNG bytes by file name; the training curves only for runs with epoch histories."""
    data = report_data(source, events=events)
    if data._figures is not None:
        return dict(data._figures)
    pooled = data.evaluation["pooled"]
    figures = {"confusion.png": _confusion_png(pooled, False),
               "confusion-normalised.png": _confusion_png(pooled, True),
               "per-class.png": _per_class_png(pooled),
               "per-fold.png": _per_fold_png(data.evaluation["per_fold"], pooled)}
    if data.has_curves:
        figures["training-curves.png"] = _curves_png(data.history)
    data._figures = figures
    return dict(figures)


def figures_png_zip(source: Any, *, events: Iterable | None = None) -> bytes:
    """The report's figures as a zip of PNG files (same bytes for the same report)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNG is compressed already
        for name, png in figures_png(source, events=events).items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), png)
    return buffer.getvalue()


def predictions_csv(source: Any) -> str:
    """Per-clip predictions as CSV: fold, path, corpus, speaker, true and predicted label, correct, and each
    label's probability (prob_<label>) when the classifier gives them."""
    from .evaluation import predictions_to_csv

    data = report_data(source)
    if data.predictions is None:
        raise ModelError(f"Model {data.name!r} was saved without per-clip predictions (by an older version of "
                         "SER Studio): train it again to get them.")
    return predictions_to_csv(data.predictions)


# ----- HTML -----

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.protocol{background:#e8f1fb;border-left:4px solid #1f77b4;padding:.6em 1em}
.warning{background:#fdf1e1;border-left:4px solid #e08a00;padding:.6em 1em}
.metrics{display:flex;gap:1.5em;flex-wrap:wrap}.metric{border:1px solid #ddd;border-radius:6px;padding:.5em 1em}
.metric b{display:block;font-size:1.6em}img{max-width:100%;height:auto}
.pair{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}footer{margin-top:3em;color:#777;font-size:.85em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _table(header: list[str], rows: list[list[Any]], left: Iterable[int] = (0,)) -> str:
    """An HTML table; the columns in `left` are left-aligned (names, text), the rest right-aligned (numbers)."""
    left = set(left)

    def cells(tag: str, values: list[Any]) -> str:
        return "".join(f'<{tag}{" class=l" if i in left else ""}>{_e(v)}</{tag}>' for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return _join(value) or "none"
    return str(value)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _confusion_tables(pooled: dict) -> tuple[str, str]:
    labels = pooled["labels"]
    matrix = np.asarray(pooled["confusion"], dtype=int)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    header = ["true \\ predicted", *labels, "clips"]
    counts = _table(header, [[label, *row.tolist(), int(row.sum())] for label, row in zip(labels, matrix)])
    normalised = _table(header, [[label, *(f"{v:.0%}" for v in share), int(row.sum())]
                                 for label, share, row in zip(labels, shares, matrix)])
    return counts, normalised


def html_report(source: Any, *, events: Iterable | None = None, title: str | None = None) -> str:
    """A self-contained HTML report (no script, nothing fetched): model card, protocol, figures, tables."""
    data = report_data(source, events=events)
    ev = data.evaluation
    pooled = ev["pooled"]
    protocol = ev["protocol"]
    description = ev.get("description") or _protocol_description(protocol)
    figures = figures_png(data)
    title = title or f"SER Studio report: {data.name}"
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_e(title)}</h1>",
             f'<p class="protocol"><strong>Protocol: {_e(protocol)}</strong> ({_e(description)}), '
             f'{_e(ev["folds"])} folds, seed {_e(ev["seed"])}. '
             f'Accuracy {_pct(pooled["accuracy"])}, UAR {_pct(pooled["uar"])}, '
             f'macro F1 {_pct(pooled["macro_f1"])}.</p>']

    parts += ['<section id="card"><h2>Model card</h2>',
              _table(["field", "value"], [[k, v] for k, v in data.card.items()], left=(0, 1))]
    from .training import BASELINES

    settings = {k: v for k, v in data.config.items()
                if not (data.config.get("model") in BASELINES and k in _KERAS_ONLY)}
    if settings:
        parts += ["<h3>Training configuration</h3>",
                  _table(["setting", "value"], [[k, _setting(v)] for k, v in settings.items()], left=(0, 1))]
    if data.versions:
        parts += ["<h3>Library versions</h3>",
                  _table(["library", "version"], [[k, v] for k, v in data.versions.items()], left=(0, 1))]
    parts.append("</section>")

    parts += ['<section id="protocol"><h2>Protocol</h2>',
              f"<p><strong>{_e(protocol)}</strong>: {_e(description)}.</p>",
              f"<p>{_e(PROTOCOL_EXPLANATIONS.get(protocol, ''))}</p>",
              "<ul>",
              f"<li>{_e(ev['folds'])} folds, seed {_e(ev['seed'])}</li>",
              f"<li>data: {_e(_join(ev['corpora']))}: {_e(ev['n_clips'])} clips, {_e(ev['n_speakers'])} speakers</li>",
              *([f"<li>{_e(skipped_note(ev['skipped'], limit=len(ev['skipped'])))}</li>"]
                if ev.get("skipped") else []),
              f"<li>features: {_e(ev['features'])}; model: {_e(ev['classifier'])}</li>",
              f"<li>per-speaker normalisation: {'yes' if ev.get('speaker_norm') else 'no'}</li>",
              *([f"<li>adapted: {_e(ADAPTATION_DESCRIPTION)}</li>"]
                if ev.get("adapted") else []),
              *([f"<li>normalised by what it has heard; test clips scored {_e(ev.get('scoring'))}</li>"]
                if ev.get("voice_norm") else []),
              "<li>augmentation: " + (_e("+".join(ev["augmentation"])) + " (training folds only)"
                                      if ev.get("augmentation") else "none") + "</li>",
              "</ul>"]
    if protocol == "random":
        parts.append('<p class="warning">The random protocol leaks speakers between training and test: these '
                     "figures overstate how well the model does on a new voice.</p>")
    if not ev.get("complete", True):
        parts.append(f'<p class="warning">This run was stopped: the figures cover the {len(ev["per_fold"])} '
                     f"folds of {_e(ev['folds'])} that finished.</p>")
    parts.append("</section>")

    chance = 1 / max(len(pooled["labels"]), 1)
    parts += ['<section id="results"><h2>Results</h2><div class="metrics">',
              f'<div class="metric">accuracy<b>{_pct(pooled["accuracy"])}</b></div>',
              f'<div class="metric">UAR (mean recall)<b>{_pct(pooled["uar"])}</b></div>',
              f'<div class="metric">macro F1<b>{_pct(pooled["macro_f1"])}</b></div>',
              f'<div class="metric">chance ({len(pooled["labels"])} emotions)<b>{_pct(chance)}</b></div>',
              f"</div><p>Pooled over the test folds: {_e(pooled['n'])} test clips.</p></section>"]

    fold_rows = [[f["name"], _pct(f["accuracy"]), _pct(f["uar"]), _pct(f["macro_f1"]), f["n"],
                  _join(f.get("test_speakers", []))] for f in ev["per_fold"]]
    parts += ['<section id="per-fold"><h2>Per fold</h2>',
              _table(["fold", "accuracy", "UAR", "macro F1", "clips", "test speakers"], fold_rows, left=(0, 5)),
              _img(figures["per-fold.png"], "accuracy and UAR per fold"), "</section>"]

    counts, normalised = _confusion_tables(pooled)
    parts += ['<section id="confusion"><h2>Confusion matrix</h2>',
              "<p>Rows: the true emotion; columns: the emotion predicted. Pooled over the test folds.</p>",
              "<h3>Clips</h3>", counts, "<h3>Share of each true emotion</h3>", normalised,
              '<div class="pair">', _img(figures["confusion.png"], "confusion matrix (clips)"),
              _img(figures["confusion-normalised.png"], "confusion matrix (shares)"), "</div></section>"]

    class_rows = [[label, _pct(row["precision"]), _pct(row["recall"]), _pct(row["f1"]), row["support"]]
                  for label, row in pooled["per_class"].items()]
    parts += ['<section id="per-class"><h2>Per class</h2>',
              _table(["emotion", "precision", "recall", "F1", "clips"], class_rows),
              _img(figures["per-class.png"], "precision, recall and F1 per class"), "</section>"]

    if "training-curves.png" in figures:
        parts += ['<section id="curves"><h2>Training curves</h2>',
                  "<p>Loss and accuracy per epoch of each fit, on its training clips (solid) and on validation "
                  "speakers held out of the training folds (dashed); the best weights by validation loss are "
                  "kept.</p>", _img(figures["training-curves.png"], "training curves"), "</section>"]

    parts.append('<section id="predictions"><h2>Per-clip predictions</h2>')
    if data.predictions is not None:
        n, right = len(data.predictions), int(data.predictions["correct"].astype(bool).sum())
        parts.append(f"<p>{n} test clips, {right} classified correctly ({_pct(right / max(n, 1))}); every clip "
                     "with its fold, speaker, true and predicted emotion"
                     + (" and each emotion's probability" if any(c.startswith("prob_")
                                                                for c in data.predictions.columns) else "")
                     + " is in predictions.csv.</p>")
    else:
        parts.append("<p>Not included: this model was saved without per-clip predictions.</p>")
    parts.append("</section>")
    parts.append(f"<footer>Made by SER Studio from {_e(data.name)}. Emotion vocabulary: "
                 f"{_e(_join(config.LABELS))}.</footer></body></html>\n")
    return "\n".join(parts)


def _protocol_description(protocol: str) -> str:
    return PROTOCOL_DESCRIPTIONS.get(protocol, protocol)

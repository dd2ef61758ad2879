"""The live view's SVG charts: what they draw has to match the probabilities they are given."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ser_core import config, plots
from ser_core.inference import WindowPrediction

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def test_probability_bars_are_proportional_in_label_order():
    probs = {"sad": 0.25, "angry": 0.5, "neutral": 0.0, "happy": 0.25}
    root = parse(plots.probability_bars_svg(probs))
    bars = {rect.get("data-label"): float(rect.get("width")) for rect in root.iter(f"{SVG}rect")}
    assert list(bars) == [label for label in config.LABELS if label in probs]
    assert bars["angry"] == pytest.approx(2 * bars["sad"]) and bars["sad"] == pytest.approx(bars["happy"])
    assert bars["neutral"] == 0
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "50%" in texts and "angry" in texts
    assert "angry 50%" in root.get("aria-label")


def test_probability_bars_escape_labels_and_clip_values():
    root = parse(plots.probability_bars_svg({"<b>loud</b>": 1.3, "sad": -0.1}))
    widths = [float(rect.get("width")) for rect in root.iter(f"{SVG}rect")]
    assert widths[0] == 0 and widths[1] == pytest.approx(400 - 90 - 48)  # sad first (a known label), full width
    assert "<b>loud</b>" in [text.text for text in root.iter(f"{SVG}text")]  # shown as text, not markup


def windows_with_a_silence() -> list[WindowPrediction]:
    voiced = {"angry": 0.8, "sad": 0.2}
    return [WindowPrediction(i * 0.5, i * 0.5 + 3.0, "silence", {}) if i == 3 else
            WindowPrediction(i * 0.5, i * 0.5 + 3.0, "angry", voiced) for i in range(7)]


def test_timeline_breaks_each_line_at_silence_and_shades_it():
    root = parse(plots.timeline_svg(windows_with_a_silence(), ["angry", "sad"]))
    lines = [line for line in root.iter(f"{SVG}polyline")]
    assert [line.get("data-label") for line in lines] == ["angry", "angry", "sad", "sad"]
    assert [len(line.get("points").split()) for line in lines] == [3, 3, 3, 3]
    [silence] = [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "silence"]
    last_x_before = float(lines[0].get("points").split()[-1].split(",")[0])
    first_x_after = float(lines[1].get("points").split()[0].split(",")[0])
    assert last_x_before < float(silence.get("x")) < first_x_after  # the shade sits in the gap


def test_timeline_heights_follow_probabilities():
    root = parse(plots.timeline_svg(windows_with_a_silence(), ["angry", "sad"], height=220))
    angry, _, sad, _ = root.iter(f"{SVG}polyline")
    y_angry = [float(point.split(",")[1]) for point in angry.get("points").split()]
    y_sad = [float(point.split(",")[1]) for point in sad.get("points").split()]
    top, plot_h = 28, 220 - 28 - 22
    assert y_angry == pytest.approx([top + 0.2 * plot_h] * 3, abs=0.1)
    assert y_sad == pytest.approx([top + 0.8 * plot_h] * 3, abs=0.1)


def test_timeline_of_one_window():
    root = parse(plots.timeline_svg([WindowPrediction(0.0, 3.0, "sad", {"sad": 1.0})], ["sad"]))
    [line] = root.iter(f"{SVG}polyline")
    assert len(line.get("points").split()) == 1


def test_confusion_shows_counts_or_each_true_emotion_as_shares():
    pooled = {"labels": ["angry", "sad"], "confusion": [[3, 1], [0, 0]]}  # no sad clip: a row of zeros, not NaN
    counts = plots.confusion(pooled)
    assert counts.data[0].z.tolist() == [[3, 1], [0, 0]] and counts.data[0].text[0] == ["3", "1"]
    shares = plots.confusion(pooled, normalize=True)  # spelt as load_audio(normalize=...) and normalize_speakers
    assert shares.data[0].z.tolist() == [[0.75, 0.25], [0, 0]] and shares.data[0].text[0] == ["75%", "25%"]
    assert shares.layout.title.text == "Confusion matrix (share of each true emotion)"


def test_training_curves_tell_folds_and_the_final_fit_apart():
    from ser_core.plots import training_curves
    from ser_core.training import Event

    events = [Event("epoch", fold=fold, folds=3, epoch=epoch, epochs=2, metrics={"loss": 1.0 / epoch,
                                                                                 "val_loss": 1.2 / epoch})
              for fold in (0, 1, 2, None) for epoch in (1, 2)]
    lines = training_curves(events).data
    colours = {line.name.rsplit(" ", 1)[0]: line.line.color for line in lines}
    assert list(colours) == ["fold 1", "fold 2", "fold 3", "final fit"]
    assert len(set(colours.values())) == 4  # every fit its own colour, train and validation alike

"""Reports of a trained model: per-clip predictions, the self-contained HTML report, the PNG figures, the CLI
and the Train page's download buttons, on short real training runs over generated clips."""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_core import config, reports
from ser_core.bundles import PREDICTIONS_FILE, read_predictions
from ser_core.corpora import build_catalog
from ser_core.errors import ModelError
from ser_core.evaluation import compute_metrics, evaluate
from ser_core.training import TrainConfig, save_run, train
from tests.conftest import PROJECT_ROOT
from tests.corpus_trees import write_ravdess_tree
from tests.train_page import train_svm_on_page

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4), duration=1.0)
    return root


@pytest.fixture(scope="module")
def catalog(data_root) -> pd.DataFrame:
    return build_catalog(data_root)


@pytest.fixture(scope="module")
def svm_run(catalog):
    return train(catalog, TrainConfig(model="svm", features="librosa180", folds=2), n_jobs=1)


@pytest.fixture(scope="module")
def mlp_run(catalog):
    return train(catalog, TrainConfig(model="mlp", features="librosa180", epochs=3, folds=2, batch_size=16),
                 n_jobs=1)


class Page(HTMLParser):
    """What a browser would see: text, tables (rows of cell texts), and every tag's attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, *header: str) -> list[list[str]]:
        """The body rows of the first table whose header row starts with `header`."""
        return next(t[1:] for t in self.tables if tuple(t[0][:len(header)]) == header)

    def tables_with(self, *header: str) -> list[list[list[str]]]:
        return [t[1:] for t in self.tables if tuple(t[0][:len(header)]) == header]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_every_test_clip_is_kept_with_its_prediction_and_probabilities(svm_run, catalog):
    result = svm_run.result
    predictions = result.predictions
    assert len(predictions) == len(catalog)  # the speaker protocol tests every clip once
    assert list(predictions.columns[:7]) == ["fold", "path", "corpus", "speaker", "true_label",
                                             "predicted_label", "correct"]
    assert sorted(predictions["path"]) == sorted(catalog["path"])
    truth = dict(zip(catalog["path"], catalog["label"]))
    assert (predictions["true_label"] == predictions["path"].map(truth)).all()
    assert sorted(predictions["fold"].unique()) == [1, 2]
    for fold, part in predictions.groupby("fold"):  # each fold's rows are its test speakers
        assert sorted(part["speaker"].unique()) == result.per_fold[fold - 1]["test_speakers"]
    probabilities = predictions[[f"prob_{label}" for label in ["neutral", "happy", "sad", "angry"]]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    again = compute_metrics(predictions["true_label"], predictions["predicted_label"])
    assert again["confusion"] == result.pooled["confusion"]
    record = result.to_dict()
    assert "predictions" not in record and json.dumps(record)  # the app's dict and metadata.json stay small


def test_a_saved_bundle_keeps_its_predictions_beside_a_small_metadata_json(tmp_path, svm_run):
    path = save_run(svm_run, "kept", tmp_path)
    assert (path / PREDICTIONS_FILE).is_file()
    metadata_text = (path / "metadata.json").read_text()
    assert svm_run.result.predictions["path"].iloc[0] not in metadata_text  # no per-clip rows in it
    saved = read_predictions(path)
    pd.testing.assert_frame_equal(saved.drop(columns=[c for c in saved if c.startswith("prob_")]),
                                  svm_run.result.predictions.drop(
                                      columns=[c for c in saved if c.startswith("prob_")]),
                                  check_dtype=False)
    assert reports.predictions_csv(path) == reports.predictions_csv(svm_run)
    assert [p.name for p in tmp_path.glob(".*")] == [".lock"]  # no staging folder left behind


def test_predictions_csv_has_one_row_per_test_clip_and_the_pooled_accuracy(svm_run):
    text = reports.predictions_csv(svm_run)
    table = pd.read_csv(io.StringIO(text))
    pooled = svm_run.result.pooled
    assert len(table) == pooled["n"] == sum(map(sum, pooled["confusion"]))
    accuracy = float(np.mean(table["true_label"] == table["predicted_label"]))
    assert accuracy == pytest.approx(pooled["accuracy"], abs=1e-12)
    assert table["correct"].tolist() == (table["true_label"] == table["predicted_label"]).tolist()


def test_html_report_is_self_contained_and_holds_the_figures_of_the_result(svm_run):
    text = reports.html_report(svm_run, title="My SVM")
    page = Page(text)
    words = " ".join(page.text)
    pooled = svm_run.result.pooled
    assert text.startswith("<!DOCTYPE html>") and "My SVM" in words
    assert "Protocol: speaker" in words and "speaker-independent" in words and "never heard" in words
    assert f"{pooled['accuracy']:.1%}" in words and f"{pooled['uar']:.1%}" in words
    counts, shares = page.tables_with("true \\ predicted")
    assert [row[0] for row in counts] == pooled["labels"]
    assert [[int(v) for v in row[1:-1]] for row in counts] == pooled["confusion"]
    matrix = np.asarray(pooled["confusion"])
    assert [row[1:-1] for row in shares] == [[f"{v:.0%}" for v in r / r.sum()] for r in matrix]
    per_class = page.table("emotion", "precision", "recall", "F1", "clips")
    assert per_class == [[label, f"{m['precision']:.1%}", f"{m['recall']:.1%}", f"{m['f1']:.1%}", str(m["support"])]
                         for label, m in pooled["per_class"].items()]
    folds = page.table("fold", "accuracy", "UAR")
    assert [row[0] for row in folds] == ["fold 1/2", "fold 2/2"]
    card = dict(page.table("field", "value"))
    assert card["model"] == "svm" and card["features"] == "librosa180" and card["speakers"] == "4"
    assert "scikit-learn" in dict(page.table("library", "version"))
    # Nothing is fetched: no script at all, every image inline, no link to anything outside the file.
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object", "embed")]
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            assert not attrs.get(name, "").lower().startswith(("http:", "https:", "//")), (tag, attrs)
    assert "http://" not in text and "https://" not in text
    assert "Training curves" not in words  # an SVM has no epochs


def test_a_report_says_when_the_models_were_adapted_to_the_test_speakers(catalog, svm_run):
    adapted = evaluate(catalog, features="librosa180", classifier="svm", folds=2, adapt=True, n_jobs=1)
    page = Page(reports.html_report(adapted))
    assert "self-trained on its test clips, unlabelled" in " ".join(page.text)
    assert "transductive" in dict(page.table("field", "value"))["adaptation"]
    assert "adaptation" not in dict(Page(reports.html_report(svm_run)).table("field", "value"))


def test_figures_zip_holds_valid_pngs_and_curves_for_a_keras_run(svm_run, mlp_run):
    from PIL import Image

    with zipfile.ZipFile(io.BytesIO(reports.figures_png_zip(svm_run))) as archive:
        assert archive.namelist() == ["confusion.png", "confusion-normalised.png", "per-class.png", "per-fold.png"]
    data = reports.figures_png_zip(mlp_run)
    assert data == reports.figures_png_zip(mlp_run)  # the same report gives the same bytes
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist()[-1] == "training-curves.png"
        for name in archive.namelist():
            png = archive.read(name)
            assert png[:8] == PNG_SIGNATURE and len(png) > 5_000, name
            width, height = png_size(png)
            assert 300 < width < 2000 and 200 < height < 1500, (name, width, height)
            with Image.open(io.BytesIO(png)) as image:
                image.verify()
                assert image.size == (width, height)
    page = Page(reports.html_report(mlp_run))
    assert "Training curves" in " ".join(page.text)
    assert any(attrs.get("alt") == "training curves" for tag, attrs in page.tags if tag == "img")


def test_report_of_a_bundle_without_predictions_says_so(tmp_path, svm_run):
    path = save_run(svm_run, "older", tmp_path)
    (path / PREDICTIONS_FILE).unlink()
    assert "saved without per-clip predictions" in " ".join(Page(reports.html_report(path)).text)
    with pytest.raises(ModelError, match="without per-clip predictions"):
        reports.predictions_csv(path)
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["evaluation"] = None
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match="without an evaluation"):
        reports.html_report(path)


def test_shipped_model_report_matches_its_card():
    path = config.SHIPPED_MODELS_DIR / config.DEFAULT_MODEL
    metadata = json.loads((path / "metadata.json").read_text())
    page = Page(reports.html_report(config.DEFAULT_MODEL))
    assert "Protocol: speaker" in " ".join(page.text)
    counts = page.tables_with("true \\ predicted")[0]
    assert [[int(v) for v in row[1:-1]] for row in counts] == metadata["evaluation"]["pooled"]["confusion"]
    predictions = read_predictions(path)
    if predictions is not None:  # shipped per-clip predictions must be those the card's figures came from
        pooled = metadata["evaluation"]["pooled"]
        assert len(predictions) == pooled["n"]
        again = compute_metrics(predictions["true_label"], predictions["predicted_label"])
        assert again["confusion"] == pooled["confusion"]
        assert again["accuracy"] == pytest.approx(pooled["accuracy"], abs=1e-12)


def ser(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_core", *map(str, args)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_writes_the_three_files_and_refuses_a_missing_model(tmp_path, svm_run):
    bundle = save_run(svm_run, "cli-report", tmp_path / "models")
    out = tmp_path / "out"
    result = ser("report", bundle, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert sorted(p.name for p in out.iterdir()) == ["figures.zip", "predictions.csv", "report.html"]
    assert record["predictions"] == str(out / "predictions.csv")
    assert (out / "report.html").read_text() == reports.html_report(bundle)
    assert (out / "predictions.csv").read_text() == reports.predictions_csv(svm_run)
    assert zipfile.ZipFile(out / "figures.zip").namelist()[0] == "confusion.png"
    missing = ser("report", "no-such-model", "--out", tmp_path / "nothing")
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "no-such-model" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "nothing").exists()
    shutil.copytree(bundle, tmp_path / "no-evaluation")
    metadata = json.loads((tmp_path / "no-evaluation" / "metadata.json").read_text())
    (tmp_path / "no-evaluation" / "metadata.json").write_text(json.dumps({**metadata, "evaluation": None}))
    empty = ser("report", tmp_path / "no-evaluation", "--out", tmp_path / "nothing")
    assert empty.returncode == 2 and "without an evaluation" in empty.stderr and "Traceback" not in empty.stderr


def test_train_page_offers_the_report_files_of_a_run_and_of_saved_models(monkeypatch, data_root):
    from streamlit.runtime.media_file_manager import MediaFileManager

    # Streamlit internals, as no public way exists: AppTest cannot click a download button nor read a deferred
    # file (st.download_button with a callable makes its file only when clicked), so this keeps each button's
    # callable as Streamlit registers it, and finds it again by the button's deferred file id.
    made = {}
    add_deferred = MediaFileManager.add_deferred

    def keep(self, data_callable, *args, **kwargs):
        file_id = add_deferred(self, data_callable, *args, **kwargs)
        made[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    at = train_svm_on_page(monkeypatch, data_root)
    assert not at.exception and not at.error
    run = at.session_state["job"].run

    def files(key: str) -> list:
        buttons = [at.download_button(key=f"report_{kind}_{key}") for kind in ("html", "png", "csv")]
        assert [b.label for b in buttons] == ["Report (HTML)", "Figures (PNG, zip)", "Predictions (CSV)"]
        return [made[b.proto.deferred_file_id]() for b in buttons]

    html, png, csv = files("run")
    expected = reports.from_run(run, name="svm-librosa180")
    assert html == reports.html_report(expected) and "Protocol: speaker" in html
    assert png == reports.figures_png_zip(expected)
    assert csv == reports.predictions_csv(run)
    assert len(pd.read_csv(io.StringIO(csv))) == run.result.pooled["n"]

    at.text_input(key="save_name").set_value("report-svm")
    at.button(key="FormSubmitter:save-Save model").click().run()
    assert not at.exception and "report-svm" in at.success[0].value
    saved = at.session_state["saved"]
    assert files("run")[0] == reports.html_report(reports.from_run(run, name="report-svm"))
    models = at.selectbox(key="card")
    models.select_index(models.options.index("report-svm (user)")).run()
    assert not at.exception
    html, png, csv = files("saved")
    assert html == reports.html_report(saved) and png == reports.figures_png_zip(saved)
    assert csv == reports.predictions_csv(saved) == reports.predictions_csv(run)

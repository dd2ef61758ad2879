"""The report downloads of the Train page in headless Chromium: a real click, a real download.

Uses the server, browser and page of test_browser.py (Debian's chromium and the shared corpora).
"""
from __future__ import annotations

from pathlib import Path

from ser_core import config
from tests.e2e.test_browser import browser, page, server  # noqa: F401 (fixtures)


def test_saved_model_report_downloads_as_html_naming_its_protocol(server, page, tmp_path):  # noqa: F811
    page.goto(f"{server}/Train")
    page.get_by_role("tab", name="Saved models").click()
    panel = page.get_by_role("tabpanel", name="Saved models")
    panel.get_by_text("Confusion matrix (clips)").first.wait_for()  # the shipped default model's results
    button = panel.get_by_role("button", name="Report (HTML)")
    with page.expect_download(timeout=120_000) as download_info:
        button.click()
    download = download_info.value
    assert download.suggested_filename == f"{config.DEFAULT_MODEL}-report.html"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    text = Path(saved).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Protocol: speaker</strong> (speaker-independent" in text
    assert f"SER Studio report: {config.DEFAULT_MODEL}" in text
    assert "<script" not in text and 'src="data:image/png;base64,' in text
    with page.expect_download(timeout=120_000) as download_info:
        panel.get_by_role("button", name="Predictions (CSV)").click()
    csv = tmp_path / "predictions.csv"
    download_info.value.save_as(csv)
    assert csv.read_text().startswith("fold,path,corpus,speaker,true_label,predicted_label,correct,prob_")
    assert page.locator('[data-testid="stException"]').count() == 0

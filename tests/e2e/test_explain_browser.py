"""Explaining a prediction on the Classify page in headless Chromium: a real TESS clip, a real click.

Uses the server, browser and page of test_browser.py (Debian's chromium and the shared corpora).
"""
from __future__ import annotations

from tests.e2e.test_browser import browser, page, server  # noqa: F401 (fixtures)


def test_classify_explains_a_tess_clip_with_an_occlusion_map_and_prosody(server, page, shared_corpora):  # noqa: F811
    clip = next((shared_corpora / "tess" / "OAF_angry").glob("*.*"))
    page.goto(f"{server}/Classify")
    page.get_by_text("Classify a clip").first.wait_for()
    page.set_input_files('input[type="file"]', str(clip))
    page.locator('[data-testid="stMetricValue"]').first.wait_for()
    page.get_by_role("button", name="Explain this prediction").click()
    overlay = page.locator(".js-plotly-plot:visible", has_text="What the model listened to").first
    overlay.wait_for(timeout=120_000)
    assert overlay.locator(".hm").count() == 2  # the spectrogram and the occlusion map over it, both drawn
    assert overlay.locator(".hm image").count() == 2
    page.get_by_role("tab", name="Prosody").click()
    panel = page.get_by_role("tabpanel", name="Prosody")
    panel.locator(".js-plotly-plot", has_text="Pitch and energy over time").wait_for()
    panel.locator(".js-plotly-plot", has_text="each emotion's average").wait_for(timeout=120_000)
    assert panel.get_by_text("median pitch (Hz)").count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0

"""The leakage lesson in headless Chromium, on the shared corpora."""
from __future__ import annotations

from tests.e2e.test_browser import browser, page, server  # noqa: F401  (fixtures)


def test_lesson_shows_the_random_split_above_folds_by_speaker(server, page):  # noqa: F811
    page.goto(f"{server}/Lesson")  # the first page this module's fresh server serves: a bookmarked lesson
    form = page.locator('[data-testid="stForm"]').first
    form.wait_for()
    sidebar = page.locator('[data-testid="stSidebarNav"]')
    assert sidebar.inner_text().split() == ["Home", "Explore", "Train", "Classify", "Live", "Record", "Lesson"]
    form.locator('[data-testid="stSelectbox"]').first.click()  # features: librosa180, fast on a cold cache
    page.get_by_role("option", name="librosa180", exact=True).click()
    form.get_by_role("button", name="Run the lesson").click()
    page.get_by_text("What the random split adds").wait_for(timeout=300_000)
    accuracy = [float(m.inner_text().strip().rstrip("%")) / 100
                for m in page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text("Accuracy", exact=True))
                .locator('[data-testid="stMetricValue"]').all()]
    random, speaker = accuracy[0], accuracy[1]  # the first comparison: random split, then by speaker
    assert random > speaker + 0.10, accuracy  # RAVDESS, all 24 actors: the split alone adds that much
    page.locator(".js-plotly-plot").nth(3).wait_for()
    assert page.locator(".js-plotly-plot").count() == 4  # both confusion matrices, in both comparisons
    assert page.get_by_text("Protocol: random").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0

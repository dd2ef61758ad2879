"""The leakage lesson in headless Chromium, on the shared corpora."""
from __future__ import annotations

from tests.e2e.test_browser import browser, page, server  # noqa: F401  (fixtures)


def test_lesson_shows_the_random_split_above_folds_by_speaker(server, page):  # noqa: F811
    """A class opening the Lesson on the shared corpora sees it at once (computed in advance for RAVDESS + TESS)."""
    page.goto(f"{server}/Lesson")  # the first page this module's fresh server serves: a bookmarked lesson
    page.locator('[data-testid="stForm"]').first.wait_for()
    sidebar = page.locator('[data-testid="stSidebarNav"]')
    assert sidebar.inner_text().split() == ["Home", "Explore", "Train", "Classify", "Live", "Record", "Lesson"]
    page.get_by_text("Computed in advance").wait_for(timeout=60_000)  # no button to press, nothing to wait for
    page.get_by_text("What the random split adds").wait_for()
    values = (page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text("Accuracy", exact=True))
              .locator('[data-testid="stMetricValue"]'))
    values.nth(1).wait_for()  # the page draws its metrics one after another
    accuracy = [float(m.inner_text().strip().rstrip("%")) / 100 for m in values.all()]
    random, speaker = accuracy[0], accuracy[1]  # the first comparison: random split, then by speaker
    assert random > speaker + 0.10, accuracy  # the split alone adds that much
    page.locator(".js-plotly-plot").nth(2).wait_for()
    assert page.locator(".js-plotly-plot").count() == 3  # a confusion matrix per protocol, "by speaker" once
    assert page.get_by_text("Protocol: random").count() == 1
    assert page.get_by_text("chance: 12.5% for 8 emotions").count() == 3
    assert page.locator('[data-testid="stException"]').count() == 0

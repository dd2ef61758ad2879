"""What a teacher meets in class, in headless Chromium at a projector's 1024x768: a fresh install with no corpus
classifies an example in one click, large enough to read from the back of the room."""
from __future__ import annotations

import pytest

from tests.e2e.test_browser import CHROMIUM, QUIET, app_server, server  # noqa: F401 (server is a fixture)

PROJECTOR = {"width": 1024, "height": 768}


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """The app as a fresh clone runs it: no data folder, no models of the user's, nothing heard yet."""
    home = tmp_path_factory.mktemp("fresh")
    with app_server(SER_DATA_DIR=str(home / "no-data-yet"), SER_CACHE_DIR=str(home / "cache"),
                    SER_USER_MODELS_DIR=str(home / "models"), SER_ROOMS_DIR=str(home / "rooms")) as url:
        yield url


@pytest.fixture(scope="module")
def projector():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        page = chromium.new_page(viewport=PROJECTOR)
        page.set_default_timeout(120_000)
        yield page
        chromium.close()


def on_screen(locator) -> bool:
    """Whether the element lies wholly within the first screen, without scrolling."""
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PROJECTOR["height"]


def test_a_fresh_install_classifies_an_example_in_one_click_readable_from_the_back(fresh_server, projector):
    from playwright.sync_api import expect

    page = projector
    page.goto(fresh_server)
    page.get_by_text("Try an example").wait_for()
    examples = page.locator('[class*="st-key-home_clip_109"] button')
    examples.nth(11).wait_for()
    assert examples.count() == 12
    assert all(on_screen(examples.nth(i)) for i in range(12))
    dropzone = page.locator('[data-testid="stFileUploaderDropzone"]')
    dropzone.wait_for()
    assert on_screen(dropzone)
    expect(page.get_by_text("No corpus found")).to_have_count(1, timeout=60_000)  # and what to do about it
    assert page.get_by_text("Deploy").count() == 0  # no developer toolbar in class

    page.locator(".st-key-home_clip_1091_IEO_ANG_HI button").click()
    label = page.locator('.st-key-prediction [data-testid="stMetricValue"]')
    expect(label).to_have_text("angry", timeout=120_000)  # an actor no model heard, acting angry
    assert on_screen(label)
    assert float(label.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px")) >= 48
    probability = page.locator('.st-key-prediction [data-testid="stMetricDelta"]')
    assert probability.inner_text().endswith("% probability")
    assert float(probability.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px")) >= 24
    expect(page.get_by_text("The actor was acting angry")).to_be_visible(timeout=60_000)
    bars = page.locator(".st-key-prediction .js-plotly-plot .bartext")  # every bar's value, upright
    expect(bars).to_have_count(7, timeout=60_000)
    assert all(text.endswith("%") for text in bars.evaluate_all("texts => texts.map(t => t.textContent)"))
    assert page.locator('[data-testid="stException"]').count() == 0


def test_silence_is_dark_in_the_spectrogram(server, projector):  # noqa: F811 (server is the fixture)
    """RAVDESS clips open with about a second of near-silence: the spectrogram draws it near black, as every
    spectrogram a class has seen does, not brighter than quiet speech."""
    import io

    from PIL import Image

    page = projector
    page.goto(f"{server}/Explore")
    page.get_by_role("tab", name="Clips").click()
    image = page.locator('[data-testid="stPlotlyChart"]:visible .heatmaplayer image').first
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    picture = Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")
    width, height = picture.size
    silence = picture.crop((int(width * 0.02), int(height * 0.1), int(width * 0.15), int(height * 0.9)))
    speech = picture.crop((int(width * 0.35), int(height * 0.8), int(width * 0.6), int(height * 0.98)))
    brightness = lambda part: sum(sum(pixel) / 3 for pixel in part.getdata()) / (part.width * part.height)
    assert brightness(silence) < 40 < brightness(speech), (brightness(silence), brightness(speech))


def font_px(locator) -> float:
    return float(locator.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))


def test_presentation_mode_makes_every_page_larger_and_stays_on_across_pages(fresh_server, projector):
    page = projector
    page.goto(fresh_server)
    text = page.get_by_text("Which emotion does a voice carry?")
    text.wait_for()
    normal = font_px(text)
    page.get_by_text("Presentation mode").click()
    page.wait_for_function(f"() => parseFloat(getComputedStyle(document.documentElement).fontSize) > {normal}")
    assert font_px(text) >= 1.25 * normal
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Live").click()
    title = page.get_by_role("heading", name="Live microphone")
    title.wait_for()
    assert font_px(page.locator("html")) >= 1.25 * 16  # Streamlit's sizes follow the root's 16 px
    assert page.get_by_role("switch", name="Presentation mode").is_checked()  # still on after moving page
    page.goto(f"{fresh_server}/Lesson?present=1")  # a link a teacher bookmarks starts in it
    page.get_by_role("heading", name="Why a random split lies").wait_for()
    assert page.get_by_role("switch", name="Presentation mode").is_checked()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_record_page_says_what_is_missing_and_what_to_do_without_a_microphone(fresh_server, projector):
    page = projector
    page.goto(f"{fresh_server}/Record")
    from playwright.sync_api import expect

    expect(page.get_by_text("To save: record or upload a clip, name the corpus, enter the speaker.")).to_be_visible(
        timeout=120_000)
    expect(page.get_by_text("NotAllowedError").first).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Save clip")).to_be_disabled(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0

"""Third-party private APIs behind ser_core/compat.py: present on the pinned versions, a clear error when an
upgrade removes one; and openSMILE's 16-bit input, which must clip full-scale samples rather than wrap them."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ser_core import compat
from ser_core.compat import CompatibilityError
from ser_core.features import extract
from tests.clips import voice
from tests.conftest import PROJECT_ROOT

SR = 16_000


@pytest.fixture(autouse=True)
def fresh_checks():
    """Each test checks again, and leaves no cached result (pass or fail) to the tests after it."""
    compat._check_opensmile.cache_clear()
    compat._check_streamlit.cache_clear()
    yield
    compat._check_opensmile.cache_clear()
    compat._check_streamlit.cache_clear()


def test_the_checks_pass_on_the_pinned_versions():
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    for package, version in compat.TESTED.items():
        assert re.search(rf"^{package}=={re.escape(version)}$", requirements, re.M), package
        assert compat._installed(package) == version
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    engine, source, sink = compat.smile_engine(smile, SR)
    engine.free()
    assert source and sink
    compat._check_streamlit()


def test_a_missing_opensmile_attribute_names_package_versions_and_what_is_gone(monkeypatch):
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    monkeypatch.delattr(opensmile.Smile, "_options")
    with pytest.raises(CompatibilityError) as caught:
        compat.smile_engine(smile, SR)
    message = str(caught.value)
    assert message.startswith("Smile of opensmile 2.6.0 has no _options, which SER Studio uses")
    assert "install opensmile==2.6.0" in message and "\n" not in message


def test_a_missing_streamlit_attribute_gives_the_clear_error(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.delattr(PagesManager, "uses_pages_directory")
    with pytest.raises(CompatibilityError, match="PagesManager of streamlit 1.67.0 has no uses_pages_directory"):
        compat.claim_pages_from_directory()


def test_a_full_scale_sample_is_clipped_not_wrapped_for_opensmile():
    """openSMILE reads 16-bit samples: 1.0 must become 32767, as 0.99997 does, not wrap round to -32768."""
    y = voice(1.5, SR, level=0.5)
    peak = int(np.argmax(np.abs(y)))
    at_full_scale, just_below = y.copy(), y.copy()
    at_full_scale[peak], just_below[peak] = 1.0, 0.99997
    np.testing.assert_array_equal(extract(at_full_scale, SR, "egemaps"), extract(just_below, SR, "egemaps"))

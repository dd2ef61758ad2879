"""The Train page, driven by Streamlit's AppTest as a teacher would: a quick SVM run to look at or save."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT


def train_svm_on_page(monkeypatch, data_root, timeout: float = 240) -> AppTest:
    """Open the Train page on `data_root`, train its default model (the SVM) on librosa180 features over
    2 folds, wait for the run and draw its result."""
    monkeypatch.setenv("SER_DATA_DIR", str(data_root))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "2_Train.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    at.selectbox(key="train_features").set_value("librosa180")  # the model is the SVM
    at.number_input(key="train_folds").set_value(2)
    at.button(key="FormSubmitter:train-Train").click().run()
    assert at.session_state["job"].wait(timeout), "training did not finish"
    return at.run()

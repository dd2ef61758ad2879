from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPORA = PROJECT_ROOT.parent / "shared" / "corpora"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep every test's feature cache and user models out of the user's home."""
    base = tmp_path_factory.mktemp("ser-home")
    monkeypatch.setenv("SER_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("SER_USER_MODELS_DIR", str(base / "user-models"))
    monkeypatch.delenv("SER_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    """The shared RAVDESS + TESS corpora, resolved as the catalog resolves its root (../shared may be a symbolic
    link); integration tests skip only where they are absent."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip("../shared/corpora is absent")
    return SHARED_CORPORA.resolve()

"""Every use of a third-party private API, in one place, checked before use.

openSMILE's public Smile.process_signal builds and frees an engine for every clip; reusing one engine needs
Smile._options(), Smile._smile() and the engine's _callbacks list (features/smile.py). Streamlit has no
public way to say that streamlit_app.py names the pages, so app_common.page_config sets
PagesManager.uses_pages_directory. Names like these can change in any release: each is checked here the
first time it is used, and a change raises one CompatibilityError that names the package, the version
installed, the version these uses were written for, and what is missing. Nothing is imported at import time.
"""
from __future__ import annotations

import functools
import os
from importlib import metadata
from typing import Any, Callable

from .errors import SerError

# The versions these private uses were written and tested for (pinned in requirements.txt).
TESTED = {"opensmile": "2.6.0", "streamlit": "1.67.0"}


class CompatibilityError(SerError):
    """An installed package no longer has a private name SER Studio relies on."""


def require(package: str, owner: Any, *names: str) -> None:
    """Raise CompatibilityError unless `owner` (a class, module or object of `package`) has every name."""
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        label = getattr(owner, "__name__", type(owner).__name__)
        raise CompatibilityError(
            f"{label} of {package} {_installed(package)} has no {', '.join(missing)}, which SER Studio uses (it was "
            f"written for {package} {TESTED[package]}): install {package}=={TESTED[package]} (pip install -r "
            "requirements.txt) or update ser_core/compat.py.")


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"


# --- openSMILE ---------------------------------------------------------------------------------------------

@functools.cache
def _check_opensmile() -> None:
    from opensmile.core import config as smile_config
    from opensmile.core.lib import OpenSMILE

    require("opensmile", smile_config.config, "EXTERNAL_INPUT_CONFIG", "EXTERNAL_SOURCE_COMPONENT",
            "EXTERNAL_OUTPUT_COMPONENT")
    require("opensmile", OpenSMILE, "external_sink_set_callback_ex", "external_audio_source_write_data",
            "external_audio_source_set_eoi", "run", "reset", "free")


def smile_engine(smile: Any, sr: int) -> tuple[Any, str, str]:
    """An initialised openSMILE engine for `smile`'s configuration that reads 16-bit samples at `sr` written
    to it, as Smile.process_signal builds for each signal; and its source and sink component names."""
    _check_opensmile()
    require("opensmile", smile, "_options", "_smile", "default_config_root")
    from opensmile.core.config import config as smile_config

    options = {**smile._options(), "sampleRate": sr, "nBits": 16,
               "source": os.path.join(smile.default_config_root, smile_config.EXTERNAL_INPUT_CONFIG)}
    engine = smile._smile(options)
    require("opensmile", engine, "_callbacks")
    return engine, smile_config.EXTERNAL_SOURCE_COMPONENT, smile_config.EXTERNAL_OUTPUT_COMPONENT


def set_only_callback(engine: Any, sink: str, callback: Callable[[Any, Any], None]) -> None:
    """Make `callback` the engine's sink callback and let the earlier ones go: the engine keeps every callback
    it was given alive (in _callbacks), which an engine reused for thousands of clips must not."""
    engine.external_sink_set_callback_ex(sink, callback)
    del engine._callbacks[:-1]


# --- Streamlit -----------------------------------------------------------------------------------------------

@functools.cache
def _check_streamlit() -> None:
    from streamlit.runtime.pages_manager import PagesManager

    require("streamlit", PagesManager, "uses_pages_directory")


def claim_pages_from_directory() -> bool:
    """Tell Streamlit that streamlit_app.py names the pages, as its st.navigation call would: True when it
    thought otherwise (a first page served as an old-style pages/ app), so the caller reruns."""
    _check_streamlit()
    from streamlit.runtime.pages_manager import PagesManager

    if not PagesManager.uses_pages_directory:
        return False
    PagesManager.uses_pages_directory = False
    return True

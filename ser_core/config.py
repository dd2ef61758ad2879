"""Constants and defaults of SER Studio, in one place.

Everything a user may want to change has an environment variable or a
command-line option; the values here are the defaults.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The one label vocabulary every corpus is mapped onto, in display order.
LABELS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)

# Audio pipeline.
SAMPLE_RATE = 16_000          # Hz; every pipeline resamples to this
MIN_DURATION = 0.5            # s; shorter clips are rejected
# Hz; a header outside these rates is damaged, not a recording (old telephony is 8 kHz, studios go to 768 kHz).
# A rate of 1 Hz would turn a second of bytes into hours of 16 kHz samples.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4_000, 768_000
MAX_DURATION = 600.0          # s; longer input is refused by load_audio (use iter_windows)
SILENCE_DBFS = -50.0          # dBFS peak under which a clip counts as silent
TRIM_TOP_DB = 30.0            # dB below peak treated as silence by trimming
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3", ".m4a", ".aac", ".webm", ".opus",
)

# Class recordings (ser_core.recordings): mono 16-bit WAV at the rate every pipeline reads, one utterance each.
RECORDING_RATE = SAMPLE_RATE
MAX_RECORDING_DURATION = 30.0  # s; longer input is refused: a corpus clip is one utterance, not a lesson
# A shared passcode that the Record page asks for before relabelling, deleting or renaming; unset: not asked.
RECORD_PASSCODE_ENV = "SER_RECORD_PASSCODE"

# A hidden temporary file of files.write_atomically untouched this long was left by a killed writer (a live one
# writes it within seconds), so the next write into its folder removes it.
STALE_TEMPORARY_AGE = 3600.0  # s

# Pitch by YIN, for the prosody view and the mfcc_prosody features.
PITCH_FMIN, PITCH_FMAX = 60.0, 500.0  # Hz: the range of speaking voices, low men to high children
YIN_THRESHOLD = 0.15        # first dip of the normalised difference below this is the period (YIN's rule)
VOICING_THRESHOLD = 0.45    # frames whose best dip stays above this are unvoiced (noise, breath, silence); on
                            # RAVDESS, frames voiced so agree with pYIN's f0 in 93-100 % (a semitone and a half)

# Classifying long clips and streams: windows of WINDOW seconds every HOP seconds.
WINDOW = 3.0
HOP = 1.0
LONG_CLIP = 30.0  # s; a longer upload is decoded and classified window by window, in memory bounded by a window
                  # whatever its length, and its prediction is the mean of its voiced windows' probabilities

# Heavy jobs (classifying an upload, explaining, training) that run at once across all the browser sessions of one
# server; the others wait their turn (ser_core.jobs). Each runs its features on a core: two suit a 2-core machine.
HEAVY_JOBS_ENV = "SER_HEAVY_JOBS"
DEFAULT_HEAVY_JOBS = 2

# Evaluation: the features and classifier of evaluate, lesson, features and a scikit-learn model when none is named.
DEFAULT_FEATURES = "egemaps"
DEFAULT_CLASSIFIER = "svm"
DEFAULT_PROTOCOL = "speaker"
VOICE_CLIPS = 20  # clips of each test speaker a voice_norm model hears first under the voice scoring (~70 s)
DEFAULT_FOLDS = 5
DEFAULT_SEED = 42

# Where things live. Data root: --data-dir, then SER_DATA_DIR, then data/ in the project.
DATA_DIR_ENV = "SER_DATA_DIR"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
CACHE_DIR_ENV = "SER_CACHE_DIR"
SHIPPED_MODELS_DIR = PROJECT_ROOT / "models"
# A few clips of voices no model heard, for a first try on a fresh clone (examples/README.md: licence, choice);
# training.train leaves their speakers out, so the examples stay new voices to every model trained here.
EXAMPLES_DIR = PROJECT_ROOT / "examples"
EXAMPLE_SPEAKERS: tuple[str, ...] = ("cremad_1090", "cremad_1091")
PRECOMPUTED_LESSONS = SHIPPED_MODELS_DIR / "lessons.json"  # the Lesson page's results, computed in advance
DEFAULT_MODEL = "mfcc-prosody-logreg"   # folder under models/ used when no model is named
GE2E_WEIGHTS = SHIPPED_MODELS_DIR / "ge2e-encoder" / "weights.npz"  # the ge2e pipelines' speaker encoder
USER_MODELS_ENV = "SER_USER_MODELS_DIR"
ROOMS_DIR_ENV = "SER_ROOMS_DIR"
MODEL_NAME_MAX = 100  # characters; a model's folder name, well under a file name's 255 bytes with a save's prefixes
# Corpus downloads: a mirror base URL that replaces every source's host, e.g. http://127.0.0.1:8000 turns
# https://zenodo.org/records/... into http://127.0.0.1:8000/zenodo.org/records/...
DOWNLOAD_MIRROR_ENV = "SER_DOWNLOAD_MIRROR"


CLUSTER_ENV = "SER_CLUSTER"  # a Dask scheduler's address (tcp://host:8786): feature extraction runs on its workers
ICE_SERVERS_ENV = "SER_ICE_SERVERS"  # JSON list of STUN/TURN servers for the live page, e.g. [{"urls": "stun:..."}]


def ice_servers() -> list[dict]:
    """WebRTC ICE servers from $SER_ICE_SERVERS; none by default, which works when browser and server share a
    machine. Across a network a user needs a STUN server, and behind strict NATs a TURN server."""
    import json

    raw = os.environ.get(ICE_SERVERS_ENV, "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except ValueError:
        raise ValueError(f"${ICE_SERVERS_ENV} is not valid JSON: expected a list like "
                         '[{"urls": "stun:stun.example.org:3478"}]') from None
    return servers if isinstance(servers, list) else [servers]


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, then $SER_DATA_DIR, then data/ in the project."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return DEFAULT_DATA_DIR


def set_data_dir_from_args(argv: Sequence[str] | None = None) -> None:
    """The app's own arguments (`streamlit run streamlit_app.py -- --data-dir D`): --data-dir sets $SER_DATA_DIR
    for this server, as --data-dir does for one command of the command line. Other arguments are left alone."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--data-dir")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.data_dir:
        os.environ[DATA_DIR_ENV] = known.data_dir


def cluster_address() -> str | None:
    """The Dask scheduler that extracts features ($SER_CLUSTER, or a command's --cluster), or None: this machine's
    cores."""
    return os.environ.get(CLUSTER_ENV, "").strip() or None


def cache_dir() -> Path:
    """Feature cache: $SER_CACHE_DIR, else ~/.cache/ser-studio (XDG)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ser-studio"


def rooms_dir() -> Path:
    """What voice_norm models have heard where this app runs (adaptation.load_room): $SER_ROOMS_DIR, else
    ~/.local/share/ser-studio/rooms."""
    if os.environ.get(ROOMS_DIR_ENV):
        return Path(os.environ[ROOMS_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ser-studio" / "rooms"


def user_models_dir() -> Path:
    """A user's own trained models: $SER_USER_MODELS_DIR, else ~/.local/share/ser-studio/models."""
    if os.environ.get(USER_MODELS_ENV):
        return Path(os.environ[USER_MODELS_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ser-studio" / "models"

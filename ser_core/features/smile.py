"""openSMILE's functionals (eGeMAPS, ComParE) of a clip, on engines kept alive between clips.

opensmile.Smile initialises (parses its configuration) and frees an engine for every signal: a fifth of the
time of a 3 s window. The engines here are built once per process and thread and reset after each clip;
that needs openSMILE's private API, which ser_core/compat.py holds and checks.
"""
from __future__ import annotations

import functools
import queue
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import compat, config
from . import dsp

SMILE_SIZES = {"eGeMAPSv02": 88, "ComParE_2016": 6373}  # openSMILE functionals per feature set
_INT16_SCALE = 32768  # openSMILE reads 16-bit samples: full scale 1.0 is this


def smile_functionals(y: np.ndarray, sr: int, p: Mapping[str, Any]) -> np.ndarray:
    """openSMILE needs samples, not an STFT: trim the samples by frame energy, then extract."""
    frames = dsp.frames(y, p["trim_frame_length"], p["trim_hop_length"])
    span = dsp.loud_span(np.einsum("ij,ij->i", frames, frames), p["trim_db"])
    trimmed = dsp.span_samples(y, span, p["trim_hop_length"])
    # openSMILE gives NaN for a segment too short (a click in silence): then keep the whole clip.
    y = trimmed if len(trimmed) >= config.MIN_DURATION * sr else y
    idle = _idle_extractors.setdefault((p["feature_set"], p["feature_level"], sr), queue.SimpleQueue())
    try:
        extractor = idle.get_nowait()
    except queue.Empty:  # none free: a first clip, or another thread is using each one
        extractor = _SmileExtractor(p["feature_set"], p["feature_level"], sr)
    features = extractor(y)  # an extractor that failed is not reused
    idle.put(extractor)
    return features


def smile_feature_names(feature_set: str, feature_level: str) -> list[str]:
    """openSMILE's names of a feature set's values, in order."""
    return list(_smile(feature_set, feature_level).feature_names)


@functools.cache
def _smile(feature_set: str, feature_level: str):
    """One openSMILE extractor per process: building it costs about a second."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                           feature_level=opensmile.FeatureLevel[feature_level])


_idle_extractors: dict[tuple[str, str, int], queue.SimpleQueue] = {}


class _SmileExtractor:
    """openSMILE's engine, initialised once and reset after each clip.

    Does what Smile.process_signal does with the same configuration and gives the same numbers
    (tests/test_features.py compares them); one thread uses an extractor at a time."""

    def __init__(self, feature_set: str, feature_level: str, sr: int):
        smile = _smile(feature_set, feature_level)
        self._engine, self._source, self._sink = compat.smile_engine(smile, sr)
        self._size = smile.num_features

    def __call__(self, y: np.ndarray) -> np.ndarray:
        rows: list[np.ndarray] = []
        compat.set_only_callback(self._engine, self._sink, lambda data, meta: rows.append(data.copy()))
        # Clipped first: a sample at full scale (1.0) would otherwise wrap round to -32768.
        samples = np.clip(y * _INT16_SCALE, -_INT16_SCALE, _INT16_SCALE - 1).astype(np.int16)
        self._engine.external_audio_source_write_data(self._source, bytes(samples))
        self._engine.external_audio_source_set_eoi(self._source)
        self._engine.run()
        self._engine.reset()
        return rows[0].reshape(-1).astype(np.float32) if rows else np.full(self._size, np.nan, np.float32)

    def __del__(self):
        if hasattr(self, "_engine"):
            self._engine.free()

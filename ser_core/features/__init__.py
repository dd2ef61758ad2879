"""Feature pipelines: named, versioned recipes from a clip's samples to features, and cached batch extraction.

One module per concern: pipelines (the registry: Pipeline, get_pipeline, feature_names, extract), dsp (STFT,
mel, DCT, YIN... kernels, shared with explain.py), smile (openSMILE's functionals), speaker_encoder (the
numpy GE2E encoder), cache (per-clip cache entries and the chunked parallel loop that fills them),
extraction (extract_features over a catalog) and normalization (pooling, per-speaker normalisation).

The numbers are librosa's (tests compare them), but only librosa.filters.mel is called: the rest of librosa
compiles numba code on import, ~15 s per process in a fresh environment. Importing this package imports
numpy and these modules only; scipy, librosa, openSMILE and joblib load when first used.
"""
from __future__ import annotations

from .cache import CACHE_FORMAT, CHUNK_SIZE, Source, read_cache_entry, warn_unwritable, write_cache_entry
from .extraction import CACHE_SUBDIR, FeatureError, extract_features, extract_features_with_failures
from .normalization import (
    PRIOR_CLIPS, STD_FLOOR, normalize_by_speaker, pool, speaker_stats, typical_speaker_std,
)
from .pipelines import (
    FUNCTIONALS, PIPELINES, Pipeline, extract, extract_file, feature_names, get_pipeline,
)
from .smile import SMILE_SIZES
from .speaker_encoder import ENCODER_PARTS, ENCODER_RATE, ENCODER_SIZE, encode_speaker

__all__ = [
    "CACHE_FORMAT", "CACHE_SUBDIR", "CHUNK_SIZE", "ENCODER_PARTS", "ENCODER_RATE", "ENCODER_SIZE", "FUNCTIONALS",
    "PIPELINES", "PRIOR_CLIPS", "SMILE_SIZES", "STD_FLOOR", "FeatureError", "Pipeline", "Source", "encode_speaker",
    "extract", "extract_features", "extract_features_with_failures", "extract_file", "feature_names",
    "get_pipeline", "normalize_by_speaker", "pool", "read_cache_entry", "speaker_stats", "typical_speaker_std",
    "warn_unwritable", "write_cache_entry",
]

"""extract_features: a whole catalog's features on all cores, cached one entry per clip (see cache.py).

A second pass over unchanged clips only reads files; a clip that cannot be used does not stop the others.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import config
from ..errors import AudioError, OptionError
from .cache import Source, cached_rows
from .pipelines import Pipeline, as_pipeline, extract

if TYPE_CHECKING:
    import pandas as pd

CACHE_SUBDIR = "features"


class FeatureError(AudioError):
    """Some clips of a batch could not be used; `failed` maps each clip to the reason. `why` says what that
    costs, when it is more than the clips themselves (e.g. ", which leaves no clip of sad")."""

    def __init__(self, failed: Mapping[str, str], total: int, why: str = ""):
        self.failed = dict(failed)
        listed = [f"  {clip}: {reason}" for clip, reason in list(self.failed.items())[:10]]
        more = [f"  ... and {len(self.failed) - 10} more"] if len(self.failed) > 10 else []
        super().__init__("\n".join([f"{len(self.failed)} of {total} clips could not be used{why} (the others "
                                    "are cached); fix or remove these and run again:"] + listed + more))


def extract_features(catalog_or_paths: pd.DataFrame | Sequence[Source],
                     pipeline: str | Pipeline = "librosa180", *,
                     augmentation: tuple[str, int] | None = None,
                     cache_dir: str | os.PathLike | None = None, n_jobs: int = -1,
                     on_error: str = "raise",
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Features of every clip, stacked as (n, *pipeline.shape) float32 in the input's order.

    `catalog_or_paths` is a catalog DataFrame (its `path` column) or a sequence of paths or bytes.
    `augmentation=(kind, seed)` gives features of augmented copies: each clip is augmented with its own
    seed, drawn from `seed` and the clip's file name (content hash for bytes), so copies are the same
    on every run and wherever the corpus lives. Cached clips are read in this process; the rest are
    extracted CHUNK_SIZE clips per task on `n_jobs` processes (joblib's convention: -1 is all cores;
    1, or fewer than two chunks to do, stays in this process). `progress(done, total)` is called after
    the cache is read and as each chunk finishes, ending with (total, total).

    A clip that cannot be used (an AudioError) does not stop the run: the others are extracted and
    cached first, then on_error="raise" raises one FeatureError listing every failed clip and why, and
    on_error="nan" returns NaN rows for them instead (drop rows where np.isnan(X) is any).
    extract_features_with_failures gives the reasons with the features.
    """
    if on_error not in ("raise", "nan"):
        raise OptionError(f"on_error must be 'raise' or 'nan', not {on_error!r}")
    X, failed = extract_features_with_failures(catalog_or_paths, pipeline, augmentation=augmentation,
                                               cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)
    if failed and on_error == "raise":
        sources = _sources(catalog_or_paths)
        raise FeatureError({_label(sources[i], i): reason for i, reason in failed.items()}, len(sources))
    return X


def extract_features_with_failures(catalog_or_paths: pd.DataFrame | Sequence[Source],
                                   pipeline: str | Pipeline = "librosa180", *,
                                   augmentation: tuple[str, int] | None = None,
                                   cache_dir: str | os.PathLike | None = None, n_jobs: int = -1,
                                   progress: Callable[[int, int], None] | None = None
                                   ) -> tuple[np.ndarray, dict[int, str]]:
    """extract_features' features (NaN rows for clips that cannot be used) and {row: why} of those clips.

    The cache is best-effort: where it cannot be written, features are computed all the same and one warning
    per cache folder and process says they are not kept.
    """
    pipeline = as_pipeline(pipeline)
    sources = _sources(catalog_or_paths)
    folder = Path(cache_dir or config.cache_dir()) / CACHE_SUBDIR / f"{pipeline.name}-{pipeline.digest}"
    seeds = [_clip_seed(source, augmentation[1]) for source in sources] if augmentation else None
    specs = [_augment_spec(augmentation[0], seed) for seed in seeds] if augmentation else None
    compute = functools.partial(_extract_one, pipeline=pipeline, kind=augmentation[0] if augmentation else None)
    return cached_rows(sources, folder, pipeline.shape, compute, extras=seeds, specs=specs, n_jobs=n_jobs,
                       progress=progress)


def _sources(catalog_or_paths: pd.DataFrame | Sequence[Source]) -> list[Source]:
    return list(catalog_or_paths["path"]) if hasattr(catalog_or_paths, "columns") else list(catalog_or_paths)


def _extract_one(i: int, source: Source, clip_seed: int | None, pipeline: Pipeline,
                 kind: str | None) -> np.ndarray | str:
    """Load, augment and extract one clip: its features, or why it cannot be used."""
    from ..audio import load_audio

    sr = pipeline.sample_rate
    label = _label(source, i)
    try:  # extract refuses what no model can use (samples that are not finite), as load_audio does
        y = load_audio(source, sr=sr, name=label)
        if kind:
            from ..augment import augment

            y = augment(y, sr, kind, seed=clip_seed)
        return extract(y, sr, pipeline)
    except AudioError as error:
        return str(error).removeprefix(f"{label}: ")


def _clip_seed(source: Source, seed: int) -> int:
    """A clip's own augmentation seed, from `seed` and its file name (or content): stable across runs and moves."""
    name = hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else Path(source).name
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


def _augment_spec(kind: str, clip_seed: int) -> str:
    from ..augment import augment_spec_id

    return augment_spec_id(kind, clip_seed)


def _label(source: Source, i: int) -> str:
    return f"clip {i} (bytes)" if isinstance(source, bytes) else str(source)

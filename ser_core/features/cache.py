"""The on-disk cache of per-clip results, and the loop that fills it in chunks on all cores.

extract_features and explain.prosody_summaries both go through cached_rows, so cache keys, entry layout,
checksums and versioning have one implementation. Layout: <folder>/<2 hex>/<sha256>.bin, one entry per clip,
where the caller's folder name covers its configuration (with library_versions) and the file's hash covers
the clip (see cache_file). An entry is the SHA-256 of its payload, then the payload.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Union

import numpy as np

from .. import config
from ..errors import OptionError

Source = Union[str, os.PathLike, bytes]
# compute(row, source, extra) -> the row's values, or why the clip cannot be used (a NaN row, not cached).
Compute = Callable[[int, Source, Any], Union[np.ndarray, str]]

CHUNK_SIZE = 32        # clips per worker task: enough to hide joblib's per-task cost, small enough for progress
CLUSTER_TIMEOUT = 10  # s to reach a Dask scheduler before saying it cannot be reached
CACHE_FORMAT = 2       # layout of a cache entry: part of every entry's key, so bump it when the layout changes
_CHECKSUM_SIZE = 32    # bytes of the SHA-256 that starts every cache entry
# Libraries whose versions can change the numbers; part of every cache key.
_KEY_PACKAGES = ("numpy", "scipy", "librosa", "soundfile", "soxr", "opensmile", "audiomentations")


def cached_rows(sources: Sequence[Source], folder: Path, shape: tuple[int, ...], compute: Compute, *,
                extras: Sequence[Any] | None = None, specs: Sequence[str | None] | None = None,
                n_jobs: int = -1, in_process_below: int = 0,
                progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """(len(sources), *shape) float32 values of every source, and {row: why} of those that cannot be used.

    Cached rows are read here; the rest are computed by `compute(row, source, extras[row])` (a picklable
    function), CHUNK_SIZE sources per task on `n_jobs` processes (joblib's convention), or in this process when
    one worker suffices or fewer than `in_process_below` are missing, and cached under `folder` (`specs[row]`
    tells apart variants of one source, e.g. augmented copies). Rows that cannot be used are NaN and not cached.
    `progress(done, total)` is called after the cache is read and as each chunk finishes. The cache is
    best-effort: where it cannot be written, one warning per folder and process says results are not kept.
    """
    values = np.empty((len(sources), *shape), dtype=np.float32)
    todo = []  # (row, source, cache file, extra)
    for i, source in enumerate(sources):
        file = cache_file(folder, source, specs[i] if specs else None)
        cached = read_cached(file, shape)
        if cached is None:
            todo.append((i, source, file, extras[i] if extras else None))
        else:
            values[i] = cached
    done = len(sources) - len(todo)
    if progress:
        progress(done, len(sources))

    failed: dict[int, str] = {}
    unwritable = None
    for results, cache_error in _run_chunks(todo, compute, n_jobs, in_process_below):
        unwritable = unwritable or cache_error
        for i, result in results:
            if isinstance(result, str):
                failed[i] = result
                values[i] = np.nan
            else:
                values[i] = result
        done += len(results)
        if progress:
            progress(done, len(sources))
    if unwritable:
        warn_unwritable(folder, unwritable)
    return values, dict(sorted(failed.items()))


def _run_chunks(todo: list[tuple], compute: Compute, n_jobs: int, in_process_below: int):
    """Each chunk's results as it finishes: here when one process suffices, else on a loky pool, or on a Dask
    cluster's workers (config.cluster_address) through joblib's dask backend."""
    chunks = [todo[i:i + CHUNK_SIZE] for i in range(0, len(todo), CHUNK_SIZE)]
    if not chunks:
        return
    import joblib

    address = config.cluster_address()
    workers = -1 if address else min(joblib.effective_n_jobs(n_jobs), len(chunks))  # -1: the cluster's
    if len(todo) < in_process_below or workers == 1:
        for chunk in chunks:
            yield _compute_chunk(chunk, compute)
        return
    with _backend(address):
        parallel = joblib.Parallel(n_jobs=workers, return_as="generator_unordered")
        yield from parallel(joblib.delayed(_compute_chunk)(chunk, compute) for chunk in chunks)


@contextlib.contextmanager
def _backend(address: str | None) -> Iterator[None]:
    """joblib's default backend (loky, this machine's cores), or the Dask cluster at `address`: its workers read
    the clips and write the cache, so both folders must be at the same paths on every worker (docs/deploy.md)."""
    if address is None:
        yield
        return
    import joblib

    _dask_client(address)  # the process's default client, which joblib's dask backend uses
    with joblib.parallel_config(backend="dask"):
        yield


@functools.lru_cache(maxsize=4)
def _dask_client(address: str):
    """One client per scheduler address and process; OptionError when the scheduler cannot be reached."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise OptionError(f"{config.CLUSTER_ENV} or --cluster needs Dask: pip install 'dask[distributed]'.") from None
    try:
        return Client(address, timeout=CLUSTER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise OptionError(f"Cannot reach the Dask scheduler at {address}: {error}. Start it (`dask scheduler`) and "
                          "its workers, or unset --cluster / " + config.CLUSTER_ENV + ".") from None


def _compute_chunk(chunk: list[tuple], compute: Compute) -> tuple[list[tuple[int, np.ndarray | str]], str | None]:
    """Compute and cache a chunk: (row, values or why not) for each, and why the cache could not be written,
    if it could not (the chunk then stops trying)."""
    results, unwritable = [], None
    for i, source, file, extra in chunk:
        result = compute(i, source, extra)
        if not isinstance(result, str) and unwritable is None:
            unwritable = write_cached(file, result)
        results.append((i, result))
    return results, unwritable


def cache_file(folder: Path, source: Source, augmentation_spec: str | None) -> Path:
    """<folder>/<2 hex>/<sha256>.bin, one file per clip (and augmentation).

    The caller's folder name covers its configuration and library_versions; the file's hash covers
    the clip (absolute path, size and mtime_ns, or the content's hash for bytes), the augmentation
    actually applied (augment_spec_id) and CACHE_FORMAT, so a rewritten file, a changed parameter or a new
    entry layout gets a new entry (an old one is never misread).
    """
    digest = hashlib.sha256(f"{clip_identity(source)}|{augmentation_spec}|format {CACHE_FORMAT}".encode()).hexdigest()
    return folder / digest[:2] / f"{digest}.bin"


def clip_identity(source: Source) -> str:
    """A clip as caches know it: absolute path, size and mtime_ns (a rewritten file is a new clip), or the
    content's hash for bytes."""
    if isinstance(source, bytes):
        return f"sha256:{hashlib.sha256(source).hexdigest()}"
    path = os.path.abspath(source)
    try:
        stat = os.stat(path)
    except OSError:
        return f"path:{path}|missing"  # never cached: load_audio reports the missing file
    return f"path:{path}|{stat.st_size}|{stat.st_mtime_ns}"


def read_cached(file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached values, or None if absent, unreadable or altered (a damaged entry is simply recomputed)."""
    payload = read_cache_entry(file)
    if payload is None:
        return None
    try:
        x = np.load(io.BytesIO(payload), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return x if x.shape == shape and x.dtype == np.float32 else None


def write_cached(file: Path, x: np.ndarray) -> str | None:
    """Cache values as an .npy payload (see write_cache_entry); why not, when the cache cannot be written."""
    buffer = io.BytesIO()
    np.save(buffer, x)
    return write_cache_entry(file, buffer.getvalue())


def read_cache_entry(file: Path) -> bytes | None:
    """A cache entry's payload, or None if absent, unreadable, cut short or altered: every entry starts with
    the SHA-256 of its payload, as a header that still parses says nothing about the values after it."""
    try:
        data = file.read_bytes()
    except OSError:
        return None
    checksum, payload = data[:_CHECKSUM_SIZE], data[_CHECKSUM_SIZE:]
    return payload if hashlib.sha256(payload).digest() == checksum else None


def write_cache_entry(file: Path, payload: bytes) -> str | None:
    """Write a cache entry (checksum, then payload) atomically, so readers never see half a file.

    Best-effort: a cache only saves time, so a folder that cannot be written (read-only, full disk) does not
    stop the work that fills it. Returns why it failed, for the caller's one warning (warn_unwritable).
    """
    from .. import files

    entry = hashlib.sha256(payload).digest() + payload
    try:
        files.write_atomically(file, lambda path: Path(path).write_bytes(entry))
    except OSError as error:
        return error.strerror or str(error)
    return None


_warned_unwritable: set[str] = set()


def warn_unwritable(folder: Path, reason: str) -> None:
    """Say once per cache folder and process that results are computed but not kept there."""
    if str(folder) not in _warned_unwritable:
        _warned_unwritable.add(str(folder))
        logging.getLogger(__name__).warning(
            f"warning: the cache {folder} cannot be written ({reason}): results are computed but not kept, "
            f"so the next run computes them again; make it writable or set {config.CACHE_DIR_ENV} to another "
            "folder.")


@functools.cache
def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that can change the numbers (None where absent): part of every cache key."""
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {package: version(package) for package in _KEY_PACKAGES}


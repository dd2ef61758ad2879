"""Atomic file writes: a reader, or a crash, never sees half a file (the cache, bundles' extras, recordings,
reports); and the lock that keeps two processes' read-modify-write changes of one folder apart."""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Iterator

from . import config

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; callers' thread locks and never-overwriting names still hold
    fcntl = None

# The hidden temporary files write_atomically makes: tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") puts
# 8 characters of its own alphabet between them; and the hidden staging folders of bundles.save_bundle
# (tempfile.mkdtemp(prefix=".<name>.saving." or ".<name>.replaced.")).
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
_STAGING = re.compile(r"\..+\.(saving|replaced)\.[a-z0-9_]{8}")


def write_atomically(target: str | os.PathLike, write: Callable[[str], None], *, durable: bool = False,
                     overwrite: bool = True) -> Path:
    """Write through `write(temporary path)` to a hidden file beside `target`, then put it in place with one
    rename: readers see the old file or the new one, never a part. `durable` flushes it to disk first,
    for data a user cannot make again (their recordings), not for caches. `overwrite=False` raises
    FileExistsError rather than replace a file that is there, even one another process put there meanwhile."""
    with staged(target, write, durable=durable, overwrite=overwrite) as placed:
        pass
    return placed


@contextmanager
def staged(target: str | os.PathLike, write: Callable[[str], None], *, durable: bool = False,
           overwrite: bool = True) -> Iterator[Path]:
    """write_atomically in two steps: the new content is written first, then the caller's block runs, then the
    file is put in place. If the block raises, `target` stays as it was: a change that also moves other files
    writes first what needs disk space, so a full disk stops it before anything moved."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            if hasattr(os, "fchmod"):  # an ordinary file's mode, not mkstemp's owner-only one
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(handle, 0o666 & ~umask)
        finally:
            os.close(handle)
        write(temporary)
        if durable:
            with open(temporary, "rb+") as written:
                os.fsync(written.fileno())
        yield target
        _place(temporary, target, overwrite)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


@contextmanager
def hold_lock(lock: str | os.PathLike) -> Iterator[None]:
    """Wait for, then hold, an exclusive lock on the file `lock` (created if missing, never removed) until the
    block ends, so another process's read-modify-write of the same data waits for this one's."""
    with open(lock, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, or its process dies
        yield


def _place(temporary: str, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # refuses an existing target in the same step that creates it
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (FAT, some network shares): check, then rename
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def remove_stale(folder: str | os.PathLike, *, staging: bool = False) -> None:
    """Remove what killed writers left in `folder`: only regular files named as write_atomically names its
    temporary files (or, with `staging`, only folders named as save_bundle names its staging folders), untouched
    for STALE_TEMPORARY_AGE (a live writer in another process keeps its own younger)."""
    oldest = time.time() - config.STALE_TEMPORARY_AGE
    pattern, kind = (_STAGING, stat.S_ISDIR) if staging else (_TEMPORARY, stat.S_ISREG)
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not (entry.name.startswith(".") and pattern.fullmatch(entry.name)):
                continue
            with suppress(OSError):  # gone meanwhile: another writer cleaned it
                info = entry.stat(follow_symlinks=False)
                if kind(info.st_mode) and info.st_mtime < oldest:
                    shutil.rmtree(entry.path) if staging else os.unlink(entry.path)

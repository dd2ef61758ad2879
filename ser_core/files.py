"""Atomic file writes: a reader, or a crash, never sees half a file (the cache, bundles' extras, recordings)."""
from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Callable


def write_atomically(target: str | os.PathLike, write: Callable[[str], None], *, durable: bool = False) -> Path:
    """Write through `write(temporary path)` to a hidden file beside `target`, then put it in place with one
    os.replace: readers see the old file or the new one, never a part. `durable` flushes it to disk first,
    for data a user cannot make again (their recordings), not for caches."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        write(temporary)
        if durable:
            with open(temporary, "rb+") as written:
                os.fsync(written.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # an ordinary file's mode, not mkstemp's owner-only one
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    return target

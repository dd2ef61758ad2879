"""A bound on the heavy jobs (classifying an upload, explaining, training) of all the browser sessions of one server.

A class using the app together would otherwise run one feature extraction per student at once, each with its clip
and features in memory, until the machine runs out of memory. Jobs beyond the bound wait their turn, first come
first served, and a waiting job can tell its user how many others are ahead of it.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import config
from .errors import OptionError


class JobQueue:
    """At most `limit` jobs inside slot() at once; the others wait in order of arrival."""

    def __init__(self, limit: int):
        if limit < 1:
            raise OptionError(f"At least one heavy job must be able to run (got {limit}).")
        self.limit = limit
        self._lock = threading.Condition()
        self._running = 0
        self._waiting: deque[object] = deque()

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
        """Run the body once a slot is free and every job that came before has started.

        While it waits, on_wait(ahead) is called at once and then every `poll` seconds, with the number of jobs
        ahead of this one (running, or queued before it): a page shows it, and an exception it raises (Streamlit
        stopping a script whose user left, a Stop button) takes the job out of the queue.
        """
        ticket = object()
        with self._lock:
            self._waiting.append(ticket)
        try:
            while (ahead := self._take(ticket)) is not None:
                if on_wait is not None:
                    on_wait(ahead)  # outside the lock: it may draw on a page, or raise
                with self._lock:
                    if self._waiting[0] is not ticket or self._running >= self.limit:
                        self._lock.wait(poll)
        except BaseException:
            with self._lock:
                self._waiting.remove(ticket)
                self._lock.notify_all()
            raise
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._lock.notify_all()
            _thread.ran_job = True

    def _take(self, ticket: object) -> int | None:
        """Start the job if it is its turn (None), else how many jobs are ahead of it."""
        with self._lock:
            if self._waiting[0] is ticket and self._running < self.limit:
                self._waiting.popleft()
                self._running += 1
                self._lock.notify_all()  # the next in line may start too, if there is room
                return None
            return self._running + self._waiting.index(ticket)


def heavy_jobs_limit() -> int:
    """How many heavy jobs run at once: $SER_HEAVY_JOBS, else DEFAULT_HEAVY_JOBS."""
    raw = os.environ.get(config.HEAVY_JOBS_ENV, "").strip()
    if not raw:
        return config.DEFAULT_HEAVY_JOBS
    if not raw.isdigit() or int(raw) < 1:
        raise OptionError(f"${config.HEAVY_JOBS_ENV} must be a whole number of at least 1 (got {raw!r}).")
    return int(raw)


HEAVY = JobQueue(heavy_jobs_limit())
_thread = threading.local()


def release_memory() -> None:
    """Give the memory that this thread's heavy jobs (and what followed them) freed back to the system, if it ran
    one since the last call. glibc keeps freed memory in its per-thread arenas, so without this a server's memory
    stays at its peak long after the sessions that caused it have ended; not after every run, as trimming a large
    heap takes tens of milliseconds. A no-op where the C library has no malloc_trim."""
    if not getattr(_thread, "ran_job", False):
        return
    _thread.ran_job = False
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def one_maths_thread() -> None:
    """Let every loaded maths library (numpy's and scipy's OpenBLAS, scikit-learn's OpenMP) use one thread in this
    process, for good.

    A server classifies many sessions' windows at once, each on its own thread, so the libraries' own threads add
    nothing but their spinning while they wait for work: that doubled the server's CPU with 8 live students
    (bench/bench_class.py). Call it once the model is loaded, when the libraries it uses are loaded too.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None

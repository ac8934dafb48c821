"""What the finder's parts share: one record of their common collaborators (``Shared``), a
thread pool started on first use, and a memo that makes each value once however many
threads ask for it at the same time."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .downloads import LocalHashes
    from .httpfetch import IndexHttp

THREADS = 8  # for prefetches and downloads: network-bound; hashing releases the GIL


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's cpuset or
    ``taskset``), not the machine's count, as uv counts them: CPU-bound pools are sized by it."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Workers:
    """The finder's threads (prefetches, follow-ups, downloads, range reads), started on
    first use and shut down once by ``close``."""

    def __init__(self, name: str = "lambda-pack-finder") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def pool(self) -> ThreadPoolExecutor:
        """The pool, started now if it was not yet."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, self._name)
            return self._pool

    def submit_if_open(self, job: Callable[[], object]) -> None:
        """Run ``job`` in the pool unless it was never started or is closed (a follow-up
        of work the pool is doing: dropped once the finder closes)."""
        with self._lock:
            if self._pool is not None and not self._closed:
                self._pool.submit(job)

    def close(self) -> None:
        """Drop jobs not started, wait for the running ones."""
        with self._lock:
            self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class OnceMemo(Generic[K, V]):
    """Values by key, each made once per process: a thread asking for a key another thread
    is making waits for that one instead of making it again. A failure is not kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[K, V] = {}
        self._making: dict[K, threading.Lock] = {}

    def get(self, key: K) -> V | None:
        """The value made for ``key``, or None."""
        with self._lock:
            return self._values.get(key)

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._values

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._values[key] = value

    def drop(self, key: K) -> None:
        """Forget the value made for ``key`` (its memory), if any."""
        with self._lock:
            self._values.pop(key, None)

    def make(self, key: K, build: Callable[[], V]) -> V:
        """The value for ``key``: made by ``build`` unless it was, or is being, made."""
        with self._lock:
            if key in self._values:
                return self._values[key]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._values:  # made by another thread meanwhile
                    return self._values[key]
            value = build()
            with self._lock:
                self._values[key] = value
            return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """What every part of one finder uses: its HTTP client, its local-hash memo, its
    threads, the cache directory, whether to stay offline, and where ``-v`` lines go."""

    http: IndexHttp
    hashes: LocalHashes
    workers: Workers
    cache_dir: Path
    offline: bool
    log: Callable[[str], None]

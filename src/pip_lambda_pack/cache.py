"""``cache info`` and ``cache prune``: the worker cache the shim fills, seen from the tool.

The cache logic lives in the shim (it runs on workers without this package); this module
only reports on it and prunes it, with the same locks, so pruning never removes a blob a
running function uses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .shim import Cache
from .units import human_size, plural


def info(root: Path) -> str:
    """A report: one line per unpacked blob (least recently used first), then the total."""
    entries = Cache(root).entries()
    now = time.time()
    lines = [
        f"{e.sha256[:12]}  {human_size(e.size):>10}  used {_ago(now - e.last_used)}"
        + ("  (in use)" if e.in_use else "")
        for e in entries
    ]
    total = sum(e.size for e in entries)
    lines.append(f"{root}: {plural(len(entries), 'blob')}, {human_size(total)}")
    return "\n".join(lines)


def info_json(root: Path) -> dict[str, Any]:
    """The same report as data: blobs least recently used first, and the total."""
    entries = Cache(root).entries()
    return {
        "cache": str(root),
        "blobs": [
            {"sha256": e.sha256, "size": e.size, "last_used": e.last_used, "in_use": e.in_use}
            for e in entries
        ],
        "total": sum(e.size for e in entries),
    }


def prune(root: Path, max_bytes: int) -> str:
    """Evict least recently used blobs not in use until the cache fits ``max_bytes``;
    what was removed, in one line."""
    cache = Cache(root)
    removed = cache.evict(max_bytes)
    freed = human_size(sum(e.size for e in removed))
    stale = cache.remove_stale()
    leftovers = f" and {plural(stale, 'stale temp file')}" if stale else ""
    return f"removed {plural(len(removed), 'blob')} ({freed}){leftovers} from {root}"


def bytecode_info(folder: Path) -> str:
    """One line: the batches of ``.pyc`` builds keep in ``folder`` and their bytes."""
    from .bytecode import cache_usage

    count, size = cache_usage(folder)
    batches = plural(count, "bytecode batch", "bytecode batches")
    return f"{folder}: {batches}, {human_size(size)}"


def bytecode_info_json(folder: Path) -> dict[str, Any]:
    """The same line as data."""
    from .bytecode import cache_usage

    count, size = cache_usage(folder)
    return {"cache": str(folder), "entries": count, "total": size}


def prune_bytecode(folder: Path, max_bytes: int) -> str:
    """Evict the least recently used batches of ``.pyc`` builds keep in ``folder`` until
    it fits ``max_bytes``; what was removed, in one line."""
    from .bytecode import prune_cache

    removed, freed = prune_cache(folder, max_bytes)
    batches = plural(removed, "bytecode batch", "bytecode batches")
    return f"removed {batches} ({human_size(freed)}) from {folder}"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 7200:
        return f"{round(seconds / 60)} min ago"
    return f"{round(seconds / 3600)} h ago"

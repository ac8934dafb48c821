"""Atomic file writes: a temp file in the same directory, fsync, then rename into place.

Readers see the old file or the new one, never half of one; a crash leaves at most a
stray ``.tmp-*`` file that the next write ignores and ``remove_stale`` removes. A writer
holds an exclusive lock on its temp file, so a cleaner can tell it from a dead one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until closed: this temp file is being written
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


STALE_S = 3600.0  # a temp file untouched this long, and not locked, is a dead writer's


def remove_stale(folder: Path, older_than_s: float = STALE_S) -> int:
    """Remove the ``.tmp-*`` files in ``folder`` that no writer holds and that nobody has
    touched for ``older_than_s`` seconds (left by a killed process); how many went."""
    removed = 0
    now = time.time()
    for path in folder.glob(".tmp-*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            if not path.is_file() or now - path.stat().st_mtime < older_than_s:
                continue
            with open(path, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # else: in use
                path.unlink()
                removed += 1
    return removed


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(data)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines kept as given)."""
    write_bytes(path, text.encode("utf-8"))


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()

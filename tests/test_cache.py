"""The shared worker cache: LRU eviction under a size cap that never removes a blob in use,
in this process or another one, and the ``cache info`` / ``cache prune`` commands."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from pip_lambda_pack.shim import Blob, Cache, LocalReader
from projects import run


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/mod.py", text)
    return buffer.getvalue()


def _store(tmp_path: Path, count: int) -> tuple[LocalReader, list[Blob]]:
    folder = tmp_path / "store" / "blobs" / "sha256"
    folder.mkdir(parents=True)
    blobs = []
    for i in range(count):
        data = _zip(f"X = {i!r}\n" + "#" * 1000)
        digest = hashlib.sha256(data).hexdigest()
        (folder / digest).write_bytes(data)
        blobs.append(Blob(sha256=digest, size=len(data)))
    return LocalReader(tmp_path / "store"), blobs


def _fill(root: Path, reader: LocalReader, blobs: list[Blob]) -> None:
    """Provision each blob in its own short-lived cache user, oldest first."""
    for age, blob in enumerate(blobs):
        Cache(root).ensure(blob, reader)
        stamp = time.time() - 1000 + age
        os.utime(root / f"{blob.sha256}.used", (stamp, stamp))


def test_lru_eviction_keeps_what_is_in_use(tmp_path: Path) -> None:
    reader, blobs = _store(tmp_path, 4)
    root = tmp_path / "cache"
    _fill(root, reader, blobs)
    one = Cache(root).entries()[0].size
    user = Cache(root)
    user.ensure(blobs[0], reader)  # the oldest, now in use (and used just now)
    assert [e.sha256 for e in Cache(root).entries()][-1] == blobs[0].sha256
    removed = Cache(root).evict(2 * one)
    assert [e.sha256 for e in removed] == [blobs[1].sha256, blobs[2].sha256]
    left = Cache(root).entries()
    assert [e.sha256 for e in left] == [blobs[3].sha256, blobs[0].sha256]
    assert [e.in_use for e in left] == [False, True]
    assert Cache(root).evict(0) == [left[0]]
    assert (root / blobs[0].sha256 / "python" / "mod.py").is_file()  # in use: kept


def test_in_use_by_another_process_is_never_evicted(tmp_path: Path) -> None:
    reader, blobs = _store(tmp_path, 2)
    root = tmp_path / "cache"
    _fill(root, reader, blobs)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(root), blobs[0].sha256],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        removed = Cache(root).evict(0)
    finally:
        holder.kill()
        holder.wait()
    assert [e.sha256 for e in removed] == [blobs[1].sha256]
    assert (root / blobs[0].sha256).is_dir()
    assert [e.sha256 for e in Cache(root).evict(0)] == [blobs[0].sha256]  # free now
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == []


_HOLD = """
import fcntl, sys, time
handle = open(f"{sys.argv[1]}/{sys.argv[2]}.lock", "a+b")
fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
print("holding", flush=True)
time.sleep(60)
"""


def test_eviction_can_leave_the_deleting_to_the_caller(tmp_path: Path) -> None:
    reader, blobs = _store(tmp_path, 2)
    root = tmp_path / "cache"
    _fill(root, reader, blobs)
    trash: list[Path] = []
    removed = Cache(root).evict(0, trash=trash)
    assert [e.sha256 for e in removed] == [b.sha256 for b in blobs]
    assert Cache(root).entries() == []  # out of the cache at once
    assert [t.name.split("-")[1] for t in trash] == [b.sha256 for b in blobs]
    assert all((t / "old" / "python" / "mod.py").is_file() for t in trash)  # not yet deleted
    Cache(root).ensure(blobs[0], reader)  # and a new fetch of it is not confused by them
    assert (root / blobs[0].sha256 / "python" / "mod.py").is_file()


def test_bootstrap_deletes_evicted_trees_in_a_detached_process(tmp_path: Path) -> None:
    from pip_lambda_pack import bootstrap

    trash = [tmp_path / f".tmp-{i}" for i in range(2)]
    for folder in trash:
        (folder / "old" / "deep").mkdir(parents=True)
        (folder / "old" / "deep" / "f.py").write_text("x")
    bootstrap.delete_later(trash)  # returns at once; a grandchild deletes
    deadline = time.monotonic() + 30
    while any(t.exists() for t in trash) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.exists() for t in trash)


def test_a_capped_cache_evicts_all_but_what_is_in_use(tmp_path: Path) -> None:
    reader, blobs = _store(tmp_path, 3)
    root = tmp_path / "cache"
    _fill(root, reader, blobs)
    cache = Cache(root, max_bytes=0)
    cache.ensure(blobs[2], reader)
    assert [e.sha256 for e in cache.evict()] == [blobs[0].sha256, blobs[1].sha256]


def test_cache_info_and_prune_commands(tmp_path: Path) -> None:
    reader, blobs = _store(tmp_path, 2)
    root = tmp_path / "cache"
    _fill(root, reader, blobs)
    info = run(tmp_path, "cache", "info", "--cache", str(root))
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert [line[:12] for line in lines[:2]] == [b.sha256[:12] for b in blobs]
    assert lines[-1].startswith(f"{root}: 2 blobs, ")
    pruned = run(tmp_path, "cache", "prune", "--cache", str(root))
    assert pruned.stdout.startswith("removed 2 blobs (")
    assert run(tmp_path, "cache", "info", "--cache", str(root)).stdout == f"{root}: 0 blobs, 0 B\n"

"""What the hostile-input matrix (tests/test_hostile*.py, docs/reliability.md) checks after
each row: the exit code, one ERROR and one TIP line and no traceback, no secret anywhere,
nothing changed outside the directories the command may write; and raw stores with
hand-made blobs for the shim."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pip_lambda_pack import shim
from pip_lambda_pack.wire import BlobRef, TaskLayer, TaskManifest, as_digest, format_ref

SECRET = "s3cr3t-Pa55"  # planted in URLs and variables; must never come out
SHIM = Path(shim.__file__)
APP = "import os\n\ndef handler(event, context):\n    return {'ok': True, 'cwd': os.getcwd()}\n"


def failed(done: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    """Assert one ERROR and one TIP line (the last two of stderr) and ``code``; the ERROR line."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) >= 2, done.stderr
    error, tip = lines[-2], lines[-1]
    assert error.startswith("ERROR: ") and tip.startswith("TIP: ") and len(tip) > 6, lines
    assert sum(line.startswith("ERROR: ") for line in lines) == 1, lines
    for part in parts:
        assert part in error, (part, error)
    return error


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``: (mode, size, mtime in ns)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            with contextlib.suppress(FileNotFoundError):
                info = path.lstat()
                found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def changed(
    before: dict[str, tuple[int, int, int]],
    after: dict[str, tuple[int, int, int]],
    allowed: Iterable[str] = (),
) -> list[str]:
    """Paths added, removed or modified, outside the ``allowed`` prefixes."""
    prefixes = tuple(allowed)
    return sorted(
        key
        for key in set(before) | set(after)
        if before.get(key) != after.get(key) and not (prefixes and key.startswith(prefixes))
    )


def no_secret(secret: str, *texts: str, dirs: Iterable[Path] = ()) -> None:
    """``secret`` is in none of ``texts`` and in no file under ``dirs``."""
    for text in texts:
        assert secret not in text
    for folder in dirs:
        for path in Path(folder).rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert secret.encode() not in path.read_bytes(), path


def zip_of(entries: Iterable[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    """A zip of (name or ZipInfo, bytes) in order, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def code_zip(extra: Iterable[tuple[zipfile.ZipInfo | str, bytes]] = ()) -> bytes:
    return zip_of([("app.py", APP.encode()), *extra])


def publish(
    store: Path,
    code: bytes,
    layers: Iterable[tuple[bytes, int]] = (),
    *,
    name: str = "fn",
    handler: str = "app.handler",
) -> TaskManifest:
    """Write blobs and a task manifest by hand (as a hostile store could hold them)."""
    folder = store / "blobs" / "sha256"
    folder.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (folder / digest).write_bytes(data)
        return digest

    task = TaskManifest(
        name=name,
        target="python3.11-x86_64",
        handler=handler,
        code=BlobRef(sha256=as_digest(put(code)), size=len(code)),
        layers=tuple(
            TaskLayer(sha256=as_digest(put(data)), size=len(data), unzipped_size=size, wheels=())
            for data, size in layers
        ),
    )
    put(task.to_bytes())
    (store / "functions").mkdir(exist_ok=True)
    (store / "functions" / name).write_text(format_ref(task.sha256))
    return task


def run_shim(
    store: Path | str,
    cache: Path,
    *extra: str,
    name: str = "fn",
    env: dict[str, str] | None = None,
    event: str = "{}",
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SHIM), "--store", str(store), "--name", name]
    command += ["--cache", str(cache), "--event", "-", *extra]
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        command, input=event, capture_output=True, text=True, env=full, timeout=120
    )


def unpacked(cache: Path) -> list[str]:
    """What the cache holds besides lock files: unpacked blobs, their records, temp files."""
    if not cache.is_dir():
        return []
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only; the caller skips otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path("/tmp") / f"lp-mount-probe-{os.getpid()}"
    try:
        with small_disk(probe, "64k"):
            return True
    except (OSError, subprocess.CalledProcessError):
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def patch_headers(data: bytes, offset_local: int, offset_central: int, value: bytes) -> bytes:
    """Overwrite a field of every local and central header (zip forgery for the matrix)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        start = out.find(signature)
        while start != -1:
            out[start + offset : start + offset + len(value)] = value
            start = out.find(signature, start + 4)
    return bytes(out)

"""Content-addressed blob stores: the BlobStore seam, opening a store by URL, and push.

A store holds blobs by sha256 (layer zips, code zips, task manifests) and names each
function's task manifest by the function's name, so ``invoke NAME --store URL`` needs
nothing but the store. Digests are 64 lowercase hex digits throughout.

Stores by URL: a path or ``file://`` (local.py), ``oci://`` (oci.py), ``s3://`` (s3.py),
``http(s)://`` (http.py); the remote modules load only when their scheme is used.
``push`` checks and uploads blobs in parallel threads, so every store is thread-safe.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ..errors import BuildError, ConfigError
from ..manifest import BuildManifest, read_manifest, task_of
from ..progress import Log, Progress, QuietProgress
from ..units import human_size, plural
from ..wire import TaskManifest, WireError, check_login
from .local import LocalStore

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
JOBS = 4  # parallel uploads


class BlobStore(Protocol):
    """Where blobs live. Every read is verified against its digest by the store."""

    @property
    def location(self) -> str:
        """The store as a user would name it, for messages."""
        ...

    def has(self, digest: str) -> bool:
        """Whether the blob is in the store (cheap; does not verify it)."""
        ...

    def put_file(self, path: Path, digest: str) -> None:
        """Upload a file; HashMismatchError when its bytes do not hash to ``digest``."""
        ...

    def put_bytes(self, data: bytes) -> str:
        """Upload a small blob (a task manifest); its digest."""
        ...

    def fetch(self, digest: str, dest: Path) -> None:
        """Write the blob to ``dest`` atomically; BlobNotFoundError or HashMismatchError."""
        ...

    def read_bytes(self, digest: str) -> bytes:
        """A small blob's verified bytes."""
        ...

    def set_name(self, name: str, digest: str) -> None:
        """Point function ``name`` at its task manifest blob."""
        ...

    def get_name(self, name: str) -> str:
        """The digest of function ``name``'s task manifest; BlobNotFoundError if none."""
        ...

    def names(self) -> list[str]:
        """The function names in the store, sorted."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PushResult:
    """What a push did: blobs uploaded and skipped (already there), in count and bytes."""

    store: str
    functions: tuple[str, ...]
    uploaded: int
    uploaded_bytes: int
    skipped: int
    skipped_bytes: int

    def summary(self) -> str:
        return (
            f"pushed {plural(len(self.functions), 'function')} to {self.store}: "
            f"{plural(self.uploaded, 'blob')} uploaded ({human_size(self.uploaded_bytes)}), "
            f"{self.skipped} already there ({human_size(self.skipped_bytes)})"
        )


def open_store(url: str, base_dir: Path) -> BlobStore:
    """The store at ``url``: a path (relative to ``base_dir``), ``file://``, ``oci://``,
    ``s3://`` or ``http(s)://``."""
    match = _SCHEME.match(url)
    if match is None:
        return _local_store(base_dir / _expanded(url))
    scheme = match.group(1).lower()
    try:
        check_login(url)
    except WireError as exc:
        raise ConfigError(f"store {exc.message}", exc.tip) from None
    if scheme == "file":
        return _file_store(url)
    if scheme == "oci":
        from .oci import OciStore

        return OciStore(url)
    if scheme == "s3":
        from .s3 import S3Store

        return S3Store(url)
    if scheme in ("http", "https"):
        from .http import HttpStore

        return HttpStore(url)
    raise ConfigError(
        f"store URL scheme {scheme!r} is not supported",
        "use a directory, file://, oci://HOST/REPO, s3://BUCKET/PREFIX or https:// URL",
    )


def _file_store(url: str) -> LocalStore:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"file:// store URL names a host: {url}", "write file:///absolute/path or a path"
        )
    return _local_store(Path(url2pathname(parts.path)))


def _expanded(path: str) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError:  # ~user of a user this machine does not have
        raise ConfigError(f"store {path}: no such user's home", "write the full path") from None


def _local_store(root: Path) -> LocalStore:
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"store {root} is not a directory",
            "pass a store directory (or URL), or remove the file",
        )
    return LocalStore(root)


def push(
    build_dir: Path,
    store: BlobStore,
    log: Log | None = None,
    jobs: int = JOBS,
    progress: Progress | None = None,
) -> PushResult:
    """Upload a build's missing blobs (``jobs`` at a time), then task manifests, then names.

    ``log`` gets one line per blob as it is uploaded or found already there (from worker
    threads, one call at a time); ``progress`` shows the bytes as they go. Names are set
    last, so a name never points at a manifest whose blobs are missing.
    """
    manifest = read_manifest(build_dir)
    say = _serialized(log)
    if isinstance(store, LocalStore) and store.remove_stale():
        say(f"  removed temp files a killed push left in {store.location}")
    items = sorted(_blobs(manifest).items())
    # the same blobs the summary counts: the zips, then one task manifest per function
    count = plural(len(items) + len(manifest.functions), "blob")
    meter = (progress or QuietProgress()).task(
        f"pushing {count}", sum(size for _, (_, size) in items), "B"
    )

    def send(item: tuple[str, tuple[str, int]]) -> tuple[bool, int]:
        result = _send_file(store, build_dir, item, say)
        meter.advance(item[1][1])
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        sent = list(pool.map(send, items))
    meter.finish()
    tasks = {
        name: task_of(name, manifest.target, entry)
        for name, entry in sorted(manifest.functions.items())
    }
    sent += [_send_bytes(store, task) for task in tasks.values()]
    for name, task in tasks.items():
        store.set_name(name, task.sha256)
    return PushResult(
        store=store.location,
        functions=tuple(tasks),
        uploaded=sum(1 for uploaded, _ in sent if uploaded),
        uploaded_bytes=sum(size for uploaded, size in sent if uploaded),
        skipped=sum(1 for uploaded, _ in sent if not uploaded),
        skipped_bytes=sum(size for uploaded, size in sent if not uploaded),
    )


def _serialized(log: Log | None) -> Log:
    lock = threading.Lock()

    def say(line: str) -> None:
        if log is not None:
            with lock:
                log(line)

    return say


def _blobs(manifest: BuildManifest) -> dict[str, tuple[str, int]]:
    """Every code and layer blob of a build: digest -> (path in the build dir, size)."""
    blobs = {}
    for entry in manifest.functions.values():
        blobs[entry.code.sha256] = (entry.code.path, entry.code.size)
        for layer in entry.layers:
            blobs[layer.sha256] = (layer.path, layer.size)
    return blobs


def _send_file(
    store: BlobStore, build_dir: Path, item: tuple[str, tuple[str, int]], say: Log
) -> tuple[bool, int]:
    """Upload unless present: (uploaded?, size)."""
    digest, (relative, size) = item
    if store.has(digest):
        say(f"  {relative}: already there ({human_size(size)})")
        return False, size
    path = build_dir / relative
    if not path.is_file():
        raise BuildError(f"{path} is missing from the build", "build again, then push")
    store.put_file(path, digest)
    say(f"  {relative}: uploaded ({human_size(size)})")
    return True, size


def _send_bytes(store: BlobStore, task: TaskManifest) -> tuple[bool, int]:
    data = task.to_bytes()
    if store.has(task.sha256):
        return False, len(data)
    store.put_bytes(data)
    return True, len(data)


__all__ = ["BlobStore", "LocalStore", "PushResult", "open_store", "push"]

"""Content-addressed blob stores: the BlobStore seam, opening a store by URL, and push.

A store holds blobs by sha256 (layer zips, code zips, task manifests) and names each
function's task manifest by the function's name, so ``invoke NAME --store URL`` needs
nothing but the store. Digests are 64 lowercase hex digits throughout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ..errors import BuildError, ConfigError
from ..manifest import BuildManifest, TaskManifest, read_manifest
from ..units import human_size
from .local import LocalStore

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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
            f"pushed {len(self.functions)} functions to {self.store}: "
            f"{self.uploaded} blobs uploaded ({human_size(self.uploaded_bytes)}), "
            f"{self.skipped} already there ({human_size(self.skipped_bytes)})"
        )


def open_store(url: str, base_dir: Path) -> BlobStore:
    """The store at ``url``: a path (relative to ``base_dir``) or a ``file://`` URL."""
    match = _SCHEME.match(url)
    if match is None:
        return LocalStore(base_dir / Path(url).expanduser())
    scheme = match.group(1).lower()
    if scheme != "file":
        raise ConfigError(
            f"store URL scheme {scheme!r} is not supported yet",
            "use a directory path or a file:// URL (oci://, s3:// and https:// are planned)",
        )
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"file:// store URL names a host: {url}", "write file:///absolute/path or a path"
        )
    return LocalStore(Path(url2pathname(parts.path)))


def push(build_dir: Path, store: BlobStore) -> PushResult:
    """Upload a build's missing blobs, then one task manifest per function, then the names.

    Names are set last, so a name never points at a manifest whose blobs are missing.
    """
    manifest = read_manifest(build_dir)
    sent = [
        _send_file(store, build_dir / path, digest, size)
        for digest, (path, size) in sorted(_blobs(manifest).items())
    ]
    tasks = {
        name: TaskManifest.of_function(name, manifest.target, entry)
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


def _blobs(manifest: BuildManifest) -> dict[str, tuple[str, int]]:
    """Every code and layer blob of a build: digest -> (path in the build dir, size)."""
    blobs = {}
    for entry in manifest.functions.values():
        blobs[entry.code.sha256] = (entry.code.path, entry.code.size)
        for layer in entry.layers:
            blobs[layer.sha256] = (layer.path, layer.size)
    return blobs


def _send_file(store: BlobStore, path: Path, digest: str, size: int) -> tuple[bool, int]:
    """Upload unless present: (uploaded?, size)."""
    if store.has(digest):
        return False, size
    if not path.is_file():
        raise BuildError(f"{path} is missing from the build", "build again, then push")
    store.put_file(path, digest)
    return True, size


def _send_bytes(store: BlobStore, task: TaskManifest) -> tuple[bool, int]:
    data = task.to_bytes()
    if store.has(task.sha256):
        return False, len(data)
    store.put_bytes(data)
    return True, len(data)


__all__ = ["BlobStore", "LocalStore", "PushResult", "open_store", "push"]

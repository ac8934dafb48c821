"""The embedded default store: a directory of sha256-named blobs and function names.

Layout (the shim reads the same layout with the standard library alone)::

    ROOT/blobs/sha256/<hex>     blob bytes, written atomically, hash checked on the way in
    ROOT/functions/<NAME>       "sha256:<hex>\\n", the digest of NAME's task manifest

Blobs are verified when written and when read; a blob found corrupt is removed, so the
next push uploads it again.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import BinaryIO

from .. import wire
from ..atomic import atomic_writer, remove_stale, write_text
from ..errors import BlobNotFoundError, ConfigError, HashMismatchError, StoreError

CHUNK = 1 << 20


class LocalStore:
    """A BlobStore in a local directory (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def location(self) -> str:
        return str(self.root)

    def remove_stale(self) -> int:
        """Remove temp files a killed push left (old and not being written); how many."""
        return sum(remove_stale(self.root / folder) for folder in ("blobs/sha256", "functions"))

    def has(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def put_file(self, path: Path, digest: str) -> None:
        with open(path, "rb") as source:
            self._put(source, digest, str(path))

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with atomic_writer(self._blob(digest)) as out:
            out.write(data)
        return digest

    def fetch(self, digest: str, dest: Path) -> None:
        with self._open(digest) as source, atomic_writer(dest) as out:
            actual = _copy(source, out)
            self._check_read(digest, actual)

    def read_bytes(self, digest: str) -> bytes:
        with self._open(digest) as source:
            data = source.read()
        self._check_read(digest, hashlib.sha256(data).hexdigest())
        return data

    def set_name(self, name: str, digest: str) -> None:
        check_name(name)
        write_text(self.root / "functions" / name, wire.format_ref(check_digest(digest)))

    def get_name(self, name: str) -> str:
        check_name(name)
        try:
            text = (self.root / "functions" / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"no function {name!r} in store {self.root}",
                "push it first, or list the store's functions: pip-lambda-pack ls",
            ) from None
        return name_digest(text, str(self.root), name)

    def names(self) -> list[str]:
        folder = self.root / "functions"
        if not folder.is_dir():
            return []
        names = (p.name for p in folder.iterdir() if p.is_file())
        return sorted(n for n in names if wire.is_function_name(n))

    def delete_name(self, name: str) -> None:
        """Remove function ``name`` (its blobs stay: other functions may share them)."""
        check_name(name)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "functions" / name).unlink()

    def _blob(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / "blobs" / "sha256" / digest

    def _open(self, digest: str) -> BinaryIO:
        try:
            return open(self._blob(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"blob sha256:{digest} is not in store {self.root}",
                "push the function again: pip-lambda-pack push",
            ) from None

    def _put(self, source: BinaryIO, digest: str, what: str) -> None:
        with atomic_writer(self._blob(digest)) as out:
            actual = _copy(source, out)
            if actual != digest:  # raising here discards the temp file
                raise _mismatch(f"{what} (for blob {digest})", actual, "build again, then push")

    def _check_read(self, digest: str, actual: str) -> None:
        if actual == digest:
            return
        with contextlib.suppress(FileNotFoundError):
            self._blob(digest).unlink()
        raise HashMismatchError(
            wire.corrupt_blob(str(self.root), digest, actual),
            "the store removed it; push again to restore it: pip-lambda-pack push",
        )


def name_digest(text: str, location: str, name: str) -> wire.Digest:
    """The digest a ``functions/NAME`` entry holds (``sha256:<hex>``), as every store
    writes it; a StoreError when the entry holds anything else."""
    try:
        return wire.name_digest(text, location, name)
    except wire.WireError as exc:
        raise StoreError(exc.message, exc.tip) from None


def _copy(source: BinaryIO, out: BinaryIO) -> str:
    """Copy in chunks; the hex sha256 of what was copied."""
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(CHUNK), b""):
        digest.update(block)
        out.write(block)
    return digest.hexdigest()


def _mismatch(what: str, actual: str, tip: str) -> HashMismatchError:
    return HashMismatchError(f"{what}: bytes hash to sha256:{actual}", tip)


def check_name(name: str) -> wire.FunctionName:
    try:
        return wire.as_function_name(name)
    except wire.WireError as exc:
        raise ConfigError(exc.message, exc.tip) from None


def check_digest(digest: str) -> wire.Digest:
    try:
        return wire.as_digest(digest)
    except wire.WireError as exc:
        raise StoreError(exc.message, exc.tip) from None

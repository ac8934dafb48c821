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
import re
from pathlib import Path
from typing import BinaryIO

from ..atomic import atomic_writer, write_text
from ..errors import BlobNotFoundError, ConfigError, HashMismatchError, StoreError

_REF = re.compile(r"^sha256:([0-9a-f]{64})\n?$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
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
        _check_name(name)
        _check_digest(digest)
        write_text(self.root / "functions" / name, f"sha256:{digest}\n")

    def get_name(self, name: str) -> str:
        _check_name(name)
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
        return sorted(p.name for p in folder.iterdir() if p.is_file() and _NAME.match(p.name))

    def delete_name(self, name: str) -> None:
        """Remove function ``name`` (its blobs stay: other functions may share them)."""
        _check_name(name)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "functions" / name).unlink()

    def _blob(self, digest: str) -> Path:
        _check_digest(digest)
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
        raise _mismatch(
            f"store {self.root}: blob sha256:{digest} is corrupt; removed it",
            actual,
            "push again to restore it: pip-lambda-pack push",
        )


def name_digest(text: str, location: str, name: str) -> str:
    """The digest a ``functions/NAME`` entry holds (``sha256:<hex>``), as every store
    writes it; a StoreError when the entry holds anything else."""
    match = _REF.match(text)
    if match is None:
        raise StoreError(
            f"store {location}: functions/{name} does not hold a sha256:<hex> digest",
            "push the function again",
        )
    return match.group(1)


def _copy(source: BinaryIO, out: BinaryIO) -> str:
    """Copy in chunks; the hex sha256 of what was copied."""
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(CHUNK), b""):
        digest.update(block)
        out.write(block)
    return digest.hexdigest()


def _mismatch(what: str, actual: str, tip: str) -> HashMismatchError:
    return HashMismatchError(f"{what}: bytes hash to sha256:{actual}", tip)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"function name {name!r} is not valid",
            "use letters, digits, '-' and '_' (at most 64 characters), as Lambda does",
        )


def _check_digest(digest: str) -> None:
    if not _HEX64.match(digest):
        raise StoreError(f"{digest!r} is not a sha256 hex digest", "pass 64 lowercase hex digits")

"""Files as verified local paths: remote ones downloaded once into the file cache (by the
sha256 of their bytes), local ones hashed in place, each checked against its sha256."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import sha256_of, write_bytes
from .errors import HashMismatchError, IndexFetchError
from .links import FileLink, url_to_path
from .pagecache import url_key
from .wire import redact
from .workers import OnceMemo, Shared

if TYPE_CHECKING:
    from .progress import Task

StatKey = tuple[str, int, int, int, int, int]


def hash_mismatch(filename: str, url: str, expected: str, got: str) -> HashMismatchError:
    """The error for a file whose bytes are not the ones its sha256 says."""
    return HashMismatchError(
        f"{filename} from {redact(url)} has sha256 {got}, expected {expected}",
        "the bytes differ from the published hash: check the index (or a proxy in between), "
        "or refresh the --hash in your requirements if the file was legitimately replaced",
    )


class LocalHashes:
    """sha256 of local files, hashed once while their size, times and inode hold: per
    process, and across processes through ``cache_dir/hashes``."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._known: dict[StatKey, str] = {}

    def sha256(self, path: Path) -> str:
        key = _stat_key(path)
        with self._lock:
            known = self._known.get(key)
        if known is None:
            record = self._cache_dir / "hashes" / url_key(json.dumps(key))
            known = _read_digest(record)
            if known is None:
                known = sha256_of(path)
                with contextlib.suppress(OSError):  # a memo: not keeping it costs a rehash
                    write_bytes(record, known.encode())
            with self._lock:
                self._known[key] = known
        return known

    def known(self, path: Path) -> bool:
        """Whether ``path`` as it is now was hashed by this process (OSError if it is gone)."""
        key = _stat_key(path)
        with self._lock:
            return key in self._known


class Downloads:
    """``download`` and ``download_many`` of the ``Finder``: remote files land in
    ``files/<sha256[:2]>/<sha256>/<filename>`` under ``cache_dir``, once per process;
    ``offline`` reads only that cache."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._paths: OnceMemo[str, Path] = OnceMemo()

    def download(self, link: FileLink) -> Path:
        """A local path to ``link``'s bytes, verified against its sha256.

        Local ``file://`` files are hashed and returned in place; remote files land in
        ``files/<sha256[:2]>/<sha256>/<filename>`` under the cache directory.
        """
        if link.url.startswith("file:"):
            return self.verified_local(link)
        return self._paths.make(link.url, lambda: self._fetched(link))

    def downloaded(self, link: FileLink) -> bool:
        """Whether this process has downloaded ``link`` already."""
        return link.url in self._paths

    def _fetched(self, link: FileLink) -> Path:
        """``link`` from the file cache, else from the network (not offline)."""
        cached = self.file_path(link.sha256, link.filename) if link.sha256 else None
        if cached is not None and cached.is_file():
            return cached
        if self._shared.offline:
            raise IndexFetchError(
                f"{link.filename} is not in the cache (offline)",
                "run once without --offline to fill the cache",
            )
        return self._fetch_file(link)

    def download_many(
        self,
        links: Sequence[FileLink],
        progress: Task | None = None,
        ready: Callable[[FileLink, Path], None] | None = None,
    ) -> dict[str, Path]:
        """``download`` for each link in parallel threads sharing one client; keyed by URL.
        ``progress`` advances by each remote file's bytes and ``ready`` gets each file (in
        its thread) as it lands; the largest start first, the longest to fetch and compile."""
        unique = sorted({link.url: link for link in links}.values(), key=lambda x: -(x.size or 0))

        def fetch(link: FileLink) -> Path:
            path = self.download(link)
            if progress is not None and not link.url.startswith("file:"):
                progress.advance(link.size or path.stat().st_size)
            if ready is not None:
                ready(link, path)
            return path

        if all(self._hashed_already(link) for link in unique):  # nothing left to do in threads
            return {link.url: fetch(link) for link in unique}

        paths = list(self._shared.workers.pool().map(fetch, unique))
        return {link.url: path for link, path in zip(unique, paths, strict=True)}

    def _hashed_already(self, link: FileLink) -> bool:
        if not link.url.startswith("file:"):
            return False
        try:
            return self._shared.hashes.known(url_to_path(link.url))
        except OSError:
            return True  # download() says what is wrong

    def file_path(self, sha256: str, filename: str) -> Path:
        """Where the file cache keeps the file of this sha256."""
        return self._shared.cache_dir / "files" / sha256[:2] / sha256 / filename

    def _fetch_file(self, link: FileLink) -> Path:
        incoming = (
            self._shared.cache_dir / "files" / ".incoming" / f"{uuid.uuid4().hex}-{link.filename}"
        )
        self._shared.log(f"downloading {redact(link.url)}")
        got = self._shared.http.stream_to(link.url, incoming)
        if link.sha256 is not None and got != link.sha256:
            incoming.unlink()
            raise hash_mismatch(link.filename, link.url, link.sha256, got)
        final = self.file_path(got, link.filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, final)
        return final

    def verified_local(self, link: FileLink) -> Path:
        """The path of a ``file:`` link, its bytes checked against its sha256."""
        path = url_to_path(link.url)
        if not path.is_file():
            raise IndexFetchError(f"{path} does not exist", "check the --find-links location")
        got = self._shared.hashes.sha256(path)
        if link.sha256 is not None and got != link.sha256:
            raise hash_mismatch(link.filename, link.url, link.sha256, got)
        return path


def _stat_key(path: Path) -> StatKey:
    """What identifies a local file's bytes: any write changes its times."""
    info = path.stat()
    return (str(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def _read_digest(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None

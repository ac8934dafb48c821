"""What the resolver and the lock read of a wheel without installing it: its METADATA (the
PEP 658 file, byte ranges of the remote zip, or the wheel itself) and its sizes, memoised
per process and cached on disk only when verified."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

from .atomic import write_bytes
from .downloads import Downloads, hash_mismatch
from .links import FileLink
from .pagecache import url_key
from .rangezip import RangeReader, read_wheel_facts, read_wheel_metadata, sizable
from .wire import redact
from .workers import OnceMemo, Shared


class WheelInfo:
    """``metadata`` and ``sizes`` of the ``Finder``, over ``ranges`` and ``downloads``."""

    def __init__(self, shared: Shared, *, ranges: RangeReader, downloads: Downloads) -> None:
        self._shared = shared
        self._ranges = ranges
        self._downloads = downloads
        self._lock = threading.Lock()
        self._metadata: OnceMemo[str, bytes] = OnceMemo()
        self._unpacked: dict[str, int] = {}

    # ------------------------------------------------------------------ sizes

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of the wheels whose sizes are known without a
        download: remote ones read by ranges (``remote_sizes``), local ones whose METADATA
        was read (verified again, as ``download`` would)."""
        found = self.remote_sizes(links)
        for link in links:
            unpacked = self.known_unpacked_size(link)
            if unpacked is not None and link.url.startswith("file:"):
                found[link.url] = (self._downloads.verified_local(link).stat().st_size, unpacked)
        return found

    def remote_sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of the remote wheels whose sizes could be read
        without downloading them (see ``remote_size``), in threads; the others are left out."""
        unique = list({link.url: link for link in links if sizable(link)}.values())
        found = list(self._shared.workers.pool().map(self.remote_size, unique))
        pairs = zip(unique, found, strict=True)
        return {link.url: sizes for link, sizes in pairs if sizes is not None}

    def remote_size(self, link: FileLink) -> tuple[int, int] | None:
        """``(bytes, unpacked bytes)`` of a remote wheel with a known sha256, read from its
        zip central directory with HTTP range requests (cached by sha256), or None: download
        it instead (the server ignores ``Range``, the archive is unusual, offline, or it is
        in the file cache already)."""
        if self._downloads.downloaded(link) or not sizable(link):
            return None
        assert link.sha256 is not None
        if self._downloads.file_path(link.sha256, link.filename).is_file():
            return None
        return self._ranges.size(link)

    def known_unpacked_size(self, link: FileLink) -> int | None:
        """The unpacked size of ``link`` if reading its metadata already told it, else None."""
        with self._lock:
            return self._unpacked.get(link.url)

    # ------------------------------------------------------------------ metadata

    def metadata(self, link: FileLink) -> bytes:
        """The core METADATA bytes of the wheel ``link``.

        From the PEP 658 ``.metadata`` file when offered (checked against its hash), else
        from the (downloaded, verified, cached) wheel itself.
        """
        return self._metadata.make(link.url, lambda: self._read_metadata(link))

    def _read_metadata(self, link: FileLink) -> bytes:
        if not link.url.startswith("file:"):
            return self._cached_metadata(link)
        data, unpacked = read_wheel_facts(self._downloads.verified_local(link))
        with self._lock:
            self._unpacked[link.url] = unpacked
        return data

    def _cached_metadata(self, link: FileLink) -> bytes:
        key = link.sha256 or url_key(link.url)
        path = self._shared.cache_dir / "metadata" / key[:2] / key / "METADATA"
        if path.is_file():
            return path.read_bytes()
        data, verified = self._fetch_metadata(link)
        if verified:
            write_bytes(path, data)
        return data

    def _fetch_metadata(self, link: FileLink) -> tuple[bytes, bool]:
        """(metadata, whether it was checked against a hash)."""
        if link.has_metadata and not self._shared.offline:
            url = link.url + ".metadata"
            self._shared.log(f"fetching {redact(url)}")
            response = self._shared.http.get(url, {})
            if response.status_code < 400:
                return _checked_metadata(link, response.content)
            self._shared.log(f"{redact(url)} answered HTTP {response.status_code}; using the wheel")
        ranged = None if self._shared.offline or not sizable(link) else self._ranges.metadata(link)
        if ranged is not None:  # CRC-checked, from the wheel whose sha256 keys the cache
            return ranged, True
        wheel = self._downloads.download(link)
        return read_wheel_metadata(wheel), link.sha256 is not None


def _checked_metadata(link: FileLink, data: bytes) -> tuple[bytes, bool]:
    if link.metadata_sha256 is None:
        return data, False
    got = hashlib.sha256(data).hexdigest()
    if got != link.metadata_sha256:
        raise hash_mismatch(link.filename + ".metadata", link.url, link.metadata_sha256, got)
    return data, True

"""The index behind one seam: the ``Finder`` Protocol, and ``PackageFinder``, the real one.

``PackageFinder`` lists a project's files across indexes (PEP 691 JSON, PEP 503 HTML) and
find-links locations, reads their METADATA (PEP 658 file, range reads, or the wheel) and
downloads them. Its pieces: ``pagecache`` (pages), ``rangezip`` (zip directories by range),
``httpfetch`` (the client and its retries), ``links`` (the records and page parsers).

Every file that enters the on-disk cache has been checked against the sha256 it must have
(or is stored under the sha256 of its own bytes); METADATA and sizes read from a remote
wheel's byte ranges are checked against its central directory (CRC-32, sizes) and kept under
the wheel's published sha256; a local wheel's sha256 is kept under its path, size, times and
inode. Writes are atomic. httpx errors are mapped once, in ``httpfetch``, to
``IndexFetchError``; a file with the wrong bytes is a ``HashMismatchError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from packaging.utils import NormalizedName, canonicalize_name

from .atomic import sha256_of, write_bytes
from .credentials import IndexCredentials, check_index_url, public_url
from .errors import ConfigError, HashMismatchError, IndexFetchError
from .httpfetch import IndexHttp
from .links import (
    ARCHIVE_SUFFIXES,
    FileLink,
    local_link,
    parse_html_page,
    parse_json_page,
    project_of,
    url_to_path,
)
from .pagecache import PageCache, url_key
from .rangezip import RangeReader, read_wheel_facts, read_wheel_metadata, sizable
from .wire import redact

if TYPE_CHECKING:  # httpx is imported when a remote file is first fetched
    import httpx

    from .progress import Task

__all__ = ["FileLink", "Finder", "FollowUp", "PackageFinder", "metadata_is_cheap"]

JSON_TYPES = ("application/vnd.pypi.simple.v1+json", "application/json")
THREADS = 8  # for prefetches and downloads: network-bound; hashing releases the GIL
FollowUp = Callable[[str, Sequence[FileLink]], None]
StatKey = tuple[str, int, int, int, int, int]


class Finder(Protocol):
    """What the resolver and the pipeline need of an index (``PackageFinder`` is the real one;
    tests pass fakes). Every method may be called from several threads at once; failures are
    ``IndexFetchError`` or ``HashMismatchError``, never a third party's exception.

    ``index_urls``, ``find_links`` and ``offline`` say where files come from, as configured:
    a URL may hold a login, so it is passed only to the pip that builds an sdist and shown
    only through ``wire.redact``. The links of remote pages hold none (a login on a page is
    taken out and kept for requests); what is recorded goes through ``public_url``.
    """

    @property
    def index_urls(self) -> tuple[str, ...]: ...

    @property
    def find_links(self) -> tuple[str, ...]: ...

    @property
    def offline(self) -> bool: ...

    def links(self, name: str) -> Sequence[FileLink]:
        """Every file of project ``name``, indexes first; memoised, so cheap when asked again."""
        ...

    def prefetch(self, names: Iterable[str], then: FollowUp | None = None) -> None:
        """Start listing these projects in the background (``then(project, links)`` after
        each); returns at once. A hint: doing nothing is correct, only slower."""
        ...

    def metadata(self, link: FileLink) -> bytes:
        """The core METADATA bytes of the wheel ``link`` (may download it: costly)."""
        ...

    def download(self, link: FileLink) -> Path:
        """A local path to ``link``'s bytes, verified against its sha256."""
        ...

    def download_many(
        self, links: Sequence[FileLink], progress: Task | None = None
    ) -> dict[str, Path]:
        """``download`` of each link, keyed by URL (in parallel where it can)."""
        ...

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of those wheels whose sizes are known without
        downloading them; the others are left out."""
        ...


def metadata_is_cheap(link: FileLink) -> bool:
    """Whether a finder can read ``link``'s METADATA without downloading a whole remote wheel."""
    return link.url.startswith("file:") or link.has_metadata or sizable(link)


def _hash_mismatch(filename: str, url: str, expected: str, got: str) -> HashMismatchError:
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


class PackageFinder:
    """Lists, fetches and caches a project's files from indexes and find-links locations.

    ``links`` and ``metadata`` are memoised per process; ``download`` returns verified paths.
    ``offline=True`` reads only the cache. ``log`` receives the ``-v`` lines.
    """

    def __init__(
        self,
        *,
        index_urls: Sequence[str] = ("https://pypi.org/simple",),
        find_links: Sequence[str] = (),
        cache_dir: Path,
        offline: bool = False,
        client: httpx.Client | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.index_urls = tuple(index_urls)
        self.find_links = tuple(find_links)
        self.cache_dir = Path(cache_dir)
        self.offline = offline
        self._log = log or (lambda _line: None)
        remote = [url for url in (*self.index_urls, *self.find_links) if "://" in url]
        for url in remote:
            check_index_url(url)
        self._http = IndexHttp(client, self._log, IndexCredentials(remote))
        self._pages = PageCache(self._http, self.cache_dir, offline=offline, log=self._log)
        self._ranges = RangeReader(self._http, self.cache_dir, offline=offline, log=self._log)
        self._hashes = LocalHashes(self.cache_dir)
        self._lock = threading.Lock()
        self._links: dict[str, list[FileLink]] = {}
        self._locations: dict[str, list[FileLink]] = {}
        self._metadata: dict[str, bytes] = {}
        self._downloads: dict[str, Path] = {}
        self._unpacked: dict[str, int] = {}
        self._pending: dict[str, Future[list[FileLink]]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._listing = threading.Lock()  # one thread lists a find-links location
        self._closed = False
        self._once_locks: dict[str, threading.Lock] = {}

    def __enter__(self) -> PackageFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop prefetches not started; close the HTTP client if the finder made it."""
        with self._lock:
            self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    # ------------------------------------------------------------------ listing

    def prefetch(self, names: Iterable[str], then: FollowUp | None = None) -> None:
        """Start listing these projects in background threads (pages fetched, local files
        hashed), so that ``links`` finds them ready; ``then(project, links)`` runs in a
        thread after each listing (errors logged, not raised). What goes wrong with a
        listing is raised by the ``links`` call that asks for it, as without the prefetch.
        A project already listed or being listed is skipped (so is its ``then``)."""
        pool = self._threads()
        with self._lock:
            for project in dict.fromkeys(map(canonicalize_name, names)):
                if project not in self._links and project not in self._pending:
                    self._pending[project] = pool.submit(self._prefetched, project, then)

    def _prefetched(self, project: NormalizedName, then: FollowUp | None) -> list[FileLink]:
        links = self._list(project)
        if then is not None:
            with self._lock:  # a follow-up of its own, so links() waiting here returns now
                if self._pool is not None and not self._closed:
                    self._pool.submit(self._follow_up, then, project, links)
        return links

    def _follow_up(self, then: FollowUp, project: str, links: list[FileLink]) -> None:
        try:
            then(project, links)
        except Exception as exc:  # a guess ahead of the resolver: it will meet the error itself
            self._log(f"read-ahead after {project} stopped: {exc}")

    def links(self, name: str) -> list[FileLink]:
        """Every file of project ``name`` across all indexes, then all find-links locations."""
        project = canonicalize_name(name)
        with self._lock:
            if project in self._links:
                return self._links[project]
            pending = self._pending.get(project)
        if pending is None or pending.cancelled():
            return self._list(project)
        try:
            return pending.result()
        except BaseException:
            with self._lock:  # asked again, it is tried again, as without the prefetch
                self._pending.pop(project, None)
            raise

    def _list(self, project: NormalizedName) -> list[FileLink]:
        """``links`` once per project: collect, dedupe by URL, hash local files, remember."""
        with self._once(f"links {project}"):
            with self._lock:
                if project in self._links:  # listed by another thread meanwhile
                    return self._links[project]
            found: dict[str, FileLink] = {}
            for link in self._collect(project):
                found.setdefault(link.url, link)
            result = [self._with_local_hash(link) for link in found.values()]
            with self._lock:
                self._links[project] = result
            return result

    def _collect(self, project: NormalizedName) -> Iterable[FileLink]:
        for index in self.index_urls:
            public = public_url(index)  # its login goes with each request, not in the URL
            links = self._page_links(f"{public.rstrip('/')}/{project}/", public)
            self._log(f"{len(links)} files for {project} from {redact(index)}")
            yield from self._of_project(links, project)
        for location in self.find_links:
            yield from self._of_project(self._location_links(location), project)

    def _of_project(self, links: list[FileLink], project: str) -> Iterable[FileLink]:
        for link in links:
            if project_of(link.filename) == project:
                yield link
            elif link.filename.endswith(ARCHIVE_SUFFIXES) and project_of(link.filename) is None:
                self._log(f"skipping {link.filename} from {link.source}: not a valid file name")

    def _with_local_hash(self, link: FileLink) -> FileLink:
        if link.sha256 is None and link.url.startswith("file:"):
            path = url_to_path(link.url)
            if path.is_file():
                return replace(link, sha256=self._hashes.sha256(path))
        return link

    def _location_links(self, location: str) -> list[FileLink]:
        with self._listing:
            if location in self._locations:
                return self._locations[location]
            if location.startswith(("http://", "https://")):
                links = self._page_links(public_url(location), public_url(location))
            else:
                links = self._local_links(location)
            self._locations[location] = links
            return links

    def _local_links(self, location: str) -> list[FileLink]:
        path = url_to_path(location) if location.startswith("file:") else Path(location)
        if path.is_file():
            return parse_html_page(path.read_text(errors="replace"), path.as_uri(), location)
        if not path.is_dir():
            raise ConfigError(
                f"find-links location {location} does not exist",
                "pass an existing directory, an HTML page or a URL to --find-links",
            )
        files = sorted(p for p in path.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES))
        return [local_link(p, location) for p in files if p.is_file()]

    def _page_links(self, url: str, source: str) -> list[FileLink]:
        page = self._pages.get(url)
        if page is None:
            return []
        content_type, text, final_url = page
        if content_type.split(";", 1)[0].strip() in JSON_TYPES:
            return parse_json_page(text, final_url, source)
        return parse_html_page(text, final_url, source)

    # ------------------------------------------------------------------ files

    def download(self, link: FileLink) -> Path:
        """A local path to ``link``'s bytes, verified against its sha256.

        Local ``file://`` files are hashed and returned in place; remote files land in
        ``files/<sha256[:2]>/<sha256>/<filename>`` under the cache directory.
        """
        if link.url.startswith("file:"):
            return self._verified_local(link)
        with self._lock:
            if link.url in self._downloads:
                return self._downloads[link.url]
        with self._once(f"file {link.url}"):
            with self._lock:
                if link.url in self._downloads:  # fetched by another thread meanwhile
                    return self._downloads[link.url]
            path = self._fetched(link)
            with self._lock:
                self._downloads[link.url] = path
            return path

    def _fetched(self, link: FileLink) -> Path:
        """``link`` from the file cache, else from the network (not offline)."""
        cached = self._file_path(link.sha256, link.filename) if link.sha256 else None
        if cached is not None and cached.is_file():
            return cached
        if self.offline:
            raise IndexFetchError(
                f"{link.filename} is not in the cache (offline)",
                "run once without --offline to fill the cache",
            )
        return self._fetch_file(link)

    def download_many(
        self, links: Sequence[FileLink], progress: Task | None = None
    ) -> dict[str, Path]:
        """``download`` for each link in parallel threads sharing one client; keyed by URL.
        ``progress`` advances by each file's bytes as it lands."""
        unique = list({link.url: link for link in links}.values())
        if all(self._hashed_already(link) for link in unique):  # nothing left to do in threads
            return {link.url: self.download(link) for link in unique}

        def fetch(link: FileLink) -> Path:
            path = self.download(link)
            if progress is not None:
                progress.advance(link.size or path.stat().st_size)
            return path

        paths = list(self._threads().map(fetch, unique))
        return {link.url: path for link, path in zip(unique, paths, strict=True)}

    def _threads(self) -> ThreadPoolExecutor:
        """The finder's threads (prefetches, downloads), started on first use."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, "lambda-pack-finder")
            return self._pool

    def _hashed_already(self, link: FileLink) -> bool:
        if not link.url.startswith("file:"):
            return False
        try:
            return self._hashes.known(url_to_path(link.url))
        except OSError:
            return True  # download() says what is wrong

    def _file_path(self, sha256: str, filename: str) -> Path:
        return self.cache_dir / "files" / sha256[:2] / sha256 / filename

    def _fetch_file(self, link: FileLink) -> Path:
        incoming = self.cache_dir / "files" / ".incoming" / f"{uuid.uuid4().hex}-{link.filename}"
        self._log(f"downloading {redact(link.url)}")
        got = self._http.stream_to(link.url, incoming)
        if link.sha256 is not None and got != link.sha256:
            incoming.unlink()
            raise _hash_mismatch(link.filename, link.url, link.sha256, got)
        final = self._file_path(got, link.filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, final)
        return final

    # ------------------------------------------------------------------ sizes

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of the wheels whose sizes are known without a
        download: remote ones read by ranges (``remote_sizes``), local ones whose METADATA
        was read (verified again, as ``download`` would)."""
        found = self.remote_sizes(links)
        for link in links:
            unpacked = self.known_unpacked_size(link)
            if unpacked is not None and link.url.startswith("file:"):
                found[link.url] = (self._verified_local(link).stat().st_size, unpacked)
        return found

    def remote_sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of the remote wheels whose sizes could be read
        without downloading them (see ``remote_size``), in threads; the others are left out."""
        unique = list({link.url: link for link in links if sizable(link)}.values())
        found = list(self._threads().map(self.remote_size, unique))
        pairs = zip(unique, found, strict=True)
        return {link.url: sizes for link, sizes in pairs if sizes is not None}

    def remote_size(self, link: FileLink) -> tuple[int, int] | None:
        """``(bytes, unpacked bytes)`` of a remote wheel with a known sha256, read from its
        zip central directory with HTTP range requests (cached by sha256), or None: download
        it instead (the server ignores ``Range``, the archive is unusual, offline, or it is
        in the file cache already)."""
        with self._lock:
            downloaded = link.url in self._downloads
        if downloaded or not sizable(link):
            return None
        assert link.sha256 is not None
        if self._file_path(link.sha256, link.filename).is_file():
            return None
        return self._ranges.size(link)

    # ------------------------------------------------------------------ metadata

    def metadata(self, link: FileLink) -> bytes:
        """The core METADATA bytes of the wheel ``link``.

        From the PEP 658 ``.metadata`` file when offered (checked against its hash), else
        from the (downloaded, verified, cached) wheel itself.
        """
        with self._lock:
            if link.url in self._metadata:
                return self._metadata[link.url]
        with self._once(f"metadata {link.url}"):
            with self._lock:
                if link.url in self._metadata:  # read by another thread meanwhile
                    return self._metadata[link.url]
            if link.url.startswith("file:"):
                data, unpacked = read_wheel_facts(self._verified_local(link))
                with self._lock:
                    self._unpacked[link.url] = unpacked
            else:
                data = self._cached_metadata(link)
            with self._lock:
                self._metadata[link.url] = data
            return data

    def _once(self, key: str) -> threading.Lock:
        """A lock per thing fetched, so two threads wanting it fetch it once."""
        with self._lock:
            return self._once_locks.setdefault(key, threading.Lock())

    def known_unpacked_size(self, link: FileLink) -> int | None:
        """The unpacked size of ``link`` if reading its metadata already told it, else None."""
        with self._lock:
            return self._unpacked.get(link.url)

    # ------------------------------------------------------------------ local files

    def _verified_local(self, link: FileLink) -> Path:
        path = url_to_path(link.url)
        if not path.is_file():
            raise IndexFetchError(f"{path} does not exist", "check the --find-links location")
        got = self._hashes.sha256(path)
        if link.sha256 is not None and got != link.sha256:
            raise _hash_mismatch(link.filename, link.url, link.sha256, got)
        return path

    def _cached_metadata(self, link: FileLink) -> bytes:
        key = link.sha256 or url_key(link.url)
        path = self.cache_dir / "metadata" / key[:2] / key / "METADATA"
        if path.is_file():
            return path.read_bytes()
        data, verified = self._fetch_metadata(link)
        if verified:
            write_bytes(path, data)
        return data

    def _fetch_metadata(self, link: FileLink) -> tuple[bytes, bool]:
        """(metadata, whether it was checked against a hash)."""
        if link.has_metadata and not self.offline:
            url = link.url + ".metadata"
            self._log(f"fetching {redact(url)}")
            response = self._http.get(url, {})
            if response.status_code < 400:
                return self._checked_metadata(link, response.content)
            self._log(f"{redact(url)} answered HTTP {response.status_code}; using the wheel")
        ranged = None if self.offline or not sizable(link) else self._ranges.metadata(link)
        if ranged is not None:  # CRC-checked, from the wheel whose sha256 keys the cache
            return ranged, True
        wheel = self.download(link)
        return read_wheel_metadata(wheel), link.sha256 is not None

    def _checked_metadata(self, link: FileLink, data: bytes) -> tuple[bytes, bool]:
        if link.metadata_sha256 is None:
            return data, False
        got = hashlib.sha256(data).hexdigest()
        if got != link.metadata_sha256:
            raise _hash_mismatch(link.filename + ".metadata", link.url, link.metadata_sha256, got)
        return data, True


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

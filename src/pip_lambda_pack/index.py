"""Simple-API client: PEP 691 JSON and PEP 503 HTML pages, PEP 658 metadata, find-links, cache.

Every file that enters the on-disk cache has been checked against the sha256 it must have
(or is stored under the sha256 of its own bytes); METADATA and sizes read from a remote
wheel's byte ranges are checked against its central directory (CRC-32, sizes) and kept under
the wheel's published sha256; a local wheel's sha256 is kept under its path, size, times and
inode. Writes are atomic. httpx errors are mapped once, here, to ``IndexFetchError``; a
file with the wrong bytes is a ``HashMismatchError``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import struct
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from .atomic import atomic_writer, sha256_of, write_bytes
from .errors import ConfigError, HashMismatchError, IndexFetchError
from .wire import redact

if TYPE_CHECKING:  # httpx is imported when a remote file is first fetched
    import httpx

    from .progress import Task

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
JSON_TYPES = ("application/vnd.pypi.simple.v1+json", "application/json")
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")
RETRIES = 3
SIZE_TAIL = 1 << 16  # a remote wheel's last bytes asked for first: most central directories
THREADS = 8  # for prefetches and downloads: network-bound; hashing releases the GIL
BACKOFF = 0.25  # seconds before the second try; doubled before the third
FETCH_TIP = "check the index URL and your network, or use --find-links with local wheels"
T = TypeVar("T")
FollowUp = Callable[[str, list["FileLink"]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLink:
    """One downloadable file of a project, as an index or a find-links location lists it."""

    filename: str
    url: str  # absolute; file:// for local find-links files
    sha256: str | None  # from the index (#sha256= or JSON hashes); always set for local files
    requires_python: str | None
    yanked: str | None  # None = not yanked; "" or the reason = yanked
    metadata_sha256: str | None  # PEP 658/714 hash of the .metadata file, when given
    has_metadata: bool  # the index offers <url>.metadata
    size: int | None  # PEP 700 size, when given
    source: str  # the index URL or find-links location it came from

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


class _ServerError(Exception):
    """A 5xx answer, raised inside one try so the retry loop sees it."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def redact_url(url: str) -> str:
    """``url`` fit for a message (wire.redact: the one redaction of every URL we show)."""
    return redact(url)


def url_to_path(url: str) -> Path:
    """The local path of a ``file://`` URL."""
    path = urlsplit(url).path
    if os.name == "nt":  # pragma: no cover - urllib.request imports http.client and ssl
        from urllib.request import url2pathname

        return Path(url2pathname(path))
    return Path(unquote(path))  # what url2pathname is on POSIX


@functools.lru_cache(maxsize=1 << 16)  # a find-links dir's names are parsed once per project
def project_of(filename: str) -> NormalizedName | None:
    """The canonical project name in a wheel or sdist filename, or None if it has none."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[0]
        return parse_sdist_filename(filename)[0]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def read_wheel_metadata(path: Path) -> bytes:
    """The ``*.dist-info/METADATA`` bytes of the wheel at ``path``."""
    return read_wheel_facts(path)[0]


def read_wheel_facts(path: Path) -> tuple[bytes, int]:
    """(``*.dist-info/METADATA`` bytes, unpacked size) of the wheel at ``path``, one read."""
    name = project_of(path.name)
    try:
        quick = _quick_wheel_facts(path, name)
    except (OSError, struct.error, zlib.error):
        quick = None
    if quick is not None:
        return quick
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            found = [i.filename for i in infos if _is_metadata_member(i.filename)]
            found.sort(key=lambda n: canonicalize_name(n.split("-", 1)[0]) != name)
            if not found:
                raise IndexFetchError(f"{path.name} has no .dist-info/METADATA", FETCH_TIP)
            return archive.read(found[0]), sum(info.file_size for info in infos)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IndexFetchError(f"{path.name} is not a readable wheel: {exc}", FETCH_TIP) from exc


def _quick_wheel_facts(path: Path, name: str | None) -> tuple[bytes, int] | None:
    """``read_wheel_facts`` by a direct scan of the central directory (zipfile builds an
    object per entry: ~10x slower on a wheel of thousands of files), or None for anything
    but a plain, single-part, non-zip64 archive whose METADATA checks out."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, end - TAIL_MAX))
        where = _directory_span(handle.read(), end)
        if where is None:
            return None
        count, size, offset = where
        handle.seek(offset)
        members = _directory_members(handle.read(size), count)
        if members is None:
            return None
        found = _metadata_member(members, name)
        total = sum(fields[9] for _, fields in members)
        return None if found is None else (_member_bytes(handle, found), total)


TAIL_MAX = 22 + 0xFFFF  # the end-of-central-directory record and the longest zip comment


def _directory_span(tail: bytes, end: int) -> tuple[int, int, int] | None:
    """(entries, size, offset) of the central directory from the last bytes of a zip of
    ``end`` bytes; None for zip64, data before the archive or a damaged record."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    _, _, _, count, _, size, offset, _ = struct.unpack_from("<IHHHHIIH", tail, at)
    if 0xFFFF in (count,) or 0xFFFFFFFF in (size, offset):
        return None  # zip64: leave it to zipfile
    if offset + size != end - (len(tail) - at):
        return None  # data before the archive or a damaged directory
    return count, size, offset


def _directory_members(directory: bytes, count: int) -> list[tuple[str, tuple[int, ...]]] | None:
    """(name, central directory fields) of each entry; None unless all ``count`` read plainly
    (a zip64 size among them is left to zipfile)."""
    members, pos = [], 0
    for _ in range(count):
        fields = struct.unpack_from("<IHHHHHHIIIHHHHHII", directory, pos)
        if fields[0] != 0x02014B50 or 0xFFFFFFFF in (fields[8], fields[9], fields[16]):
            return None
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        members.append(
            (directory[pos + 46 : pos + 46 + name_len].decode("utf-8", "replace"), fields)
        )
        pos += 46 + name_len + extra_len + comment_len
    return members


def _member_bytes(handle: BinaryIO, fields: tuple[int, ...]) -> bytes:
    """One member's bytes from its central directory fields; zlib.error unless they check out."""
    handle.seek(fields[16])
    skip = _local_header_size(handle.read(30), fields)
    handle.seek(fields[16] + skip)
    return _inflated(handle.read(fields[8]), fields)


def _local_header_size(header: bytes, fields: tuple[int, ...]) -> int:
    """Bytes of a member's local header (from its first 30); zlib.error if it is not one."""
    plain = fields[4] in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
    if len(header) < 30 or header[:4] != b"PK\x03\x04" or not plain:
        raise zlib.error("unexpected local header")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return 30 + int(name_len) + int(extra_len)


def _inflated(payload: bytes, fields: tuple[int, ...]) -> bytes:
    """A member's bytes from its stored payload, checked against its size and CRC-32."""
    method, crc, size = fields[4], fields[7], fields[9]
    data = zlib.decompress(payload, -15) if method == zipfile.ZIP_DEFLATED else payload
    if len(data) != size or zlib.crc32(data) != crc:
        raise zlib.error("bad CRC-32 for METADATA")
    return data


def _metadata_member(
    members: list[tuple[str, tuple[int, ...]]], name: str | None
) -> tuple[int, ...] | None:
    """The fields of the ``.dist-info/METADATA`` entry, the project's own first."""
    found = [(member, fields) for member, fields in members if _is_metadata_member(member)]
    found.sort(key=lambda item: canonicalize_name(item[0].split("-", 1)[0]) != name)
    return found[0][1] if found else None


def _is_metadata_member(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"


def _metadata_value(value: Any) -> tuple[bool, str | None]:
    """(offered, sha256) from a JSON ``core-metadata`` value or an HTML attribute value."""
    if isinstance(value, dict):
        return True, value.get("sha256")
    if isinstance(value, str):
        algo, _, digest = value.partition("=")
        if algo == "sha256" and digest:
            return True, digest
        return value.lower() != "false", None
    return bool(value), None


def _yanked_value(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return "" if value is True else str(value)


def parse_json_page(text: str, page_url: str, source: str) -> list[FileLink]:
    """The files of a PEP 691 JSON project page (relative URLs resolved against ``page_url``)."""
    try:
        files = json.loads(text)["files"]
        return [_link_from_json(item, page_url, source) for item in files]
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexFetchError(
            f"{redact_url(page_url)} is not a valid PEP 691 JSON page: {exc}", FETCH_TIP
        ) from exc


def _link_from_json(item: dict[str, Any], page_url: str, source: str) -> FileLink:
    offered, meta_hash = _metadata_value(
        item.get("core-metadata", item.get("dist-info-metadata", False))
    )
    size = item.get("size")
    return FileLink(
        filename=item["filename"],
        url=urljoin(page_url, item["url"]).split("#", 1)[0],
        sha256=(item.get("hashes") or {}).get("sha256"),
        requires_python=item.get("requires-python") or None,
        yanked=_yanked_value(item.get("yanked", False)),
        metadata_sha256=meta_hash,
        has_metadata=offered,
        size=size if isinstance(size, int) else None,
        source=source,
    )


class _AnchorParser(HTMLParser):
    """Collects ``<a>`` attributes and the ``<base href>`` of a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


def parse_html_page(text: str, page_url: str, source: str) -> list[FileLink]:
    """The files of a PEP 503 HTML page (or a find-links page)."""
    parser = _AnchorParser()
    parser.feed(text)
    base = urljoin(page_url, parser.base) if parser.base else page_url
    return [_link_from_anchor(attrs, base, source) for attrs in parser.anchors if attrs.get("href")]


def _link_from_anchor(attrs: dict[str, str | None], base: str, source: str) -> FileLink:
    url, _, fragment = urljoin(base, attrs["href"] or "").partition("#")
    algo, _, digest = fragment.partition("=")
    meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
    offered, meta_hash = _metadata_value(meta) if meta is not None else (False, None)
    return FileLink(
        filename=unquote(urlsplit(url).path.rsplit("/", 1)[-1]),
        url=url,
        sha256=digest if algo == "sha256" and digest else None,
        requires_python=attrs.get("data-requires-python") or None,
        yanked=_yanked_value(attrs["data-yanked"] or True) if "data-yanked" in attrs else None,
        metadata_sha256=meta_hash,
        has_metadata=offered,
        size=None,
        source=source,
    )


def _hash_mismatch(filename: str, url: str, expected: str, got: str) -> HashMismatchError:
    return HashMismatchError(
        f"{filename} from {redact_url(url)} has sha256 {got}, expected {expected}",
        "the bytes differ from the published hash: check the index (or a proxy in between), "
        "or refresh the --hash in your requirements if the file was legitimately replaced",
    )


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


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
        self._own_client = client is None
        self._http = client  # made on first use: local find-links never import httpx
        self._log = log or (lambda _line: None)
        self._lock = threading.Lock()
        self._links: dict[str, list[FileLink]] = {}
        self._locations: dict[str, list[FileLink]] = {}
        self._metadata: dict[str, bytes] = {}
        self._downloads: dict[str, Path] = {}
        self._unpacked: dict[str, int] = {}
        self._hashes: dict[tuple[str, int, int, int, int, int], str] = {}
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
        if self._own_client and self._http is not None:
            self._http.close()

    @property
    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    timeout=httpx.Timeout(30.0, connect=10.0),
                    follow_redirects=True,
                    headers={"User-Agent": "pip-lambda-pack"},
                )
            return self._http

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
            page_url = f"{index.rstrip('/')}/{project}/"
            links = self._page_links(page_url, index)
            self._log(f"{len(links)} files for {project} from {redact_url(index)}")
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
                return replace(link, sha256=self._local_sha256(path))
        return link

    def _location_links(self, location: str) -> list[FileLink]:
        with self._listing:
            if location in self._locations:
                return self._locations[location]
            if location.startswith(("http://", "https://")):
                links = self._page_links(location, location)
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
        return [_local_link(p, location) for p in files if p.is_file()]

    def _page_links(self, url: str, source: str) -> list[FileLink]:
        page = self._get_page(url)
        if page is None:
            return []
        content_type, text, final_url = page
        if content_type.split(";", 1)[0].strip() in JSON_TYPES:
            return parse_json_page(text, final_url, source)
        return parse_html_page(text, final_url, source)

    # ------------------------------------------------------------------ pages

    def _get_page(self, url: str) -> tuple[str, str, str] | None:
        """(content type, text, final URL) of a page; None when the server says 404."""
        if url.startswith("file:"):
            return _local_page(url)
        path = self.cache_dir / "pages" / f"{_url_key(url)}.json"
        cached = _read_cached_page(path)
        if self.offline:
            if cached is None:
                raise IndexFetchError(
                    f"no cached copy of {redact_url(url)} (offline)",
                    "run once without --offline to fill the cache",
                )
            return _page_from_cache(cached)
        until = cached.get("fresh_until") if cached is not None else None
        if cached is not None and isinstance(until, (int, float)) and time.time() < until:
            return _page_from_cache(cached)  # within the max-age the server gave it
        self._log(f"fetching {redact_url(url)}")
        response = self._with_retries(url, lambda: self._get(url, _conditional(cached)))
        if response.status_code == 304 and cached is not None:
            if _max_age(response) is not None:
                write_bytes(path, json.dumps(_fresh(cached, response)).encode())
            return _page_from_cache(cached)
        if response.status_code == 404:
            write_bytes(path, json.dumps({"url": url, "status": 404}).encode())
            return None
        if response.status_code >= 400:
            raise IndexFetchError(
                f"{redact_url(url)} answered HTTP {response.status_code}", FETCH_TIP
            )
        entry = _page_entry(url, response)
        write_bytes(path, json.dumps(entry).encode())
        return _page_from_cache(entry)

    def _get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        response = self._client.get(url, headers={"Accept": ACCEPT, **headers})
        if response.status_code >= 500:
            raise _ServerError(response.status_code)
        return response

    def _with_retries(self, url: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` up to RETRIES times on connect errors and 5xx, httpx errors mapped."""
        import httpx

        for number in range(1, RETRIES + 1):
            try:
                return attempt()
            except (httpx.TransportError, _ServerError) as exc:
                if number == RETRIES:
                    raise _fetch_error(url, exc) from exc
                self._log(f"retrying {redact_url(url)} after {exc or type(exc).__name__}")
                time.sleep(BACKOFF * 2 ** (number - 1))
            except httpx.HTTPError as exc:
                raise _fetch_error(url, exc) from exc
        raise AssertionError("unreachable")

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
            key = _stat_key(url_to_path(link.url))
        except OSError:
            return True  # download() says what is wrong
        with self._lock:
            return key in self._hashes

    def _file_path(self, sha256: str, filename: str) -> Path:
        return self.cache_dir / "files" / sha256[:2] / sha256 / filename

    def _fetch_file(self, link: FileLink) -> Path:
        incoming = self.cache_dir / "files" / ".incoming" / f"{uuid.uuid4().hex}-{link.filename}"
        self._log(f"downloading {redact_url(link.url)}")
        got = self._with_retries(link.url, lambda: self._stream_to(link.url, incoming))
        if link.sha256 is not None and got != link.sha256:
            incoming.unlink()
            raise _hash_mismatch(link.filename, link.url, link.sha256, got)
        final = self._file_path(got, link.filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, final)
        return final

    def _stream_to(self, url: str, dest: Path) -> str:
        """One try at writing ``url`` to ``dest`` atomically; returns the sha256 of the bytes."""
        digest = hashlib.sha256()
        with self._client.stream("GET", url) as response:
            if response.status_code >= 500:
                raise _ServerError(response.status_code)
            if response.status_code >= 400:
                raise IndexFetchError(
                    f"{redact_url(url)} answered HTTP {response.status_code}", FETCH_TIP
                )
            with atomic_writer(dest) as handle:
                for chunk in response.iter_bytes(1 << 16):
                    digest.update(chunk)
                    handle.write(chunk)
        return digest.hexdigest()

    # ------------------------------------------------------------------ sizes

    def remote_sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of the remote wheels whose sizes could be read
        without downloading them (see ``remote_size``), in threads; the others are left out."""
        unique = list({link.url: link for link in links if _sizable(link)}.values())
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
        if downloaded or not _sizable(link):
            return None
        assert link.sha256 is not None
        if self._file_path(link.sha256, link.filename).is_file():
            return None
        record = self.cache_dir / "sizes" / link.sha256[:2] / f"{link.sha256}.json"
        try:
            size, unpacked = json.loads(record.read_bytes())
            return int(size), int(unpacked)
        except (OSError, ValueError, TypeError):
            pass
        if self.offline:
            return None
        found = self._ranged_directory(link)
        return None if found is None else self._remember_sizes(link, found[0], found[1])

    def _remember_sizes(
        self, link: FileLink, total: int, members: list[tuple[str, tuple[int, ...]]]
    ) -> tuple[int, int]:
        assert link.sha256 is not None
        sizes = total, sum(fields[9] for _, fields in members)
        record = self.cache_dir / "sizes" / link.sha256[:2] / f"{link.sha256}.json"
        write_bytes(record, json.dumps(list(sizes)).encode())
        return sizes

    def _ranged_metadata(self, link: FileLink) -> bytes | None:
        """METADATA of a remote wheel read with range requests (its central directory, then
        the member), checked against the CRC-32 and size the directory gives; None when the
        server or the archive does not allow it."""
        found = self._ranged_directory(link)
        if found is None:
            return None
        total, members, data, start = found
        self._remember_sizes(link, total, members)
        fields = _metadata_member(members, project_of(link.filename))
        if fields is None:
            return None
        # the local header's extra field may be longer than the central one: ask for slack
        last = min(total - 1, fields[16] + 30 + fields[10] + fields[11] + fields[8] + 1023)
        if fields[16] < start:  # not among the bytes already fetched (a small wheel's are all)
            got = self._get_range(link.url, fields[16], last)
            if got is None:
                return None
            data, start = got[0], fields[16]
        chunk = data[fields[16] - start :]
        try:
            skip = _local_header_size(chunk[:30], fields)
            payload = chunk[skip : skip + fields[8]]
            return _inflated(payload, fields) if len(payload) == fields[8] else None
        except zlib.error:
            return None

    def _ranged_directory(
        self, link: FileLink
    ) -> tuple[int, list[tuple[str, tuple[int, ...]]], bytes, int] | None:
        """(file size, central directory entries, the bytes fetched, their offset) of a
        remote zip, by range requests: its last bytes, then the directory's start if needed."""
        got = self._get_range(link.url, -SIZE_TAIL)
        if got is None or (link.size is not None and got[1] != link.size):
            return None
        tail, total = got
        where = _directory_span(tail, total)
        if where is None:
            return None
        count, size, offset = where
        start = total - len(tail)
        if offset < start:  # the directory begins before the tail: ask for the rest of it
            more = self._get_range(link.url, offset, start - 1)
            if more is None or more[1] != total:
                return None
            tail, start = more[0] + tail, offset
        members = _directory_members(tail[offset - start : offset - start + size], count)
        return None if members is None else (total, members, tail, start)

    def _get_range(self, url: str, first: int, last: int | None = None) -> tuple[bytes, int] | None:
        """(the bytes, the whole file's size) of ``url`` from ``first`` to ``last``
        (a negative ``first``: that many last bytes); None when the answer is not a 206."""
        spec = f"bytes={first}" if first < 0 else f"bytes={first}-{last}"
        self._log(f"fetching {spec} of {redact_url(url)}")
        return self._with_retries(url, lambda: self._range_once(url, spec, first, last))

    def _range_once(
        self, url: str, spec: str, first: int, last: int | None
    ) -> tuple[bytes, int] | None:
        headers = {"Range": spec, "Accept-Encoding": "identity"}
        with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code >= 500:
                raise _ServerError(response.status_code)
            if response.status_code != 206:
                return None  # a server without Range support: its body is never read
            found = CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if found is None:
                return None
            start, end, total = map(int, found.groups())
            data = response.read()
        wanted = (total + first if first < 0 else first, total - 1 if last is None else last)
        if len(data) != end - start + 1 or (start, end) != (max(0, wanted[0]), wanted[1]):
            return None
        return data, total

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
        got = self._local_sha256(path)
        if link.sha256 is not None and got != link.sha256:
            raise _hash_mismatch(link.filename, link.url, link.sha256, got)
        return path

    def _local_sha256(self, path: Path) -> str:
        """sha256 of a local file, hashed once while its size, times and inode hold: per
        process, and across processes through ``hashes/`` in the cache directory."""
        key = _stat_key(path)
        with self._lock:
            known = self._hashes.get(key)
        if known is None:
            record = self.cache_dir / "hashes" / _url_key(json.dumps(key))
            known = _read_digest(record)
            if known is None:
                known = sha256_of(path)
                with contextlib.suppress(OSError):  # a memo: not keeping it costs a rehash
                    write_bytes(record, known.encode())
            with self._lock:
                self._hashes[key] = known
        return known

    def _cached_metadata(self, link: FileLink) -> bytes:
        key = link.sha256 or _url_key(link.url)
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
            self._log(f"fetching {redact_url(url)}")
            response = self._with_retries(url, lambda: self._get(url, {}))
            if response.status_code < 400:
                return self._checked_metadata(link, response.content)
            self._log(f"{redact_url(url)} answered HTTP {response.status_code}; using the wheel")
        ranged = None if self.offline or not _sizable(link) else self._ranged_metadata(link)
        if ranged is not None:  # CRC-checked, from the wheel whose sha256 keys the cache
            return ranged, True
        wheel = self.download(link)
        return read_wheel_metadata(wheel), link.sha256 is not None

    def metadata_is_cheap(self, link: FileLink) -> bool:
        """Whether ``metadata(link)`` can do without downloading a whole remote wheel."""
        return link.url.startswith("file:") or link.has_metadata or _sizable(link)

    def _checked_metadata(self, link: FileLink, data: bytes) -> tuple[bytes, bool]:
        if link.metadata_sha256 is None:
            return data, False
        got = hashlib.sha256(data).hexdigest()
        if got != link.metadata_sha256:
            raise _hash_mismatch(link.filename + ".metadata", link.url, link.metadata_sha256, got)
        return data, True


CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _sizable(link: FileLink) -> bool:
    """Whether ``remote_size`` may read ``link``: a remote wheel whose sha256 is known."""
    return link.is_wheel and link.sha256 is not None and not link.url.startswith("file:")


def _stat_key(path: Path) -> tuple[str, int, int, int, int, int]:
    """What identifies a local file's bytes: any write changes its times."""
    info = path.stat()
    return (str(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def _read_digest(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def _local_link(path: Path, location: str) -> FileLink:
    return FileLink(
        filename=path.name,
        url=path.resolve().as_uri(),
        sha256=None,  # filled in by links() for the files of the project asked for
        requires_python=None,
        yanked=None,
        metadata_sha256=None,
        has_metadata=False,
        size=path.stat().st_size,
        source=location,
    )


def _fetch_error(url: str, exc: Exception) -> IndexFetchError:
    if isinstance(exc, _ServerError):
        return IndexFetchError(f"{redact_url(url)} answered {exc} after {RETRIES} tries", FETCH_TIP)
    reason = str(exc) or type(exc).__name__
    return IndexFetchError(f"cannot fetch {redact_url(url)}: {reason}", FETCH_TIP)


def _conditional(cached: dict[str, Any] | None) -> dict[str, str]:
    """Revalidation headers for a cached page."""
    if not cached or cached.get("status") == 404:
        return {}
    headers = {}
    if cached.get("etag"):
        headers["If-None-Match"] = cached["etag"]
    if cached.get("last_modified"):
        headers["If-Modified-Since"] = cached["last_modified"]
    return headers


def _page_entry(url: str, response: httpx.Response) -> dict[str, Any]:
    entry = {
        "url": url,
        "status": response.status_code,
        "final_url": str(response.url),
        "content_type": response.headers.get("content-type", "text/html"),
        "etag": response.headers.get("etag"),
        "last_modified": response.headers.get("last-modified"),
        "text": response.text,
    }
    return _fresh(entry, response)


def _fresh(entry: dict[str, Any], response: httpx.Response) -> dict[str, Any]:
    """``entry`` good until the ``Cache-Control: max-age`` of ``response`` runs out (as pip
    and uv honour it: PyPI gives its pages 10 minutes); without one, always revalidated."""
    age = _max_age(response)
    return {**entry, "fresh_until": time.time() + age} if age else entry


def _max_age(response: httpx.Response) -> int | None:
    directives = {}
    for part in response.headers.get("cache-control", "").split(","):
        key, _, value = part.strip().partition("=")
        directives[key.lower()] = value
    if "no-cache" in directives or "no-store" in directives:
        return None
    try:
        return max(0, int(directives["max-age"]))
    except (KeyError, ValueError):
        return None


def _read_cached_page(path: Path) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    complete = entry.get("status") == 404 or {"content_type", "text", "final_url"} <= set(entry)
    return entry if complete else None  # a page cached by an older layout is refetched


def _page_from_cache(entry: dict[str, Any]) -> tuple[str, str, str] | None:
    if entry.get("status") == 404:
        return None
    return entry["content_type"], entry["text"], entry["final_url"]


def _local_page(url: str) -> tuple[str, str, str] | None:
    """A project page of a ``file://`` simple index (a directory per project, as pip
    reads it): its ``index.html``, or None when the project has no directory."""
    folder = url_to_path(url)
    page = folder / "index.html" if folder.is_dir() else folder
    if not page.is_file():
        return None
    base = folder.as_uri() + "/" if folder.is_dir() else page.as_uri()
    return "text/html", page.read_text(encoding="utf-8", errors="replace"), base

"""The index behind one seam: the ``Finder`` Protocol, and ``PackageFinder``, the real one.

``PackageFinder`` is an orchestrator over small parts, each one job: ``listing`` (a
project's files across indexes, PEP 691 JSON and PEP 503 HTML, and find-links locations),
``downloads`` (verified local paths, the file cache, local files' hash memo), ``wheelinfo``
(METADATA from the PEP 658 file, range reads or the wheel; sizes without a download). Below
them: ``pagecache`` (pages), ``rangezip`` (zip directories by range), ``httpfetch`` (the
client and its retries), ``links`` (the records and page parsers), ``workers`` (the shared
threads and the make-once memo).

Every file that enters the on-disk cache has been checked against the sha256 it must have
(or is stored under the sha256 of its own bytes); METADATA and sizes read from a remote
wheel's byte ranges are checked against its central directory (CRC-32, sizes) and kept under
the wheel's published sha256; a local wheel's sha256 is kept under its path, size, times and
inode. Writes are atomic. httpx errors are mapped once, in ``httpfetch``, to
``IndexFetchError``; a file with the wrong bytes is a ``HashMismatchError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .credentials import IndexCredentials, check_index_url
from .downloads import Downloads, LocalHashes
from .httpfetch import IndexHttp
from .links import FileLink
from .listing import FollowUp, Listing
from .pagecache import PageCache
from .rangezip import RangeReader, sizable
from .wheelinfo import WheelInfo
from .workers import Shared, Workers

if TYPE_CHECKING:  # httpx is imported when a remote file is first fetched
    import httpx

    from .progress import Task

__all__ = ["FileLink", "Finder", "FollowUp", "PackageFinder", "metadata_is_cheap"]


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
        self,
        links: Sequence[FileLink],
        progress: Task | None = None,
        ready: Callable[[FileLink, Path], None] | None = None,
    ) -> dict[str, Path]:
        """``download`` of each link, keyed by URL (in parallel where it can); ``ready``
        gets each file as it lands."""
        ...

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``(bytes, unpacked bytes)`` by URL of those wheels whose sizes are known without
        downloading them; the others are left out."""
        ...


def metadata_is_cheap(link: FileLink) -> bool:
    """Whether a finder can read ``link``'s METADATA without downloading a whole remote wheel."""
    return link.url.startswith("file:") or link.has_metadata or sizable(link)


class PackageFinder:
    """Lists, fetches and caches a project's files from indexes and find-links locations.

    ``links`` and ``metadata`` are memoised per process; ``download`` returns verified paths.
    ``offline=True`` reads only the cache. ``log`` receives the ``-v`` lines. The work is
    done by its parts (``Listing``, ``Downloads``, ``WheelInfo``), which share one HTTP
    client, one local-hash memo and one pool of threads.
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
        say = log or (lambda _line: None)
        remote = [url for url in (*self.index_urls, *self.find_links) if "://" in url]
        for url in remote:
            check_index_url(url)
        self._shared = Shared(
            http=IndexHttp(client, say, IndexCredentials(remote)),
            hashes=LocalHashes(self.cache_dir),
            workers=Workers(),
            cache_dir=self.cache_dir,
            offline=offline,
            log=say,
        )
        http = self._shared.http
        self._listing = Listing(
            self._shared,
            index_urls=self.index_urls,
            find_links=self.find_links,
            pages=PageCache(http, self.cache_dir, offline=offline, log=say),
        )
        self._downloads = Downloads(self._shared)
        ranges = RangeReader(http, self.cache_dir, offline=offline, log=say)
        self._wheels = WheelInfo(self._shared, ranges=ranges, downloads=self._downloads)

    def __enter__(self) -> PackageFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop prefetches not started; close the HTTP client if the finder made it."""
        self._shared.workers.close()
        self._shared.http.close()

    def prefetch(self, names: Iterable[str], then: FollowUp | None = None) -> None:
        self._listing.prefetch(names, then)

    def links(self, name: str) -> list[FileLink]:
        return self._listing.links(name)

    def download(self, link: FileLink) -> Path:
        return self._downloads.download(link)

    def download_many(
        self,
        links: Sequence[FileLink],
        progress: Task | None = None,
        ready: Callable[[FileLink, Path], None] | None = None,
    ) -> dict[str, Path]:
        return self._downloads.download_many(links, progress, ready)

    def metadata(self, link: FileLink) -> bytes:
        return self._wheels.metadata(link)

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        return self._wheels.sizes(links)

    def remote_sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        """``WheelInfo.remote_sizes``: the remote wheels' sizes read by ranges."""
        return self._wheels.remote_sizes(links)

    def remote_size(self, link: FileLink) -> tuple[int, int] | None:
        """``WheelInfo.remote_size``: one remote wheel's sizes by ranges, or None."""
        return self._wheels.remote_size(link)

    def known_unpacked_size(self, link: FileLink) -> int | None:
        return self._wheels.known_unpacked_size(link)

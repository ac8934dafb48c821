"""A project's files across indexes (PEP 691 JSON, PEP 503 HTML) and find-links locations,
listed once per process and prefetched in the finder's threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from .credentials import public_url
from .errors import ConfigError
from .links import (
    ARCHIVE_SUFFIXES,
    FileLink,
    local_link,
    parse_html_page,
    parse_json_page,
    project_of,
    url_to_path,
)
from .pagecache import PageCache
from .wire import redact
from .workers import OnceMemo, Shared

JSON_TYPES = ("application/vnd.pypi.simple.v1+json", "application/json")
FollowUp = Callable[[str, Sequence[FileLink]], None]


class Listing:
    """``links`` and ``prefetch`` of the ``Finder``: pages from ``pages``, local files hashed
    through the shared ``hashes``, listings memoised per project and find-links location."""

    def __init__(
        self,
        shared: Shared,
        *,
        index_urls: tuple[str, ...],
        find_links: tuple[str, ...],
        pages: PageCache,
    ) -> None:
        self._shared = shared
        self._index_urls = index_urls
        self._find_links = find_links
        self._pages = pages
        self._lock = threading.Lock()
        self._links: OnceMemo[NormalizedName, list[FileLink]] = OnceMemo()
        self._pending: dict[str, Future[list[FileLink]]] = {}
        self._locations: dict[str, list[FileLink]] = {}
        self._listing = threading.Lock()  # one thread lists a find-links location

    def prefetch(self, names: Iterable[str], then: FollowUp | None = None) -> None:
        """Start listing these projects in background threads (pages fetched, local files
        hashed), so that ``links`` finds them ready; ``then(project, links)`` runs in a
        thread after each listing (errors logged, not raised). What goes wrong with a
        listing is raised by the ``links`` call that asks for it, as without the prefetch.
        A project already listed or being listed is skipped (so is its ``then``)."""
        pool = self._shared.workers.pool()
        with self._lock:
            for project in dict.fromkeys(map(canonicalize_name, names)):
                if project not in self._links and project not in self._pending:
                    self._pending[project] = pool.submit(self._prefetched, project, then)

    def _prefetched(self, project: NormalizedName, then: FollowUp | None) -> list[FileLink]:
        links = self._list(project)
        if then is not None:  # a job of its own, so links() waiting here returns now
            self._shared.workers.submit_if_open(lambda: self._follow_up(then, project, links))
        return links

    def _follow_up(self, then: FollowUp, project: str, links: list[FileLink]) -> None:
        try:
            then(project, links)
        except Exception as exc:  # a guess ahead of the resolver: it will meet the error itself
            self._shared.log(f"read-ahead after {project} stopped: {exc}")

    def links(self, name: str) -> list[FileLink]:
        """Every file of project ``name`` across all indexes, then all find-links locations."""
        project = canonicalize_name(name)
        listed = self._links.get(project)
        if listed is not None:
            return listed
        with self._lock:
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
        return self._links.make(project, lambda: self._listed(project))

    def _listed(self, project: NormalizedName) -> list[FileLink]:
        found: dict[str, FileLink] = {}
        for link in self._collect(project):
            found.setdefault(link.url, link)
        return [self._with_local_hash(link) for link in found.values()]

    def _collect(self, project: NormalizedName) -> Iterable[FileLink]:
        for index in self._index_urls:
            public = public_url(index)  # its login goes with each request, not in the URL
            links = self._page_links(f"{public.rstrip('/')}/{project}/", public)
            self._shared.log(f"{len(links)} files for {project} from {redact(index)}")
            yield from self._of_project(links, project)
        for location in self._find_links:
            yield from self._of_project(self._location_links(location), project)

    def _of_project(self, links: list[FileLink], project: str) -> Iterable[FileLink]:
        for link in links:
            if project_of(link.filename) == project:
                yield link
            elif link.filename.endswith(ARCHIVE_SUFFIXES) and project_of(link.filename) is None:
                self._shared.log(
                    f"skipping {link.filename} from {link.source}: not a valid file name"
                )

    def _with_local_hash(self, link: FileLink) -> FileLink:
        if link.sha256 is None and link.url.startswith("file:"):
            path = url_to_path(link.url)
            if path.is_file():
                return replace(link, sha256=self._shared.hashes.sha256(path))
        return link

    def _location_links(self, location: str) -> list[FileLink]:
        with self._listing:
            if location in self._locations:
                return self._locations[location]
            if location.startswith(("http://", "https://")):
                links = self._page_links(public_url(location), public_url(location))
            else:
                links = _local_links(location)
            self._locations[location] = links
            return links

    def _page_links(self, url: str, source: str) -> list[FileLink]:
        page = self._pages.get(url)
        if page is None:
            return []
        content_type, text, final_url = page
        if content_type.split(";", 1)[0].strip() in JSON_TYPES:
            return parse_json_page(text, final_url, source)
        return parse_html_page(text, final_url, source)


def _local_links(location: str) -> list[FileLink]:
    """The files of a find-links directory, or the links of a local HTML page."""
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

"""What an index lists: ``FileLink`` records, read from PEP 691 JSON and PEP 503 HTML pages.

Pure parsing of outside input: nothing here touches the network or the cache.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)

from .errors import IndexFetchError
from .wire import redact

ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")
FETCH_TIP = "check the index URL and your network, or use --find-links with local wheels"


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
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise IndexFetchError(
            f"{redact(page_url)} is not a valid PEP 691 JSON page: {exc}", FETCH_TIP
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


def file_link(
    filename: str, url: str, *, sha256: str | None, size: int | None, source: str
) -> FileLink:
    """The link of a file known without an index page (a find-links file, a lock's pin, a
    direct reference): no Requires-Python, yank or PEP 658 facts."""
    return FileLink(
        filename=filename,
        url=url,
        sha256=sha256,
        requires_python=None,
        yanked=None,
        metadata_sha256=None,
        has_metadata=False,
        size=size,
        source=source,
    )


def local_link(path: Path, location: str) -> FileLink:
    """The link of a file in a find-links directory (its sha256 is filled in when listed)."""
    return file_link(
        path.name,
        path.resolve().as_uri(),
        sha256=None,  # filled in by links() for the files of the project asked for
        size=path.stat().st_size,
        source=location,
    )

"""The simple-API page cache: project pages kept as JSON by URL, revalidated as pip does.

A page is served from the cache while the ``Cache-Control: max-age`` its server gave runs;
after that it is revalidated (``ETag``/``Last-Modified``); offline, only the cache is read.
A 404 is remembered too. ``file://`` simple indexes are read in place, never cached.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import write_bytes
from .credentials import public_url
from .errors import IndexFetchError
from .httpfetch import IndexHttp, status_error
from .links import url_to_path
from .wire import redact

if TYPE_CHECKING:
    import httpx

Page = tuple[str, str, str]  # (content type, text, final URL)


def url_key(url: str) -> str:
    """A file name for what is cached under ``url``."""
    return hashlib.sha256(url.encode()).hexdigest()


class PageCache:
    """Project pages by URL from ``cache_dir/pages``, fetched with ``http`` when stale."""

    def __init__(
        self, http: IndexHttp, cache_dir: Path, *, offline: bool, log: Callable[[str], None]
    ) -> None:
        self._http = http
        self._cache_dir = cache_dir
        self._offline = offline
        self._log = log

    def get(self, url: str) -> Page | None:
        """(content type, text, final URL) of a page; None when the server says 404."""
        if url.startswith("file:"):
            return _local_page(url)
        path = self._cache_dir / "pages" / f"{url_key(url)}.json"
        cached = _read_cached_page(path)
        if self._offline:
            if cached is None:
                raise IndexFetchError(
                    f"no cached copy of {redact(url)} (offline)",
                    "run once without --offline to fill the cache",
                )
            return _page_from_cache(cached)
        until = cached.get("fresh_until") if cached is not None else None
        if cached is not None and isinstance(until, (int, float)) and time.time() < until:
            return _page_from_cache(cached)  # within the max-age the server gave it
        self._log(f"fetching {redact(url)}")
        response = self._http.get(url, _conditional(cached))
        if response.status_code == 304 and cached is not None:
            if _max_age(response) is not None:
                write_bytes(path, json.dumps(_fresh(cached, response)).encode())
            return _page_from_cache(cached)
        if response.status_code == 404:
            write_bytes(path, json.dumps({"url": url, "status": 404}).encode())
            return None
        if response.status_code >= 400:
            raise status_error(url, response.status_code)
        entry = _page_entry(url, response, self._http.credentials.scrubbed)
        write_bytes(path, json.dumps(entry).encode())
        return _page_from_cache(entry)


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


def _page_entry(
    url: str, response: httpx.Response, scrubbed: Callable[[str], str]
) -> dict[str, Any]:
    """What is cached of a page: never a login (``scrubbed`` takes those out of its text)."""
    entry = {
        "url": url,
        "status": response.status_code,
        "final_url": public_url(str(response.url)),
        "content_type": response.headers.get("content-type", "text/html"),
        "etag": response.headers.get("etag"),
        "last_modified": response.headers.get("last-modified"),
        "text": scrubbed(response.text),
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


def _page_from_cache(entry: dict[str, Any]) -> Page | None:
    if entry.get("status") == 404:
        return None
    return entry["content_type"], entry["text"], entry["final_url"]


def _local_page(url: str) -> Page | None:
    """A project page of a ``file://`` simple index (a directory per project, as pip
    reads it): its ``index.html``, or None when the project has no directory."""
    folder = url_to_path(url)
    page = folder / "index.html" if folder.is_dir() else folder
    if not page.is_file():
        return None
    base = folder.as_uri() + "/" if folder.is_dir() else page.as_uri()
    return "text/html", page.read_text(encoding="utf-8", errors="replace"), base

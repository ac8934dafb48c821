"""Fakes of our own Protocols: an in-memory ``Finder`` for resolver and pipeline tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from helpers import metadata_text
from pip_lambda_pack.index import FileLink, FollowUp
from pip_lambda_pack.progress import Task


def one_by_one(
    download: Callable[[FileLink], Path],
    links: Sequence[FileLink],
    ready: Callable[[FileLink, Path], None] | None,
) -> dict[str, Path]:
    """``Finder.download_many`` for a fake: each link downloaded in turn, ``ready`` after each."""
    paths = {}
    for link in links:
        paths[link.url] = download(link)
        if ready is not None:
            ready(link, paths[link.url])
    return paths


class FakeFinder:
    """A ``Finder`` over files declared in memory: no network, no cache, every call recorded.

    ``add("foo-1.0-py3-none-any.whl", requires=[...])`` lists a file and its METADATA;
    ``download`` is refused (``downloads`` records what was asked), as a resolver that
    reads metadata only must never need the bytes.
    """

    def __init__(self, *, offline: bool = False) -> None:
        self.index_urls: tuple[str, ...] = ("https://fake.invalid/simple",)
        self.find_links: tuple[str, ...] = ()
        self.offline = offline
        self.files: dict[str, list[FileLink]] = {}
        self.metadata_of: dict[str, bytes] = {}
        self.listed: list[str] = []
        self.prefetched: list[str] = []
        self.downloads: list[str] = []

    def add(
        self,
        filename: str,
        *,
        requires: Sequence[str] = (),
        requires_python: str | None = None,
        yanked: str | None = None,
    ) -> FileLink:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
        url = f"https://fake.invalid/files/{filename}"
        link = FileLink(
            filename=filename,
            url=url,
            sha256=hashlib.sha256(url.encode()).hexdigest(),
            requires_python=requires_python,
            yanked=yanked,
            metadata_sha256=None,
            has_metadata=True,
            size=1000,
            source=self.index_urls[0],
        )
        self.files.setdefault(canonicalize_name(name), []).append(link)
        text = metadata_text(str(name), str(version), requires, requires_python)
        self.metadata_of[url] = text.encode()
        return link

    def links(self, name: str) -> Sequence[FileLink]:
        self.listed.append(canonicalize_name(name))
        return list(self.files.get(canonicalize_name(name), []))

    def prefetch(self, names: Iterable[str], then: FollowUp | None = None) -> None:
        self.prefetched.extend(names)

    def metadata(self, link: FileLink) -> bytes:
        return self.metadata_of[link.url]

    def download(self, link: FileLink) -> Path:
        self.downloads.append(link.filename)
        raise AssertionError(f"FakeFinder cannot download {link.filename}")

    def download_many(
        self,
        links: Sequence[FileLink],
        progress: Task | None = None,
        ready: Callable[[FileLink, Path], None] | None = None,
    ) -> dict[str, Path]:
        return one_by_one(self.download, links, ready)

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        return {link.url: (link.size or 0, 2 * (link.size or 0)) for link in links}

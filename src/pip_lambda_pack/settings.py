"""The machine side of a run: caches, chattiness, network, and one ``Finder`` per set of index
options (``FinderPool``), shared by every stage of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .formats import ANY_FORMAT, FormatControl
from .index import Finder, PackageFinder
from .progress import Log, Progress, QuietProgress
from .requirements import IndexOptions

if TYPE_CHECKING:  # imported when first needed: httpx and networkx take ~0.2 s to import
    import httpx

    from .pipconf import NetworkOptions


def _quiet(message: str) -> None:
    """The default log: says nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Machine-side settings: where caches live, how chatty to be, whether to go online."""

    cache_dir: Path
    offline: bool = False
    log: Log = _quiet  # -v detail
    say: Log = _quiet  # normal progress lines
    # pip's configuration under `pip lambda-pack`: indexes under the project's, and the network
    index_defaults: IndexOptions = field(default_factory=IndexOptions)
    network: NetworkOptions | None = None  # None: httpx's defaults
    formats: FormatControl = ANY_FORMAT  # pip's --only-binary & co., under the requirements'
    progress: Progress = field(default_factory=QuietProgress)  # bars or lines for long steps


class FinderPool(Protocol):
    """Where the pipeline gets the ``Finder`` for a set of index options (``Finders`` is the
    real one; a test passes a pool of fakes)."""

    def get(self, index: IndexOptions) -> Finder:
        """The finder for ``index`` (merged over the machine's defaults); the same object
        for the same options, so functions share listings and downloads."""
        ...


class Finders:
    """One PackageFinder per distinct set of index options, shared by all functions."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._finders: dict[IndexOptions, PackageFinder] = {}
        self._clients: dict[tuple[str, ...], httpx.Client] = {}  # by extra trusted hosts

    def get(self, index: IndexOptions) -> PackageFinder:
        index = self._settings.index_defaults.merged(index)
        key = IndexOptions(
            index_url=index.index_url,
            extra_index_urls=index.extra_index_urls,
            find_links=index.find_links,
            no_index=index.no_index,
            trusted_hosts=index.trusted_hosts,
        )
        if key not in self._finders:
            self._finders[key] = PackageFinder(
                index_urls=index.index_urls(),
                find_links=index.find_links,
                cache_dir=self._settings.cache_dir / "index",
                offline=self._settings.offline,
                client=self._client(index.trusted_hosts),
                log=self._settings.log,
            )
        return self._finders[key]

    def _client(self, trusted_hosts: tuple[str, ...]) -> httpx.Client | None:
        """One shared client per set of trusted hosts when pip's network options are set or
        a requirements file adds --trusted-host; else each finder its own."""
        if self._settings.network is None and not trusted_hosts:
            return None  # without pip's options, pipconf (and httpx) need not be imported
        from .pipconf import NetworkOptions, http_client

        network = self._settings.network or NetworkOptions()
        hosts = tuple(dict.fromkeys((*network.trusted_hosts, *trusted_hosts)))
        if network == NetworkOptions() and not hosts:
            return None
        if hosts not in self._clients:
            self._clients[hosts] = http_client(replace(network, trusted_hosts=hosts))
        return self._clients[hosts]

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
        for client in self._clients.values():
            client.close()

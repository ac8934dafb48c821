"""Shared fixtures: a wheelhouse directory, a local index server over it, a finder cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from indexserver import IndexServer


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """An empty directory for tests to fill with helpers.make_wheel / make_sdist."""
    path = tmp_path / "wheelhouse"
    path.mkdir()
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh cache directory for a PackageFinder."""
    return tmp_path / "cache"


@pytest.fixture
def index_server(wheelhouse: Path) -> Iterator[Callable[..., IndexServer]]:
    """Start an IndexServer over the wheelhouse: ``index_server(json=False, yanked=...)``."""
    servers: list[IndexServer] = []

    def start(**options: Any) -> IndexServer:
        server = IndexServer(wheelhouse, **options).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)

"""Popularity: PyPI download counts (a shipped snapshot) and fleet weights.

The snapshot is ``data/pypi-downloads.csv.gz``, built by ``scripts/make-popularity-snapshot``
from hugovk/top-pypi-packages (30 days to 2026-04-01, the 15,000 most downloaded projects).
It stands for what other tenants' functions keep warm: a package downloaded a lot on PyPI
is likely to sit in a worker's cache as a canonical layer already.
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources

from packaging.utils import canonicalize_name

SNAPSHOT_DATE = "2026-04-01"
SNAPSHOT_SOURCE = "hugovk/top-pypi-packages (30 days)"


@functools.cache
def pypi_downloads() -> dict[str, int]:
    """Canonical project name -> downloads in the 30 days of the snapshot."""
    raw = resources.files("pip_lambda_pack").joinpath("data/pypi-downloads.csv.gz").read_bytes()
    counts: dict[str, int] = {}
    for line in gzip.decompress(raw).decode().splitlines()[2:]:
        name, _, count = line.partition(",")
        counts[name] = int(count)
    return counts


def downloads(name: str) -> int:
    """Downloads of one project in the snapshot (0 when it is not among the top 15,000)."""
    return pypi_downloads().get(canonicalize_name(name), 0)


def pypi_share(name: str) -> float:
    """Downloads relative to the most downloaded project: 1.0 for the top, 0.0 if unknown."""
    counts = pypi_downloads()
    top = max(counts.values())
    return counts.get(canonicalize_name(name), 0) / top

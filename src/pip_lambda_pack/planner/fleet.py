"""The one place a ``Fleet`` is made: from a project's resolved pins, or from the parsed data
of a ``lambda-pack-fleet/1`` file (docs/design.md).

The PyPI prior comes in as a value (``downloads``: canonical project name -> downloads in
the snapshot, as ``popularity.pypi_downloads`` gives it), so the planner reads no file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packaging.utils import canonicalize_name

from ..errors import ConfigError
from ..graph import PinGraph
from .model import Fleet, FunctionNeed, Package

FLEET_FORMAT = "lambda-pack-fleet/1"


def fleet_from_pins(
    graph: PinGraph,
    downloads: Mapping[str, int],
    weights: Mapping[str, float] | None = None,
    code_sizes: Mapping[str, int] | None = None,
) -> Fleet:
    """The planner's view of a resolved fleet: its pins, each function's closure, weight
    (default 1) and code size (default 0)."""
    packages = {
        pid: Package(
            id=pid,
            name=pin.name,
            size=pin.size,
            unpacked_size=pin.unpacked_size,
            downloads=_downloads(downloads, pin.name),
            requires=graph.requires[pid],
        )
        for pid, pin in graph.pins.items()
    }
    functions = {
        name: FunctionNeed(
            pins=members,
            weight=(weights or {}).get(name, 1.0),
            code_size=(code_sizes or {}).get(name, 0),
        )
        for name, members in graph.functions.items()
    }
    return Fleet(packages=packages, functions=functions, top_downloads=_top(downloads))


def fleet_from_data(data: object, where: str, downloads: Mapping[str, int]) -> Fleet:
    """A fleet from the parsed ``lambda-pack-fleet/1`` document ``data`` (read from ``where``)."""
    if not isinstance(data, dict) or data.get("format") != FLEET_FORMAT:
        raise ConfigError(f"{where}: format is not {FLEET_FORMAT}", f"pass a {FLEET_FORMAT} file")
    try:
        packages = _packages(data["packages"], downloads)
        functions = {
            name: FunctionNeed(pins=tuple(sorted(info["requires"])), weight=float(info["weight"]))
            for name, info in sorted(data["functions"].items())
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{where}: bad fleet entry: {exc!r}",
            "see the lambda-pack-fleet/1 schema in docs/design.md (Contracts)",
        ) from None
    for name, function in functions.items():
        unknown = [p for p in function.pins if p not in packages]
        if unknown:
            raise ConfigError(
                f"{where}: functions.{name}.requires names unknown {unknown[0]}",
                "list every pin of a closure under packages",
            )
    return Fleet(packages=packages, functions=functions, top_downloads=_top(downloads))


def _packages(entries: Mapping[str, Any], downloads: Mapping[str, int]) -> dict[str, Package]:
    return {
        pid: Package(
            id=pid,
            name=str(info["name"]),
            size=int(info["size"]),
            unpacked_size=int(info.get("unpacked_size", info["size"])),
            downloads=_downloads(downloads, str(info["name"])),
            requires=tuple(sorted(info.get("requires", ()))),
        )
        for pid, info in sorted(entries.items())
    }


def _downloads(downloads: Mapping[str, int], name: str) -> int:
    return downloads.get(canonicalize_name(name), 0)


def _top(downloads: Mapping[str, int]) -> int:
    return max(downloads.values(), default=0)

"""``lambda-pack.lock``: the resolved wheels, each function's closure and the layer plan.

The file is TOML written in one stable order, with no absolute paths of this machine, so
the same inputs give the same bytes anywhere. ``inputs`` is a digest of everything that
decides the result (target, planner settings, index options, each function's
requirements); ``planner`` is a digest of the planner settings (strategy, max-layers, the
model). ``staleness`` compares both with the project as it is now,
offline: a lock whose planner settings alone changed is planned again from its own wheels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import tomli_w

from .atomic import write_text
from .config import IndexOptions, Project, function_index
from .errors import LockError
from .graph import Pin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCK_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LockedFunction:
    pins: tuple[str, ...]  # the whole closure, sorted
    layers: tuple[str, ...]  # layer ids in merge order


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock:
    target: str
    inputs: str  # digest of what decides the resolution (see inputs_digest)
    strategy: str
    max_layers: int
    wheels: Mapping[str, Pin]  # pin id -> pin
    functions: Mapping[str, LockedFunction]
    layers: Mapping[str, tuple[str, ...]]  # layer id -> sorted pin ids
    planner: str = ""  # digest of the planner settings the plan was made with

    def closures(self) -> dict[str, list[Pin]]:
        return {
            name: [self.wheels[p] for p in function.pins]
            for name, function in self.functions.items()
        }


def inputs_digest(project: Project) -> str:
    """``sha256:`` of everything that decides the resolution, in a machine-independent form
    (and the functions' weights: a change of weight plans again, keeping stable layers)."""
    data = {
        "lock": LOCK_VERSION,
        "target": project.target,
        "functions": {
            spec.name: {
                "requirements": list(spec.requirements.requirements),
                "constraints": list(spec.requirements.constraints),
                "hashes": [[n, list(h)] for n, h in spec.requirements.hashes],
                "index": _portable_index(function_index(project, spec), project.root),
                "weight": spec.weight,
            }
            for spec in project.functions
        },
    }
    return _digest(data)


def planner_digest(project: Project, strategy: str) -> str:
    """``sha256:`` of the planner settings: when they change, the plan is made afresh."""
    data = {
        "lock": LOCK_VERSION,
        "target": project.target,
        "strategy": strategy,
        "max_layers": project.max_layers,
        "planner": dataclasses.asdict(project.planner),
    }
    return _digest(data)


def _digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _portable_index(index: IndexOptions, root: Path) -> dict[str, Any]:
    return {
        "indexes": list(index.index_urls()),
        "find_links": [portable_location(loc, root) for loc in index.find_links],
        "pre": index.pre,
    }


def portable_location(location: str, root: Path) -> str:
    """A path or file URL inside the project as a relative POSIX path; others as given."""
    path = _local_path(location)
    if path is None:
        return location
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return location


def absolute_url(url: str, root: Path) -> str:
    """Undo ``portable_location`` for a wheel URL: relative paths become file URLs."""
    if "://" in url:
        return url
    return (root / url).resolve().as_uri()


def _local_path(location: str) -> Path | None:
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if "://" in location:
        return None
    return Path(location)


def to_toml(lock: Lock, root: Path) -> str:
    """The lock as TOML text, every table and list in a stable order."""
    data: dict[str, Any] = {
        "version": LOCK_VERSION,
        "target": lock.target,
        "inputs": lock.inputs,
        "planner": lock.planner,
        "strategy": lock.strategy,
        "max-layers": lock.max_layers,
        "wheels": [_wheel_table(pin, root) for _, pin in sorted(lock.wheels.items())],
        "functions": {
            name: {"pins": list(f.pins), "layers": list(f.layers)}
            for name, f in sorted(lock.functions.items())
        },
        "layers": {lid: {"pins": list(m)} for lid, m in sorted(lock.layers.items())},
    }
    header = "# lambda-pack.lock: written by pip-lambda-pack; do not edit by hand.\n"
    return header + tomli_w.dumps(data, multiline_strings=False)


def _wheel_table(pin: Pin, root: Path) -> dict[str, Any]:
    table: dict[str, Any] = {
        "name": pin.name,
        "version": pin.version,
        "filename": pin.filename,
        "url": portable_location(pin.url, root),
        "sha256": pin.sha256,
        "size": pin.size,
        "unpacked-size": pin.unpacked_size,
        "requires": list(pin.requires),
    }
    if pin.sdist:
        table["sdist"] = True
    return table


def write_lock(lock: Lock, path: Path) -> None:
    write_text(path, to_toml(lock, path.parent))


def read_lock(path: Path) -> Lock:
    """Parse a lock file; LockError naming the bad field when it is malformed."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LockError(f"no lock file at {path}", "run: pip-lambda-pack lock") from None
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: not valid TOML: {exc}", "run lock again") from None
    if data.get("version") != LOCK_VERSION:
        raise LockError(
            f"{path}: lock version {data.get('version')!r} is not {LOCK_VERSION}",
            "run lock again with this version of pip-lambda-pack",
        )
    try:
        return _lock_from_data(data, path.parent)
    except (KeyError, TypeError, ValueError) as exc:
        raise LockError(f"{path}: malformed lock ({exc!r})", "run lock again") from None


def _lock_from_data(data: Mapping[str, Any], root: Path) -> Lock:
    wheels = {}
    for table in data["wheels"]:
        pin = Pin(
            name=table["name"],
            version=table["version"],
            filename=table["filename"],
            url=absolute_url(table["url"], root),
            sha256=table["sha256"],
            size=int(table["size"]),
            unpacked_size=int(table["unpacked-size"]),
            requires=tuple(table["requires"]),
            sdist=bool(table.get("sdist", False)),
        )
        wheels[pin.id] = pin
    return Lock(
        target=data["target"],
        inputs=data["inputs"],
        planner=str(data.get("planner", "")),
        strategy=data["strategy"],
        max_layers=int(data["max-layers"]),
        wheels=wheels,
        functions={
            name: LockedFunction(pins=tuple(f["pins"]), layers=tuple(f["layers"]))
            for name, f in data["functions"].items()
        },
        layers={lid: tuple(table["pins"]) for lid, table in data["layers"].items()},
    )


def staleness(lock: Lock, project: Project, strategy: str) -> str | None:
    """Why the lock does not fit the project now, or None when it is fresh."""
    return resolution_staleness(lock, project) or planner_staleness(lock, project, strategy)


def resolution_staleness(lock: Lock, project: Project) -> str | None:
    """Why the lock's wheels may not be what resolving the project gives now, or None."""
    if lock.target != project.target:
        return f"the lock is for {lock.target}, the project targets {project.target}"
    if set(lock.functions) != {f.name for f in project.functions}:
        return "the project's functions changed"
    if lock.inputs != inputs_digest(project):
        return "requirements, index options or weights changed"
    return None


def planner_staleness(lock: Lock, project: Project, strategy: str) -> str | None:
    """Why the lock's plan is not the one the project's planner settings ask for, or None."""
    if lock.planner != planner_digest(project, strategy):
        return "planner settings changed (strategy, max-layers or the model)"
    return None

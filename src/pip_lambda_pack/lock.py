"""``lambda-pack.lock``: the resolved wheels, each function's closure and the layer plan.

The file is TOML written in one stable order, with no absolute paths of this machine, so
the same inputs give the same bytes anywhere. ``inputs`` is a digest of everything that
decides the result (target, planner settings, index options, each function's
requirements); ``is_fresh`` compares it with the project as it is now, offline.
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
from .config import FunctionSpec, Project, function_index
from .credentials import public_url
from .errors import LockError
from .formats import FormatControl
from .graph import Pin
from .planner.model import OPTIONS
from .requirements import IndexOptions

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
    inputs: str
    strategy: str
    max_layers: int
    wheels: Mapping[str, Pin]  # pin id -> pin
    functions: Mapping[str, LockedFunction]
    layers: Mapping[str, tuple[str, ...]]  # layer id -> sorted pin ids
    input_parts: Mapping[str, str] = dataclasses.field(default_factory=dict)  # see input_parts
    # how layers get bytecode: {"mode": "checked-hash", "python": "3.12.1"} ("" for none found)
    bytecode: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def closures(self) -> dict[str, list[Pin]]:
        return {
            name: [self.wheels[p] for p in function.pins]
            for name, function in self.functions.items()
        }


def inputs_digest(project: Project, strategy: str) -> str:
    """``sha256:`` of everything that decides the lock, in a machine-independent form."""
    return "sha256:" + _digest(_inputs_data(project, strategy))


def _digest(data: object) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def input_parts(project: Project, strategy: str) -> dict[str, str]:
    """A short digest of each part of the inputs, so ``staleness`` can say which changed.

    Keys: ``strategy``, ``max-layers``, ``planner.KEY`` (the config key) and
    ``functions.NAME.requirements`` / ``.index`` / ``.weight``.
    """
    data = _inputs_data(project, strategy)
    parts = {"strategy": data["strategy"], "max-layers": data["max_layers"]}
    for key, value in data["planner"].items():
        parts[f"planner.{_PLANNER_KEYS.get(key, key.replace('_', '-'))}"] = value
    for key, value in data.get("build", {}).items():
        parts[key] = value
    for name, function in data["functions"].items():
        if "build" in function:
            parts[f"functions.{name}.build"] = function["build"]
        keys = ("requirements", "constraints", "hashes", "formats")
        requirements = [function[k] for k in keys if k in function]
        parts[f"functions.{name}.requirements"] = requirements
        parts[f"functions.{name}.index"] = function["index"]
        parts[f"functions.{name}.weight"] = function["weight"]
        if "delivery" in function:
            parts[f"functions.{name}.delivery"] = [
                function["delivery"],
                function["ephemeral_storage_mb"],
            ]
    return {key: _digest(value)[:16] for key, value in sorted(parts.items())}


_PLANNER_KEYS = {option.digest_name: option.key for option in OPTIONS.values()}  # -> config key


def _inputs_data(project: Project, strategy: str) -> dict[str, Any]:
    data = _resolution_data(project, strategy)
    _add_build_options(data, project)
    return data


def _add_build_options(data: dict[str, Any], project: Project) -> None:
    """Bytecode mode and excludes, where they differ from the defaults (so the digests
    of locks written before these options existed stay what they were)."""
    from .bytecode import DEFAULT_MODE

    build = {"bytecode": project.bytecode, "exclude": list(project.exclude)}
    if build != {"bytecode": DEFAULT_MODE, "exclude": []}:
        data["build"] = build
    for spec in project.functions:
        own = {"bytecode": spec.bytecode, "exclude": spec.exclude and list(spec.exclude)}
        if spec.bytecode is not None or spec.exclude is not None:
            data["functions"][spec.name]["build"] = own


def _resolution_data(project: Project, strategy: str) -> dict[str, Any]:
    return {
        "lock": LOCK_VERSION,
        "target": project.target,
        "strategy": strategy,
        "max_layers": project.max_layers,
        "planner": project.planner.digest_form(),
        "functions": {spec.name: _function_inputs(project, spec) for spec in project.functions},
    }


def _function_inputs(project: Project, spec: FunctionSpec) -> dict[str, Any]:
    reqs = spec.requirements
    data = {
        "requirements": [portable_requirement(r, project.root) for r in reqs.requirements],
        "constraints": list(reqs.constraints),
        "hashes": [[n, list(h)] for n, h in reqs.hashes],
        "index": _portable_index(function_index(project, spec), project.root),
        "weight": spec.weight,
    }
    if reqs.formats != FormatControl():  # only then: the digests of older locks hold
        data["formats"] = reqs.formats.to_data()
    return {**data, **_delivery(spec)}


def _delivery(spec: FunctionSpec) -> dict[str, Any]:
    """A shim-delivered function is planned within its /tmp, not Lambda's limits."""
    if spec.delivery == "layers":
        return {}  # the default: locks from before the key stay fresh
    return {"delivery": spec.delivery, "ephemeral_storage_mb": spec.ephemeral_storage_mb}


def portable_requirement(text: str, root: Path) -> str:
    """A requirement as the lock's digest sees it: a local direct reference (``name @
    file:///...``) by its path relative to the project and its content's digest, so a
    moved checkout keeps its lock fresh and a changed ``./lib`` makes it stale."""
    if " @ file:" not in text:
        return text
    from packaging.requirements import Requirement

    from .atomic import sha256_of
    from .links import url_to_path
    from .sdists import tree_digest

    requirement = Requirement(text)
    url = str(requirement.url).partition("#")[0]
    path = url_to_path(url)
    digest = tree_digest(path) if path.is_dir() else sha256_of(path) if path.is_file() else ""
    requirement.url = f"{portable_location(url, root)}#{digest}"
    return str(requirement)


def _portable_index(index: IndexOptions, root: Path) -> dict[str, Any]:
    return {
        "indexes": [public_url(url) for url in index.index_urls()],  # a new login: same lock
        "find_links": [portable_location(public_url(loc), root) for loc in index.find_links],
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
        "strategy": lock.strategy,
        "max-layers": lock.max_layers,
        "wheels": [_wheel_table(pin, root) for _, pin in sorted(lock.wheels.items())],
        "functions": {
            name: {"pins": list(f.pins), "layers": list(f.layers)}
            for name, f in sorted(lock.functions.items())
        },
        "layers": {lid: {"pins": list(m)} for lid, m in sorted(lock.layers.items())},
    }
    if lock.input_parts:
        data["input-parts"] = dict(sorted(lock.input_parts.items()))
    if lock.bytecode:
        data["bytecode"] = dict(sorted(lock.bytecode.items()))
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
    except UnicodeDecodeError as exc:
        raise LockError(f"{path} is not UTF-8 text (byte {exc.start})", "run lock again") from None
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
        strategy=data["strategy"],
        max_layers=int(data["max-layers"]),
        wheels=wheels,
        functions={
            name: LockedFunction(pins=tuple(f["pins"]), layers=tuple(f["layers"]))
            for name, f in data["functions"].items()
        },
        layers={lid: tuple(table["pins"]) for lid, table in data["layers"].items()},
        input_parts={str(k): str(v) for k, v in data.get("input-parts", {}).items()},
        bytecode={str(k): str(v) for k, v in data.get("bytecode", {}).items()},
    )


def staleness(lock: Lock, project: Project, strategy: str) -> str | None:
    """Why the lock does not fit the project now, or None when it is fresh."""
    if lock.inputs == inputs_digest(project, strategy) and lock.target == project.target:
        return None
    return resolution_staleness(lock, project, strategy) or planner_staleness(
        lock, project, strategy
    )


def resolution_staleness(lock: Lock, project: Project, strategy: str) -> str | None:
    """Why the lock's wheels may not be what resolving the project gives now, or None when
    nothing but planner settings changed (then its wheels can be planned again as they are)."""
    if lock.target != project.target:
        return f"the lock is for {lock.target}, the project targets {project.target}"
    if set(lock.functions) != {f.name for f in project.functions}:
        return _functions_changed(set(lock.functions), {f.name for f in project.functions})
    if lock.inputs == inputs_digest(project, strategy):
        return None
    changed = _changed_parts(lock, project, strategy)
    if changed and all(_planner_part(key) or build_part(key) for key in changed):
        return None
    return _what_changed(lock, project, strategy)


def planner_staleness(lock: Lock, project: Project, strategy: str) -> str | None:
    """Why the lock's plan was made with other planner settings than the project's now
    (strategy, max-layers, the model), or None when they are the same."""
    if lock.inputs == inputs_digest(project, strategy):
        return None
    if not lock.input_parts:  # a lock from before input-parts: its settings are unknown
        return "planner settings may have changed"
    changed = [key for key in _changed_parts(lock, project, strategy) if _planner_part(key)]
    if not changed:
        return None
    said = list(dict.fromkeys(_part_words(key, project) for key in changed))
    return "; ".join(said)


def _changed_parts(lock: Lock, project: Project, strategy: str) -> list[str]:
    """The ``input_parts`` keys whose digest differs from the lock's, or that only one of
    the two has (a build option back at its default has no part); all of them for a lock
    from before input-parts."""
    now = input_parts(project, strategy)
    keys = dict.fromkeys([*now, *lock.input_parts])
    return [key for key in keys if lock.input_parts.get(key) != now.get(key)]


def build_part(key: str) -> bool:
    """Whether an ``input_parts`` key is a build option (bytecode, exclude): it changes
    neither the resolution nor the plan, only how layers are built."""
    return key in ("bytecode", "exclude") or (
        key.startswith("functions.") and key.endswith(".build")
    )


def _planner_part(key: str) -> bool:
    return key in ("strategy", "max-layers") or key.startswith("planner.")


def _functions_changed(locked: set[str], now: set[str]) -> str:
    added, removed = sorted(now - locked), sorted(locked - now)
    said = [f"function {', '.join(added)} added"] if added else []
    said += [f"function {', '.join(removed)} removed"] if removed else []
    return "; ".join(said)


def _what_changed(lock: Lock, project: Project, strategy: str) -> str:
    """Which inputs differ from the lock's, in words: ``requirements/fetch.txt changed``."""
    changed = _changed_parts(lock, project, strategy)
    if not lock.input_parts or not changed:  # a lock from before input-parts
        return "requirements, index options or planner settings changed"
    said = list(dict.fromkeys(_part_words(key, project) for key in changed))
    return "; ".join(said[:3]) + (f" (and {len(said) - 3} more)" if len(said) > 3 else "")


def _part_words(key: str, project: Project) -> str:
    if key in ("bytecode", "exclude"):
        return f"{key} setting changed"
    if key.startswith("functions.") and key.endswith(".build"):
        return f"bytecode or exclude of function {key.split('.')[1]} changed"
    if key.startswith("planner."):
        return f"planner setting {key.removeprefix('planner.')} changed"
    if not key.startswith("functions."):
        return f"{key} changed"
    name, part = key.removeprefix("functions.").rsplit(".", 1)
    if part == "index":
        return "index options changed"
    if part == "weight":
        return f"weight of function {name} changed"
    if part == "delivery":
        return f"delivery or ephemeral-storage-mb of function {name} changed"
    spec = next(f for f in project.functions if f.name == name)
    source = spec.requirements_file or (spec.lock_input and _relative(spec.lock_input, project))
    return f"{source} changed" if source else f"dependencies of function {name} changed"


def _relative(path: Path, project: Project) -> str:
    try:
        return path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return str(path)

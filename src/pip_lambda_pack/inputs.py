"""Requirement inputs beyond requirements.txt: pyproject.toml and lock files.

- ``pyproject.toml``: ``[project.dependencies]``, optional dependencies (extras) and PEP 735
  dependency groups.
- ``pylock.toml`` (PEP 751): selected for the target with ``packaging.pylock``.
- ``uv.lock`` and ``poetry.lock``: walked from the project's own dependencies, with every
  marker evaluated for the target.

A locked input is honoured exactly: each package becomes ``name==version`` with the lock's
sha256 hashes, so the resolver can only pick a file the lock names, and the wheel chosen is
the one for the target. Which reader applies is decided by the file's name.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from .config import Project, Selection
from .errors import ConfigError, NoWheelError
from .requirements import IndexOptions, RequirementSet, not_utf8
from .target import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True, slots=True, kw_only=True)
class _Locked:
    """One package of a lock file: its pin, hashes and (for the walk) its dependencies."""

    name: NormalizedName
    version: str
    hashes: tuple[str, ...]
    dependencies: tuple[Mapping[str, Any], ...] = ()
    extras: Mapping[str, tuple[Mapping[str, Any], ...]] | None = None


def input_kind(path: Path) -> str:
    """``pyproject``, ``pylock``, ``uv-lock``, ``poetry-lock`` or ``requirements``."""
    name = path.name
    if name == "pyproject.toml":
        return "pyproject"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", name):
        return "pylock"
    return {"uv.lock": "uv-lock", "poetry.lock": "poetry-lock"}.get(name, "requirements")


def read_input(path: Path, target: Target, selection: Selection) -> RequirementSet:
    """The requirements an input file stands for, for ``target``."""
    kind = input_kind(path)
    if kind == "pyproject":
        return pyproject_requirements(_toml(path), selection, str(path))
    if kind == "pylock":
        return pylock_requirements(_toml(path), target, selection, str(path))
    if kind == "uv-lock":
        return uv_lock_requirements(_toml(path), target, selection, str(path))
    if kind == "poetry-lock":
        project = _toml(path.parent / "pyproject.toml")
        return poetry_lock_requirements(_toml(path), project, target, selection, str(path))
    raise ConfigError(f"{path} is not a lock file or pyproject.toml", "pass it as requirements")


def materialize(project: Project) -> Project:
    """The project with every lock-file input read for its target."""
    from .target import get_target

    if not any(spec.lock_input for spec in project.functions):
        return project
    target = get_target(project.target)
    functions = tuple(
        replace(spec, requirements=read_input(spec.lock_input, target, spec.selection))
        if spec.lock_input
        else spec
        for spec in project.functions
    )
    return replace(project, functions=functions)


def pyproject_file_requirements(path: Path, selection: Selection) -> RequirementSet:
    """``pyproject_requirements`` of a file."""
    return pyproject_requirements(_toml(path), selection, str(path))


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"input file not found: {path}", "check the path in the config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix or regenerate it") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None


# -- pyproject.toml ---------------------------------------------------------------------


def pyproject_requirements(
    data: Mapping[str, Any], selection: Selection, where: str
) -> RequirementSet:
    """``[project.dependencies]`` plus the selected extras and dependency groups."""
    project = data.get("project", {})
    lines = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in selection.extras:
        if extra not in optional:
            raise ConfigError(
                f"{where}: no optional dependencies named {extra!r}",
                "use one of: " + (", ".join(sorted(optional)) or "(none declared)"),
            )
        lines += optional[extra]
    groups = data.get("dependency-groups", {})
    for group in selection.groups:
        lines += _group_lines(groups, group, where, ())
    requirements = tuple(str(_requirement(line, where)) for line in lines)
    return RequirementSet(requirements=tuple(dict.fromkeys(requirements)))


def _group_lines(
    groups: Mapping[str, Any], group: str, where: str, seen: tuple[str, ...]
) -> list[str]:
    """PEP 735: a group's requirement strings, ``{include-group = ...}`` expanded."""
    by_name = {canonicalize_name(name): value for name, value in groups.items()}
    key = canonicalize_name(group)
    if key not in by_name:
        raise ConfigError(
            f"{where}: no dependency group named {group!r}", "check [dependency-groups]"
        )
    if key in seen:
        raise ConfigError(f"{where}: dependency group {group!r} includes itself", "break the loop")
    lines: list[str] = []
    for item in by_name[key]:
        if isinstance(item, dict) and "include-group" in item:
            lines += _group_lines(groups, str(item["include-group"]), where, (*seen, key))
        else:
            lines.append(str(item))
    return lines


def _requirement(line: str, where: str) -> Requirement:
    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: malformed requirement {line!r}: {exc}", "fix it") from None


# -- pinned packages to requirements ----------------------------------------------------


def _pinned(packages: Iterable[_Locked], index: IndexOptions | None = None) -> RequirementSet:
    chosen = sorted({(p.name, p.version): p for p in packages}.values(), key=lambda p: p.name)
    return RequirementSet(
        requirements=tuple(f"{p.name}=={p.version}" for p in chosen),
        hashes=tuple((p.name, tuple(sorted(p.hashes))) for p in chosen if p.hashes),
        index=index or IndexOptions(),
    )


def _sha256(value: object) -> str | None:
    text = str(value or "")
    return text.split(":", 1)[1] if text.startswith("sha256:") else None


# -- pylock.toml (PEP 751) --------------------------------------------------------------


def pylock_requirements(
    data: Mapping[str, Any], target: Target, selection: Selection, where: str
) -> RequirementSet:
    """Select the lock's packages for the target: its markers, its tags, its wheel."""
    from packaging.pylock import Pylock, PylockSelectError, PylockValidationError

    try:
        lock = Pylock.from_dict(data)
        chosen = list(
            lock.select(
                environment=target.markers(),  # type: ignore[arg-type]
                tags=target.tags,
                extras=selection.extras,
                dependency_groups=selection.groups or None,
            )
        )
    except PylockValidationError as exc:
        raise ConfigError(f"{where}: not a valid pylock.toml: {exc}", "regenerate it") from None
    except PylockSelectError as exc:
        raise NoWheelError(
            f"{where}: nothing locked fits {target.name}: {exc}",
            "lock again for this target, or choose another --target",
        ) from None
    indexes = tuple(sorted({str(p.index) for p, _ in chosen if p.index}))
    packages = [_pylock_package(package, dist, target, where) for package, dist in chosen]
    return _pinned(packages, IndexOptions(extra_index_urls=indexes))


def _pylock_package(package: Any, dist: Any, target: Target, where: str) -> _Locked:
    sha = dict(getattr(dist, "hashes", {}) or {}).get("sha256")
    if package.version is None or sha is None:
        raise ConfigError(
            f"{where}: package {package.name} has no version or no sha256",
            "only index packages with hashes can be packaged; regenerate the lock",
        )
    if type(dist).__name__ != "PackageWheel":
        raise NoWheelError(
            f"{where}: {package.name} {package.version} has no wheel for {target.name}",
            "lock a version with wheels for this target, or choose another --target",
        )
    return _Locked(
        name=canonicalize_name(package.name), version=str(package.version), hashes=(sha,)
    )


# -- uv.lock ----------------------------------------------------------------------------


def uv_lock_requirements(
    data: Mapping[str, Any], target: Target, selection: Selection, where: str
) -> RequirementSet:
    """Walk uv.lock from the workspace's own package(s), evaluating markers for the target."""
    packages = [_uv_package(item) for item in data.get("package", [])]
    roots = [item for item in data.get("package", []) if _is_uv_root(item)]
    if not roots:
        raise ConfigError(f"{where}: no project package in the lock", "run uv lock again")
    start: list[Mapping[str, Any]] = []
    for root in roots:
        start += root.get("dependencies", [])
        start += _selected(root.get("optional-dependencies", {}), selection.extras, where)
        start += _selected(root.get("dev-dependencies", {}), selection.groups, where)
    names = {canonicalize_name(root["name"]) for root in roots}
    reached = _walk(start, packages, target, where)
    registries = (item.get("source", {}).get("registry") for item in data.get("package", []))
    return _pinned((p for p in reached if p.name not in names), _extra_indexes(registries))


def _extra_indexes(urls: Iterable[object]) -> IndexOptions:
    """The indexes a lock names besides PyPI, as extra indexes: a package locked from a
    private index is looked for there (its hash still decides which file is accepted)."""
    found = sorted({str(url).rstrip("/") for url in urls if url} - {"https://pypi.org/simple"})
    return IndexOptions(extra_index_urls=tuple(found))


def _is_uv_root(item: Mapping[str, Any]) -> bool:
    source = item.get("source", {})
    return "editable" in source or "virtual" in source


def _uv_package(item: Mapping[str, Any]) -> _Locked:
    files = [*item.get("wheels", []), *([item["sdist"]] if "sdist" in item else [])]
    hashes = tuple(h for h in (_sha256(f.get("hash")) for f in files) if h)
    return _Locked(
        name=canonicalize_name(item["name"]),
        version=str(item.get("version", "")),
        hashes=hashes,
        dependencies=tuple(item.get("dependencies", [])),
        extras={k: tuple(v) for k, v in item.get("optional-dependencies", {}).items()},
    )


def _selected(
    tables: Mapping[str, Sequence[Mapping[str, Any]]], names: Sequence[str], where: str
) -> list[Mapping[str, Any]]:
    chosen: list[Mapping[str, Any]] = []
    by_name = {canonicalize_name(k): v for k, v in tables.items()}
    for name in names:
        if canonicalize_name(name) not in by_name:
            raise ConfigError(f"{where}: the lock has no {name!r}", "lock with it first")
        chosen += by_name[canonicalize_name(name)]
    return chosen


def _walk(
    start: Sequence[Mapping[str, Any]], packages: Sequence[_Locked], target: Target, where: str
) -> list[_Locked]:
    """Every package reachable from ``start`` through dependencies whose marker holds."""
    reached: dict[tuple[str, str], _Locked] = {}
    seen: set[tuple[str, str, str]] = set()  # (name, version, extra or "")
    queue = list(start)
    while queue:
        dependency = queue.pop()
        if not _marker_holds(dependency.get("marker"), target):
            continue
        package = _find(packages, dependency, where)
        reached[(package.name, package.version)] = package
        for extra in ("", *dependency.get("extra", ())):
            if (package.name, package.version, extra) in seen:
                continue
            seen.add((package.name, package.version, extra))
            more = package.dependencies if not extra else (package.extras or {}).get(extra, ())
            queue += more
    return list(reached.values())


def _find(packages: Sequence[_Locked], dependency: Mapping[str, Any], where: str) -> _Locked:
    name = canonicalize_name(dependency["name"])
    matches = [p for p in packages if p.name == name]
    if "version" in dependency:
        matches = [p for p in matches if p.version == dependency["version"]]
    if len(matches) != 1:
        raise ConfigError(
            f"{where}: cannot tell which locked {name} is meant ({len(matches)} candidates)",
            "run the lock command again",
        )
    return matches[0]


def _marker_holds(marker: object, target: Target) -> bool:
    if not marker:
        return True
    from packaging.markers import Marker

    return target.evaluate(Marker(str(marker)))


# -- poetry.lock ------------------------------------------------------------------------


def poetry_lock_requirements(
    lock: Mapping[str, Any],
    project: Mapping[str, Any],
    target: Target,
    selection: Selection,
    where: str,
) -> RequirementSet:
    """Walk poetry.lock from pyproject's dependencies (Poetry's or PEP 621's)."""
    packages = [_poetry_package(item) for item in lock.get("package", [])]
    start = [_poetry_dependency(n, spec) for n, spec in _poetry_roots(project, selection, where)]
    start = [d for d in start if not d.get("optional") or d["name"] in selection.extras]
    sources = (
        item.get("source", {}).get("url")
        for item in lock.get("package", [])
        if item.get("source", {}).get("type") == "legacy"
    )
    return _pinned(_walk(start, packages, target, where), _extra_indexes(sources))


def _poetry_roots(
    project: Mapping[str, Any], selection: Selection, where: str
) -> list[tuple[str, Any]]:
    poetry = project.get("tool", {}).get("poetry", {})
    roots = [(n, s) for n, s in poetry.get("dependencies", {}).items() if n != "python"]
    for line in project.get("project", {}).get("dependencies", []):
        requirement = _requirement(line, where)
        roots.append(
            (
                requirement.name,
                {"markers": str(requirement.marker or ""), "extras": sorted(requirement.extras)},
            )
        )
    groups = poetry.get("group", {})
    for group in selection.groups:
        if group not in groups:
            raise ConfigError(f"{where}: no Poetry group {group!r}", "check [tool.poetry.group]")
        roots += list(groups[group].get("dependencies", {}).items())
    return roots


def _poetry_package(item: Mapping[str, Any]) -> _Locked:
    hashes = tuple(h for h in (_sha256(f.get("hash")) for f in item.get("files", [])) if h)
    dependencies = tuple(
        _poetry_dependency(name, spec) for name, spec in item.get("dependencies", {}).items()
    )
    extras = {
        extra: tuple({"name": _requirement_name(line)} for line in lines)
        for extra, lines in item.get("extras", {}).items()
    }
    return _Locked(
        name=canonicalize_name(item["name"]),
        version=str(item["version"]),
        hashes=hashes,
        dependencies=tuple(d for d in dependencies if not d.get("optional")),
        extras=extras,
    )


def _requirement_name(line: str) -> str:
    return re.split(r"[\s(\[<>=!~;]", line.strip(), maxsplit=1)[0]


def _poetry_dependency(name: str, spec: Any) -> dict[str, Any]:
    """A Poetry dependency spec as ``{name, marker, extra, optional}`` for the walk."""
    tables = spec if isinstance(spec, list) else [spec]
    # Several constraints for one name differ by marker; keep them all as alternatives.
    markers = [_poetry_marker(t) for t in tables if isinstance(t, dict)]
    marker = " or ".join(f"({m})" for m in markers if m) if all(markers) and markers else ""
    first = tables[0] if isinstance(tables[0], dict) else {}
    return {
        "name": name,
        "marker": marker,
        "extra": list(first.get("extras", [])),
        "optional": bool(first.get("optional", False)),
    }


def _poetry_marker(table: Mapping[str, Any]) -> str:
    parts = [str(table["markers"])] if table.get("markers") else []
    if table.get("python"):
        parts += [f"python_full_version {op} '{v}'" for op, v in poetry_python(table["python"])]
    return " and ".join(f"({p})" for p in parts)


def poetry_python(constraint: str) -> list[tuple[str, str]]:
    """Poetry's python constraint (``^3.8``, ``>=3.8,<3.11``, ``~3.9``, ``3.9.*``) as
    comparisons on the full Python version."""
    comparisons: list[tuple[str, str]] = []
    for part in re.split(r"[,\s]+", constraint.strip()):
        if part and part != "*":
            comparisons += _poetry_comparison(part, constraint)
    return comparisons


def _poetry_comparison(part: str, constraint: str) -> list[tuple[str, str]]:
    match = re.fullmatch(r"(\^|~=?|>=|<=|>|<|==|!=)?(\d+(?:\.\d+)*)(\.\*)?", part)
    if match is None or "|" in constraint:
        raise ConfigError(
            f"unsupported Poetry python constraint {constraint!r}",
            'write it as a range, e.g. ">=3.10,<3.13"',
        )
    op, numbers = match.group(1) or "==", [int(n) for n in match.group(2).split(".")]
    if op == "~=" and len(numbers) > 1:
        return [(">=", _version(numbers)), ("<", _bump(numbers[:-1], last=True))]
    if op in ("^", "~", "~=") or match.group(3):
        upper = _bump(numbers, caret=op == "^", last=op == "==")
        return [(">=", _version(numbers)), ("<", upper)]
    return [(op, _version(numbers))]


def _bump(numbers: list[int], *, caret: bool = False, last: bool = False) -> str:
    """The exclusive upper bound: ``^`` bumps the first non-zero part, ``~`` the minor,
    ``last`` the last given part (``X.Y.*``, ``~=X.Y``)."""
    if last:
        index = len(numbers) - 1
    elif caret:
        index = next((i for i, n in enumerate(numbers) if n), len(numbers) - 1)
    else:
        index = 0 if len(numbers) == 1 else 1
    return _version([*numbers[:index], numbers[index] + 1])


def _version(numbers: Sequence[int]) -> str:
    padded = list(numbers) + [0] * (3 - len(numbers))
    return ".".join(str(n) for n in padded)

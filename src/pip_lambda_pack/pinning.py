"""Pipeline stage 1, requirements -> pins: each function's requirements resolved for the
target, its wheels downloaded (verified) or measured from the index without a download.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import FunctionSpec, Project, function_index
from .credentials import public_url
from .direct import wheel_path
from .errors import BuildError
from .graph import Pin
from .index import FileLink, Finder
from .interpreters import Interpreter, for_project
from .resolve import ResolvedPackage, prefetch, resolve
from .sdists import PythonLookup
from .settings import FinderPool, Settings
from .target import Target, get_target
from .units import plural

if TYPE_CHECKING:  # imported when first needed: httpx and networkx take ~0.2 s to import
    from packaging.requirements import Requirement


def resolve_project(
    project: Project, settings: Settings, finders: FinderPool
) -> dict[str, list[Pin]]:
    """Each function's closure as pins, wheels downloaded (verified) into the cache."""
    target = get_target(project.target)
    roots = {spec.name: spec.requirements.parsed() for spec in project.functions}
    for spec in project.functions:  # every function's likely closure read ahead in threads
        prefetch(roots[spec.name], target=target, finder=finders.get(function_index(project, spec)))
    closures: dict[str, list[Pin]] = {}
    for spec in project.functions:
        settings.say(f"resolving {spec.name} for {target.name}")
        finder = finders.get(function_index(project, spec))
        resolved = _resolve_function(spec, roots[spec.name], project, target, finder, settings)
        python = python_lookup(project, target)
        left = _left_to_runtime(project, target, resolved)
        closures[spec.name] = _pins(resolved, target, finder, settings, python, left)
    return closures


def _left_to_runtime(
    project: Project, target: Target, resolved: Mapping[str, ResolvedPackage]
) -> frozenset[str]:
    """URLs of wheels ``runtime-provided = "exclude"`` keeps out of every layer: pinned in
    the lock, never downloaded."""
    if project.planner.values.get("runtime-provided") != "exclude":
        return frozenset()
    from .planner.runtime_provided import provided_version

    return frozenset(
        p.link.url
        for p in resolved.values()
        if not p.built_from_sdist and provided_version(target.name, p.name) is not None
    )


def _resolve_function(
    spec: FunctionSpec,
    roots: Sequence[Requirement],
    project: Project,
    target: Target,
    finder: Finder,
    settings: Settings,
) -> dict[str, ResolvedPackage]:
    reqs = spec.requirements
    return resolve(
        roots,
        target=target,
        finder=finder,
        constraints=reqs.parsed_constraints(),
        hashes=reqs.hash_map(),
        allow_prereleases=function_index(project, spec).pre,
        formats=settings.formats.then(reqs.formats),
        build_dir=settings.cache_dir / "built",
        log=settings.log,
        warn=lambda line: settings.say(f"warning: {line}"),
        python=python_lookup(project, target),
    )


def python_lookup(project: Project, target: Target) -> PythonLookup:
    """The target's interpreter for sdist builds: ``--target-python``, the ``python`` config
    key, ``python3.X`` on PATH, then pyenv (looked up only when an sdist is built)."""

    def lookup(any_machine: bool) -> Interpreter:
        return for_project(project, target, any_machine=any_machine)

    return lookup


def _pins(
    resolved: Mapping[str, ResolvedPackage],
    target: Target,
    finder: Finder,
    settings: Settings,
    python: PythonLookup,
    left_to_runtime: frozenset[str] = frozenset(),
) -> list[Pin]:
    wheels = [p.link for p in resolved.values() if not p.built_from_sdist]
    # in no layer: not fetched at all; the index's size will do, the unpacked size is unknown
    sizes = {link.url: (link.size or 0, 0) for link in wheels if link.url in left_to_runtime}
    # read off the zips' ends or their METADATA: not downloaded
    sizes |= finder.sizes([link for link in wheels if link.url not in sizes])
    paths = download(finder, [link for link in wheels if link.url not in sizes], settings)
    pins = []
    for package in resolved.values():
        if package.built_from_sdist:
            path = wheel_path(
                package,
                target=target,
                finder=finder,
                build_dir=settings.cache_dir / "built",
                python=python,
            )
        elif package.link.url in sizes:
            pins.append(_pin(package, *sizes[package.link.url]))
            continue
        else:
            path = paths[package.link.url]
        pins.append(_pin(package, path.stat().st_size, unpacked_size(path)))
    return pins


def download(
    finder: Finder,
    links: Sequence[FileLink],
    settings: Settings,
    ready: Callable[[FileLink, Path], None] | None = None,
) -> dict[str, Path]:
    """Verified local paths of the files, with progress when any comes from the network;
    ``ready`` is called with each file as it lands (in a download thread)."""
    remote = [link for link in links if not link.url.startswith("file:")]
    if not remote:
        return finder.download_many(links, ready=ready)
    total = sum(link.size or 0 for link in remote)
    task = settings.progress.task(f"fetching {plural(len(remote), 'wheel')}", total, "B")
    try:
        return finder.download_many(links, progress=task, ready=ready)
    finally:
        task.finish()


def _pin(package: ResolvedPackage, size: int, unpacked: int) -> Pin:
    link = package.link
    return Pin(
        name=package.name,
        version=package.version,
        filename=link.filename,
        url=public_url(link.url),  # logins come back from the index options, never the lock
        sha256=link.sha256 or "",
        size=size,
        unpacked_size=unpacked,
        requires=package.dependencies,
        sdist=package.built_from_sdist,
    )


def unpacked_size(wheel: Path) -> int:
    """Bytes a wheel takes once extracted."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            return sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise BuildError(f"{wheel.name} is not a valid wheel: {exc}", "clear the cache") from exc

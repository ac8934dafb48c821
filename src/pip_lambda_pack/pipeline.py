"""The pipeline end to end: resolve -> graph -> plan -> lock, and lock -> layers -> manifest.

This is where the stages meet and where their I/O happens (index, cache, output dir);
each stage itself stays a function of values.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import networkx as nx

from .config import FunctionSpec, IndexOptions, Project, function_index
from .errors import BuildError, PlanError
from .graph import Pin, build_graph
from .index import FileLink, PackageFinder
from .layers import Artifact, build_code_zip, build_layer
from .lock import Lock, LockedFunction, inputs_digest, read_lock, staleness, write_lock
from .manifest import BuildManifest, CodeEntry, FunctionEntry, LayerEntry, write_manifest
from .pipconf import NetworkOptions, http_client
from .plan import (
    DEFAULT_STRATEGY,
    Fleet,
    LayerPlan,
    PlanParams,
    check_fleet,
    check_plan,
    fleet_from_graph,
    make_plan,
)
from .resolve import ResolvedPackage, resolve, wheel_path
from .target import Target, get_target
from .units import human_size

Log = Callable[[str], None]


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
    network: NetworkOptions = field(default_factory=NetworkOptions)


class Finders:
    """One PackageFinder per distinct set of index options, shared by all functions."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._finders: dict[IndexOptions, PackageFinder] = {}
        self._http: httpx.Client | None = None

    def get(self, index: IndexOptions) -> PackageFinder:
        index = self._settings.index_defaults.merged(index)
        key = IndexOptions(
            index_url=index.index_url,
            extra_index_urls=index.extra_index_urls,
            find_links=index.find_links,
            no_index=index.no_index,
        )
        if key not in self._finders:
            self._finders[key] = PackageFinder(
                index_urls=index.index_urls(),
                find_links=index.find_links,
                cache_dir=self._settings.cache_dir / "index",
                offline=self._settings.offline,
                client=self._client(),
                log=self._settings.log,
            )
        return self._finders[key]

    def _client(self) -> httpx.Client | None:
        """One shared client when pip's network options are set; else each finder its own."""
        if self._settings.network == NetworkOptions():
            return None
        if self._http is None:
            self._http = http_client(self._settings.network)
        return self._http

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
        if self._http is not None:
            self._http.close()


def strategy_of(project: Project) -> str:
    return project.strategy or DEFAULT_STRATEGY


def resolve_project(project: Project, settings: Settings, finders: Finders) -> dict[str, list[Pin]]:
    """Each function's closure as pins, wheels downloaded (verified) into the cache."""
    target = get_target(project.target)
    closures: dict[str, list[Pin]] = {}
    for spec in project.functions:
        settings.say(f"resolving {spec.name} for {target.name}")
        finder = finders.get(function_index(project, spec))
        resolved = _resolve_function(spec, project, target, finder, settings)
        closures[spec.name] = _pins(resolved, target, finder, settings)
    return closures


def _resolve_function(
    spec: FunctionSpec, project: Project, target: Target, finder: PackageFinder, settings: Settings
) -> dict[str, ResolvedPackage]:
    reqs = spec.requirements
    return resolve(
        reqs.parsed(),
        target=target,
        finder=finder,
        constraints=reqs.parsed_constraints(),
        hashes=reqs.hash_map(),
        allow_prereleases=function_index(project, spec).pre,
        build_dir=settings.cache_dir / "built",
        log=settings.log,
    )


def _pins(
    resolved: Mapping[str, ResolvedPackage],
    target: Target,
    finder: PackageFinder,
    settings: Settings,
) -> list[Pin]:
    wheels = [p.link for p in resolved.values() if not p.built_from_sdist]
    paths = finder.download_many(wheels)
    pins = []
    for package in resolved.values():
        if package.built_from_sdist:
            path = wheel_path(
                package, target=target, finder=finder, build_dir=settings.cache_dir / "built"
            )
        else:
            path = paths[package.link.url]
        pins.append(_pin(package, path))
    return pins


def _pin(package: ResolvedPackage, path: Path) -> Pin:
    link = package.link
    return Pin(
        name=package.name,
        version=package.version,
        filename=link.filename,
        url=link.url,
        sha256=link.sha256 or "",
        size=path.stat().st_size,
        unpacked_size=unpacked_size(path),
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


def plan_params(project: Project) -> PlanParams:
    return PlanParams(max_layers=project.max_layers)


def project_fleet(project: Project, graph: nx.DiGraph) -> Fleet:
    """The planner's view of the project: its graph and the functions' weights."""
    return fleet_from_graph(graph, {spec.name: spec.weight for spec in project.functions})


def plan_graph(project: Project, graph: nx.DiGraph) -> LayerPlan:
    return make_plan(project_fleet(project, graph), plan_params(project), strategy_of(project))


def check_lock_limits(project: Project, lock: Lock) -> None:
    """PlanError if the locked plan breaks a limit of the project (offline)."""
    fleet = project_fleet(project, build_graph(lock.closures()))
    plan = LayerPlan(
        strategy=lock.strategy,
        layers=lock.layers,
        functions={name: f.layers for name, f in lock.functions.items()},
    )
    check_fleet(fleet, plan_params(project))
    check_plan(fleet, plan, plan_params(project))


def lock_project(project: Project, settings: Settings, finders: Finders) -> Lock:
    """Resolve, plan and write ``lambda-pack.lock``; returns the lock."""
    closures = resolve_project(project, settings, finders)
    graph = build_graph(closures)
    plan = plan_graph(project, graph)
    lock = Lock(
        target=project.target,
        inputs=inputs_digest(project, strategy_of(project)),
        strategy=strategy_of(project),
        max_layers=project.max_layers,
        wheels={pin.id: pin for pins in closures.values() for pin in pins},
        functions={
            name: LockedFunction(pins=tuple(graph.graph["functions"][name]), layers=ids)
            for name, ids in plan.functions.items()
        },
        layers=plan.layers,
    )
    write_lock(lock, project.lock_path)
    settings.say(
        f"wrote {project.lock_path.name}: {len(lock.wheels)} wheels, {len(lock.layers)} layers"
    )
    return lock


def current_lock(project: Project, settings: Settings, finders: Finders) -> Lock:
    """The lock file when it is fresh; otherwise resolve again and rewrite it."""
    if project.lock_path.is_file():
        lock = read_lock(project.lock_path)
        reason = staleness(lock, project, strategy_of(project))
        if reason is None:
            settings.log(f"using {project.lock_path.name} (fresh)")
            return lock
        settings.say(f"{project.lock_path.name} is stale ({reason}); resolving again")
    return lock_project(project, settings, finders)


def build_project(
    project: Project, lock: Lock, out_dir: Path, settings: Settings, finders: Finders
) -> BuildManifest:
    """Layer zips, code zips and ``manifest.json`` in ``out_dir``, from a lock."""
    target = get_target(lock.target)
    paths = _wheel_paths(project, lock, target, settings, finders)
    artifacts: dict[str, Artifact] = {}
    for lid, members in sorted(lock.layers.items()):
        artifacts[lid] = build_layer([paths[pin] for pin in members], out_dir)
    entries = {}
    for spec in project.functions:
        code = build_code_zip(spec.code, out_dir, spec.name)
        locked = lock.functions[spec.name]
        layers = tuple(
            _layer_entry(artifacts[lid], lock.layers[lid], out_dir) for lid in locked.layers
        )
        _check_size(spec.name, code, layers, plan_params(project))
        entries[spec.name] = FunctionEntry(
            handler=spec.handler, code=_code_entry(code, out_dir), layers=layers
        )
    manifest = BuildManifest(target=lock.target, functions=entries)
    write_manifest(manifest, out_dir)
    _prune(out_dir, manifest)
    return manifest


def _wheel_paths(
    project: Project, lock: Lock, target: Target, settings: Settings, finders: Finders
) -> dict[str, Path]:
    finder = finders.get(project.index)
    links = {pid: _link(pin) for pid, pin in lock.wheels.items() if not pin.sdist}
    downloaded = finder.download_many(list(links.values()))
    paths = {pid: downloaded[link.url] for pid, link in links.items()}
    for pid, pin in lock.wheels.items():
        if pin.sdist:
            package = ResolvedPackage(
                name=pin.name,
                version=pin.version,
                link=_link(pin),
                dependencies=pin.requires,
                extras=(),
                built_from_sdist=True,
            )
            paths[pid] = wheel_path(
                package, target=target, finder=finder, build_dir=settings.cache_dir / "built"
            )
    return paths


def _link(pin: Pin) -> FileLink:
    return FileLink(
        filename=pin.filename,
        url=pin.url,
        sha256=pin.sha256,
        requires_python=None,
        yanked=None,
        metadata_sha256=None,
        has_metadata=False,
        size=pin.size if not pin.sdist else None,
        source="lambda-pack.lock",
    )


def _layer_entry(artifact: Artifact, members: tuple[str, ...], out_dir: Path) -> LayerEntry:
    return LayerEntry(
        path=artifact.path.relative_to(out_dir).as_posix(),
        sha256=artifact.sha256,
        size=artifact.size,
        unzipped_size=artifact.unzipped_size,
        wheels=members,
    )


def _code_entry(artifact: Artifact, out_dir: Path) -> CodeEntry:
    return CodeEntry(
        path=artifact.path.relative_to(out_dir).as_posix(),
        sha256=artifact.sha256,
        size=artifact.size,
    )


def _check_size(
    name: str, code: Artifact, layers: tuple[LayerEntry, ...], params: PlanParams
) -> None:
    total = code.unzipped_size + sum(layer.unzipped_size for layer in layers)
    if total > params.size_limit:
        raise PlanError(
            f"function {name} unzips to {human_size(total)}, over the "
            f"{human_size(params.size_limit)} limit",
            "slim its code or dependencies",
        )


def _prune(out_dir: Path, manifest: BuildManifest) -> None:
    """Remove zips an earlier build left that this manifest no longer names."""
    keep = {out_dir / entry.code_path for entry in manifest.functions.values()}
    keep |= {out_dir / layer.path for e in manifest.functions.values() for layer in e.layers}
    for folder in ("layers", "functions"):
        for path in sorted((out_dir / folder).glob("*.zip")):
            if path not in keep:
                path.unlink()

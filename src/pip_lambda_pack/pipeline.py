"""The pipeline end to end: resolve -> graph -> plan -> lock, and lock -> layers -> manifest.

This is where the stages meet and where their I/O happens (index, cache, output dir);
each stage itself stays a function of values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import __version__
from .atomic import write_bytes
from .bytecode import Compiler, target_cache_tag
from .config import (
    FunctionSpec,
    IndexOptions,
    PlannerOptions,
    Project,
    function_bytecode,
    function_exclude,
    function_index,
)
from .credentials import public_url
from .errors import BuildError, ConfigError, LockError, PlanError
from .formats import FormatControl
from .graph import Pin, PinGraph, pin_graph
from .index import FileLink, Finder, PackageFinder
from .interpreters import Interpreter, find_optional, for_project
from .layers import Artifact, LayerOptions, build_code_zip, build_layer, code_fingerprint
from .lock import (
    Lock,
    LockedFunction,
    input_parts,
    inputs_digest,
    planner_staleness,
    read_lock,
    resolution_staleness,
    write_lock,
)
from .manifest import (
    BuildManifest,
    CodeEntry,
    FunctionEntry,
    LayerEntry,
    read_manifest,
    short_id,
    write_manifest,
)
from .planner import (
    DEFAULT_STRATEGY,
    LayerPlan,
    PlanParams,
    check_fleet,
    check_plan,
    get_strategy,
    make_plan,
)
from .planner.checks import size_problems
from .planner.fleet import fleet_from_data, fleet_from_pins
from .planner.model import Fleet
from .planner.report import plan_to_json
from .planner.runtime_provided import closures as needs
from .planner.runtime_provided import runtime_warnings
from .popularity import pypi_downloads
from .progress import Progress, QuietProgress
from .resolve import ANY_FORMAT, ResolvedPackage, prefetch, resolve, wheel_path
from .sdists import PythonLookup
from .target import Target, get_target
from .units import human_size, limit_size, plural

if TYPE_CHECKING:  # imported when first needed: httpx and networkx take ~0.2 s to import
    import httpx
    from packaging.requirements import Requirement

    from .pipconf import NetworkOptions

Log = Callable[[str], None]
# Bump when layers.py would write different bytes for the same wheels: cached layers
# (keyed by this and the wheels' sha256) and build stamps of the old format are then unused.
LAYER_FORMAT = 2  # 2: .pyc of other Pythons dropped, the target's compiled in
BUILD_STAMP = ".lambda-pack-build.json"


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


def strategy_of(project: Project) -> str:
    return project.strategy or DEFAULT_STRATEGY


def check_settings(project: Project) -> None:
    """ConfigError or TargetError for a setting no stage could use, before any stage runs."""
    get_target(project.target)
    get_strategy(strategy_of(project))


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


def download(finder: Finder, links: Sequence[FileLink], settings: Settings) -> dict[str, Path]:
    """Verified local paths of the files, with progress when any comes from the network."""
    remote = [link for link in links if not link.url.startswith("file:")]
    if not remote:
        return finder.download_many(links)
    total = sum(link.size or 0 for link in remote)
    task = settings.progress.task(f"fetching {plural(len(remote), 'wheel')}", total, "B")
    try:
        return finder.download_many(links, progress=task)
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


def with_observed_usage(project: Project, graph: PinGraph, params: PlanParams) -> PlanParams:
    """``params`` with the store's observed usage (what ``serve`` recorded of the project's
    functions' cold starts), so the plan follows real traffic; unchanged without one."""
    from .serve.record import observed_usage

    usage = observed_usage(project.store, project.root, graph.functions)
    return replace(params, usage=usage) if usage else params


def plan_params(project: Project, previous: LayerPlan | None = None) -> PlanParams:
    """The planner's parameters: the project's settings over the documented defaults."""
    params = planner_params(project.planner, project.max_layers, project.target, previous)
    limits = shim_limits(project)
    return replace(params, limits=limits) if limits else params


SHIM_MAX_LAYERS = 64  # the shim reads any number; the cost model picks how many pay
SHIM_MARGIN_MB = 64  # of /tmp kept free (plus a tenth): a layer's zip while it unpacks, and
# the handler's own files


def shim_size_limit(ephemeral_storage_mb: int) -> int:
    """The unzipped bytes a shim-delivered function may need: its /tmp less a margin."""
    mib = 1024 * 1024
    return int(ephemeral_storage_mb * 0.9 * mib) - SHIM_MARGIN_MB * mib


def shim_limits(project: Project) -> dict[str, tuple[int, int]]:
    """(max layers, size limit) of each shim-delivered function: /tmp's, not Lambda's."""
    return {
        spec.name: (
            max(SHIM_MAX_LAYERS, project.max_layers),
            shim_size_limit(spec.ephemeral_storage_mb),
        )
        for spec in project.functions
        if spec.delivery == "shim"
    }


def planner_params(
    options: PlannerOptions,
    max_layers: int | None = None,
    target: str | None = None,
    previous: LayerPlan | None = None,
) -> PlanParams:
    """Planner settings (config or flags; None for a default) as the planner's parameters."""
    return PlanParams.from_options(
        options.values, max_layers=max_layers, target=target, previous=previous
    )


def locked_plan(lock: Lock) -> LayerPlan:
    """The plan a lock file holds."""
    return LayerPlan(
        strategy=lock.strategy,
        layers=lock.layers,
        functions={name: f.layers for name, f in lock.functions.items()},
    )


def code_sizes(project: Project) -> dict[str, int]:
    """Bytes of each function's own code, for the unzipped size limit."""
    return {
        spec.name: sum(
            path.stat().st_size
            for path in spec.code.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
        for spec in project.functions
    }


def fleet_of(project: Project, graph: PinGraph) -> Fleet:
    """The planner's view of the project: its pins, the functions' weights and code sizes,
    and the PyPI prior of the shipped snapshot."""
    weights = {spec.name: spec.weight for spec in project.functions}
    return fleet_from_pins(graph, pypi_downloads(), weights, code_sizes(project))


def load_fleet(path: Path) -> Fleet:
    """Read a ``lambda-pack-fleet/1`` file (see docs/design.md) for ``plan --fleet``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"fleet file not found: {path}", "check the --fleet path") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}", "pass a lambda-pack-fleet/1 file") from None
    return fleet_from_data(data, str(path), pypi_downloads())


def plan_fleet(project: Project, fleet: Fleet, previous: LayerPlan | None = None) -> LayerPlan:
    """Plan the project's fleet; ``previous`` keeps layers stable where it pays."""
    return make_plan(fleet, plan_params(project, previous), strategy_of(project))


def check_lock_limits(project: Project, lock: Lock) -> None:
    """PlanError if the locked plan breaks a limit of the project (offline)."""
    fleet = fleet_of(project, pin_graph(lock.closures()))
    check_fleet(fleet, plan_params(project))
    check_plan(fleet, locked_plan(lock), plan_params(project))


@dataclass(frozen=True, slots=True, kw_only=True)
class ShownLock:
    """The lock ``graph`` and ``plan`` show: ``warnings`` name each function over the size
    limit (then the lock was planned with the limit lifted and never written)."""

    lock: Lock
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the plan's own warnings (see LayerPlan.warnings)


def lock_project(project: Project, settings: Settings, finders: FinderPool) -> Lock:
    """Resolve, plan and write ``lambda-pack.lock``; returns the lock.

    The lock in place lends its plan (for stable layers) only when it was planned with the
    same settings for the same target.
    """
    closures = resolve_project(project, settings, finders)
    previous = _previous_plan(project, _readable_lock(project, settings))
    return _write(project, plan_lock(project, closures, previous), settings)


def current_lock(project: Project, settings: Settings, finders: FinderPool) -> Lock:
    """The lock file when it is fresh; otherwise resolve again (or, when only the planner
    settings changed, plan its wheels again) and rewrite it. PlanError over a limit."""
    return _refresh(project, settings, finders, write=True, lenient=False).lock


def shown_lock(
    project: Project, settings: Settings, finders: FinderPool, *, write: bool = True
) -> ShownLock:
    """``current_lock`` for ``graph`` and ``plan``: a function over the size limit is shown
    (with a warning saying by how much and what is largest), not refused, and such a lock
    is not written. ``write=False`` (a dry run with ad-hoc planner settings) never writes."""
    return _refresh(project, settings, finders, write=write, lenient=True)


def _refresh(
    project: Project, settings: Settings, finders: FinderPool, *, write: bool, lenient: bool
) -> ShownLock:
    name = project.lock_path.name
    existing = read_lock(project.lock_path) if project.lock_path.is_file() else None
    kept = "" if write else f" ({name} is left as it is)"
    stale = (
        resolution_staleness(existing, project, strategy_of(project))
        if existing is not None
        else "no lock"
    )
    if existing is not None and stale is None:
        if planner_staleness(existing, project, strategy_of(project)) is None:
            if write and existing.inputs != inputs_digest(project, strategy_of(project)):
                existing = _restamp(project, existing, settings)
            settings.log(f"using {name} (fresh)")
            return ShownLock(lock=existing, warnings=_lock_warnings(project, existing, lenient))
        settings.say(f"{name} was planned with other planner settings; planning again{kept}")
        shown = plan_lock(project, existing.closures(), None, lenient=lenient)
    else:
        if existing is not None:
            settings.say(f"{name} is stale ({stale}); resolving again{kept}")
        closures = resolve_project(project, settings, finders)
        shown = plan_lock(project, closures, _previous_plan(project, existing), lenient=lenient)
    if shown.warnings and write:
        settings.say(f"not writing {name}: a function is over Lambda's size limit")
    elif write:
        _write(project, shown, settings)
    return shown


def _restamp(project: Project, lock: Lock, settings: Settings) -> Lock:
    """The lock rewritten for changed build options (bytecode, exclude) alone: the same
    wheels and plan, nothing resolved or planned again."""
    strategy = strategy_of(project)
    lock = dataclasses.replace(
        lock,
        inputs=inputs_digest(project, strategy),
        input_parts=input_parts(project, strategy),
        bytecode=_bytecode_record(project, settings),
    )
    write_lock(lock, project.lock_path)
    settings.say(
        f"{project.lock_path.name}: bytecode or exclude changed; updated, nothing resolved"
    )
    return lock


def _lock_warnings(project: Project, lock: Lock, lenient: bool) -> tuple[str, ...]:
    if not lenient:
        return ()
    fleet = fleet_of(project, pin_graph(lock.closures()))
    return over_limit(fleet, locked_plan(lock), plan_params(project))


def plan_lock(
    project: Project,
    closures: Mapping[str, Sequence[Pin]],
    previous: LayerPlan | None = None,
    *,
    lenient: bool = False,
) -> ShownLock:
    """The lock of these closures, planned with the project's settings (not written).

    PlanError when a function is over the size limit, unless ``lenient``: then the plan is
    made with the limit lifted to the largest function and the warnings say what is over.
    """
    graph = pin_graph(closures)
    fleet = fleet_of(project, graph)
    params = with_observed_usage(project, graph, plan_params(project, previous))
    if lenient:
        largest = max(size_of(fleet, name, pins) for name, pins in needs(fleet, params).items())
        own = {n: (k, max(size, largest)) for n, (k, size) in (params.limits or {}).items()}
        lifted = dataclasses.replace(
            params, size_limit=max(params.size_limit, largest), limits=own or None
        )
        plan = make_plan(fleet, lifted, strategy_of(project))
    else:
        plan = make_plan(fleet, params, strategy_of(project))
    lock = _lock_of(project, closures, graph, plan)
    return ShownLock(lock=lock, warnings=over_limit(fleet, plan, params), notes=plan.warnings)


def _lock_of(
    project: Project, closures: Mapping[str, Sequence[Pin]], graph: PinGraph, plan: LayerPlan
) -> Lock:
    """The lock record of a resolution and its plan."""
    return Lock(
        target=project.target,
        inputs=inputs_digest(project, strategy_of(project)),
        input_parts=input_parts(project, strategy_of(project)),
        strategy=strategy_of(project),
        max_layers=project.max_layers,
        wheels={pin.id: pin for pins in closures.values() for pin in pins},
        functions={
            name: LockedFunction(pins=graph.functions[name], layers=ids)
            for name, ids in plan.functions.items()
        },
        layers=plan.layers,
    )


def over_limit(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> tuple[str, ...]:
    """What the plan's layers and code make of each function over the size limit."""
    pins = {
        name: [p for lid in ids for p in plan.layers[lid]] for name, ids in plan.functions.items()
    }
    return tuple(size_problems(fleet, pins, params).values())


def size_of(fleet: Fleet, name: str, pins: Sequence[str]) -> int:
    """Unzipped bytes of a function's code and these pins."""
    return fleet.functions[name].code_size + sum(fleet.packages[p].unpacked_size for p in pins)


def _write(project: Project, shown: ShownLock, settings: Settings) -> Lock:
    for warning in shown.notes:
        settings.say(f"warning: {warning}")
    lock = dataclasses.replace(shown.lock, bytecode=_bytecode_record(project, settings))
    write_lock(lock, project.lock_path)
    counts = f"{plural(len(lock.wheels), 'wheel')}, {plural(len(lock.layers), 'layer')}"
    settings.say(f"wrote {project.lock_path.name}: {counts}")
    return lock


def _readable_lock(project: Project, settings: Settings) -> Lock | None:
    """The lock file in place, if there is one and it is readable."""
    if not project.lock_path.is_file():
        return None
    try:
        return read_lock(project.lock_path)
    except LockError as exc:
        settings.log(f"ignoring the old lock: {exc}")
        return None


def _previous_plan(project: Project, lock: Lock | None) -> LayerPlan | None:
    """The lock's plan when it was made for the same target with the same settings."""
    if lock is None or lock.target != project.target:
        return None
    if planner_staleness(lock, project, strategy_of(project)) is not None:
        return None
    return locked_plan(lock)


def plan_report(
    project: Project, shown: ShownLock, settings: Settings, finders: FinderPool
) -> dict[str, Any]:
    """``plan_to_json`` of the shown lock's plan, each layer named by its zip's id.

    The zips are built (into the layer cache, as ``build`` would) to learn their sha256, so
    what ``plan`` prints is what ``build`` writes, ``manifest.json`` and the templates name.
    """
    lock = shown.lock
    graph = pin_graph(lock.closures())
    fleet = fleet_of(project, graph)
    params = with_observed_usage(project, graph, plan_params(project))
    plan = locked_plan(lock)
    plan = dataclasses.replace(plan, warnings=runtime_warnings(fleet, plan, params))
    ids = {
        lid: short_id(sha) for lid, sha in layer_digests(project, lock, settings, finders).items()
    }
    named = renamed_plan(plan, ids)
    report = plan_to_json(named, fleet, params)
    report["warnings"] = [*report["warnings"], *shown.warnings]
    return report


def renamed_plan(plan: LayerPlan, ids: Mapping[str, str]) -> LayerPlan:
    """The plan with each layer id replaced by ``ids[id]`` (in its warnings too)."""
    warnings = []
    for warning in plan.warnings:
        for old, new in ids.items():
            warning = warning.replace(old, new)
        warnings.append(warning)
    return dataclasses.replace(
        plan,
        layers={ids[lid]: members for lid, members in sorted(plan.layers.items())},
        functions={
            name: tuple(ids[lid] for lid in found) for name, found in plan.functions.items()
        },
        warnings=tuple(warnings),
    )


def layer_digests(
    project: Project, lock: Lock, settings: Settings, finders: FinderPool
) -> dict[str, str]:
    """Layer id -> the sha256 of the zip ``build`` makes of it: from the layer cache, else
    built (and cached) in a temporary directory."""
    cache = settings.cache_dir / "layers"
    digests = {}
    missing = {}
    compiler = find_compiler(project, settings.say)
    for lid, members in lock.layers.items():
        key = _layer_key(lock, members, layer_options(project, lock, lid, compiler))
        record = _read_json(cache / f"{key}.json") if key else None
        sha256 = record.get("sha256") if record else None
        if isinstance(sha256, str) and (cache / f"{sha256}.zip").is_file():
            digests[lid] = sha256
        else:
            missing[lid] = members
    if missing:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=settings.cache_dir, prefix=".plan-") as temp:
            partial = dataclasses.replace(lock, layers=missing)
            built = _build_layers(project, partial, Path(temp), settings, finders, compiler)
        digests.update((lid, artifact.sha256) for lid, artifact in built.items())
    return digests


def build_project(
    project: Project, lock: Lock, out_dir: Path, settings: Settings, finders: FinderPool
) -> BuildManifest:
    """Layer zips, code zips and ``manifest.json`` in ``out_dir``, from a lock.

    Does nothing when the stamp of the last build says the lock, the code and the outputs
    are what they were. Each layer is built once, from the layer cache when its wheels'
    sha256s were built before (``cache_dir/layers``), else from the wheels, in parallel.
    """
    compiler = find_compiler(project, settings.say)
    stamp = _stamp_inputs(project, lock, out_dir, compiler)
    if _up_to_date(out_dir, stamp):
        settings.log(f"{out_dir}: up to date (lock, code and outputs unchanged)")
        return read_manifest(out_dir)
    artifacts = _build_layers(project, lock, out_dir, settings, finders, compiler)
    entries = {}
    params = plan_params(project)
    for spec in project.functions:
        options = function_options(project, spec, compiler)
        code = build_code_zip(spec.code, out_dir, spec.name, options)
        locked = lock.functions[spec.name]
        layers = tuple(
            _layer_entry(artifacts[lid], lock.layers[lid], out_dir) for lid in locked.layers
        )
        _check_size(spec.name, code, layers, params)
        entries[spec.name] = FunctionEntry(
            handler=spec.handler, code=_code_entry(code, out_dir), layers=layers
        )
    manifest = BuildManifest(target=lock.target, functions=entries)
    write_manifest(manifest, out_dir)
    _prune(out_dir, manifest)
    _write_stamp(out_dir, stamp, manifest)
    return manifest


def _build_layers(
    project: Project,
    lock: Lock,
    out_dir: Path,
    settings: Settings,
    finders: FinderPool,
    compiler: Interpreter | None,
) -> dict[str, Artifact]:
    """Every layer of the lock in ``out_dir/layers``: cached ones copied, the rest built."""
    cache = settings.cache_dir / "layers"
    artifacts = {}
    missing = []
    options = {lid: layer_options(project, lock, lid, compiler) for lid in lock.layers}
    for lid, members in sorted(lock.layers.items()):
        found = _cached_layer(cache, lock, members, out_dir, options[lid])
        if found is None:
            missing.append(lid)
        else:
            artifacts[lid] = found
    if not missing:
        return artifacts
    needed = {pin for lid in missing for pin in lock.layers[lid]}
    paths = _wheel_paths(project, lock, get_target(lock.target), settings, finders, needed)
    # Largest first so the two ends of a small pool finish together; zlib and sha256 release
    # the GIL, so threads overlap the inflating (CRC checks), hashing and writing.
    missing.sort(key=lambda lid: -sum(lock.wheels[pin].size for pin in lock.layers[lid]))
    task = settings.progress.task(f"building {plural(len(missing), 'layer')}", len(missing))
    with ThreadPoolExecutor(max_workers=min(len(missing), os.cpu_count() or 1, 4)) as pool:
        built = pool.map(
            build_layer,
            [[paths[p] for p in lock.layers[lid]] for lid in missing],
            [out_dir] * len(missing),
            [options[lid] for lid in missing],
        )
        for lid, artifact in zip(missing, built, strict=True):
            artifacts[lid] = artifact
            _cache_layer(cache, lock, lock.layers[lid], artifact, options[lid])
            task.advance()
    task.finish()
    return artifacts


def _layer_key(lock: Lock, members: Sequence[str], options: LayerOptions) -> str | None:
    """The layer cache key: the layer format, its wheels' sha256s and the build options
    (bytecode mode and compiler version; None: not cacheable, as a wheel built from an
    sdist need not come out byte-identical)."""
    wheels = [lock.wheels[pin] for pin in members]
    if any(pin.sdist or not pin.sha256 for pin in wheels):
        return None
    text = json.dumps([LAYER_FORMAT, sorted(pin.sha256 for pin in wheels), options.key])
    return hashlib.sha256(text.encode()).hexdigest()


def _cached_layer(
    cache: Path, lock: Lock, members: Sequence[str], out_dir: Path, options: LayerOptions
) -> Artifact | None:
    """The cached layer for ``members`` copied into ``out_dir`` (verified), or None."""
    key = _layer_key(lock, members, options)
    record = _read_json(cache / f"{key}.json") if key else None
    if record is None:
        return None
    sha256, unzipped = str(record.get("sha256", "")), record.get("unzipped_size")
    path = out_dir / "layers" / f"{sha256}.zip"
    source = path if path.is_file() else cache / f"{sha256}.zip"
    try:
        data = source.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256 or not isinstance(unzipped, int):
        return None  # damaged or from another format: build it again
    if source != path:
        write_bytes(path, data)
    return Artifact(path=path, sha256=sha256, size=len(data), unzipped_size=unzipped)


def _cache_layer(
    cache: Path, lock: Lock, members: Sequence[str], artifact: Artifact, options: LayerOptions
) -> None:
    key = _layer_key(lock, members, options)
    if key is None:
        return
    blob = cache / f"{artifact.sha256}.zip"
    if not blob.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            os.link(artifact.path, blob)  # the layer's name is its sha256: sharing is safe
        except OSError:
            write_bytes(blob, artifact.path.read_bytes())
    record = {"sha256": artifact.sha256, "unzipped_size": artifact.unzipped_size}
    write_bytes(cache / f"{key}.json", json.dumps(record).encode())


def _stamp_inputs(project: Project, lock: Lock, out_dir: Path, compiler: Interpreter | None) -> str:
    """A digest of everything a build's output depends on, read without opening a wheel."""
    data = {
        "format": [LAYER_FORMAT, __version__],
        "lock": [lock.target, lock.inputs, lock.strategy, lock.max_layers],
        "wheels": sorted((pid, pin.sha256, pin.sdist) for pid, pin in lock.wheels.items()),
        "layers": sorted((lid, list(members)) for lid, members in lock.layers.items()),
        "functions": [
            [
                spec.name,
                spec.handler,
                list(lock.functions[spec.name].layers),
                code_fingerprint(spec.code, out_dir),
            ]
            for spec in project.functions
        ],
        "limit": plan_params(project).size_limit,
        "build": build_options_key(project, lock, compiler),
        "shim": sorted(shim_limits(project).items()),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _outputs(out_dir: Path, manifest: BuildManifest) -> dict[str, list[int]]:
    """Every file a build wrote, with the (size, mtime) it had then."""
    names = {"manifest.json"} | {e.code_path for e in manifest.functions.values()}
    names |= {layer.path for e in manifest.functions.values() for layer in e.layers}
    found = {}
    for name in sorted(names):
        info = (out_dir / name).stat()
        found[name] = [info.st_size, info.st_mtime_ns]
    return found


def _write_stamp(out_dir: Path, inputs: str, manifest: BuildManifest) -> None:
    stamp = {"inputs": inputs, "outputs": _outputs(out_dir, manifest)}
    write_bytes(out_dir / BUILD_STAMP, json.dumps(stamp, sort_keys=True).encode())


def _up_to_date(out_dir: Path, inputs: str) -> bool:
    """Whether the last build had these inputs and its outputs are still as it left them."""
    stamp = _read_json(out_dir / BUILD_STAMP)
    if stamp is None or stamp.get("inputs") != inputs:
        return False
    try:
        manifest = read_manifest(out_dir)
        return _outputs(out_dir, manifest) == stamp.get("outputs")
    except (BuildError, OSError):
        return False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _wheel_paths(
    project: Project,
    lock: Lock,
    target: Target,
    settings: Settings,
    finders: FinderPool,
    needed: set[str] | None = None,
) -> dict[str, Path]:
    """Local, verified paths of the lock's wheels (of ``needed`` ones, when given), each
    fetched through the index options of a function that needs it (its login, trusted hosts)."""
    wanted = {pid: pin for pid, pin in lock.wheels.items() if needed is None or pid in needed}
    finder_of = _finders_by_pin(project, lock, finders)
    groups: dict[Finder, dict[str, FileLink]] = {}
    for pid, pin in wanted.items():
        if not pin.sdist:
            groups.setdefault(finder_of.get(pid, finder_of[""]), {})[pid] = _link(pin)
    paths: dict[str, Path] = {}
    for finder, links in groups.items():
        downloaded = download(finder, list(links.values()), settings)
        paths.update({pid: downloaded[link.url] for pid, link in links.items()})
    for pid, pin in wanted.items():
        finder = finder_of.get(pid, finder_of[""])
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
                package,
                target=target,
                finder=finder,
                build_dir=settings.cache_dir / "built",
                python=python_lookup(project, target),
            )
    return paths


def _finders_by_pin(project: Project, lock: Lock, finders: FinderPool) -> dict[str, Finder]:
    """The finder of the first function (in config order) that locks each pin; ``""``: the
    project's own, for pins no function of the config names."""
    found: dict[str, Finder] = {"": finders.get(project.index)}
    for spec in project.functions:
        locked = lock.functions.get(spec.name)
        if locked is not None:
            finder = finders.get(function_index(project, spec))
            for pid in locked.pins:
                found.setdefault(pid, finder)
    return found


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
    if total > params.size_for(name):
        raise PlanError(
            f"function {name} unzips to {human_size(total)}, over the "
            f"{limit_size(params.size_for(name))} limit",
            'slim its code or dependencies, or set delivery = "shim" in '
            f"[functions.{name}] to load its layers into /tmp",
        )


def _prune(out_dir: Path, manifest: BuildManifest) -> None:
    """Remove zips an earlier build left that this manifest no longer names."""
    keep = {out_dir / entry.code_path for entry in manifest.functions.values()}
    keep |= {out_dir / layer.path for e in manifest.functions.values() for layer in e.layers}
    for folder in ("layers", "functions"):
        for path in sorted((out_dir / folder).glob("*.zip")):
            if path not in keep:
                path.unlink()


# -- bytecode and exclude ----------------------------------------------------------------

_WARNED_NO_COMPILER: set[str] = set()


def find_compiler(project: Project, say: Log) -> Interpreter | None:
    """The interpreter that compiles bytecode for the project's target, when any function
    wants bytecode; without one, a warning (once per target) and no bytecode."""
    if all(function_bytecode(project, spec) == "none" for spec in project.functions):
        return None
    target = get_target(project.target)
    found = find_optional(
        target,
        flag=project.target_python,
        configured=dict(project.python),
        any_machine=True,  # bytecode is the same on every architecture
    )
    if found is None and target.name not in _WARNED_NO_COMPILER:
        _WARNED_NO_COMPILER.add(target.name)
        say(
            f"warning: no Python {target.python} interpreter found, so {target.name} layers"
            f" and code ship without bytecode (install Python {target.python}, or pass"
            " --target-python PATH)"
        )
    return found


def _bytecode_record(project: Project, settings: Settings) -> dict[str, str]:
    """What the lock records of bytecode: the project's mode and the compiler's version."""
    compiler = find_compiler(project, settings.say)
    return {"mode": project.bytecode, "python": compiler.full_version if compiler else ""}


def layer_options(
    project: Project, lock: Lock, lid: str, compiler: Interpreter | None
) -> LayerOptions:
    """How layer ``lid`` is built: with the bytecode mode of the functions that use it
    when they agree (else the project's), leaving out what all of them exclude."""
    users = [spec for spec in project.functions if lid in lock.functions[spec.name].layers]
    modes = {function_bytecode(project, spec) for spec in users}
    mode = modes.pop() if len(modes) == 1 else project.bytecode
    excludes = [function_exclude(project, spec) for spec in users] or [project.exclude]
    common = tuple(glob for glob in excludes[0] if all(glob in other for other in excludes))
    return _options(project, mode, compiler, common)


def function_options(
    project: Project, spec: FunctionSpec, compiler: Interpreter | None
) -> LayerOptions:
    """How the code zip of ``spec`` is built."""
    return _options(
        project, function_bytecode(project, spec), compiler, function_exclude(project, spec)
    )


def _options(
    project: Project, mode: str, compiler: Interpreter | None, exclude: tuple[str, ...]
) -> LayerOptions:
    target = get_target(project.target)
    if compiler is None or mode == "none":
        return LayerOptions(cache_tag=target_cache_tag(target), exclude=exclude)
    return LayerOptions(
        cache_tag=target_cache_tag(target),
        compiler=Compiler(mode=mode, interpreter=compiler),
        exclude=exclude,
    )


def build_options_key(project: Project, lock: Lock, compiler: Interpreter | None) -> list[Any]:
    """Everything of bytecode and exclude a build's bytes depend on, for the build stamp."""
    layers = {lid: layer_options(project, lock, lid, compiler).key for lid in lock.layers}
    code = {s.name: function_options(project, s, compiler).key for s in project.functions}
    return [sorted(layers.items()), sorted(code.items())]

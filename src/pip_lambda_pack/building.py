"""Pipeline stage 4, lock -> layers: layer and code zips and ``manifest.json`` in an output
directory, through the layer cache and the build stamp, with each layer's bytecode and
exclude options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import write_bytes
from .bytecode import Compiler, fill_cache, target_cache_tag
from .config import FunctionSpec, Project, function_bytecode, function_exclude, function_index
from .direct import wheel_path
from .errors import BuildError, PlanError
from .graph import Pin
from .index import FileLink, Finder
from .interpreters import Interpreter, find_optional
from .layers import (
    Artifact,
    LayerOptions,
    build_code_zip,
    build_layer,
    code_fingerprint,
    wheel_sources,
)
from .links import file_link
from .lock import Lock
from .manifest import (
    BuildManifest,
    CodeEntry,
    FunctionEntry,
    LayerEntry,
    read_manifest,
    write_manifest,
)
from .pinning import download, python_lookup
from .planner import PlanParams
from .planning import plan_params, shim_limits
from .progress import Log
from .resolve import ResolvedPackage
from .settings import FinderPool, Settings
from .target import Target, get_target
from .units import human_size, limit_size, plural
from .wheels import wheel_entries
from .workers import OnceMemo, usable_cpus
from .zipwrite import ZipEntry

# Bump when layers.py would write different bytes for the same wheels: cached layers
# (keyed by this and the wheels' sha256) and build stamps of the old format are then unused.
LAYER_FORMAT = 2  # 2: .pyc of other Pythons dropped, the target's compiled in
BUILD_STAMP = ".lambda-pack-build.json"


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
        options = through_cache(function_options(project, spec, compiler), settings)
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
    options = {
        lid: through_cache(layer_options(project, lock, lid, compiler), settings)
        for lid in lock.layers
    }
    for lid, members in sorted(lock.layers.items()):
        found = _cached_layer(cache, lock, members, out_dir, options[lid])
        if found is None:
            missing.append(lid)
        else:
            artifacts[lid] = found
    if not missing:
        return artifacts
    needed = {pin for lid in missing for pin in lock.layers[lid]}
    target = get_target(lock.target)
    task = settings.progress.task(f"building {plural(len(missing), 'layer')}", len(missing))
    with _Overlap({lid: lock.layers[lid] for lid in missing}, out_dir, options) as overlap:
        _wheel_paths(project, lock, target, settings, finders, needed, ready=overlap.ready)
        for lid, artifact in overlap.results():
            artifacts[lid] = artifact
            _cache_layer(cache, lock, lock.layers[lid], artifact, options[lid])
            task.advance()
    task.finish()
    return artifacts


class _Overlap:
    """Layers built as their wheels land, and each wheel's bytecode compiled as soon as
    it lands, while the other downloads go on: the compile processes (one per batch, as
    many at once as there are CPUs) fill the time spent waiting on the network. A batch
    compiled early lands in the bytecode cache (or is awaited while it runs), where the
    layer's own compile finds it; its bytes are those a serial build gives, because a
    batch's output is a function of its input alone."""

    def __init__(
        self, layers: dict[str, tuple[str, ...]], out_dir: Path, options: dict[str, LayerOptions]
    ) -> None:
        self._layers, self._out_dir, self._options = layers, out_dir, options
        self._waiting = {lid: set(members) for lid, members in layers.items()}
        pins = {pin for members in layers.values() for pin in members}
        self._users = {pin: [lid for lid in layers if pin in layers[lid]] for pin in pins}
        self._left = {pin: len(users) for pin, users in self._users.items()}
        self._paths: dict[str, Path] = {}
        self._entries: OnceMemo[Path, list[ZipEntry]] = OnceMemo()
        self._built: dict[str, Future[Artifact]] = {}
        self._mutex = threading.Lock()
        self._sources = any(option.compiler is not None for option in options.values())
        cpus = usable_cpus()
        self._compiling = ThreadPoolExecutor(cpus, "lambda-pack-precompile")
        # zlib and sha256 release the GIL, so threads overlap inflating, hashing and writing
        self._building = ThreadPoolExecutor(min(len(layers), cpus, 4), "lambda-pack-layer")

    def __enter__(self) -> _Overlap:
        return self

    def __exit__(self, *exc: object) -> None:
        failed = exc[0] is not None
        self._compiling.shutdown(wait=True, cancel_futures=True)
        self._building.shutdown(wait=True, cancel_futures=failed)

    def ready(self, pin: str, path: Path) -> None:
        """``pin``'s wheel is at ``path``, verified: compile it, build what it completes."""
        with self._mutex:
            self._paths[pin] = path
            complete = []
            for lid in self._users.get(pin, ()):
                self._waiting[lid].discard(pin)
                if not self._waiting[lid]:
                    complete.append(lid)
        ways: dict[str, list[str]] = {}  # the layers of each way this wheel is compiled
        for lid in self._users.get(pin, ()):
            compiler = self._options[lid].compiler
            if compiler is not None and compiler.cache_dir is not None:
                ways.setdefault(json.dumps(self._options[lid].key), []).append(lid)
        for lids in ways.values():
            self._compiling.submit(self._precompile, pin, lids)
        for lid in complete:
            self._built[lid] = self._building.submit(self._build, lid)

    def _precompile(self, pin: str, lids: list[str]) -> None:
        if all(lid in self._built for lid in lids):  # their builds compile what they need
            return
        options = self._options[lids[0]]
        assert options.compiler is not None
        with contextlib.suppress(BuildError):  # the layer's own compile reports it
            fill_cache(options.compiler, wheel_sources(self._read(self._paths[pin]), options))

    def _read(self, path: Path) -> list[ZipEntry]:
        return self._entries.make(path, lambda: wheel_entries(path, sources=self._sources))

    def _build(self, lid: str) -> Artifact:
        members = self._layers[lid]
        artifact = build_layer(
            [self._paths[pin] for pin in members], self._out_dir, self._options[lid], self._read
        )
        with self._mutex:
            for pin in members:
                self._left[pin] -= 1
                if not self._left[pin]:
                    self._entries.drop(self._paths[pin])
        return artifact

    def results(self) -> Iterator[tuple[str, Artifact]]:
        """Each layer and its zip as it is built, once every wheel has landed."""
        for lid in sorted(self._layers):
            if lid not in self._built:
                raise BuildError(f"no wheel was fetched for layer {lid}", "report this bug")
            yield lid, self._built[lid].result()


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
    ready: Callable[[str, Path], None] | None = None,
) -> dict[str, Path]:
    """Local, verified paths of the lock's wheels (of ``needed`` ones, when given), each
    fetched through the index options of a function that needs it (its login, trusted hosts);
    ``ready`` gets each pin and its path as soon as the file is there."""
    wanted = {pid: pin for pid, pin in lock.wheels.items() if needed is None or pid in needed}
    finder_of = _finders_by_pin(project, lock, finders)
    groups: dict[Finder, dict[str, FileLink]] = {}
    for pid, pin in wanted.items():
        if not pin.sdist:
            groups.setdefault(finder_of.get(pid, finder_of[""]), {})[pid] = _link(pin)
    paths: dict[str, Path] = {}
    for finder, links in groups.items():
        pins_of: dict[str, list[str]] = {}
        for pid, link in links.items():
            pins_of.setdefault(link.url, []).append(pid)

        downloaded = download(finder, list(links.values()), settings, _landed(pins_of, ready))
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
            if ready is not None:
                ready(pid, paths[pid])
    return paths


def _landed(
    pins_of: dict[str, list[str]], ready: Callable[[str, Path], None] | None
) -> Callable[[FileLink, Path], None] | None:
    """``ready`` of each pin a downloaded file is (by its URL), or None without ``ready``."""
    if ready is None:
        return None
    notify = ready

    def landed(link: FileLink, path: Path) -> None:
        for pid in pins_of[link.url]:
            notify(pid, path)

    return landed


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
    size = pin.size if not pin.sdist else None
    return file_link(pin.filename, pin.url, sha256=pin.sha256, size=size, source="lambda-pack.lock")


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


def bytecode_record(project: Project, settings: Settings) -> dict[str, str]:
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


def bootstrap_options(project: Project, compiler: Interpreter | None) -> LayerOptions:
    """How deploy's bootstrap layer (the shim and its wrapper) is built: with the bytecode
    mode of the shim-delivered functions when they agree (else the project's), nothing
    excluded; without bytecode when ``compiler`` is None, as layers are."""
    users = [spec for spec in project.functions if spec.delivery == "shim"]
    modes = {function_bytecode(project, spec) for spec in users}
    mode = modes.pop() if len(modes) == 1 else project.bytecode
    return _options(project, mode, compiler, ())


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


def through_cache(options: LayerOptions, settings: Settings) -> LayerOptions:
    """``options`` with its compiler reusing the verified batches of ``.pyc`` in
    ``cache_dir/bytecode`` (the bytes are the same either way: a batch is the unit)."""
    if options.compiler is None:
        return options
    compiler = dataclasses.replace(options.compiler, cache_dir=settings.cache_dir / "bytecode")
    return dataclasses.replace(options, compiler=compiler)


def build_options_key(project: Project, lock: Lock, compiler: Interpreter | None) -> list[Any]:
    """Everything of bytecode and exclude a build's bytes depend on, for the build stamp."""
    layers = {lid: layer_options(project, lock, lid, compiler).key for lid in lock.layers}
    code = {s.name: function_options(project, s, compiler).key for s in project.functions}
    return [sorted(layers.items()), sorted(code.items())]

"""CreateFunction, UpdateFunctionCode and DeleteFunction: the request to generate a task.

The uploaded zip holds the handler's code and its requirements (any input ``lock`` reads:
``pylock.toml``, ``uv.lock``, ``poetry.lock``, ``requirements.txt``, ``pyproject.toml``).
The service resolves them for the target ``Runtime`` and ``Architectures`` choose, plans the
new function together with the store's other functions (their current layers as the
planner's ``previous``, so they stay as they are), builds, and pushes. Every check runs
before the push, and the push names the function last, so a request that fails leaves the
store's functions as they were. One build at a time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..building import build_project
from ..config import Project, shortcut_project, with_overrides
from ..errors import BlobNotFoundError, LambdaPackError
from ..graph import Pin, pin_graph
from ..inputs import materialize
from ..lambda_settings import RESERVED_ENVIRONMENT
from ..lock import Lock
from ..manifest import read_manifest
from ..pinning import resolve_project
from ..pipeline import lock_of
from ..planner import Fleet, FunctionNeed, LayerPlan, Package, layer_id, make_plan
from ..planning import fleet_of, plan_params, strategy_of
from ..popularity import downloads
from ..requirements import IndexOptions
from ..settings import Finders, Settings
from ..store import push
from ..target import TARGETS
from ..wire import TaskManifest, is_function_name
from .api import LambdaError, from_error, invalid, zip_bytes
from .catalog import Catalog, StoredFunction, now_stamp
from .environments import Environments
from .record import RESERVED, FunctionRecord, ServeRecord, pin_usage

_HANDLER = re.compile(r"^[^\s]+\.[A-Za-z_][A-Za-z0-9_]*$")
INPUTS = ("pylock.toml", "uv.lock", "poetry.lock", "requirements.txt", "pyproject.toml")
MAX_ZIP = 50 * 1024 * 1024  # Lambda's limit for a direct upload
CODE_STORAGE = 75 * 1024**3  # Lambda's code storage per account and region: 75 GB


class Builder:
    """Builds and pushes functions for the API; forgets changed ones in the catalog."""

    def __init__(
        self,
        catalog: Catalog,
        environments: Environments,
        settings: Settings,
        index: IndexOptions,
        code_storage: int = CODE_STORAGE,
    ) -> None:
        self.catalog = catalog
        self.environments = environments
        self.settings = settings
        self.index = index
        self.code_storage = code_storage
        self.lock = asyncio.Lock()

    async def create(self, body: Mapping[str, Any]) -> StoredFunction:
        name = _function_name(body.get("FunctionName"))
        target = _target(body.get("Runtime"), body.get("Architectures"))
        handler = _handler(body.get("Handler"))
        record = _record(body)
        data = zip_bytes(body.get("Code"))
        async with self.lock:
            if await asyncio.to_thread(self.catalog.get, name) is not None:
                raise LambdaError(
                    409, "ResourceConflictException", f"Function already exist: {name}"
                )
            return await self._deploy(name, handler, target, data, record)

    async def update(self, function: StoredFunction, body: Mapping[str, Any]) -> StoredFunction:
        data = zip_bytes({"ZipFile": body.get("ZipFile")})
        target = function.task.target
        if body.get("Architectures") is not None:
            runtime = target.split("-")[0]
            target = _target(runtime, body.get("Architectures"))
        old = function.record
        async with self.lock:
            record = FunctionRecord.from_dict({**old.to_dict(), "last_modified": ""})
            return await self._deploy(function.name, function.task.handler, target, data, record)

    async def delete(self, function: StoredFunction) -> None:
        async with self.lock:
            await asyncio.to_thread(self._delete, function.name)
        self.environments.stop_function(function.name)

    def _delete(self, name: str) -> None:
        delete_name = getattr(self.catalog.store, "delete_name", None)
        if delete_name is None:
            raise LambdaError(500, "ServiceException", "this store cannot delete a function")
        delete_name(name)
        self.catalog.forget(name)
        record = self.catalog.record()
        functions = {n: r for n, r in record.functions.items() if n != name}
        self.catalog.save(ServeRecord(functions=functions, usage=record.usage))

    async def _deploy(
        self, name: str, handler: str, target: str, data: bytes, record: FunctionRecord
    ) -> StoredFunction:
        try:
            await asyncio.to_thread(self._build_and_push, name, handler, target, data)
        except LambdaPackError as exc:
            raise from_error(exc) from None
        digest = hashlib.sha256(data).digest()
        record = FunctionRecord.from_dict(
            {
                **record.to_dict(),
                "code_sha256": base64.b64encode(digest).decode(),
                "code_size": len(data),
                "last_modified": now_stamp(),
            }
        )
        stored = await asyncio.to_thread(self._remember, name, record)
        self.environments.stop_function(name)
        return stored

    def _remember(self, name: str, record: FunctionRecord) -> StoredFunction:
        current = self.catalog.record()
        functions = {**current.functions, name: record}
        self.catalog.save(ServeRecord(functions=functions, usage=current.usage))
        self.catalog.forget(name)
        found = self.catalog.get(name)
        assert found is not None
        return found

    def _build_and_push(self, name: str, handler: str, target: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="lambda-pack-serve-") as work:
            root = Path(work)
            code = unpack(data, root / "code")
            check_handler(code, handler)
            project = self._project(name, handler, target, code, root)
            finders = Finders(self.settings)
            try:
                closures = resolve_project(project, self.settings, finders)
                lock = self.plan(project, closures, name)
                build_project(project, lock, root / "build", self.settings, finders)
            finally:
                finders.close()
            self._check_storage(name, root / "build")
            push(root / "build", self.catalog.store, log=self.settings.log)

    def _check_storage(self, name: str, build: Path) -> None:
        """CodeStorageExceededException, before anything is pushed, when the store's code
        (every distinct code and layer blob of its functions, ``name``'s new build instead
        of its old one) would pass the cap, as Lambda's per-account code storage does."""
        blobs: dict[str, int] = {}
        for task in self._existing("", skip=name).values():
            blobs[task.code.sha256] = task.code.size
            blobs.update({layer.sha256: layer.size for layer in task.layers})
        entry = read_manifest(build).functions[name]
        blobs[entry.code.sha256] = entry.code.size
        blobs.update({layer.sha256: layer.size for layer in entry.layers})
        total = sum(blobs.values())
        if total > self.code_storage:
            raise LambdaError(
                400,
                "CodeStorageExceededException",
                f"Code storage limit exceeded: the store's functions would take {total} bytes, "
                f"more than the {self.code_storage} bytes allowed (serve --code-storage-max-bytes)",
            )

    def _project(self, name: str, handler: str, target: str, code: Path, root: Path) -> Project:
        found = next((code / n for n in INPUTS if (code / n).is_file()), None)
        project = shortcut_project(
            requirements=found, handler=handler, code=code, name=name, root=root, target=target
        )
        project = with_overrides(project, index=self.index)
        return materialize(project)

    def plan(self, project: Project, closures: Mapping[str, list[Pin]], name: str) -> Lock:
        """The new function's layers, planned with the store's functions as they are."""
        graph = pin_graph(closures)
        new = fleet_of(project, graph)
        existing = self._existing(project.target, skip=name)
        packages: dict[str, Package] = {}
        for task in existing.values():
            packages.update(_approximate(task))
        packages.update(new.packages)
        needs = {n: FunctionNeed(pins=_wheels(t)) for n, t in existing.items()}
        fleet = Fleet(packages=packages, functions={**needs, **new.functions})
        previous = LayerPlan(
            strategy=strategy_of(project),
            layers={
                layer_id(lw.wheels): tuple(sorted(lw.wheels))
                for t in existing.values()
                for lw in t.layers
            },
            functions={
                n: tuple(layer_id(lw.wheels) for lw in t.layers) for n, t in existing.items()
            },
        )
        usage = pin_usage(
            self.catalog.record().usage, {n: f.pins for n, f in fleet.functions.items()}
        )
        params = replace(plan_params(project, previous), usage=usage or None)
        plan = make_plan(fleet, params, strategy_of(project))
        ids = plan.functions[name]
        mine = replace(plan, functions={name: ids}, layers={lid: plan.layers[lid] for lid in ids})
        return lock_of(project, {name: closures[name]}, graph, mine)

    def _existing(self, target: str, skip: str) -> dict[str, TaskManifest]:
        """The store's other functions of ``target`` (every target: ``""``)."""
        found = {}
        for other in self.catalog.names():
            if other == skip:
                continue
            try:
                function = self.catalog.get(other)
            except (LambdaPackError, BlobNotFoundError):
                continue
            if function is not None and target in ("", function.task.target):
                found[other] = function.task
        return found


def _wheels(task: TaskManifest) -> tuple[str, ...]:
    return tuple(sorted({w for layer in task.layers for w in layer.wheels}))


def _approximate(task: TaskManifest) -> dict[str, Package]:
    """Packages of a stored function, sized by an even share of their layer."""
    found = {}
    for layer in task.layers:
        count = max(1, len(layer.wheels))
        for pin in layer.wheels:
            name = pin.split("==")[0]
            found[pin] = Package(
                id=pin,
                name=name,
                size=layer.size // count,
                unpacked_size=layer.unzipped_size // count,
                downloads=downloads(name),
            )
    return found


def unpack(data: bytes, dest: Path) -> Path:
    """The uploaded zip, unpacked; InvalidParameterValueException if it is not a safe zip."""
    if len(data) > MAX_ZIP:
        raise LambdaError(
            413,
            "RequestEntityTooLargeException",
            f"Request must be smaller than {MAX_ZIP} bytes for the CreateFunction operation",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise invalid(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from None
    with archive:
        for info in archive.infolist():
            parts = info.filename.rstrip("/").split("/")
            if info.filename.startswith("/") or "\\" in info.filename or ".." in parts:
                raise invalid(f"the zip has an unsafe path {info.filename!r}")
        try:
            archive.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise invalid(f"Could not unzip uploaded file: {exc}") from None
    return dest


def check_handler(code: Path, handler: str) -> None:
    """InvalidParameterValueException unless the zip holds the handler's module."""
    module = handler.rpartition(".")[0].replace(".", "/")
    if not ((code / f"{module}.py").is_file() or (code / module / "__init__.py").is_file()):
        raise invalid(
            f"the zip has no module for handler {handler!r} (no {module}.py). "
            f"TIP: put {module}.py at the top of the zip, or fix Handler"
        )


def _function_name(value: object) -> str:
    if not is_function_name(value):
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'functionName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "[a-zA-Z0-9-_]{1,64}"
        )
    if value in RESERVED:
        raise invalid(f"the function name {value!r} is reserved for the service's own record")
    return value


def _target(runtime: object, architectures: object) -> str:
    arch = "x86_64"
    if architectures is not None:
        if not (isinstance(architectures, list) and len(architectures) == 1):
            raise invalid("Architectures must be a list of one: x86_64 or arm64")
        arch = str(architectures[0])
    name = f"{runtime}-{arch}"
    if name not in TARGETS:
        runtimes = sorted({t.split("-")[0] for t in TARGETS})
        raise invalid(
            f"Value '{runtime}' at 'runtime' (architecture {arch}) failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(runtimes)}]"
        )
    return name


def _handler(value: object) -> str:
    if not isinstance(value, str) or not _HANDLER.match(value):
        raise invalid(f"Handler {value!r} is not module.function")
    return value


def _record(body: Mapping[str, Any]) -> FunctionRecord:
    memory = body.get("MemorySize", 128)
    timeout = body.get("Timeout", 3)
    if not isinstance(memory, int) or not 128 <= memory <= 10240:
        raise invalid("MemorySize must be a number of MB from 128 to 10240")
    if not isinstance(timeout, int) or not 1 <= timeout <= 900:
        raise invalid("Timeout must be a number of seconds from 1 to 900")
    variables = (body.get("Environment") or {}).get("Variables") or {}
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise invalid("Environment.Variables must map names to strings")
    reserved = sorted(
        k for k in variables if k in RESERVED_ENVIRONMENT or k.startswith("LAMBDA_PACK_")
    )
    if reserved:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not "
            f"supported for modification. Reserved keys used in this request: {','.join(reserved)}"
        )
    return FunctionRecord(
        memory=memory,
        timeout=float(timeout),
        environment=variables,
        description=str(body.get("Description") or ""),
        role=str(body.get("Role") or ""),
    )

"""Build manifest (``DIR/manifest.json``) and task manifest (one function, as a store blob).

The build manifest says what ``build`` wrote: per function its handler, code zip and the
ordered layer zips. A task manifest is what a store and the shim need to run one
function; it is canonical JSON (sorted keys, compact), so its sha256 is stable and it is
stored as a blob like any layer. Readers validate every field and name the bad one
(``functions.api.layers[0].sha256``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .atomic import write_text
from .errors import BuildError

MANIFEST_FORMAT = "lambda-pack-manifest/1"
TASK_FORMAT = "lambda-pack-task/1"
MANIFEST_NAME = "manifest.json"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
T = TypeVar("T")


class FieldError(Exception):
    """A field of a manifest is missing or wrong; the reader adds which file it was."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeEntry:
    """A function's code zip in a build directory."""

    path: str  # relative to the build directory
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: object, where: str) -> CodeEntry:
        table = _table(data, where)
        return cls(
            path=_relpath(table, "path", where),
            sha256=_sha256(table, "sha256", where),
            size=_size(table, "size", where),
        )


LAYER_ID_DIGITS = 12


def short_id(sha256: str) -> str:
    """A layer's id wherever a person reads one (plan, build, manifest.json, the report, SAM
    and Terraform): the first 12 hex digits of its zip's sha256, the zip's name's start."""
    return sha256[:LAYER_ID_DIGITS]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerEntry:
    """A layer zip in a build directory and the pinned wheels it holds."""

    path: str  # relative to the build directory
    sha256: str
    size: int
    unzipped_size: int
    wheels: tuple[str, ...]  # "name==version"

    @property
    def id(self) -> str:
        """The layer's id in ``plan``, ``manifest.json`` and the templates (``short_id``)."""
        return short_id(self.sha256)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "unzipped_size": self.unzipped_size,
            "wheels": list(self.wheels),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> LayerEntry:
        table = _table(data, where)
        return cls(
            path=_relpath(table, "path", where),
            sha256=_sha256(table, "sha256", where),
            size=_size(table, "size", where),
            unzipped_size=_size(table, "unzipped_size", where),
            wheels=_strings(table, "wheels", where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionEntry:
    """One function of a build: handler, code zip and layers in Lambda's merge order."""

    handler: str
    code: CodeEntry
    layers: tuple[LayerEntry, ...]

    @property
    def code_path(self) -> str:
        return self.code.path

    def to_dict(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "code": self.code.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> FunctionEntry:
        table = _table(data, where)
        items = _field(table, "layers", list, where, "a list")
        return cls(
            handler=_string(table, "handler", where),
            code=CodeEntry.from_dict(table.get("code"), _join(where, "code")),
            layers=tuple(
                LayerEntry.from_dict(item, f"{where}.layers[{i}]") for i, item in enumerate(items)
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildManifest:
    """``DIR/manifest.json``: the target and every function built."""

    target: str
    functions: Mapping[str, FunctionEntry]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "target": self.target,
            "functions": {name: f.to_dict() for name, f in sorted(self.functions.items())},
        }

    @classmethod
    def from_dict(cls, data: object) -> BuildManifest:
        """Validate ``data``; FieldError names the first bad field."""
        table = _table(data, "")
        _format(table, MANIFEST_FORMAT)
        functions = _field(table, "functions", dict, "", "a table")
        return cls(
            target=_string(table, "target", ""),
            functions={
                str(name): FunctionEntry.from_dict(entry, f"functions.{name}")
                for name, entry in functions.items()
            },
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobRef:
    """A blob named by its sha256, with its size in bytes."""

    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: object, where: str) -> BlobRef:
        table = _table(data, where)
        return cls(sha256=_sha256(table, "sha256", where), size=_size(table, "size", where))


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskLayer:
    """A layer blob of a task and the pinned wheels it holds."""

    sha256: str
    size: int
    unzipped_size: int
    wheels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "unzipped_size": self.unzipped_size,
            "wheels": list(self.wheels),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> TaskLayer:
        table = _table(data, where)
        return cls(
            sha256=_sha256(table, "sha256", where),
            size=_size(table, "size", where),
            unzipped_size=_size(table, "unzipped_size", where),
            wheels=_strings(table, "wheels", where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskManifest:
    """What a store holds per function: handler, code blob, layer blobs in merge order."""

    name: str
    target: str
    handler: str
    code: BlobRef
    layers: tuple[TaskLayer, ...]

    @classmethod
    def of_function(cls, name: str, target: str, entry: FunctionEntry) -> TaskManifest:
        """The task manifest of one function of a build."""
        return cls(
            name=name,
            target=target,
            handler=entry.handler,
            code=BlobRef(sha256=entry.code.sha256, size=entry.code.size),
            layers=tuple(
                TaskLayer(
                    sha256=layer.sha256,
                    size=layer.size,
                    unzipped_size=layer.unzipped_size,
                    wheels=layer.wheels,
                )
                for layer in entry.layers
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TASK_FORMAT,
            "name": self.name,
            "target": self.target,
            "handler": self.handler,
            "code": self.code.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, compact separators, no trailing newline."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_dict(cls, data: object) -> TaskManifest:
        """Validate ``data``; FieldError names the first bad field."""
        table = _table(data, "")
        _format(table, TASK_FORMAT)
        items = _field(table, "layers", list, "", "a list")
        return cls(
            name=_string(table, "name", ""),
            target=_string(table, "target", ""),
            handler=_string(table, "handler", ""),
            code=BlobRef.from_dict(table.get("code"), "code"),
            layers=tuple(TaskLayer.from_dict(item, f"layers[{i}]") for i, item in enumerate(items)),
        )

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> TaskManifest:
        """Parse a task manifest blob; BuildError naming ``source`` and the bad field."""
        return _parsed(data, source, cls.from_dict, "push the function again")


def write_manifest(manifest: BuildManifest, out_dir: Path) -> Path:
    """Write ``out_dir/manifest.json`` atomically (sorted keys, 2-space indent)."""
    path = out_dir / MANIFEST_NAME
    write_text(path, json.dumps(manifest.to_dict(), sort_keys=True, indent=2) + "\n")
    return path


def read_manifest(build_dir: Path) -> BuildManifest:
    """Read and validate ``build_dir/manifest.json``."""
    path = build_dir / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BuildError(
            f"no build manifest at {path}", "run: pip-lambda-pack build --out DIR"
        ) from None
    return _parsed(data, str(path), BuildManifest.from_dict, "build again")


def _parsed(data: bytes, source: str, parse: Callable[[object], T], tip: str) -> T:
    try:
        return parse(json.loads(data))
    except ValueError as exc:
        raise BuildError(f"{source}: not valid JSON: {exc}", tip) from None
    except FieldError as exc:
        raise BuildError(f"{source}: {exc}", tip) from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _table(data: object, where: str) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise FieldError(where or "the document", "must be a JSON object")
    return data


def _field(table: Mapping[str, object], key: str, kind: type[T], where: str, what: str) -> T:
    if key not in table:
        raise FieldError(_join(where, key), "is missing")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise FieldError(_join(where, key), f"must be {what}")
    return value


def _format(table: Mapping[str, object], expected: str) -> None:
    if table.get("format") != expected:
        raise FieldError("format", f"must be {expected!r}, not {table.get('format')!r}")


def _string(table: Mapping[str, object], key: str, where: str) -> str:
    value = _field(table, key, str, where, "a non-empty string")
    if not value:
        raise FieldError(_join(where, key), "must be a non-empty string")
    return value


def _size(table: Mapping[str, object], key: str, where: str) -> int:
    value = _field(table, key, int, where, "a non-negative integer")
    if value < 0:
        raise FieldError(_join(where, key), "must be a non-negative integer")
    return value


def _sha256(table: Mapping[str, object], key: str, where: str) -> str:
    value = _field(table, key, str, where, "64 lowercase hex digits")
    if not _HEX64.match(value):
        raise FieldError(_join(where, key), "must be 64 lowercase hex digits")
    return value


def _relpath(table: Mapping[str, object], key: str, where: str) -> str:
    value = _string(table, key, where)
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise FieldError(_join(where, key), "must be a relative path inside the build directory")
    return value


def _strings(table: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    items = _field(table, key, list, where, "a list of strings")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise FieldError(f"{_join(where, key)}[{i}]", "must be a string")
    return tuple(items)

"""Build manifest (``DIR/manifest.json``), and the task manifests a build gives its functions.

The build manifest says what ``build`` wrote: per function its handler, code zip and the
ordered layer zips. A task manifest is what a store and the shim need to run one
function; its format is defined in wire.py (the shim carries it), and ``task_of`` makes
one from a build's function. Readers validate every field and name the bad one
(``functions.api.layers[0].sha256``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_text
from .errors import BuildError
from .wire import (
    BlobRef,
    FieldError,
    TaskLayer,
    TaskManifest,
    WireError,
    as_digest,
    join_field,
    json_digest,
    json_field,
    json_format,
    json_size,
    json_string,
    json_strings,
    json_table,
    parse_json,
)

MANIFEST_FORMAT = "lambda-pack-manifest/1"
MANIFEST_NAME = "manifest.json"


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
        table = json_table(data, where)
        return cls(
            path=_relpath(table, "path", where),
            sha256=json_digest(table, "sha256", where),
            size=json_size(table, "size", where),
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
        table = json_table(data, where)
        return cls(
            path=_relpath(table, "path", where),
            sha256=json_digest(table, "sha256", where),
            size=json_size(table, "size", where),
            unzipped_size=json_size(table, "unzipped_size", where),
            wheels=json_strings(table, "wheels", where),
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
        table = json_table(data, where)
        items = json_field(table, "layers", list, where, "a list")
        return cls(
            handler=json_string(table, "handler", where),
            code=CodeEntry.from_dict(table.get("code"), join_field(where, "code")),
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
        table = json_table(data, "")
        json_format(table, MANIFEST_FORMAT)
        functions = json_field(table, "functions", dict, "", "a table")
        return cls(
            target=json_string(table, "target", ""),
            functions={
                str(name): FunctionEntry.from_dict(entry, f"functions.{name}")
                for name, entry in functions.items()
            },
        )


def task_of(name: str, target: str, entry: FunctionEntry) -> TaskManifest:
    """The task manifest of one function of a build."""
    return TaskManifest(
        name=name,
        target=target,
        handler=entry.handler,
        code=BlobRef(sha256=as_digest(entry.code.sha256), size=entry.code.size),
        layers=tuple(
            TaskLayer(
                sha256=as_digest(layer.sha256),
                size=layer.size,
                unzipped_size=layer.unzipped_size,
                wheels=layer.wheels,
            )
            for layer in entry.layers
        ),
    )


def parse_task(data: bytes, source: str) -> TaskManifest:
    """Parse a task manifest blob; BuildError naming ``source`` and the bad field."""
    try:
        return TaskManifest.from_bytes(data, source)
    except WireError as exc:
        raise BuildError(exc.message, exc.tip) from None


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
    try:
        return parse_json(data, str(path), BuildManifest.from_dict, "build again")
    except WireError as exc:
        raise BuildError(exc.message, exc.tip) from None


def _relpath(table: Mapping[str, object], key: str, where: str) -> str:
    value = json_string(table, key, where)
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise FieldError(
            join_field(where, key), "must be a relative path inside the build directory"
        )
    return value

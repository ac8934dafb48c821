"""What ``serve`` keeps in the store beside the functions: their settings and observed usage.

One canonical JSON blob, the code blob of a task manifest named ``lambda-pack-serve`` (a
reserved function name, so every kind of store can name it):

    {"format": "lambda-pack-serve/1",
     "functions": {NAME: {"memory": 128, "timeout": 3.0, "environment": {...},
                          "description": "", "role": "", "code_sha256": B64, "code_size": N,
                          "last_modified": "2026-12-01T08:00:00.000+0000"}},
     "usage": {NAME: {"cold_starts": N, "layer_misses": N}}}

``functions`` holds what CreateFunction was given; ``usage`` counts each function's cold
starts and the blobs they had to fetch from the store. ``lock`` and ``plan`` read ``usage`` as
the planner's observed usage (``observed_usage``), so plans follow real traffic. No
credentials are ever written here (environment values are the function's own).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BlobNotFoundError, BuildError, LambdaPackError
from ..manifest import parse_task
from ..store import BlobStore
from ..target import DEFAULT_TARGET
from ..wire import BlobRef, TaskManifest, as_digest

RECORD_NAME = "lambda-pack-serve"
RECORD_FORMAT = "lambda-pack-serve/1"
RECORD_HANDLER = "lambda_pack_serve_record.none"  # a record is not a function to run
RESERVED = frozenset({RECORD_NAME})


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionRecord:
    """A function's settings as CreateFunction gave them."""

    memory: int = 128
    timeout: float = 3.0
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    role: str = ""
    code_sha256: str = ""  # base64 of the uploaded zip's sha256, as Lambda reports it
    code_size: int = 0
    last_modified: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory,
            "timeout": self.timeout,
            "environment": dict(sorted(self.environment.items())),
            "description": self.description,
            "role": self.role,
            "code_sha256": self.code_sha256,
            "code_size": self.code_size,
            "last_modified": self.last_modified,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionRecord:
        env = data.get("environment") or {}
        return cls(
            memory=int(data.get("memory", 128)),
            timeout=float(data.get("timeout", 3.0)),
            environment={str(k): str(v) for k, v in dict(env).items()},
            description=str(data.get("description", "")),
            role=str(data.get("role", "")),
            code_sha256=str(data.get("code_sha256", "")),
            code_size=int(data.get("code_size", 0)),
            last_modified=str(data.get("last_modified", "")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """One function's observed cold starts and the blobs they fetched (missed in cache)."""

    cold_starts: int = 0
    layer_misses: int = 0

    def plus(self, other: Usage) -> Usage:
        return Usage(
            cold_starts=self.cold_starts + other.cold_starts,
            layer_misses=self.layer_misses + other.layer_misses,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeRecord:
    """The whole record."""

    functions: Mapping[str, FunctionRecord] = field(default_factory=dict)
    usage: Mapping[str, Usage] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        data = {
            "format": RECORD_FORMAT,
            "functions": {n: r.to_dict() for n, r in sorted(self.functions.items())},
            "usage": {
                n: {"cold_starts": u.cold_starts, "layer_misses": u.layer_misses}
                for n, u in sorted(self.usage.items())
            },
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ServeRecord:
        table = json.loads(data)
        if not isinstance(table, dict) or table.get("format") != RECORD_FORMAT:
            raise ValueError(f"not a {RECORD_FORMAT} record")
        functions = {
            str(n): FunctionRecord.from_dict(r) for n, r in dict(table["functions"]).items()
        }
        usage = {
            str(n): Usage(
                cold_starts=int(u.get("cold_starts", 0)),
                layer_misses=int(u.get("layer_misses", 0)),
            )
            for n, u in dict(table.get("usage", {})).items()
        }
        return cls(functions=functions, usage=usage)


def read_record(store: BlobStore) -> ServeRecord:
    """The store's record; an empty one when there is none (or it is unreadable)."""
    try:
        task = parse_task(store.read_bytes(store.get_name(RECORD_NAME)), RECORD_NAME)
        return ServeRecord.from_bytes(store.read_bytes(task.code.sha256))
    except BlobNotFoundError:
        return ServeRecord()
    except (BuildError, ValueError, TypeError, KeyError, AttributeError):
        return ServeRecord()


def write_record(store: BlobStore, record: ServeRecord) -> None:
    """Store the record and point the reserved name at it.

    Every store names task manifests (an OCI tag must point at one), so the record is the
    code blob of a task manifest of its own, which no environment ever runs.
    """
    data = record.to_bytes()
    code = BlobRef(sha256=as_digest(store.put_bytes(data)), size=len(data))
    task = TaskManifest(
        name=RECORD_NAME, target=DEFAULT_TARGET, handler=RECORD_HANDLER, code=code, layers=()
    )
    store.put_bytes(task.to_bytes())
    store.set_name(RECORD_NAME, task.sha256)


def pin_usage(
    usage: Mapping[str, Usage], closures: Mapping[str, tuple[str, ...] | list[str]]
) -> dict[str, float]:
    """Pin id -> observed share of cold starts that needed it (the planner's ``usage``).

    Only functions in ``closures`` count: a function of the record that the project does
    not have says nothing about the project's pins.
    """
    counted = {n: u.cold_starts for n, u in usage.items() if n in closures and u.cold_starts}
    total = sum(counted.values())
    shares: dict[str, float] = {}
    for name, cold in counted.items():
        for pin in closures[name]:
            shares[pin] = shares.get(pin, 0.0) + cold / total
    return shares


def observed_usage(
    store_url: str, base_dir: Any, closures: Mapping[str, tuple[str, ...] | list[str]]
) -> dict[str, float] | None:
    """The store's observed usage of the project's pins; None when it has no record or
    cannot be read (planning then goes on from the fleet's own estimate)."""
    from ..store import open_store

    try:
        record = read_record(open_store(store_url, base_dir))
    except LambdaPackError:
        return None
    shares = pin_usage(record.usage, closures)
    return shares or None

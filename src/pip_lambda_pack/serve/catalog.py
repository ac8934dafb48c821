"""The store's functions as the Lambda API shows them: settings, FunctionConfiguration, ARNs.

A function is whatever the store names (``push`` or CreateFunction put it there). Its
settings come from the serve record (what CreateFunction was given), else the project
config ``serve`` was started in, else Lambda's defaults (128 MB, 3 s). Blocking (store I/O):
the API calls it in a thread.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BlobNotFoundError
from ..invoke import target_interpreter
from ..manifest import parse_task
from ..store import BlobStore
from ..target import get_target
from ..wire import TaskManifest
from .environments import ACCOUNT
from .model import FunctionSettings
from .record import RESERVED, FunctionRecord, ServeRecord, read_record, write_record

ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-pack"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFunction:
    """One function of the store: its task manifest and its settings."""

    name: str
    digest: str  # of the task manifest
    task: TaskManifest
    record: FunctionRecord


class Catalog:
    """Reads (and caches) the store's functions; writes the serve record."""

    def __init__(
        self, store: BlobStore, defaults: Mapping[str, FunctionRecord], region: str
    ) -> None:
        self.store = store
        self.defaults = dict(defaults)
        self.region = region
        self.started = _now()
        self._cache: dict[str, StoredFunction] = {}
        self._settings: dict[str, tuple[StoredFunction, FunctionSettings]] = {}
        self._lock = threading.Lock()
        self._record: ServeRecord | None = None

    def record(self) -> ServeRecord:
        with self._lock:
            if self._record is None:
                self._record = read_record(self.store)
            return self._record

    def save(self, record: ServeRecord) -> None:
        with self._lock:
            write_record(self.store, record)
            self._record = record

    def get(self, name: str) -> StoredFunction | None:
        """The function, or None when the store has no such name."""
        found = self._cache.get(name)
        if found is not None:
            return found
        if name in RESERVED:
            return None
        try:
            digest = self.store.get_name(name)
        except BlobNotFoundError:
            return None
        task = parse_task(self.store.read_bytes(digest), f"task manifest of {name}")
        record = self.record().functions.get(name) or self.defaults.get(name) or FunctionRecord()
        found = StoredFunction(name=name, digest=digest, task=task, record=record)
        self._cache[name] = found
        return found

    def cached(self, name: str) -> StoredFunction | None:
        """The function if it was read before (no I/O: the warm path calls this inline)."""
        return self._cache.get(name)

    def forget(self, name: str) -> None:
        self._cache.pop(name, None)
        self._settings.pop(name, None)

    def names(self) -> list[str]:
        return sorted(n for n in self.store.names() if n not in RESERVED)

    def settings(self, function: StoredFunction) -> FunctionSettings:
        """What an environment of ``function`` runs with; an error if no Python here can."""
        found = self._settings.get(function.name)
        if found is None or found[0] is not function:
            found = (function, self._new_settings(function))
            self._settings[function.name] = found
        return found[1]

    def cached_settings(self, function: StoredFunction) -> FunctionSettings | None:
        found = self._settings.get(function.name)
        return found[1] if found is not None and found[0] is function else None

    def _new_settings(self, function: StoredFunction) -> FunctionSettings:
        record = function.record
        return FunctionSettings(
            name=function.name,
            target=function.task.target,
            python=interpreter(function.task.target),
            handler=function.task.handler,
            memory_mb=record.memory,
            timeout_s=record.timeout,
            environment=dict(record.environment),
        )

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"

    def configuration(self, function: StoredFunction) -> dict[str, Any]:
        """Lambda's FunctionConfiguration for ``function``."""
        task, record = function.task, function.record
        target = get_target(task.target)
        code_sha = record.code_sha256 or base64.b64encode(bytes.fromhex(task.code.sha256)).decode()
        return {
            "FunctionName": function.name,
            "FunctionArn": self.arn(function.name),
            "Runtime": f"python{target.python}",
            "Role": record.role or ROLE,
            "Handler": task.handler,
            "CodeSize": record.code_size or task.code.size,
            "CodeSha256": code_sha,
            "Description": record.description,
            "Timeout": _seconds(record.timeout),
            "MemorySize": record.memory,
            "LastModified": record.last_modified or self.started,
            "Version": "$LATEST",
            "Environment": {"Variables": dict(record.environment)},
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": function.digest[:8] + "-" + function.digest[8:12],
            "Layers": [
                {"Arn": self.layer_arn(layer.sha256), "CodeSize": layer.size}
                for layer in task.layers
            ],
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["arm64" if target.machine == "aarch64" else "x86_64"],
            "EphemeralStorage": {"Size": 512},
        }

    def layer_arn(self, sha256: str) -> str:
        """Our layers as Lambda layer version ARNs that carry the blob's sha256."""
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:layer:sha256-{sha256}:1"


def _seconds(value: float) -> int:
    return max(1, round(value))


def _now() -> str:
    now = time.time()
    millis = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}+0000"


def now_stamp() -> str:
    """Lambda's LastModified format for now."""
    return _now()


def interpreter(target_name: str) -> str:
    """The Python that runs the target: this one when it fits (as for ``invoke``), else the
    one the target-interpreter lookup finds; an error if none."""
    return target_interpreter(get_target(target_name))

"""The deploy's records: its options, the zips, layers and functions it wants in AWS, the
state it read there, the calls it makes and the outcome it reports; Lambda's limits.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .units import plural
from .wire import TaskManifest

DIRECT_UPLOAD_LIMIT = 50 * 1000 * 1000  # Lambda's limit for a zip sent in the request
MAX_LAYERS = 5  # Lambda's layers per function
UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's function code plus layers, unzipped
S3_PREFIX = "lambda-pack/sha256"  # one object per zip: S3_PREFIX/<hex>.zip
RETRY = {"mode": "standard"}  # attempts: boto3's default (3) or $AWS_MAX_ATTEMPTS
WAIT = {"Delay": 1, "MaxAttempts": 600}
STORE_ENV = "LAMBDA_PACK_STORE"
TASK_ENV = "LAMBDA_PACK_TASK"
DIGEST_ENV = "LAMBDA_PACK_TASK_SHA256"
WRAPPER_HANDLER = "pip_lambda_pack.wrapper.handler"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployOptions:
    """The command line's choices; ``role`` is the default for functions without one."""

    prefix: str
    role: str | None = None
    s3_bucket: str | None = None
    publish: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Zip:
    """A zip to send (a layer or a function's code): where it is, its sha256 and size."""

    path: Path
    sha256: str
    size: int

    @property
    def code_sha256(self) -> str:
        """Lambda's ``CodeSha256``: the base64 of the digest's bytes."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def s3_key(self) -> str:
        return f"{S3_PREFIX}/{self.sha256}.zip"


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerWant:
    """A Lambda layer to have: ``PREFIX-<12 hex>`` with our zip as one of its versions."""

    name: str
    zip: Zip
    description: str
    runtime: str
    arch: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionWant:
    """A Lambda function as it should be after the deploy."""

    key: str  # the project's name for it
    name: str  # Lambda's: PREFIX-NAME
    code: Zip
    handler: str
    runtime: str
    arch: str
    role: str | None
    memory: int
    timeout: int
    ephemeral_storage_mb: int
    description: str
    environment: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...]
    layers: tuple[str, ...]  # sha256 of each layer, in merge order
    task: TaskManifest | None = None  # shim delivery: the task the wrapper provisions
    blobs: tuple[Zip, ...] = ()  # shim delivery: what the store must hold


@dataclass(frozen=True, slots=True)
class LayerRef:
    """A layer in a call's parameters, by digest: its ARN once published."""

    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One write call: ``service`` is ``lambda``, ``s3`` or ``store`` (the blob store)."""

    service: str
    operation: str
    params: Mapping[str, Any]
    subject: str  # the layer or function it is for
    line: str  # what the step line says once done
    undo: Mapping[str, Any] | None = None  # UpdateFunctionConfiguration back to this
    digest: str = ""  # PublishLayerVersion: the layer's sha256


@dataclass(frozen=True, slots=True, kw_only=True)
class Current:
    """A function as Lambda has it: configuration, tags, the newest published version."""

    config: Mapping[str, Any]
    tags: Mapping[str, str]
    published: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """What is there before the deploy (read calls only)."""

    layers: Mapping[str, str]  # sha256 -> ARN of the layer version with our CodeSha256
    functions: Mapping[str, Current | None]  # Lambda name -> what it is now
    objects: frozenset[str] = frozenset()  # S3 keys in the bucket
    store_blobs: frozenset[str] = frozenset()  # digests the store has
    store_names: Mapping[str, str] = field(default_factory=dict)  # name -> task digest
    code_storage: tuple[int, int] | None = None  # (used, limit) bytes, when Lambda says


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a deploy did (or would do): the calls, and per layer and function the result."""

    region: str
    dry_run: bool
    calls: tuple[Call, ...]
    layers: Mapping[str, str]  # layer name -> ARN (or NAME:new in a dry run)
    functions: Mapping[str, str]  # project name -> created / updated / unchanged
    arns: Mapping[str, str]  # Lambda function name -> ARN

    def summary(self) -> str:
        counts = {a: list(self.functions.values()).count(a) for a in _ACTIONS}
        figures = ", ".join(f"{counts[a]} {a}" for a in _ACTIONS)
        writes = len(self.calls)
        if not self.calls:
            return (
                f"no changes: {plural(len(self.functions), 'function')} and "
                f"{plural(len(self.layers), 'layer')} already deployed (0 write calls)"
            )
        verb = "would make" if self.dry_run else "made"
        return f"{plural(len(self.functions), 'function')} ({figures}): {verb} {writes} write " + (
            "call" if writes == 1 else "calls"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "dry_run": self.dry_run,
            "writes": len(self.calls),
            "calls": [
                {
                    "service": c.service,
                    "operation": c.operation,
                    "subject": c.subject,
                    "bytes": sum(z.size for z in zips_in(c.params)),
                }
                for c in self.calls
            ],
            "layers": dict(self.layers),
            "functions": {
                name: {"action": action, "arn": self.arns.get(name, "")}
                for name, action in self.functions.items()
            },
        }


_ACTIONS = ("created", "updated", "unchanged")


def zips_in(value: Any) -> Iterator[Zip]:
    """The zips a call's parameters carry (what it sends)."""
    if isinstance(value, Zip):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from zips_in(item)

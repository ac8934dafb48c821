"""Deploy a build to AWS Lambda: each layer published once, functions wired in merge order.

Three steps, so that a deploy is idempotent and ``--dry-run`` is the real plan:

1. ``read_state`` asks AWS what is there, with read calls only: the versions of each
   layer name (the one whose ``CodeSha256`` is ours), each function's configuration and
   tags, the S3 objects of zips over 50 MB, the store's blobs for shim-delivered functions.
2. ``plan_calls`` (pure) turns the wanted functions and layers and that state into the
   write calls to make, in order: S3 uploads, layer versions, then per function its
   creation, or its configuration, code, tags and version, each only when it changed.
3. ``apply`` makes them through boto3, waiting for ``LastUpdateStatus: Successful`` after
   each function call; if a function's code update fails after its configuration moved,
   the configuration is put back, so a function is either moved or left as it was.

Names: layers are ``PREFIX-<first 12 hex of the zip's sha256>``, functions ``PREFIX-NAME``.
A function with ``delivery = "shim"`` gets one small bootstrap layer (the shim and
``wrapper.py``) and variables naming its store and task; its code and layers go to the
store, and the shim fetches them into /tmp at a cold start.

boto3 is the ``aws`` extra; credentials, region and endpoints come from boto3's own chain
(``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_LAMBDA``, ...).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import FunctionSpec, Project
from .errors import ConfigError, DeployError, LambdaPackError, UserError
from .manifest import BuildManifest, FunctionEntry, task_of
from .target import get_target
from .units import human_size, limit_size
from .wire import TaskManifest
from .zipwrite import files_zip

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
Log = Callable[[str], None]


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
                f"no changes: {_plural(len(self.functions), 'function')} and "
                f"{_plural(len(self.layers), 'layer')} already deployed (0 write calls)"
            )
        verb = "would make" if self.dry_run else "made"
        return f"{_plural(len(self.functions), 'function')} ({figures}): {verb} {writes} write " + (
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
                    "bytes": sum(z.size for z in _zips_in(c.params)),
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


def _zips_in(value: Any) -> Iterator[Zip]:
    """The zips a call's parameters carry (what it sends)."""
    if isinstance(value, Zip):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _zips_in(item)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- what to have --------------------------------------------------------------------------


def runtime_of(target: str) -> tuple[str, str]:
    """``("python3.12", "x86_64")`` of a target preset."""
    preset = get_target(target)
    return f"python{preset.python}", preset.arch


def describe_layer(wheels: Sequence[str]) -> str:
    """A layer's description: its wheels, cut to Lambda's 256 characters."""
    text = ", ".join(wheels)
    return text if len(text) <= 256 else text[:253] + "..."


def bootstrap_zip(out_dir: Path) -> Zip:
    """The bootstrap layer of shim-delivered functions: the one-file shim and the wrapper.

    Written to ``out_dir/bootstrap/<sha256>.zip`` as ``python/pip_lambda_pack/...``, with
    an ``__init__`` of its own so nothing else of the tool is imported at run time.
    """
    from .invoke import shim_source

    files = {
        "python/pip_lambda_pack/__init__.py": b'"""pip-lambda-pack runtime shim."""\n',
        "python/pip_lambda_pack/shim.py": shim_source().encode(),
        "python/pip_lambda_pack/wrapper.py": Path(__file__).with_name("wrapper.py").read_bytes(),
    }
    data = files_zip(files)
    digest = hashlib.sha256(data).hexdigest()
    path = out_dir / "bootstrap" / f"{digest}.zip"
    if not path.is_file():
        from .atomic import write_bytes

        write_bytes(path, data)
    return Zip(path=path, sha256=digest, size=len(data))


def wanted(
    project: Project,
    manifest: BuildManifest,
    out_dir: Path,
    options: DeployOptions,
    store_url: str | None = None,
) -> tuple[list[LayerWant], list[FunctionWant]]:
    """The layers and functions the build should become on Lambda (checked, no I/O but disk)."""
    runtime, arch = runtime_of(manifest.target)
    functions, layers = [], {}
    bootstrap = None
    for spec in project.functions:
        entry = manifest.functions[spec.name]
        if spec.delivery == "shim":
            bootstrap = bootstrap or bootstrap_zip(out_dir)
            want = _shim_function(spec, entry, manifest.target, out_dir, options, bootstrap)
            want = replace(want, environment=_store_env(want, store_url, spec.name))
            layers[bootstrap.sha256] = _layer_want(options, bootstrap, ("pip-lambda-pack shim",))
        else:
            want = _layer_function(spec, entry, out_dir, options, runtime, arch)
            for layer in entry.layers:
                zip_ = Zip(path=out_dir / layer.path, sha256=layer.sha256, size=layer.size)
                layers[layer.sha256] = _layer_want(options, zip_, layer.wheels)
        functions.append(replace(want, runtime=runtime, arch=arch))
    return [replace(w, runtime=runtime, arch=arch) for w in layers.values()], functions


def _layer_want(options: DeployOptions, zip_: Zip, wheels: Sequence[str]) -> LayerWant:
    return LayerWant(
        name=f"{options.prefix}-{zip_.sha256[:12]}",
        zip=zip_,
        description=describe_layer(wheels),
        runtime="",
        arch="",
    )


def _base_function(
    spec: FunctionSpec, entry: FunctionEntry, out_dir: Path, options: DeployOptions
) -> FunctionWant:
    name = f"{options.prefix}-{spec.name}"
    if len(name) > 64:
        raise ConfigError(
            f"Lambda function name {name!r} is {len(name)} characters, over Lambda's 64",
            "choose a shorter prefix (--prefix or prefix = ...) or function name",
        )
    code = entry.code
    return FunctionWant(
        key=spec.name,
        name=name,
        code=Zip(path=out_dir / code.path, sha256=code.sha256, size=code.size),
        handler=entry.handler,
        runtime="",
        arch="",
        role=spec.role or options.role,
        memory=spec.memory,
        timeout=spec.timeout,
        ephemeral_storage_mb=spec.ephemeral_storage_mb,
        description=spec.description,
        environment=spec.environment,
        tags=spec.tags,
        layers=(),
    )


def _layer_function(
    spec: FunctionSpec,
    entry: FunctionEntry,
    out_dir: Path,
    options: DeployOptions,
    runtime: str,
    arch: str,
) -> FunctionWant:
    if len(entry.layers) > MAX_LAYERS:
        raise UserError(
            f"function {spec.name} has {len(entry.layers)} layers, over Lambda's {MAX_LAYERS}",
            f'set max-layers = {MAX_LAYERS} and lock again, or set delivery = "shim" in '
            f"[functions.{spec.name}] to load them into /tmp",
        )
    unzipped = sum(layer.unzipped_size for layer in entry.layers)
    if unzipped > UNZIPPED_LIMIT:
        raise UserError(
            f"function {spec.name}'s layers unzip to {human_size(unzipped)}, over Lambda's "
            f"{limit_size(UNZIPPED_LIMIT)}",
            f'set delivery = "shim" in [functions.{spec.name}] to load them into /tmp instead',
        )
    want = _base_function(spec, entry, out_dir, options)
    return replace(want, layers=tuple(layer.sha256 for layer in entry.layers))


def _shim_function(
    spec: FunctionSpec,
    entry: FunctionEntry,
    target: str,
    out_dir: Path,
    options: DeployOptions,
    bootstrap: Zip,
) -> FunctionWant:
    want = _base_function(spec, entry, out_dir, options)
    task = task_of(spec.name, target, entry)
    layers = [Zip(path=out_dir / x.path, sha256=x.sha256, size=x.size) for x in entry.layers]
    blobs = (want.code, *layers)
    return replace(
        want, handler=WRAPPER_HANDLER, layers=(bootstrap.sha256,), task=task, blobs=blobs
    )


def _store_env(want: FunctionWant, store_url: str | None, name: str) -> tuple[tuple[str, str], ...]:
    """The function's variables plus those naming its store and pinned task."""
    assert want.task is not None
    if store_url is None or "://" not in store_url or store_url.startswith("file:"):
        raise ConfigError(
            f"function {name} is delivered by the shim, which fetches from the store at run "
            f"time, but the store {store_url or '(none)'} is a local directory",
            'set store = "s3://BUCKET/PREFIX" (or oci://HOST/REPO) in the config, or --store',
        )
    from .wire import redact

    if redact(store_url) != store_url:
        raise ConfigError(
            f"the store URL of function {name} holds a credential, which would be written "
            "into the function's configuration",
            "give the function's role read access to the store instead (S3), or use "
            "an anonymous pull registry (OCI)",
        )
    variables = dict(want.environment)
    variables.update(
        {STORE_ENV: store_url, TASK_ENV: name, DIGEST_ENV: want.task.sha256},
    )
    return tuple(sorted(variables.items()))


# -- from state to calls (pure) ------------------------------------------------------------


def plan_calls(
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    state: State,
    options: DeployOptions,
) -> list[Call]:
    """The write calls that take ``state`` to what is wanted, in the order to make them."""
    check_plan(layers, functions, state, options)
    calls = [_upload(z, options) for z in _zips_via_s3(layers, functions, state, options)]
    calls += [_publish_layer(w, options) for w in layers if w.zip.sha256 not in state.layers]
    for want in functions:
        calls += _store_calls(want, state)
        current = state.functions.get(want.name)
        if current is None:
            calls.append(_create(want, options))
        else:
            calls += _updates(want, current, state, options)
    return calls


def check_plan(
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    state: State,
    options: DeployOptions,
) -> None:
    """UserError for what would fail half-way: a missing role or bucket, a full quota."""
    for want in functions:
        if state.functions.get(want.name) is None and want.role is None:
            raise UserError(
                f"function {want.name} does not exist yet and no role is set for it",
                f"pass --role ARN or set role = ... in [functions.{want.key}]",
            )
    big = [z for z in _all_zips(layers, functions) if z.size > DIRECT_UPLOAD_LIMIT]
    if big and not options.s3_bucket:
        raise UserError(
            f"{big[0].path.name} is {human_size(big[0].size)} zipped, over Lambda's "
            f"{limit_size(DIRECT_UPLOAD_LIMIT)} direct upload",
            "pass --s3-bucket BUCKET (a bucket in the functions' region) to upload it through S3",
        )
    _check_quota(layers, functions, state)


def _check_quota(
    layers: Sequence[LayerWant], functions: Sequence[FunctionWant], state: State
) -> None:
    if state.code_storage is None:
        return
    used, limit = state.code_storage
    new = sum(w.zip.size for w in layers if w.zip.sha256 not in state.layers)
    new += sum(f.code.size for f in functions if _code_changes(f, state.functions.get(f.name)))
    if used + new > limit:
        raise UserError(
            f"Lambda's code storage would be over its quota: {human_size(used)} used + "
            f"{human_size(new)} new > {human_size(limit)}",
            "delete old function and layer versions (aws lambda delete-layer-version ...), "
            "or ask AWS for a higher code storage quota",
        )


def _all_zips(layers: Sequence[LayerWant], functions: Sequence[FunctionWant]) -> Iterator[Zip]:
    yield from (w.zip for w in layers)
    yield from (f.code for f in functions)


def _zips_via_s3(
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    state: State,
    options: DeployOptions,
) -> list[Zip]:
    """Zips over the direct upload limit that a call will send and S3 does not have yet."""
    needed = {w.zip.sha256: w.zip for w in layers if w.zip.sha256 not in state.layers}
    for want in functions:
        if _code_changes(want, state.functions.get(want.name)):
            needed[want.code.sha256] = want.code
    return [
        z
        for _, z in sorted(needed.items())
        if z.size > DIRECT_UPLOAD_LIMIT and z.s3_key not in state.objects
    ]


def _upload(zip_: Zip, options: DeployOptions) -> Call:
    return Call(
        service="s3",
        operation="PutObject",
        params={
            "Bucket": options.s3_bucket,
            "Key": zip_.s3_key,
            "Body": zip_,
            "ChecksumSHA256": zip_.code_sha256,
        },
        subject=zip_.path.name,
        line=f"s3://{options.s3_bucket}/{zip_.s3_key}: uploaded ({human_size(zip_.size)})",
    )


def _content(zip_: Zip, options: DeployOptions, zip_key: str) -> dict[str, Any]:
    if zip_.size > DIRECT_UPLOAD_LIMIT:
        return {"S3Bucket": options.s3_bucket, "S3Key": zip_.s3_key}
    return {zip_key: zip_}


def _publish_layer(want: LayerWant, options: DeployOptions) -> Call:
    return Call(
        service="lambda",
        operation="PublishLayerVersion",
        params={
            "LayerName": want.name,
            "Description": want.description,
            "Content": _content(want.zip, options, "ZipFile"),
            "CompatibleRuntimes": [want.runtime],
            "CompatibleArchitectures": [want.arch],
        },
        subject=want.name,
        line=f"layer {want.name}: published ({human_size(want.zip.size)})",
        digest=want.zip.sha256,
    )


def _store_calls(want: FunctionWant, state: State) -> list[Call]:
    """Shim delivery: the blobs, the task manifest and the name the store lacks."""
    if want.task is None:
        return []
    calls = [
        Call(
            service="store",
            operation="put_file",
            params={"path": z, "digest": z.sha256},
            subject=want.key,
            line=f"store: {z.path.name} uploaded ({human_size(z.size)})",
        )
        for z in want.blobs
        if z.sha256 not in state.store_blobs
    ]
    digest = want.task.sha256
    if digest not in state.store_blobs:
        calls.append(_store_call("put_bytes", {"data": want.task.to_bytes()}, want, "task"))
    if state.store_names.get(want.key) != digest:
        calls.append(_store_call("set_name", {"name": want.key, "digest": digest}, want, "name"))
    return calls


def _store_call(operation: str, params: Mapping[str, Any], want: FunctionWant, what: str) -> Call:
    return Call(
        service="store",
        operation=operation,
        params=params,
        subject=want.key,
        line=f"store: {want.key}'s {what} set",
    )


def desired_config(want: FunctionWant) -> dict[str, Any]:
    """The function's configuration in Lambda's terms (Layers as LayerRef)."""
    config: dict[str, Any] = {
        "Runtime": want.runtime,
        "Handler": want.handler,
        "MemorySize": want.memory,
        "Timeout": want.timeout,
        "Description": want.description,
        "EphemeralStorage": {"Size": want.ephemeral_storage_mb},
        "Environment": {"Variables": dict(want.environment)},
        "Layers": [LayerRef(sha) for sha in want.layers],
    }
    if want.role:
        config["Role"] = want.role
    return config


def _create(want: FunctionWant, options: DeployOptions) -> Call:
    params: dict[str, Any] = {
        "FunctionName": want.name,
        **desired_config(want),
        "Code": _content(want.code, options, "ZipFile"),
        "Architectures": [want.arch],
        "PackageType": "Zip",
        "Publish": options.publish,
    }
    if want.tags:
        params["Tags"] = dict(want.tags)
    return Call(
        service="lambda",
        operation="CreateFunction",
        params=params,
        subject=want.name,
        line=f"function {want.name}: created ({_plural(len(want.layers), 'layer')})",
    )


def config_changes(
    want: FunctionWant, config: Mapping[str, Any], arns: Mapping[str, str]
) -> dict[str, Any]:
    """The configuration fields whose value Lambda has is not the wanted one."""
    changes = {}
    for key, value in desired_config(want).items():
        if _normal(key, config.get(key), arns) != _normal(key, value, arns):
            changes[key] = value
    return changes


def _normal(key: str, value: Any, arns: Mapping[str, str]) -> Any:
    """A configuration value as Lambda's GetFunction and our wants can both be compared."""
    if key == "Layers":
        items = value or []
        return [arns.get(i.sha256, "new") if isinstance(i, LayerRef) else i["Arn"] for i in items]
    if key == "Environment":
        return dict((value or {}).get("Variables") or {})
    if key == "Description":
        return value or ""
    return value


def _code_changes(want: FunctionWant, current: Current | None) -> bool:
    if current is None:
        return True
    config = current.config
    return bool(
        config.get("CodeSha256") != want.code.code_sha256
        or (config.get("Architectures") or ["x86_64"]) != [want.arch]
    )


def _updates(
    want: FunctionWant, current: Current, state: State, options: DeployOptions
) -> list[Call]:
    calls = []
    changes = config_changes(want, current.config, state.layers)
    if changes:
        undo = {k: _undo_value(k, current.config.get(k)) for k in changes}
        calls.append(
            Call(
                service="lambda",
                operation="UpdateFunctionConfiguration",
                params={"FunctionName": want.name, **changes},
                subject=want.name,
                line=f"function {want.name}: configuration updated ({', '.join(changes)})",
                undo={"FunctionName": want.name, **undo},
            )
        )
    if _code_changes(want, current):
        calls.append(_update_code(want, options))
    calls += _tag_calls(want, current)
    if options.publish and _needs_version(want, current, state, bool(calls)):
        calls.append(_publish_version(want))
    return calls


def _undo_value(key: str, value: Any) -> Any:
    if key == "Layers":
        return [layer["Arn"] for layer in value or []]
    if key == "Environment":
        return {"Variables": dict((value or {}).get("Variables") or {})}
    if key == "Description":
        return value or ""
    return value


def _update_code(want: FunctionWant, options: DeployOptions) -> Call:
    return Call(
        service="lambda",
        operation="UpdateFunctionCode",
        params={
            "FunctionName": want.name,
            **_content(want.code, options, "ZipFile"),
            "Architectures": [want.arch],
        },
        subject=want.name,
        line=f"function {want.name}: code updated ({human_size(want.code.size)})",
    )


def _tag_calls(want: FunctionWant, current: Current) -> list[Call]:
    arn = current.config.get("FunctionArn", want.name)
    have = {k: v for k, v in current.tags.items() if not k.lower().startswith("aws:")}
    wanted_tags = dict(want.tags)
    changed = {k: v for k, v in wanted_tags.items() if have.get(k) != v}
    removed = sorted(set(have) - set(wanted_tags))
    calls = []
    if changed:
        calls.append(
            Call(
                service="lambda",
                operation="TagResource",
                params={"Resource": arn, "Tags": changed},
                subject=want.name,
                line=f"function {want.name}: tagged ({', '.join(sorted(changed))})",
            )
        )
    if removed:
        calls.append(
            Call(
                service="lambda",
                operation="UntagResource",
                params={"Resource": arn, "TagKeys": removed},
                subject=want.name,
                line=f"function {want.name}: untagged ({', '.join(removed)})",
            )
        )
    return calls


def _needs_version(want: FunctionWant, current: Current, state: State, changed: bool) -> bool:
    """A new version when $LATEST changes or the newest version is not what is wanted."""
    published = current.published
    if changed or published is None:
        return True
    return bool(
        config_changes(want, published, state.layers)
        or published.get("CodeSha256") != want.code.code_sha256
    )


def _publish_version(want: FunctionWant) -> Call:
    return Call(
        service="lambda",
        operation="PublishVersion",
        params={"FunctionName": want.name, "CodeSha256": want.code.code_sha256},
        subject=want.name,
        line=f"function {want.name}: version published",
    )


# -- rendering ----------------------------------------------------------------------------


def render_call(call: Call, arns: Mapping[str, str], names: Mapping[str, str]) -> str:
    """``lambda.CreateFunction(FunctionName='x', ...)``: a dry run's line for a call."""
    shown = ", ".join(f"{k}={_shown(v, arns, names)}" for k, v in call.params.items())
    return f"{call.service}.{call.operation}({shown})"


def _shown(value: Any, arns: Mapping[str, str], names: Mapping[str, str]) -> str:
    if isinstance(value, Zip):
        return f"<{value.path.name}, {human_size(value.size)}>"
    if isinstance(value, LayerRef):
        return arns.get(value.sha256) or f"{names.get(value.sha256, value.sha256)}:new"
    if isinstance(value, bytes):
        return f"<{human_size(len(value))}>"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {_shown(v, arns, names)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(v, arns, names) for v in value) + "]"
    return repr(value)


# -- the AWS edge ----------------------------------------------------------------------------


class Aws:
    """boto3 clients for Lambda, S3 and IAM, with AWS errors turned into ours at one place."""

    def __init__(self, session: Any) -> None:
        from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

        if session.region_name is None:
            raise UserError(
                "no AWS region is set",
                "pass --region, or set AWS_REGION (or a region in ~/.aws/config for AWS_PROFILE)",
            )
        if session.get_credentials() is None:
            raise UserError(
                "no AWS credentials found",
                "set AWS_PROFILE (after aws configure or aws sso login), or AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY",
            )
        config = Config(retries=dict(RETRY))
        self.region: str = session.region_name
        self.clients = {s: session.client(s, config=config) for s in ("lambda", "s3", "iam")}

    def call(self, service: str, operation: str, **params: Any) -> Any:
        from botocore import xform_name  # type: ignore[import-untyped,unused-ignore]

        method = getattr(self.clients[service], xform_name(operation))
        try:
            return method(**params)
        except Exception as exc:
            raise aws_error(exc, f"{service}.{operation}", _subject(params)) from None

    def wait(self, waiter: str, name: str) -> None:
        try:
            self.clients["lambda"].get_waiter(waiter).wait(FunctionName=name, WaiterConfig=WAIT)
        except Exception as exc:
            raise aws_error(exc, "lambda.GetFunction (waiting)", name) from None


def _subject(params: Mapping[str, Any]) -> str:
    for key in ("FunctionName", "LayerName", "Key", "RoleName", "Resource"):
        if key in params:
            return str(params[key])
    return ""


_DENIED = (
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
)
_THROTTLED = ("TooManyRequestsException", "ThrottlingException", "Throttling", "SlowDown")


def aws_error(exc: Exception, operation: str, subject: str) -> LambdaPackError:
    """One of our errors for a botocore exception of ``operation`` on ``subject``."""
    if isinstance(exc, LambdaPackError):
        return exc
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return _transport_error(exc, operation)
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code.isdigit():  # a body boto3 could not parse: an XML error where JSON was expected
        found = re.search(r"<Code>([^<]*)</Code>.*?<Message>([^<]*)</Message>", message, re.S)
        code, message = found.groups() if found else (code, message[:200])
    where = f"{operation} ({subject})" if subject else operation
    return _client_error(code, message, where)


def _client_error(code: str, message: str, where: str) -> LambdaPackError:
    if code in _DENIED:
        return UserError(
            f"AWS denied {where}: {code}: {message}",
            "check AWS_PROFILE and that the identity may call Lambda (lambda:*Function*, "
            "lambda:*LayerVersion*), s3:PutObject on the bucket and iam:PassRole on the role",
        )
    if code in _THROTTLED:
        return DeployError(
            f"AWS throttled {where}, also when tried again (boto3's standard retries): {message}",
            "wait a minute and deploy again: what is already deployed is skipped",
        )
    if code == "CodeStorageExceededException":
        return UserError(
            f"Lambda's code storage quota (75 GB) is full: {where}: {message}",
            "delete old function and layer versions, or ask AWS for a higher quota",
        )
    if code == "InvalidParameterValueException" and "role" in message.lower():
        return UserError(
            f"Lambda cannot use the role of {where}: {message}",
            "check that the role exists and trusts lambda.amazonaws.com (role = ... or --role)",
        )
    if code == "InvalidParameterValueException" and "layer" in message.lower():
        return UserError(
            f"Lambda refused the layers of {where}: {message}",
            f'keep max-layers <= {MAX_LAYERS}, or set delivery = "shim" for the function',
        )
    if code == "ResourceConflictException":
        return DeployError(
            f"{where}: {message}", "another update of the function is under way; deploy again"
        )
    return DeployError(f"{where} failed: {code}: {message}", "check the message; deploy again")


def _transport_error(exc: Exception, operation: str) -> LambdaPackError:
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return UserError("no AWS credentials found", "set AWS_PROFILE or AWS_ACCESS_KEY_ID")
    if name == "NoRegionError":
        return UserError("no AWS region is set", "pass --region or set AWS_REGION")
    if name == "WaiterError":
        return DeployError(f"{operation}: the function did not become ready: {exc}", "deploy again")
    return DeployError(
        f"{operation}: {name}: {exc}", "check the network and AWS_ENDPOINT_URL, then deploy again"
    )


# -- reading state ----------------------------------------------------------------------------


def read_state(
    aws: Aws,
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    options: DeployOptions,
    store: Any = None,
) -> State:
    """What AWS (and the store) has of what is wanted; read calls only."""
    found = {w.zip.sha256: _layer_arn(aws, w) for w in layers}
    currents = {f.name: _function(aws, f.name, options.publish) for f in functions}
    _check_roles(aws, functions, currents)
    return State(
        layers={sha: arn for sha, arn in found.items() if arn},
        functions=currents,
        objects=_objects(aws, layers, functions, options),
        store_blobs=_store_blobs(store, functions),
        store_names=_store_names(store, functions),
        code_storage=_code_storage(aws),
    )


def _layer_arn(aws: Aws, want: LayerWant) -> str | None:
    """The ARN of the version of ``want.name`` whose CodeSha256 is our zip's, if any."""
    versions: list[dict[str, Any]] = []
    marker = None
    while True:
        page = aws.call("lambda", "ListLayerVersions", LayerName=want.name, **_marker(marker))
        versions += page.get("LayerVersions", [])
        marker = page.get("NextMarker")
        if not marker:
            break
    for version in sorted(versions, key=lambda v: -int(v["Version"])):
        got = aws.call(
            "lambda", "GetLayerVersion", LayerName=want.name, VersionNumber=version["Version"]
        )
        if got.get("Content", {}).get("CodeSha256") == want.zip.code_sha256:
            return str(got["LayerVersionArn"])
    return None


def _marker(marker: str | None) -> dict[str, str]:
    return {"Marker": marker} if marker else {}


def _function(aws: Aws, name: str, publish: bool) -> Current | None:
    try:
        got = aws.call("lambda", "GetFunction", FunctionName=name)
    except DeployError as exc:
        if "ResourceNotFoundException" in exc.message:
            return None
        raise
    published = _newest_version(aws, name) if publish else None
    return Current(config=got["Configuration"], tags=got.get("Tags") or {}, published=published)


def _newest_version(aws: Aws, name: str) -> Mapping[str, Any] | None:
    versions: list[dict[str, Any]] = []
    marker = None
    while True:
        page = aws.call("lambda", "ListVersionsByFunction", FunctionName=name, **_marker(marker))
        versions += [v for v in page.get("Versions", []) if v.get("Version", "").isdigit()]
        marker = page.get("NextMarker")
        if not marker:
            break
    return max(versions, key=lambda v: int(v["Version"])) if versions else None


def _check_roles(
    aws: Aws, functions: Sequence[FunctionWant], currents: Mapping[str, Current | None]
) -> None:
    """UserError for a role that IAM says does not exist (when IAM lets us ask)."""
    roles = {f.role for f in functions if f.role}
    for role in sorted(roles):
        try:
            aws.call("iam", "GetRole", RoleName=role.rsplit("/", 1)[-1])
        except DeployError as exc:
            if "NoSuchEntity" in exc.message:
                raise UserError(
                    f"the role {role} does not exist",
                    "create it (with a trust policy for lambda.amazonaws.com) or fix role/--role",
                ) from None
        except UserError:
            continue  # not allowed to read IAM: Lambda checks the role itself


def _objects(
    aws: Aws,
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    options: DeployOptions,
) -> frozenset[str]:
    if not options.s3_bucket:
        return frozenset()
    present = set()
    for zip_ in _all_zips(layers, functions):
        if zip_.size <= DIRECT_UPLOAD_LIMIT:
            continue
        try:
            aws.call("s3", "HeadObject", Bucket=options.s3_bucket, Key=zip_.s3_key)
            present.add(zip_.s3_key)
        except DeployError as exc:
            if "404" not in exc.message and "NotFound" not in exc.message:
                raise
    return frozenset(present)


def _store_blobs(store: Any, functions: Sequence[FunctionWant]) -> frozenset[str]:
    digests = {z.sha256 for f in functions for z in f.blobs}
    digests |= {f.task.sha256 for f in functions if f.task is not None}
    return frozenset(d for d in sorted(digests) if store is not None and store.has(d))


def _store_names(store: Any, functions: Sequence[FunctionWant]) -> dict[str, str]:
    from .errors import BlobNotFoundError

    names = {}
    for want in functions:
        if want.task is None or store is None:
            continue
        try:
            names[want.key] = store.get_name(want.key)
        except BlobNotFoundError:
            continue
    return names


def _code_storage(aws: Aws) -> tuple[int, int] | None:
    """(used, limit) bytes of Lambda's code storage, or None where Lambda does not say."""
    try:
        settings = aws.call("lambda", "GetAccountSettings")
    except LambdaPackError:
        return None
    used = settings.get("AccountUsage", {}).get("TotalCodeSize")
    limit = settings.get("AccountLimit", {}).get("TotalCodeSize")
    return (int(used), int(limit)) if used is not None and limit else None


# -- applying -------------------------------------------------------------------------------


def apply(
    aws: Aws, calls: Sequence[Call], state: State, store: Any, say: Log
) -> tuple[dict[str, str], dict[str, str]]:
    """Make the calls in order: the layer ARNs (sha256 -> ARN), function ARNs (name -> ARN).

    A failed code update puts back the configuration update made just before it for the
    same function, so the function keeps its old layers with its old code.
    """
    arns = dict(state.layers)
    functions: dict[str, str] = {}
    previous: Call | None = None
    for call in calls:
        try:
            result = _make(aws, call, arns, store)
        except LambdaPackError as exc:
            moved = previous is not None and previous.subject == call.subject
            if call.operation == "UpdateFunctionCode" and moved and previous is not None:
                raise _rolled_back(aws, previous, exc) from None
            raise
        previous = call if call.undo is not None else None
        _record(call, result, arns, functions)
        say(call.line)
    return arns, functions


def _make(aws: Aws, call: Call, arns: Mapping[str, str], store: Any) -> Any:
    if call.service == "store":
        return _store_write(store, call)
    params = _resolved(call.params, arns)
    if call.service == "s3":
        with open(params["Body"], "rb") as body:
            return aws.call("s3", call.operation, **{**params, "Body": body})
    result = aws.call("lambda", call.operation, **params)
    if call.operation == "CreateFunction":
        aws.wait("function_active_v2", call.params["FunctionName"])
    elif call.operation.startswith("UpdateFunction"):
        aws.wait("function_updated_v2", call.params["FunctionName"])
    return result


def _resolved(value: Any, arns: Mapping[str, str]) -> Any:
    """Parameters for boto3: zips as bytes (S3 bodies as paths), layers as ARNs."""
    if isinstance(value, Zip):
        return value.path if value.size > DIRECT_UPLOAD_LIMIT else value.path.read_bytes()
    if isinstance(value, LayerRef):
        return arns[value.sha256]
    if isinstance(value, Mapping):
        return {k: _resolved(v, arns) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, arns) for v in value]
    return value


def _store_write(store: Any, call: Call) -> None:
    params = call.params
    if call.operation == "put_file":
        store.put_file(params["path"].path, params["digest"])
    elif call.operation == "put_bytes":
        store.put_bytes(params["data"])
    else:
        store.set_name(params["name"], params["digest"])


def _record(call: Call, result: Any, arns: dict[str, str], functions: dict[str, str]) -> None:
    if call.operation == "PublishLayerVersion":
        arns[call.digest] = result["LayerVersionArn"]
    elif call.operation in ("CreateFunction", "UpdateFunctionConfiguration"):
        functions[call.params["FunctionName"]] = result["FunctionArn"]


def _rolled_back(aws: Aws, update: Call, exc: LambdaPackError) -> LambdaPackError:
    """Put back the configuration ``update`` changed; the error to raise."""
    assert update.undo is not None
    try:
        aws.call("lambda", "UpdateFunctionConfiguration", **update.undo)
        aws.wait("function_updated_v2", update.subject)
    except LambdaPackError as second:
        return type(exc)(
            f"{exc.message}; putting back {update.subject}'s configuration failed too: "
            f"{second.message}",
            exc.tip,
        )
    return type(exc)(f"{exc.message} ({update.subject} left as it was)", exc.tip)


# -- the whole deploy ---------------------------------------------------------------------------


def deploy(
    project: Project,
    manifest: BuildManifest,
    out_dir: Path,
    options: DeployOptions,
    session: Any,
    say: Log,
) -> Outcome:
    """Deploy the build in ``out_dir`` (``manifest``) of ``project`` through ``session``."""
    aws = Aws(session)
    store = None
    if any(spec.delivery == "shim" for spec in project.functions):
        from .store import open_store

        store = open_store(project.store, project.root)
    layers, functions = wanted(project, manifest, out_dir, options, project.store)
    state = read_state(aws, layers, functions, options, store)
    calls = plan_calls(layers, functions, state, options)
    names = {w.zip.sha256: w.name for w in layers}
    if options.dry_run:
        for call in calls:
            say("would call " + render_call(call, state.layers, names))
        arns = dict(state.layers)
        function_arns: dict[str, str] = {}
    else:
        arns, function_arns = apply(aws, calls, state, store, say)
    return _outcome(aws.region, options, calls, layers, functions, state, arns, function_arns)


def _outcome(
    region: str,
    options: DeployOptions,
    calls: Sequence[Call],
    layers: Sequence[LayerWant],
    functions: Sequence[FunctionWant],
    state: State,
    arns: Mapping[str, str],
    made: Mapping[str, str],
) -> Outcome:
    touched = {c.subject for c in calls}
    actions = {}
    function_arns = {}
    for want in functions:
        current = state.functions.get(want.name)
        if current is None:
            actions[want.key] = "created"
        else:
            changed = want.name in touched or want.key in touched
            actions[want.key] = "updated" if changed else "unchanged"
            function_arns[want.key] = str(current.config.get("FunctionArn", ""))
        if want.name in made:
            function_arns[want.key] = made[want.name]
    return Outcome(
        region=region,
        dry_run=options.dry_run,
        calls=tuple(calls),
        layers={w.name: arns.get(w.zip.sha256, f"{w.name}:new") for w in layers},
        functions=actions,
        arns=function_arns,
    )


def boto3_session(region: str | None) -> Any:
    """A boto3 session with boto3's own chain for credentials, region and endpoints.

    The region is ``region``, else boto3's (AWS_DEFAULT_REGION, the profile's), else
    AWS_REGION, which the AWS CLI, SAM and Lambda itself read and older botocore does not.
    """
    try:
        import boto3  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError(
            "boto3 is needed for deploy", "pip install 'pip-lambda-pack[aws]'"
        ) from None
    try:
        session = boto3.session.Session(region_name=region)
        if session.region_name is None and os.environ.get("AWS_REGION"):
            session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
        return session
    except Exception as exc:  # botocore.exceptions.ProfileNotFound and the like
        raise UserError(
            f"AWS configuration: {exc}", "check AWS_PROFILE and ~/.aws/config"
        ) from None

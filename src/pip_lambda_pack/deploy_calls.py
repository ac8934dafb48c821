"""From state to calls (pure): the write calls that make AWS hold what a deploy wants, in
order (S3 uploads, layer versions, per function its creation or its configuration, code,
tags and version, each only when it changed), checked against Lambda's limits, rendered
for ``--dry-run``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .deploy_model import (
    DIRECT_UPLOAD_LIMIT,
    Call,
    Current,
    DeployOptions,
    FunctionWant,
    LayerRef,
    LayerWant,
    State,
    Zip,
)
from .errors import UserError
from .units import human_size, limit_size, plural

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
    big = [z for z in all_zips(layers, functions) if z.size > DIRECT_UPLOAD_LIMIT]
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


def all_zips(layers: Sequence[LayerWant], functions: Sequence[FunctionWant]) -> Iterator[Zip]:
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
        line=f"function {want.name}: created ({plural(len(want.layers), 'layer')})",
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

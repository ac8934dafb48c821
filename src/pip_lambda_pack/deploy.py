"""Deploy a build to AWS Lambda: each layer published once, functions wired in merge order.

Three steps, so that a deploy is idempotent and ``--dry-run`` is the real plan (the
records are in ``deploy_model``; ``deploy`` here runs the steps over what to have):

1. ``deploy_aws.read_state`` asks AWS what is there, with read calls only: the versions of each
   layer name (the one whose ``CodeSha256`` is ours), each function's configuration and
   tags, the S3 objects of zips over 50 MB, the store's blobs for shim-delivered functions.
2. ``deploy_calls.plan_calls`` (pure) turns the wanted functions and layers and that state into the
   write calls to make, in order: S3 uploads, layer versions, then per function its
   creation, or its configuration, code, tags and version, each only when it changed.
3. ``deploy_aws.apply`` makes them through boto3, waiting for ``LastUpdateStatus: Successful`` after
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

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import FunctionSpec, Project
from .deploy_aws import Aws, apply, read_state
from .deploy_calls import plan_calls, render_call
from .deploy_model import (
    DIGEST_ENV,
    MAX_LAYERS,
    STORE_ENV,
    TASK_ENV,
    UNZIPPED_LIMIT,
    WRAPPER_HANDLER,
    Call,
    DeployOptions,
    FunctionWant,
    LayerWant,
    Outcome,
    State,
    Zip,
)
from .errors import ConfigError, UserError
from .layers import LayerOptions
from .manifest import BuildManifest, FunctionEntry, task_of
from .progress import Log
from .target import get_target
from .units import human_size, limit_size
from .zipwrite import deflated_entry, zip_bytes

# -- what to have --------------------------------------------------------------------------


def runtime_of(target: str) -> tuple[str, str]:
    """``("python3.12", "x86_64")`` of a target preset."""
    preset = get_target(target)
    return f"python{preset.python}", preset.arch


def describe_layer(wheels: Sequence[str]) -> str:
    """A layer's description: its wheels, cut to Lambda's 256 characters."""
    text = ", ".join(wheels)
    return text if len(text) <= 256 else text[:253] + "..."


def bootstrap_zip(out_dir: Path, options: LayerOptions | None = None) -> Zip:
    """The bootstrap layer of shim-delivered functions: the one-file shim and the wrapper.

    Written to ``out_dir/bootstrap/<sha256>.zip`` as ``python/pip_lambda_pack/...``, with
    an ``__init__`` of its own so nothing else of the tool is imported at run time, and
    with ``options``' bytecode, as a layer (else every cold start compiles the shim).
    """
    from .invoke import shim_source
    from .layers import LAYER_ROOT, finish_entries

    files = {
        "python/pip_lambda_pack/__init__.py": b'"""pip-lambda-pack runtime shim."""\n',
        "python/pip_lambda_pack/shim.py": shim_source().encode(),
        "python/pip_lambda_pack/wrapper.py": Path(__file__).with_name("wrapper.py").read_bytes(),
    }
    entries = [deflated_entry(path, 0o644, files[path], path) for path in sorted(files)]
    if options is not None:
        entries = finish_entries(entries, options, prefix="python/", root=LAYER_ROOT)
    data = zip_bytes(entries)
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
    say: Log | None = None,
) -> tuple[list[LayerWant], list[FunctionWant]]:
    """The layers and functions the build should become on Lambda (checked, no I/O but disk
    and the lookup of the target's interpreter, which compiles the shim's bytecode)."""
    runtime, arch = runtime_of(manifest.target)
    functions, layers = [], {}
    bootstrap = None
    for spec in project.functions:
        entry = manifest.functions[spec.name]
        if spec.delivery == "shim":
            built = replace(project, target=manifest.target)  # the .pyc are for what was built
            bootstrap = bootstrap or bootstrap_zip(out_dir, _bootstrap_options(built, say))
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


def _bootstrap_options(project: Project, say: Log | None) -> LayerOptions:
    from .building import bootstrap_options, find_compiler

    return bootstrap_options(project, find_compiler(project, say or (lambda _: None)))


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
    layers, functions = wanted(project, manifest, out_dir, options, project.store, say)
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

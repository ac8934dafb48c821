"""Exports of a build for deploy tools: an AWS SAM template, Terraform JSON, plain JSON.

A build manifest (and the project's Lambda settings) in, a JSON-ready dict out. The
templates describe what ``deploy`` makes: layers ``PREFIX-<12 hex>``, functions
``PREFIX-NAME`` with their memory, timeout, /tmp, environment, role, description, tags,
and for ``delivery = "shim"`` the bootstrap layer and the store's variables. Zip paths are
written relative to ``relative_to`` (where the exported file will live), so the template
can be committed beside the build output. ``to_yaml`` writes a SAM template as YAML.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import FunctionSpec, Project
from .deploy import runtime_of, wanted
from .deploy_model import DeployOptions, FunctionWant, LayerWant
from .errors import ConfigError
from .manifest import BuildManifest
from .requirements import RequirementSet

FORMATS = ("sam", "terraform", "json")
DEFAULT_PREFIX = "lambda-pack"
Where = Callable[[Path], str]


def export(
    manifest: BuildManifest,
    build_dir: Path,
    relative_to: Path,
    fmt: str,
    project: Project | None = None,
    prefix: str | None = None,
) -> dict[str, Any]:
    """The build as a ``sam``, ``terraform`` or ``json`` document.

    ``project`` gives the functions' Lambda settings (without it, Lambda's defaults) and
    its ``prefix`` the names, unless ``prefix`` is given.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", "use one of: " + ", ".join(FORMATS))

    def where(path: Path) -> str:
        return Path(os.path.relpath(path, relative_to)).as_posix()

    if fmt == "json":
        return plain_json(manifest, build_dir, where)
    project = project or _bare_project(manifest, build_dir)
    options = DeployOptions(prefix=prefix or project.prefix)
    layers, functions = wanted(project, manifest, build_dir, options, project.store)
    if fmt == "sam":
        return sam_template(manifest.target, layers, functions, where)
    return terraform_json(layers, functions, where)


def _bare_project(manifest: BuildManifest, build_dir: Path) -> Project:
    """A project of the manifest's functions with Lambda's default settings."""
    specs = tuple(
        FunctionSpec(
            name=name, handler=entry.handler, code=build_dir, requirements=RequirementSet()
        )
        for name, entry in sorted(manifest.functions.items())
    )
    return Project(
        root=build_dir,
        config_path=None,
        target=manifest.target,
        store="",
        max_layers=5,
        strategy=None,
        functions=specs,
        prefix=DEFAULT_PREFIX,
    )


def layer_key(sha256: str) -> str:
    """A short, stable resource name for a layer: its digest's first 12 hex digits."""
    return sha256[:12]


def _logical_id(prefix: str, name: str) -> str:
    """CloudFormation logical ids are alphanumeric."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    return prefix + "".join(w[:1].upper() + w[1:] for w in words if w)


def sam_template(
    target: str, layers: list[LayerWant], functions: list[FunctionWant], where: Where
) -> dict[str, Any]:
    """An AWS SAM template: one LayerVersion per layer, functions listing theirs in order."""
    resources: dict[str, Any] = {}
    for layer in sorted(layers, key=lambda w: w.zip.sha256):
        resources[f"Layer{layer_key(layer.zip.sha256)}"] = {
            "Type": "AWS::Serverless::LayerVersion",
            "Properties": {
                "LayerName": layer.name,
                "Description": layer.description,
                "ContentUri": where(layer.zip.path),
                "CompatibleRuntimes": [layer.runtime],
                "CompatibleArchitectures": [layer.arch],
                "RetentionPolicy": "Retain",
            },
        }
    for want in sorted(functions, key=lambda w: w.key):
        resources[_logical_id("Function", want.key)] = _sam_function(want, where)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"Layers and functions built by pip-lambda-pack for {target}",
        "Resources": resources,
    }


def _sam_function(want: FunctionWant, where: Where) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": want.name,
        "Handler": want.handler,
        "Runtime": want.runtime,
        "Architectures": [want.arch],
        "CodeUri": where(want.code.path),
        "MemorySize": want.memory,
        "Timeout": want.timeout,
        "EphemeralStorage": {"Size": want.ephemeral_storage_mb},
        "Layers": [{"Ref": f"Layer{layer_key(sha)}"} for sha in want.layers],
    }
    optional = {
        "Description": want.description,
        "Role": want.role,
        "Environment": {"Variables": dict(want.environment)} if want.environment else None,
        "Tags": dict(want.tags),
    }
    properties.update({key: value for key, value in optional.items() if value})
    return {"Type": "AWS::Serverless::Function", "Properties": properties}


def terraform_json(
    layers: list[LayerWant], functions: list[FunctionWant], where: Where
) -> dict[str, Any]:
    """Terraform JSON: aws_lambda_layer_version per layer, aws_lambda_function per function."""
    layer_resources = {
        f"layer_{layer_key(w.zip.sha256)}": {
            "layer_name": w.name,
            "description": w.description,
            "filename": where(w.zip.path),
            "source_code_hash": _b64(w.zip.sha256),
            "compatible_runtimes": [w.runtime],
            "compatible_architectures": [w.arch],
        }
        for w in sorted(layers, key=lambda w: w.zip.sha256)
    }
    function_resources = {
        _tf_name(w.key): _tf_function(w, where) for w in sorted(functions, key=lambda w: w.key)
    }
    return {
        "variable": {"lambda_role_arn": {"type": "string", "description": "execution role"}},
        "resource": {
            "aws_lambda_layer_version": layer_resources,
            "aws_lambda_function": function_resources,
        },
    }


def _tf_function(want: FunctionWant, where: Where) -> dict[str, Any]:
    body: dict[str, Any] = {
        "function_name": want.name,
        "handler": want.handler,
        "runtime": want.runtime,
        "architectures": [want.arch],
        "filename": where(want.code.path),
        "source_code_hash": _b64(want.code.sha256),
        "role": want.role or "${var.lambda_role_arn}",
        "memory_size": want.memory,
        "timeout": want.timeout,
        "ephemeral_storage": {"size": want.ephemeral_storage_mb},
        "layers": [
            f"${{aws_lambda_layer_version.layer_{layer_key(sha)}.arn}}" for sha in want.layers
        ],
    }
    if want.description:
        body["description"] = want.description
    if want.environment:
        body["environment"] = {"variables": dict(want.environment)}
    if want.tags:
        body["tags"] = dict(want.tags)
    return body


def _tf_name(name: str) -> str:
    """Terraform names start with a letter or underscore; '-' is allowed after."""
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def _b64(hex_digest: str) -> str:
    """Terraform's source_code_hash: the base64 of the sha256 bytes."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def plain_json(manifest: BuildManifest, build_dir: Path, where: Where) -> dict[str, Any]:
    """The build manifest with the runtime, architecture and paths from ``relative_to``."""
    runtime, arch = runtime_of(manifest.target)
    data = manifest.to_dict()
    data["runtime"], data["architecture"] = runtime, arch
    for entry in data["functions"].values():
        entry["code"]["path"] = where(build_dir / entry["code"]["path"])
        for layer in entry["layers"]:
            layer["path"] = where(build_dir / layer["path"])
    return data


# -- YAML for SAM ------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})  # 1.1


def to_yaml(document: Mapping[str, Any]) -> str:
    """``document`` (JSON-ready: dicts, lists, strings, numbers, booleans) as block YAML.

    Keys are sorted, as in the JSON export; strings are written double-quoted in JSON's
    escapes, which YAML reads the same, so no value can change type (``"yes"``, ``"1.0"``).
    """
    return "\n".join(_yaml_mapping(document, 0)) + "\n"


def _yaml_mapping(mapping: Mapping[str, Any], indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for key in sorted(mapping):
        value = mapping[key]
        plain = _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS
        name = key if plain else json.dumps(key)
        if isinstance(value, Mapping) and value:
            lines += [f"{pad}{name}:", *_yaml_mapping(value, indent + 2)]
        elif isinstance(value, list) and value:
            lines += [f"{pad}{name}:", *_yaml_list(value, indent + 2)]
        else:
            lines.append(f"{pad}{name}: {_yaml_scalar(value)}")
    return lines


def _yaml_list(items: list[Any], indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for item in items:
        if isinstance(item, Mapping) and item:
            first, *rest = _yaml_mapping(item, indent + 2)
            lines += [f"{pad}- {first.lstrip()}", *rest]
        elif isinstance(item, list) and item:
            lines += [f"{pad}-", *_yaml_list(item, indent + 2)]
        else:
            lines.append(f"{pad}- {_yaml_scalar(item)}")
    return lines


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value)  # strings quoted; true/false/null and numbers as YAML reads them

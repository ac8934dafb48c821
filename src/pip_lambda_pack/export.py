"""Exports of a build for deploy tools: an AWS SAM template, Terraform JSON, plain JSON.

Pure: a build manifest in, a JSON-ready dict out. Zip paths are written relative to
``relative_to`` (where the exported file will live), so the template can be committed
beside the build output.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .manifest import BuildManifest, FunctionEntry, LayerEntry
from .target import get_target

FORMATS = ("sam", "terraform", "json")


def export(manifest: BuildManifest, build_dir: Path, relative_to: Path, fmt: str) -> dict[str, Any]:
    """The build as a ``sam``, ``terraform`` or ``json`` document."""
    exporters: dict[str, Callable[[BuildManifest, Callable[[str], str]], dict[str, Any]]] = {
        "sam": sam_template,
        "terraform": terraform_json,
        "json": plain_json,
    }
    if fmt not in exporters:
        raise ConfigError(f"unknown export format {fmt!r}", "use one of: " + ", ".join(FORMATS))

    def where(path: str) -> str:
        return Path(os.path.relpath(build_dir / path, relative_to)).as_posix()

    return exporters[fmt](manifest, where)


def _runtime(manifest: BuildManifest) -> tuple[str, str]:
    """``("python3.12", "x86_64")`` of the manifest's target."""
    target = get_target(manifest.target)
    return f"python{target.python}", target.arch


def layer_key(layer: LayerEntry) -> str:
    """A layer's resource name: its id, as ``plan`` and ``manifest.json`` show it."""
    return layer.id


def _unique_layers(manifest: BuildManifest) -> dict[str, LayerEntry]:
    layers: dict[str, LayerEntry] = {}
    for entry in manifest.functions.values():
        for layer in entry.layers:
            layers[layer_key(layer)] = layer
    return dict(sorted(layers.items()))


def _logical_id(prefix: str, name: str) -> str:
    """CloudFormation logical ids are alphanumeric."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    return prefix + "".join(w[:1].upper() + w[1:] for w in words if w)


def sam_template(manifest: BuildManifest, where: Callable[[str], str]) -> dict[str, Any]:
    """An AWS SAM template: one LayerVersion per layer, functions listing theirs in order."""
    runtime, arch = _runtime(manifest)
    resources: dict[str, Any] = {}
    for key, layer in _unique_layers(manifest).items():
        resources[f"Layer{key}"] = {
            "Type": "AWS::Serverless::LayerVersion",
            "Properties": {
                "LayerName": f"lambda-pack-{key}",
                "Description": _describe(layer),
                "ContentUri": where(layer.path),
                "CompatibleRuntimes": [runtime],
                "CompatibleArchitectures": [arch],
                "RetentionPolicy": "Retain",
            },
        }
    for name, entry in sorted(manifest.functions.items()):
        resources[_logical_id("Function", name)] = _sam_function(name, entry, runtime, arch, where)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"Layers and functions built by pip-lambda-pack for {manifest.target}",
        "Resources": resources,
    }


def _sam_function(
    name: str, entry: FunctionEntry, runtime: str, arch: str, where: Callable[[str], str]
) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": name,
            "Handler": entry.handler,
            "Runtime": runtime,
            "Architectures": [arch],
            "CodeUri": where(entry.code.path),
            "Layers": [{"Ref": f"Layer{layer_key(layer)}"} for layer in entry.layers],
        },
    }


def _describe(layer: LayerEntry) -> str:
    text = ", ".join(layer.wheels)
    return text if len(text) <= 256 else text[:253] + "..."


def terraform_json(manifest: BuildManifest, where: Callable[[str], str]) -> dict[str, Any]:
    """Terraform JSON: aws_lambda_layer_version per layer, aws_lambda_function per function."""
    runtime, arch = _runtime(manifest)
    layers = {
        f"layer_{key}": {
            "layer_name": f"lambda-pack-{key}",
            "description": _describe(layer),
            "filename": where(layer.path),
            "source_code_hash": _b64(layer.sha256),
            "compatible_runtimes": [runtime],
            "compatible_architectures": [arch],
        }
        for key, layer in _unique_layers(manifest).items()
    }
    functions = {
        _tf_name(name): {
            "function_name": name,
            "handler": entry.handler,
            "runtime": runtime,
            "architectures": [arch],
            "filename": where(entry.code.path),
            "source_code_hash": _b64(entry.code.sha256),
            "role": "${var.lambda_role_arn}",
            "layers": [
                f"${{aws_lambda_layer_version.layer_{layer_key(layer)}.arn}}"
                for layer in entry.layers
            ],
        }
        for name, entry in sorted(manifest.functions.items())
    }
    return {
        "variable": {"lambda_role_arn": {"type": "string", "description": "execution role"}},
        "resource": {"aws_lambda_layer_version": layers, "aws_lambda_function": functions},
    }


def _tf_name(name: str) -> str:
    """Terraform names start with a letter or underscore; '-' is allowed after."""
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def _b64(hex_digest: str) -> str:
    """Terraform's source_code_hash: the base64 of the sha256 bytes."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def plain_json(manifest: BuildManifest, where: Callable[[str], str]) -> dict[str, Any]:
    """The build manifest with the runtime, architecture and paths from ``relative_to``."""
    runtime, arch = _runtime(manifest)
    data = manifest.to_dict()
    data["runtime"], data["architecture"] = runtime, arch
    for entry in data["functions"].values():
        entry["code"]["path"] = where(entry["code"]["path"])
        for layer in entry["layers"]:
            layer["path"] = where(layer["path"])
    return data

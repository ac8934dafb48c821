"""Build and task manifests: exact JSON, round trips, errors naming the bad field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pip_lambda_pack.errors import BuildError
from pip_lambda_pack.manifest import (
    BuildManifest,
    CodeEntry,
    FunctionEntry,
    LayerEntry,
    parse_task,
    read_manifest,
    task_of,
    write_manifest,
)
from pip_lambda_pack.wire import BlobRef, TaskLayer, TaskManifest

A = "a" * 64
B = "b" * 64
C = "c" * 64


def _manifest() -> BuildManifest:
    layer = LayerEntry(
        path=f"layers/{B}.zip", sha256=B, size=20, unzipped_size=30, wheels=("six==1.16.0",)
    )
    return BuildManifest(
        target="python3.12-x86_64",
        functions={
            "api": FunctionEntry(
                handler="app.handler",
                code=CodeEntry(path="functions/api.zip", sha256=A, size=10),
                layers=(layer,),
            )
        },
    )


EXPECTED_TEXT = f"""{{
  "format": "lambda-pack-manifest/1",
  "functions": {{
    "api": {{
      "code": {{
        "path": "functions/api.zip",
        "sha256": "{A}",
        "size": 10
      }},
      "handler": "app.handler",
      "layers": [
        {{
          "id": "{B[:12]}",
          "path": "layers/{B}.zip",
          "sha256": "{B}",
          "size": 20,
          "unzipped_size": 30,
          "wheels": [
            "six==1.16.0"
          ]
        }}
      ]
    }}
  }},
  "target": "python3.12-x86_64"
}}
"""


def test_write_exact_text_and_read_back(tmp_path: Path) -> None:
    path = write_manifest(_manifest(), tmp_path)
    assert path == tmp_path / "manifest.json"
    assert path.read_text() == EXPECTED_TEXT
    assert read_manifest(tmp_path) == _manifest()
    assert _manifest().functions["api"].code_path == "functions/api.zip"


def _broken(tmp_path: Path, edit: str, value: object) -> str:
    data = _manifest().to_dict()
    target = data
    *parents, last = edit.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BuildError) as info:
        read_manifest(tmp_path)
    assert info.value.tip == "build again"
    return info.value.message.removeprefix(f"{tmp_path / 'manifest.json'}: ")


def test_bad_fields_are_named_exactly(tmp_path: Path) -> None:
    assert (
        _broken(tmp_path, "functions.api.layers.0.sha256", "ABC")
        == "functions.api.layers[0].sha256 must be 64 lowercase hex digits"
    )
    assert (
        _broken(tmp_path, "functions.api.code.size", -1)
        == "functions.api.code.size must be a non-negative integer"
    )
    assert (
        _broken(tmp_path, "functions.api.layers.0.wheels", ["six==1", 3])
        == "functions.api.layers[0].wheels[1] must be a string"
    )
    assert (
        _broken(tmp_path, "functions.api.layers.0.path", "../../etc/passwd")
        == "functions.api.layers[0].path must be a relative path inside the build directory"
    )
    assert _broken(tmp_path, "format", "v2") == (
        "format must be 'lambda-pack-manifest/1', not 'v2'"
    )
    assert _broken(tmp_path, "functions.api.layers.0.size", True) == (
        "functions.api.layers[0].size must be a non-negative integer"
    )


def test_missing_field_and_missing_file(tmp_path: Path) -> None:
    data = _manifest().to_dict()
    del data["functions"]["api"]["handler"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BuildError, match=r"functions\.api\.handler is missing$"):
        read_manifest(tmp_path)
    with pytest.raises(BuildError, match="no build manifest at"):
        read_manifest(tmp_path / "nowhere")


def test_task_manifest_canonical_bytes_and_round_trip() -> None:
    task = task_of("api", "python3.12-x86_64", _manifest().functions["api"])
    assert task == TaskManifest(
        name="api",
        target="python3.12-x86_64",
        handler="app.handler",
        code=BlobRef(sha256=A, size=10),
        layers=(TaskLayer(sha256=B, size=20, unzipped_size=30, wheels=("six==1.16.0",)),),
    )
    assert (
        task.to_bytes()
        == (
            f'{{"code":{{"sha256":"{A}","size":10}},"format":"lambda-pack-task/1",'
            f'"handler":"app.handler","layers":[{{"sha256":"{B}","size":20,'
            f'"unzipped_size":30,"wheels":["six==1.16.0"]}}],"name":"api",'
            f'"target":"python3.12-x86_64"}}'
        ).encode()
    )
    assert task.sha256 == hashlib.sha256(task.to_bytes()).hexdigest()
    assert TaskManifest.from_bytes(task.to_bytes(), "blob") == task


def test_task_manifest_errors_name_source_and_field() -> None:
    with pytest.raises(BuildError) as info:
        parse_task(b'{"format": "lambda-pack-task/1"}', f"store X blob {C}")
    assert info.value.message == f"store X blob {C}: layers is missing"
    with pytest.raises(BuildError, match="not valid JSON"):
        parse_task(b"{", "blob")

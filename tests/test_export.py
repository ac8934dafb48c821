"""Exports for SAM and Terraform, checked by parsing and by cfn-lint."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from projects import HOST_TARGET, fill_wheelhouse, run, write_project


@pytest.fixture
def built(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return write_project(tmp_path / "project", wheelhouse)


def exported(project: Path, fmt: str) -> dict[str, object]:
    result = run(project, "export", "--format", fmt, "--out", "out", "-o", f"deploy/{fmt}.json")
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads((project / "deploy" / f"{fmt}.json").read_text())
    return data


def test_sam_template_lists_layers_in_order_and_passes_cfn_lint(built: Path) -> None:
    template = exported(built, "sam")
    manifest = json.loads((built / "out" / "manifest.json").read_text())
    resources = template["Resources"]
    assert isinstance(resources, dict)
    hello = resources["FunctionHello"]["Properties"]
    assert hello["Handler"] == "app.handler"
    assert hello["Runtime"] == "python%d.%d" % sys.version_info[:2]
    assert hello["CodeUri"] == "../out/functions/hello.zip"
    expected = [
        f"Layer{layer['sha256'][:12]}" for layer in manifest["functions"]["hello"]["layers"]
    ]
    assert [ref["Ref"] for ref in hello["Layers"]] == expected
    for ref in expected:
        layer = resources[ref]
        assert layer["Type"] == "AWS::Serverless::LayerVersion"
        assert (built / "deploy" / layer["Properties"]["ContentUri"]).is_file()
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    assert lint, "cfn-lint is installed by scripts/test"
    checked = subprocess.run(
        [lint, str(built / "deploy" / "sam.json")], capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_terraform_json_points_at_the_zips(built: Path) -> None:
    document = exported(built, "terraform")
    manifest = json.loads((built / "out" / "manifest.json").read_text())
    resource = document["resource"]
    assert isinstance(resource, dict)
    hello = resource["aws_lambda_function"]["hello"]
    code = manifest["functions"]["hello"]["code"]
    assert hello["filename"] == "../out/functions/hello.zip"
    assert base64.b64decode(hello["source_code_hash"]).hex() == code["sha256"]
    assert hello["runtime"] == "python" + HOST_TARGET.split("-")[0][len("python") :]
    for ref in hello["layers"]:
        name = ref.split(".")[1]
        layer = resource["aws_lambda_layer_version"][name]
        assert (built / "deploy" / layer["filename"]).is_file()
    assert "lambda_role_arn" in document["variable"]  # type: ignore[operator]


def test_unknown_format_is_refused(built: Path) -> None:
    result = run(built, "export", "--format", "cloudformation")
    assert result.returncode == 2
    assert "invalid choice: 'cloudformation'" in result.stderr

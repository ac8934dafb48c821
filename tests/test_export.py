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
    assert hello["FunctionName"] == "project-hello"  # the directory name is the prefix
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


def _lint(path: Path) -> None:
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    assert lint, "cfn-lint is installed by scripts/test"
    checked = subprocess.run([lint, str(path)], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr


SETTINGS = (
    'prefix = "shop"\n',
    'requirements = "requirements.txt"\nmemory = 512\ntimeout = 30\n'
    'ephemeral-storage-mb = 1024\ndescription = "says hello"\n'
    'role = "arn:aws:iam::123456789012:role/run"\n'
    'environment = { GREETING = "yes" }\ntags = { team = "web" }\n',
)


def _with_settings(project: Path) -> None:
    config = project / "lambda-pack.toml"
    prefix, hello = SETTINGS
    text = config.read_text().replace('requirements = "requirements.txt"\n', hello, 1)
    config.write_text(prefix + text)


def test_sam_yaml_has_the_function_settings_and_prefixed_names(built: Path) -> None:
    import yaml

    _with_settings(built)
    result = run(built, "export", "--format", "sam", "--out", "out", "-o", "deploy/template.yaml")
    assert result.returncode == 0, result.stderr
    text = (built / "deploy" / "template.yaml").read_text()
    assert not text.lstrip().startswith("{")  # block YAML, not JSON
    template = yaml.safe_load(text)
    as_json = run(built, "export", "--format", "sam", "--out", "out", "-o", "deploy/sam.json")
    assert as_json.returncode == 0
    assert template == json.loads((built / "deploy" / "sam.json").read_text())
    hello = template["Resources"]["FunctionHello"]["Properties"]
    assert hello["FunctionName"] == "shop-hello"
    assert (hello["MemorySize"], hello["Timeout"]) == (512, 30)
    assert hello["EphemeralStorage"] == {"Size": 1024}
    assert hello["Environment"] == {"Variables": {"GREETING": "yes"}}  # a string, not true
    assert hello["Tags"] == {"team": "web"}
    assert hello["Role"] == "arn:aws:iam::123456789012:role/run"
    assert hello["Description"] == "says hello"
    other = template["Resources"]["FunctionOther"]["Properties"]
    assert other["FunctionName"] == "shop-other"
    assert (other["MemorySize"], other["Timeout"]) == (128, 3)
    assert "Role" not in other and "Environment" not in other
    layers = [r for r in template["Resources"].values() if r["Type"].endswith("LayerVersion")]
    assert all(r["Properties"]["LayerName"].startswith("shop-") for r in layers)
    _lint(built / "deploy" / "template.yaml")


def test_terraform_has_the_function_settings(built: Path) -> None:
    _with_settings(built)
    document = exported(built, "terraform")
    functions = document["resource"]["aws_lambda_function"]  # type: ignore[index]
    hello, other = functions["hello"], functions["other"]
    assert hello["function_name"] == "shop-hello"
    assert (hello["memory_size"], hello["timeout"]) == (512, 30)
    assert hello["ephemeral_storage"] == {"size": 1024}
    assert hello["environment"] == {"variables": {"GREETING": "yes"}}
    assert hello["tags"] == {"team": "web"}
    assert hello["role"] == "arn:aws:iam::123456789012:role/run"
    assert other["role"] == "${var.lambda_role_arn}"


def test_yaml_writer_quotes_what_yaml_would_read_otherwise() -> None:
    import yaml

    from pip_lambda_pack.export import to_yaml

    document = {
        "a": ["yes", "1.0", "null", "", "x: y", "- z", "#c"],
        "b": {"on": True, "n": 3, "empty": {}, "none": []},
        "c d": [{"Ref": "X", "k": [1, {"m": "n"}]}, [2, 3]],
        "é": 'line\nbreak "quoted"',
    }
    assert yaml.safe_load(to_yaml(document)) == document

"""The Hatch build hook, run by hatchling itself building a sample project's wheel (offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from projects import HOST_TARGET, fill_wheelhouse

PYPROJECT = """\
[build-system]
requires = ["hatchling", "pip-lambda-pack"]
build-backend = "hatchling.build"

[project]
name = "orders"
version = "1.0"

[tool.hatch.build.targets.wheel]
packages = ["src/orders"]

[tool.hatch.build.hooks.lambda_pack]
enable-by-default = false

[tool.lambda-pack]
target = "{target}"
no-index = true
find-links = ["wheels"]

[tool.lambda-pack.functions.create]
handler = "orders.api.create"
code = "src"
dependencies = ["greet"]
"""


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "orders"
    (root / "src" / "orders").mkdir(parents=True)
    (root / "src" / "orders" / "__init__.py").write_text("")
    (root / "src" / "orders" / "api.py").write_text("def create(event, context):\n    return 1\n")
    (root / "wheels").mkdir()
    fill_wheelhouse(root / "wheels")
    (root / "pyproject.toml").write_text(PYPROJECT.format(target=HOST_TARGET))
    return root


def hatchling_build(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "wheel"],
        cwd=root,
        env={**os.environ, "LAMBDA_PACK_CACHE_DIR": str(root.parent / "cache"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_enabled_hook_builds_layers_next_to_the_wheel(sample: Path) -> None:
    result = hatchling_build(sample, HATCH_BUILD_HOOK_ENABLE_LAMBDA_PACK="true")
    assert result.returncode == 0, result.stdout + result.stderr
    dist = sample / "dist"
    assert [p.name for p in dist.glob("*.whl")] == ["orders-1.0-py2.py3-none-any.whl"]
    manifest = json.loads((dist / "lambda-pack" / "manifest.json").read_text())
    function = manifest["functions"]["create"]
    assert function["handler"] == "orders.api.create"
    wheels = [w for layer in function["layers"] for w in layer["wheels"]]
    assert sorted(wheels) == ["colors==2.0", "greet==1.0"]
    for layer in function["layers"]:
        with zipfile.ZipFile(dist / "lambda-pack" / layer["path"]) as archive:
            assert any(n.startswith("python/") for n in archive.namelist())
    assert (sample / "lambda-pack.lock").is_file()


def test_hook_is_off_by_default(sample: Path) -> None:
    result = hatchling_build(sample)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in (sample / "dist").iterdir()] == ["orders-1.0-py2.py3-none-any.whl"]


def test_a_broken_project_fails_the_build_with_our_message(sample: Path) -> None:
    pyproject = sample / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["greet"]', '["nothing-here"]'))
    result = hatchling_build(sample, HATCH_BUILD_HOOK_ENABLE_LAMBDA_PACK="true")
    assert result.returncode != 0
    assert "ERROR: " in result.stderr and "nothing-here" in result.stderr
    assert "pip-lambda-pack build failed (exit code " in result.stdout + result.stderr

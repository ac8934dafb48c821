"""Against the real PyPI: the right binary wheels for each target, from this one host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.network


def lambda_pack(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(cwd.parent / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "pip_lambda_pack", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def locked_files(tmp_path: Path, target: str, requirement: str) -> dict[str, str]:
    work = tmp_path / target
    (work / "src").mkdir(parents=True)
    (work / "requirements.txt").write_text(requirement + "\n")
    args = ["-r", "requirements.txt", "--handler", "app.handler", "--code", "src"]
    result = lambda_pack(work, "graph", "--format", "json", "--target", target, *args)
    assert result.returncode == 0, result.stderr
    packages = json.loads(result.stdout)["packages"]
    return {info["name"]: info["filename"] for info in packages.values()}


@pytest.mark.parametrize(
    ("target", "tag_part"),
    [
        ("python3.12-x86_64", "-cp312-cp312-manylinux"),
        ("python3.12-arm64", "-cp312-cp312-manylinux"),
        ("python3.11-x86_64", "-cp311-cp311-manylinux"),
        ("python3.13-arm64", "-cp313-cp313-manylinux"),
    ],
)
def test_pydantic_core_binary_matches_the_target(
    tmp_path: Path, target: str, tag_part: str
) -> None:
    files = locked_files(tmp_path, target, "pydantic==2.10.6")
    core = files["pydantic-core"]
    assert tag_part in core
    assert core.endswith("_aarch64.whl" if target.endswith("arm64") else "_x86_64.whl")
    assert files["pydantic"] == "pydantic-2.10.6-py3-none-any.whl"
    assert "typing-extensions" in files


def test_markers_follow_the_target_not_the_host(tmp_path: Path) -> None:
    # exceptiongroup is required only below Python 3.11 (by anyio): the host here is 3.11+.
    old = locked_files(tmp_path, "python3.10-x86_64", "anyio==4.6.2")
    new = locked_files(tmp_path, "python3.12-x86_64", "anyio==4.6.2")
    assert "exceptiongroup" in old
    assert "exceptiongroup" not in new

"""``poetry lambda-pack`` run by Poetry itself on a sample project locked by ``poetry lock``
against a local index (offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_wheel
from indexserver import IndexServer
from projects import HOST_TARGET, fill_wheelhouse

pytestmark = pytest.mark.slow

POETRY = str(Path(sys.executable).with_name("poetry"))
PYPROJECT = """\
[project]
name = "orders"
version = "1.0"
requires-python = ">=3.10"
dependencies = ["greet"]

[[tool.poetry.source]]
name = "local"
url = "{index}"
priority = "primary"

[tool.lambda-pack]
target = "{target}"
no-index = true
find-links = ["wheels"]

[tool.lambda-pack.functions.create]
handler = "api.create"
code = "src"
requirements = "poetry.lock"
"""


def poetry(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home = cwd.parent / "poetry-home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("POETRY_", "PIP_"))},
        "POETRY_CONFIG_DIR": str(home / "config"),
        "POETRY_CACHE_DIR": str(home / "cache"),
        "POETRY_DATA_DIR": str(home / "data"),
        "POETRY_VIRTUALENVS_CREATE": "false",
        "LAMBDA_PACK_CACHE_DIR": str(cwd.parent / "cache"),
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [POETRY, "--no-ansi", "--no-interaction", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A Poetry project whose index has only colors 1.0 when it is locked."""
    root = tmp_path / "orders"
    (root / "src").mkdir(parents=True)
    (root / "src" / "api.py").write_text("def create(event, context):\n    return 1\n")
    wheels = root / "wheels"
    wheels.mkdir()
    fill_wheelhouse(wheels)
    (wheels / "colors-2.0-py3-none-any.whl").unlink()
    return root


def test_poetry_lambda_pack_follows_poetry_lock(sample: Path, tmp_path: Path) -> None:
    with IndexServer(sample / "wheels", json=False) as index:
        (sample / "pyproject.toml").write_text(
            PYPROJECT.format(index=index.url + "/", target=HOST_TARGET)
        )
        missing = poetry(sample, "lambda-pack", "lock")
        assert missing.returncode == 2
        assert "poetry.lock is missing or stale" in missing.stderr
        assert "TIP: run: poetry lock" in missing.stderr
        ok(poetry(sample, "lock"))
    # a newer colors appears after poetry.lock was written: the lock still decides
    make_wheel(sample / "wheels", "colors", "2.0")
    out = ok(poetry(sample, "lambda-pack", "lock", "-v"))
    assert "wrote lambda-pack.lock" in out
    lock = (sample / "lambda-pack.lock").read_text()
    assert 'name = "colors"\nversion = "1.0"' in lock
    assert 'name = "greet"\nversion = "1.0"' in lock
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "lambda-pack.lock is fresh" in ok(
        poetry(elsewhere, "-C", str(sample), "lambda-pack", "check")
    )


def test_poetry_lists_the_command(tmp_path: Path) -> None:
    listing = ok(poetry(tmp_path, "list"))
    assert "  lambda-pack " in listing
    assert "Build Lambda layers for this project's functions from poetry.lock." in listing


def test_poetry_help_is_ours_and_verbosity_passes_through(sample: Path) -> None:
    for args in (["lambda-pack", "--help"], ["help", "lambda-pack"], ["lambda-pack", "-h"]):
        top = poetry(sample, *args)
        assert top.returncode == 0, top.stderr
        assert top.stdout.startswith("usage: poetry lambda-pack [-h] [-V] COMMAND ..."), args
        assert "Display help for the given command" not in top.stdout  # not Cleo's
    plan = ok(poetry(sample, "lambda-pack", "plan", "--help"))
    assert plan.startswith("usage: poetry lambda-pack plan [-h]")
    assert plan.rstrip().endswith("poetry lambda-pack plan --fleet bench/fleets/fleet-dev.json "
                                  "--report plan.html")  # fmt: skip
    with IndexServer(sample / "wheels", json=False) as index:
        (sample / "pyproject.toml").write_text(
            PYPROJECT.format(index=index.url + "/", target=HOST_TARGET)
        )
        ok(poetry(sample, "lock"))
    for args in (["lock", "-q"], ["-q", "lock"], ["--", "lock", "-q"]):
        quiet = poetry(sample, "lambda-pack", *args)
        assert (quiet.returncode, quiet.stderr) == (0, ""), args
    for args in (["lock", "-v"], ["lock", "-vv"], ["--", "lock", "-v"]):
        verbose = ok(poetry(sample, "lambda-pack", *args))
        assert "pinned greet 1.0 (greet-1.0-py3-none-any.whl)" in verbose, args
    normal = ok(poetry(sample, "lambda-pack", "lock"))
    assert "wrote lambda-pack.lock" in normal and "pinned" not in normal

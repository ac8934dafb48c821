"""A small two-function project over a wheelhouse of tiny wheels, and the CLI to drive it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import make_wheel

HOST_TARGET = "python%d.%d-x86_64" % sys.version_info[:2]
HANDLER = """\
from importlib.metadata import version

import greet


def handler(event, context):
    return {"message": greet.hello(event.get("name", "world")),
            "greet": version("greet"), "colors": version("colors"),
            "function": context.function_name}
"""
GREET = """\
import colors


def hello(name):
    return colors.paint("hello " + name)
"""


def run(
    cwd: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m pip_lambda_pack ARGS`` in ``cwd`` with its own cache and extra ``env``."""
    full = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(cwd / ".cache"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pip_lambda_pack", *args],
        cwd=cwd,
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def fill_wheelhouse(wheelhouse: Path) -> None:
    make_wheel(
        wheelhouse,
        "greet",
        "1.0",
        requires=["colors>=1"],
        files={"greet/__init__.py": GREET},
    )
    for version in ("1.0", "2.0"):
        make_wheel(
            wheelhouse,
            "colors",
            version,
            files={"colors/__init__.py": f"def paint(text):\n    return '[{version}] ' + text\n"},
        )
    make_wheel(wheelhouse, "tiny", "0.1")


def write_project(root: Path, wheelhouse: Path, *, reverse: bool = False) -> Path:
    """Two functions; ``reverse`` writes the same project with every list in another order."""
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "app.py").write_text(HANDLER)
    (root / "other").mkdir()
    (root / "other" / "app.py").write_text("def handler(event, context):\n    return event\n")
    lines = ["greet", "colors<2", "tiny"]
    (root / "requirements.txt").write_text("\n".join(reversed(lines) if reverse else lines) + "\n")
    tables = [
        '[functions.hello]\nhandler = "app.handler"\ncode = "hello"\n'
        'requirements = "requirements.txt"\n',
        '[functions.other]\nhandler = "app.handler"\ncode = "other"\ndependencies = ["tiny"]\n',
    ]
    config = (
        f'target = "{HOST_TARGET}"\nno-index = true\nfind-links = ["{wheelhouse}"]\n'
        + "\n".join(reversed(tables) if reverse else tables)
    )
    (root / "lambda-pack.toml").write_text(config)
    return root


def fleet_file(tmp_path: Path) -> Path:
    """A small lambda-pack-fleet/1 file (three functions, four wheels) in ``tmp_path``."""
    packages = {
        f"{name}==1.0": {
            "name": name,
            "version": "1.0",
            "size": size,
            "popularity": 1,
            "requires": [],
        }
        for name, size in [
            ("numpy", 30_000_000),
            ("requests", 400_000),
            ("six", 11_000),
            ("pyyaml", 700_000),
        ]
    }
    functions = {
        "api": {"requires": ["requests==1.0", "six==1.0"], "weight": 0.5},
        "etl": {"requires": ["numpy==1.0", "pyyaml==1.0", "six==1.0"], "weight": 0.3},
        "cron": {"requires": ["requests==1.0", "pyyaml==1.0"], "weight": 0.2},
    }
    path = tmp_path / "fleet.json"
    path.write_text(
        json.dumps({"format": "lambda-pack-fleet/1", "packages": packages, "functions": functions})
    )
    return path


def built_project(root: Path) -> Path:
    """The test project (tests/projects.py) over a fresh wheelhouse under root, built once."""
    return _project_after(root, "build")


def pushed_project(base: Path) -> Path:
    """The example project under ``base``, built and pushed to its local store."""
    return _project_after(base, "push")


def _project_after(base: Path, command: str) -> Path:
    """The test project over a fresh wheelhouse under ``base``, after ``command`` succeeded."""
    (base / "wheelhouse").mkdir()
    fill_wheelhouse(base / "wheelhouse")
    project = write_project(base / "project", base / "wheelhouse")
    done = run(project, command)
    assert done.returncode == 0, done.stderr
    return project

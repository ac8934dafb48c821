"""``invoke`` runs a function on an interpreter of its target: this one when it fits, else
the one the target-interpreter lookup finds (PATH, pyenv), before it asks for --python."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from projects import fill_wheelhouse, run
from test_cli import two_lines
from test_interpreters import PYENV_ROOT, _host_x86

OTHER_MINOR = next(
    (
        m
        for m in (12, 13, 10)
        if m != sys.version_info[1] and list(PYENV_ROOT.glob(f"versions/3.{m}.*"))
    ),
    None,
)
HANDLER = """\
import sys

import greet


def handler(event, context):
    return {"python": "%d.%d" % sys.version_info[:2], "greeting": greet.hello("you")}
"""


@pytest.fixture
def other_python_project(tmp_path: Path, wheelhouse: Path) -> Path:
    """One function built for another Python than this one (pure wheels load anywhere)."""
    if OTHER_MINOR is None:
        pytest.skip(f"needs a pyenv Python other than this one under {PYENV_ROOT}")
    fill_wheelhouse(wheelhouse)
    root = tmp_path / "project"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text(HANDLER)
    arch = "x86_64" if _host_x86() else "arm64"
    (root / "lambda-pack.toml").write_text(
        f'target = "python3.{OTHER_MINOR}-{arch}"\nno-index = true\n'
        f'find-links = ["{wheelhouse}"]\n\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\ndependencies = ["greet"]\n'
    )
    pushed = run(root, "push", "-q")
    assert pushed.returncode == 0, pushed.stderr
    return root


def test_invoke_finds_the_targets_python_itself(other_python_project: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYENV_ROOT": str(PYENV_ROOT)}
    done = run(other_python_project, "invoke", "fn", "--event", "-", stdin="{}", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "python": f"3.{OTHER_MINOR}",
        "greeting": "[2.0] hello you",  # colors 2.0, the newest
    }


def test_invoke_asks_for_python_only_when_none_is_found(
    other_python_project: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": str(empty), "PYENV_ROOT": str(empty), "HOME": str(empty)}
    error, tip = two_lines(run(other_python_project, "invoke", "fn", env=env))
    assert "cannot load wheels for python3." in error
    assert f"no CPython 3.{OTHER_MINOR} interpreter" in error
    assert tip.startswith(f"TIP: pass --python PATH to a Python 3.{OTHER_MINOR} on ")
    assert f"pyenv install 3.{OTHER_MINOR}" in tip

"""Direct references: a monorepo's ``-e ./lib`` and ``./lib``, ``pkg @ file:///...`` wheels
and sdists, ``pkg @ http://...whl``: built by the target's interpreter where they are
sources, hashed, and locked with portable paths like any other file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import make_sdist, make_wheel, sha256_file
from indexserver import IndexServer
from pip_lambda_pack.lock import read_lock
from projects import HOST_TARGET, run


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def source_tree(parent: Path, name: str, requires: list[str]) -> Path:
    """A source directory ``parent/<name>`` with an in-tree PEP 517 backend (builds offline)."""
    sdist = make_sdist(parent, name, "1.0", requires=requires)
    with tarfile.open(sdist) as archive:
        archive.extractall(parent, filter="data")
    sdist.unlink()
    tree = parent / f"{name}-1.0"
    target = parent / name
    tree.rename(target)
    with (target / "pyproject.toml").open("a") as pyproject:
        pyproject.write(f'\n[project]\nname = "{name}"\nversion = "1.0"\n')
    return target


def monorepo(root: Path, wheelhouse: Path, requirements: str) -> Path:
    make_wheel(wheelhouse, "colors", "1.0")
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text(
        "import shared, pkg\n\ndef handler(event, context):\n    return shared.BUILT\n"
    )
    source_tree(root, "shared", ["colors"])
    (root / "vendor").mkdir()
    make_wheel(root / "vendor", "pkg", "1.0")
    (root / "requirements.txt").write_text(requirements.format(root=root.as_uri()))
    (root / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\nno-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'requirements = "requirements.txt"\n'
    )
    return root


EDITABLE = "-e ./shared\npkg @ {root}/vendor/pkg-1.0-py3-none-any.whl\n"


def test_a_monorepo_with_an_editable_lib_and_a_file_wheel(tmp_path: Path, wheelhouse: Path) -> None:
    project = monorepo(tmp_path / "repo", wheelhouse, EDITABLE)
    ok(run(project, "lock", "-q"))
    lock = read_lock(project / "lambda-pack.lock")
    assert sorted(lock.wheels) == ["colors==1.0", "pkg==1.0", "shared==1.0"]
    text = (project / "lambda-pack.lock").read_text()
    assert 'url = "shared"' in text  # relative to the config, not this machine's path
    assert 'url = "vendor/pkg-1.0-py3-none-any.whl"' in text
    assert str(project) not in text
    pkg = lock.wheels["pkg==1.0"]
    assert pkg.sha256 == sha256_file(project / "vendor" / "pkg-1.0-py3-none-any.whl")
    assert lock.wheels["shared==1.0"].sdist and lock.wheels["shared==1.0"].requires == ("colors",)
    built = json.loads(ok(run(project, "build", "--json", "-q")).stdout)
    wheels = sorted(w for layer in built["functions"]["fn"]["layers"] for w in layer["wheels"])
    assert wheels == ["colors==1.0", "pkg==1.0", "shared==1.0"]
    assert ok(run(project, "check")).stderr == "lambda-pack.lock is fresh\n"
    (project / "shared" / "extra.py").write_text("X = 1\n")  # the lib changed: so does the lock
    stale = run(project, "check")
    assert stale.returncode == 1
    assert "requirements.txt changed" in stale.stderr
    ok(run(project, "build", "-q"))


def test_relative_paths_lock_the_same_in_a_moved_checkout(tmp_path: Path, wheelhouse: Path) -> None:
    requirements = "./shared\n./vendor/pkg-1.0-py3-none-any.whl\n"
    project = monorepo(tmp_path / "repo", wheelhouse, requirements)
    ok(run(project, "lock", "-q"))
    moved = tmp_path / "elsewhere" / "repo"
    shutil.copytree(project, moved, ignore=shutil.ignore_patterns(".cache"))
    assert ok(run(moved, "check")).stderr == "lambda-pack.lock is fresh\n"
    ok(run(moved, "lock", "-q"))
    assert (moved / "lambda-pack.lock").read_bytes() == (project / "lambda-pack.lock").read_bytes()


def test_http_wheel_and_file_sdist_references(
    tmp_path: Path, wheelhouse: Path, index_server: Callable[..., IndexServer]
) -> None:
    wheel = make_wheel(wheelhouse, "remote", "2.0")
    sdist = make_sdist(tmp_path, "fromsdist", "1.0")
    server = index_server()
    files = server.url.removesuffix("/simple") + "/files"
    requirements = (
        f"remote @ {files}/{wheel.name}#sha256={sha256_file(wheel)}\nfromsdist @ {sdist.as_uri()}\n"
    )
    project = monorepo(tmp_path / "repo", wheelhouse, requirements)
    ok(run(project, "lock", "-q"))
    lock = read_lock(project / "lambda-pack.lock")
    assert lock.wheels["remote==2.0"].url == f"{files}/{wheel.name}"
    assert lock.wheels["remote==2.0"].sha256 == sha256_file(wheel)
    assert lock.wheels["fromsdist==1.0"].sdist
    assert lock.wheels["fromsdist==1.0"].sha256 == sha256_file(sdist)
    ok(run(project, "build", "-q"))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("other @ {root}/vendor/pkg-1.0-py3-none-any.whl", "is a file of another project"),
        ("./missing", "./missing does not exist"),
        ("pkg @ git+https://example.com/pkg.git", "git+https references are not supported"),
    ],
)
def test_bad_direct_references(tmp_path: Path, wheelhouse: Path, line: str, error: str) -> None:
    project = monorepo(tmp_path / "repo", wheelhouse, line + "\n")
    result = run(project, "lock")
    assert result.returncode == 2, result.stderr
    assert error in result.stderr.splitlines()[-2]
    assert "Traceback" not in result.stderr


def test_a_native_local_tree_for_another_machine_is_refused_before_compiling(
    tmp_path: Path, wheelhouse: Path
) -> None:
    project = monorepo(tmp_path / "repo", wheelhouse, "./shared\n")
    (project / "shared" / "speedups.c").write_text("int f(void) { return 1; }\n")
    arch = "arm64" if "x86_64" in HOST_TARGET else "x86_64"
    result = run(project, "lock", "--target", "python%d.%d-%s" % (*sys.version_info[:2], arch))
    assert result.returncode == 2
    assert "shared has no wheel for" in result.stderr
    assert "is native (it has .c sources: speedups.c)" in result.stderr


def test_a_direct_file_must_match_its_hash(tmp_path: Path, wheelhouse: Path) -> None:
    line = "pkg @ {root}/vendor/pkg-1.0-py3-none-any.whl --hash=sha256:" + "0" * 64
    project = monorepo(tmp_path / "repo", wheelhouse, line + "\n")
    result = run(project, "lock")
    assert result.returncode == 2, result.stderr
    assert "which is not in its --hash list" in result.stderr.splitlines()[-2]


def test_a_tree_whose_build_needs_what_no_index_has(tmp_path: Path, wheelhouse: Path) -> None:
    project = monorepo(tmp_path / "repo", wheelhouse, "./legacy\n")
    (project / "legacy").mkdir()
    (project / "legacy" / "setup.cfg").write_text("[metadata]\nname = legacy\nversion = 1.0\n")
    (project / "legacy" / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (project / "legacy" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    result = run(project, "lock")
    assert result.returncode == 2, result.stderr
    error, tip = result.stderr.splitlines()[-2:]
    assert error.startswith(f"ERROR: building legacy for {HOST_TARGET} needs setuptools>=61")
    assert tip.startswith("TIP: put a wheel of setuptools")

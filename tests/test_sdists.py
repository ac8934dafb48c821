"""Sdists are built, and their metadata read, by an interpreter of the target's Python (pyenv's
3.10 and 3.12 here); a native sdist is refused before it is compiled when no interpreter of
the target's machine is here; a natively built wheel is accepted only when its shared
objects would load on the target."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from helpers import make_sdist, make_wheel
from pip_lambda_pack.errors import NoWheelError
from pip_lambda_pack.index import PackageFinder
from pip_lambda_pack.interpreters import Interpreter, find_interpreter
from pip_lambda_pack.resolve import ResolvedPackage, resolve
from pip_lambda_pack.sdists import PythonLookup, native_sign, tree_digest
from pip_lambda_pack.target import get_target
from projects import run

BACKPORT = 'if sys.version_info < (3, 11):\n    REQUIRES = REQUIRES + ["backport>=1"]'
DYNLOAD = Path(sys.base_prefix)  # this interpreter's own extension modules, real ELF files
ON_X86_64 = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the shared objects are this x86_64 host's"
)


def _resolve(
    requirements: Sequence[str],
    wheelhouse: Path,
    cache_dir: Path,
    target: str,
    python: PythonLookup | None = None,
    log: list[str] | None = None,
) -> dict[str, ResolvedPackage]:
    with PackageFinder(index_urls=(), find_links=(str(wheelhouse),), cache_dir=cache_dir) as f:
        return resolve(
            [Requirement(r) for r in requirements],
            target=get_target(target),
            finder=f,
            build_dir=cache_dir / "built",
            python=python,
            log=None if log is None else log.append,
        )


def nowhere(target: str, home: Path) -> PythonLookup:
    """A lookup that searches an empty PATH and a home without pyenv: finds nothing."""

    def lookup(any_machine: bool) -> Interpreter:
        env = {"PATH": "", "HOME": str(home)}
        return find_interpreter(get_target(target), env=env, any_machine=any_machine)

    return lookup


@pytest.mark.parametrize(
    ("target", "closure"),
    [("python3.10-x86_64", ["backport", "vdeps"]), ("python3.12-x86_64", ["vdeps"])],
)
def test_setup_code_sees_the_targets_python(
    wheelhouse: Path, cache_dir: Path, target: str, closure: list[str]
) -> None:
    make_sdist(wheelhouse, "vdeps", "1.0", build_time=BACKPORT)
    make_wheel(wheelhouse, "backport", "1.0")
    log: list[str] = []
    resolved = _resolve(["vdeps"], wheelhouse, cache_dir, target, log=log)
    assert sorted(resolved) == closure
    python = get_target(target).python
    assert any(
        line.startswith("building vdeps-1.0.tar.gz with ") and f"/{python}." in line for line in log
    ), log


def test_python_requires_is_checked_by_the_targets_python(
    wheelhouse: Path, cache_dir: Path
) -> None:
    make_sdist(wheelhouse, "newpy", "1.0", requires_python=">=3.12")
    resolved = _resolve(["newpy"], wheelhouse, cache_dir, "python3.12-x86_64")
    assert resolved["newpy"].built_from_sdist
    with pytest.raises(NoWheelError) as caught:
        _resolve(["newpy"], wheelhouse, cache_dir, "python3.10-x86_64")
    assert caught.value.message.startswith(
        "building newpy-1.0.tar.gz for python3.10-x86_64 with Python 3.10."
    )


def test_no_target_interpreter_is_an_error_naming_the_one_needed(
    wheelhouse: Path, cache_dir: Path, tmp_path: Path
) -> None:
    make_sdist(wheelhouse, "purepkg", "1.0")
    with pytest.raises(NoWheelError) as caught:
        _resolve(
            ["purepkg"],
            wheelhouse,
            cache_dir,
            "python3.12-x86_64",
            nowhere("python3.12-x86_64", tmp_path),
        )
    assert caught.value.message == (
        "purepkg-1.0.tar.gz has no wheel for python3.12-x86_64 and must be built by "
        "CPython 3.12, but no CPython 3.12 interpreter found for python3.12-x86_64 "
        "(none on PATH or in pyenv)"
    )
    assert "--target-python PATH" in caught.value.tip
    assert "pyenv install 3.12" in caught.value.tip


def test_a_native_sdist_is_refused_before_it_is_compiled(
    wheelhouse: Path, cache_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "compiled"
    make_sdist(
        wheelhouse,
        "psycopg2",
        "2.9.9",
        pure=False,
        files={"psycopg/psycopgmodule.c": "int main(void) { return 0; }\n"},
        build_time=f"open({str(marker)!r}, 'w').close()",
    )
    # this machine's interpreters are x86_64: none can build for arm64
    with pytest.raises(NoWheelError) as caught:
        _resolve(["psycopg2"], wheelhouse, cache_dir, "python3.12-arm64")
    assert caught.value.message == (
        "psycopg2-2.9.9.tar.gz has no wheel for python3.12-arm64 and is native (it has .c "
        "sources: psycopg/psycopgmodule.c); it can only be built by a CPython 3.12 on "
        "aarch64, and none is here, so it was not compiled"
    )
    assert caught.value.tip.startswith(
        "require psycopg2-binary instead (the usual prebuilt twin of psycopg2), "
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("files", "sign"),
    [
        (
            {"setup.py": "from setuptools import Extension, setup\nsetup(ext_modules=[])\n"},
            "its setup.py names ext_modules",
        ),
        (
            {"pyproject.toml": '[build-system]\nbuild-backend = "maturin"\n'},
            "its pyproject.toml names maturin",
        ),
        ({"src/lib.rs": "fn main() {}\n"}, "it has .rs sources: src/lib.rs"),
        ({"pkg/__init__.py": "", "README.md": "C extensions? no\n"}, None),
    ],
)
def test_native_signs(tmp_path: Path, files: dict[str, str], sign: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert native_sign(tmp_path) == sign


def _extension(name: str) -> bytes:
    found = sorted(DYNLOAD.glob(f"lib/python3.*/lib-dynload/{name}.cpython-*.so"))
    if not found:
        pytest.skip(f"no {name} extension module in {DYNLOAD}")
    return found[0].read_bytes()


@ON_X86_64
def test_a_native_build_by_the_targets_interpreter_is_accepted_when_it_loads_there(
    wheelhouse: Path, cache_dir: Path
) -> None:
    host = "python%d.%d-x86_64" % sys.version_info[:2]
    make_sdist(wheelhouse, "fastjson", "1.0", pure=False, shared_object=_extension("_json"))
    resolved = _resolve(["fastjson"], wheelhouse, cache_dir, host)
    assert resolved["fastjson"].built_from_sdist


@ON_X86_64
@pytest.mark.parametrize(
    ("shared_object", "problem"),
    [
        ("_bz2", "links libbz2.so.1.0, which Lambda does not have"),
        (None, "is not a shared object this tool can read"),
    ],
)
def test_a_native_build_that_would_not_load_is_refused(
    wheelhouse: Path, cache_dir: Path, shared_object: str | None, problem: str
) -> None:
    host = "python%d.%d-x86_64" % sys.version_info[:2]
    data = _extension(shared_object) if shared_object else b""
    make_sdist(wheelhouse, "native", "2.0", pure=False, shared_object=data)
    with pytest.raises(NoWheelError) as caught:
        _resolve(["native"], wheelhouse, cache_dir, host)
    tag = "cp%d%d" % sys.version_info[:2]
    assert caught.value.message.startswith(
        f"native-2.0.tar.gz has no wheel for {host}, and it builds a platform-specific wheel "
        f"(native-2.0-{tag}-{tag}-linux_x86_64.whl) whose native/_speedups.so {problem}"
    )


def test_lock_and_build_for_python310_through_the_command_line(
    wheelhouse: Path, tmp_path: Path
) -> None:
    make_sdist(wheelhouse, "vdeps", "1.0", build_time=BACKPORT)
    make_wheel(wheelhouse, "backport", "1.0")
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (project / "lambda-pack.toml").write_text(
        f'target = "python3.10-x86_64"\nno-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.f]\nhandler = "app.handler"\ncode = "app"\ndependencies = ["vdeps"]\n'
    )
    python = find_interpreter(get_target("python3.10-x86_64")).path
    result = run(project, "build", "--target-python", str(python), "-q", "--json")
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)["functions"]["f"]["layers"]
    assert sorted(w for layer in layers for w in layer["wheels"]) == [
        "backport==1.0",
        "vdeps==1.0",
    ]
    fresh = {"LAMBDA_PACK_CACHE_DIR": str(tmp_path / "fresh-cache")}  # nothing built yet
    wrong = run(project, "lock", "--target-python", sys.executable, env=fresh)
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines()[-2].startswith("ERROR: ")
    assert f"is Python {sys.version_info[0]}.{sys.version_info[1]}, not 3.10" in wrong.stderr


def test_a_tree_digest_sees_sources_not_what_builds_leave(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("X = 1\n")
    first = tree_digest(tmp_path)
    for left in ("build/lib/x.py", "pkg.egg-info/PKG-INFO", "pkg/__pycache__/a.pyc"):
        (tmp_path / left).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / left).write_text("built\n")
    (tmp_path / "lambda-pack.lock").write_text("# ours\n")
    assert tree_digest(tmp_path) == first
    (tmp_path / "pkg" / "__init__.py").write_text("X = 2\n")
    assert tree_digest(tmp_path) != first

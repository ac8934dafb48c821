"""pyproject.toml, pylock.toml, uv.lock and poetry.lock as function inputs, for the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from helpers import make_wheel, sha256_file
from pip_lambda_pack.config import Selection
from pip_lambda_pack.errors import ConfigError, NoWheelError
from pip_lambda_pack.inputs import (
    input_kind,
    poetry_lock_requirements,
    pylock_requirements,
    pyproject_requirements,
    uv_lock_requirements,
)
from pip_lambda_pack.target import get_target
from projects import run

X86 = get_target("python3.12-x86_64")
ARM = get_target("python3.12-arm64")
OLD = get_target("python3.10-x86_64")
H = {c: c * 64 for c in "abcdef0123"}


def test_input_kind_by_file_name() -> None:
    assert input_kind(Path("pylock.toml")) == "pylock"
    assert input_kind(Path("pylock.prod.toml")) == "pylock"
    assert input_kind(Path("uv.lock")) == "uv-lock"
    assert input_kind(Path("sub/poetry.lock")) == "poetry-lock"
    assert input_kind(Path("pyproject.toml")) == "pyproject"
    assert input_kind(Path("requirements-prod.txt")) == "requirements"


def test_pyproject_dependencies_extras_and_groups() -> None:
    data = {
        "project": {
            "dependencies": ["requests>=2"],
            "optional-dependencies": {"s3": ["boto3"], "fast": ["orjson"]},
        },
        "dependency-groups": {
            "base": ["attrs"],
            "prod": ["gunicorn", {"include-group": "base"}],
        },
    }
    chosen = pyproject_requirements(data, Selection(extras=("s3",), groups=("prod",)), "p")
    assert chosen.requirements == ("requests>=2", "boto3", "gunicorn", "attrs")
    with pytest.raises(ConfigError, match="no optional dependencies named 'gpu'"):
        pyproject_requirements(data, Selection(extras=("gpu",)), "p")
    with pytest.raises(ConfigError, match="no dependency group named 'test'"):
        pyproject_requirements(data, Selection(groups=("test",)), "p")


def pylock() -> dict[str, Any]:
    wheel = "https://files.example/{}"
    return {
        "lock-version": "1.0",
        "created-by": "tests",
        "packages": [
            {
                "name": "fast",
                "version": "1.0",
                "index": "https://pypi.org/simple",
                "wheels": [
                    {
                        "name": "fast-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                        "url": wheel.format("fast-x86.whl"),
                        "hashes": {"sha256": H["a"]},
                    },
                    {
                        "name": "fast-1.0-cp312-cp312-manylinux_2_17_aarch64.whl",
                        "url": wheel.format("fast-arm.whl"),
                        "hashes": {"sha256": H["b"]},
                    },
                ],
            },
            {
                "name": "backport",
                "version": "2.0",
                "marker": 'python_version < "3.11"',
                "wheels": [
                    {
                        "name": "backport-2.0-py3-none-any.whl",
                        "url": wheel.format("b.whl"),
                        "hashes": {"sha256": H["c"]},
                    }
                ],
            },
        ],
    }


def test_pylock_selects_the_wheel_of_the_target() -> None:
    x86 = pylock_requirements(pylock(), X86, Selection(), "pylock.toml")
    assert x86.requirements == ("fast==1.0",)
    assert x86.hashes == (("fast", (H["a"],)),)
    assert x86.index.extra_index_urls == ("https://pypi.org/simple",)
    arm = pylock_requirements(pylock(), ARM, Selection(), "pylock.toml")
    assert arm.hashes == (("fast", (H["b"],)),)


def test_pylock_markers_are_the_targets() -> None:
    data = pylock()
    data["packages"] = data["packages"][1:]
    assert pylock_requirements(data, OLD, Selection(), "p").requirements == ("backport==2.0",)
    assert pylock_requirements(data, X86, Selection(), "p").requirements == ()


def test_pylock_without_a_wheel_for_the_target_is_a_clear_error() -> None:
    data = pylock()
    data["packages"][0]["wheels"] = data["packages"][0]["wheels"][:1]  # x86_64 only
    with pytest.raises(NoWheelError) as info:
        pylock_requirements(data, ARM, Selection(), "pylock.toml")
    assert info.value.message.startswith("pylock.toml: nothing locked fits python3.12-arm64")


def uv_lock() -> dict[str, Any]:
    def package(name: str, version: str, sha: str, **more: Any) -> dict[str, Any]:
        return {
            "name": name,
            "version": version,
            "source": {"registry": "https://pypi.org/simple"},
            "wheels": [{"url": f"https://f/{name}.whl", "hash": f"sha256:{sha}", "size": 1}],
            **more,
        }

    return {
        "version": 1,
        "requires-python": ">=3.10",
        "package": [
            {
                "name": "app",
                "version": "0.1.0",
                "source": {"virtual": "."},
                "dependencies": [
                    {"name": "requests", "extra": ["socks"]},
                    {"name": "backport", "marker": "python_full_version < '3.11'"},
                    {"name": "colorama", "marker": "sys_platform == 'win32'"},
                ],
                "optional-dependencies": {"s3": [{"name": "boto3"}]},
                "dev-dependencies": {"dev": [{"name": "pytest"}]},
            },
            package(
                "requests",
                "2.32.3",
                H["a"],
                dependencies=[{"name": "idna"}],
                **{"optional-dependencies": {"socks": [{"name": "pysocks"}]}},
            ),
            package("idna", "3.10", H["b"]),
            package("pysocks", "1.7.1", H["c"]),
            package("backport", "1.0", H["d"]),
            package("colorama", "0.4.6", H["e"]),
            package("boto3", "1.35.0", H["f"]),
            package("pytest", "8.0.0", H["0"]),
        ],
    }


def test_uv_lock_walks_from_the_project_with_target_markers() -> None:
    new = uv_lock_requirements(uv_lock(), X86, Selection(), "uv.lock")
    assert new.requirements == ("idna==3.10", "pysocks==1.7.1", "requests==2.32.3")
    assert dict(new.hashes)["requests"] == (H["a"],)
    old = uv_lock_requirements(uv_lock(), OLD, Selection(extras=("s3",)), "uv.lock")
    assert "backport==1.0" in old.requirements and "boto3==1.35.0" in old.requirements
    dev = uv_lock_requirements(uv_lock(), X86, Selection(groups=("dev",)), "uv.lock")
    assert "pytest==8.0.0" in dev.requirements
    with pytest.raises(ConfigError, match="the lock has no 'gpu'"):
        uv_lock_requirements(uv_lock(), X86, Selection(extras=("gpu",)), "uv.lock")


def poetry_files() -> tuple[dict[str, Any], dict[str, Any]]:
    def package(name: str, version: str, sha: str, **more: Any) -> dict[str, Any]:
        files = [{"file": f"{name}-{version}-py3-none-any.whl", "hash": f"sha256:{sha}"}]
        return {"name": name, "version": version, "files": files, **more}

    lock = {
        "package": [
            package(
                "requests",
                "2.32.3",
                H["a"],
                dependencies={
                    "idna": ">=2.5",
                    "PySocks": {"version": ">=1.5.6", "optional": True},
                    "exceptiongroup": {"version": "*", "python": "<3.11"},
                },
                extras={"socks": ["PySocks (>=1.5.6)"]},
            ),
            package("idna", "3.10", H["b"]),
            package("pysocks", "1.7.1", H["c"]),
            package("exceptiongroup", "1.2.2", H["d"]),
            package("pytest", "8.0.0", H["0"]),
        ],
        "metadata": {"lock-version": "2.1", "python-versions": "^3.10"},
    }
    project = {
        "tool": {
            "poetry": {
                "dependencies": {"python": "^3.10", "requests": {"version": "^2.32"}},
                "group": {"test": {"dependencies": {"pytest": "^8"}}},
            }
        }
    }
    return lock, project


def test_poetry_lock_walks_from_pyproject_with_python_constraints() -> None:
    lock, project = poetry_files()
    new = poetry_lock_requirements(lock, project, X86, Selection(), "poetry.lock")
    assert new.requirements == ("idna==3.10", "requests==2.32.3")
    old = poetry_lock_requirements(lock, project, OLD, Selection(groups=("test",)), "poetry.lock")
    assert old.requirements == (
        "exceptiongroup==1.2.2",
        "idna==3.10",
        "pytest==8.0.0",
        "requests==2.32.3",
    )


# -- end to end: a uv.lock honoured exactly, offline -------------------------------------


def test_uv_lock_input_is_honoured_exactly(tmp_path: Path, wheelhouse: Path) -> None:
    old = make_wheel(wheelhouse, "colors", "1.0")
    make_wheel(wheelhouse, "colors", "2.0")  # newer, but not what the lock says
    (tmp_path / "src").mkdir()
    lock = uv_lock()
    lock["package"] = [
        {
            "name": "app",
            "version": "0.1.0",
            "source": {"virtual": "."},
            "dependencies": [{"name": "colors"}],
        },
        {
            "name": "colors",
            "version": "1.0",
            "source": {"registry": "https://pypi.org/simple"},
            "wheels": [{"url": old.name, "hash": f"sha256:{sha256_file(old)}"}],
        },
    ]
    (tmp_path / "uv.lock").write_text(tomli_w.dumps(lock))
    (tmp_path / "lambda-pack.toml").write_text(
        f'target = "python3.12-x86_64"\nno-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.f]\nhandler = "app.handler"\ncode = "src"\nrequirements = "uv.lock"\n'
    )
    result = run(tmp_path, "lock")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "lambda-pack.lock").read_text()
    assert 'version = "1.0"' in text and 'version = "2.0"' not in text
    assert run(tmp_path, "check").returncode == 0
    lock["package"][1]["wheels"][0]["hash"] = "sha256:" + "0" * 64
    (tmp_path / "uv.lock").write_text(tomli_w.dumps(lock))
    assert run(tmp_path, "check").returncode == 1  # the lock input changed
    failed = run(tmp_path, "lock")
    assert failed.returncode == 2
    assert "colors" in failed.stderr and "Traceback" not in failed.stderr


def test_shortcut_reads_a_lock_file_too(tmp_path: Path, wheelhouse: Path) -> None:
    wheel = make_wheel(wheelhouse, "colors", "1.0")
    make_wheel(wheelhouse, "colors", "2.0")
    (tmp_path / "src").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.poetry.dependencies]\npython = "^3.10"\ncolors = "*"\n'
    )
    files = [{"file": wheel.name, "hash": f"sha256:{sha256_file(wheel)}"}]
    lock = {"package": [{"name": "colors", "version": "1.0", "files": files}]}
    (tmp_path / "poetry.lock").write_text(tomli_w.dumps(lock))
    args = ["-r", "poetry.lock", "--handler", "app.handler", "--code", "src"]
    args += ["--no-index", "--find-links", str(wheelhouse), "--target", "python3.12-x86_64"]
    result = run(tmp_path, "graph", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    assert '"colors==1.0"' in result.stdout and "colors==2.0" not in result.stdout


def test_private_indexes_named_by_locks_become_extra_indexes() -> None:
    lock = uv_lock()
    lock["package"][2]["source"] = {"registry": "https://pkgs.example/simple/"}
    chosen = uv_lock_requirements(lock, X86, Selection(), "uv.lock")
    assert chosen.index.extra_index_urls == ("https://pkgs.example/simple",)
    poetry, project = poetry_files()
    poetry["package"][1]["source"] = {
        "type": "legacy",
        "url": "https://poetry.example/simple",
        "reference": "private",
    }
    chosen = poetry_lock_requirements(poetry, project, X86, Selection(), "poetry.lock")
    assert chosen.index.extra_index_urls == ("https://poetry.example/simple",)

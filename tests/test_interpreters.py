"""The target-interpreter lookup, against the real pyenv interpreters of this machine."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

from pip_lambda_pack.config import load_project
from pip_lambda_pack.errors import ConfigError, InterpreterError, InterpreterNotFoundError
from pip_lambda_pack.interpreters import find_interpreter, find_optional, for_project, probe
from pip_lambda_pack.target import get_target

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def pyenv_python(minor: int) -> Path:
    """The real interpreter of pyenv's newest 3.MINOR, or skip the test without it."""
    found = sorted(PYENV_ROOT.glob(f"versions/3.{minor}.*/bin/python"))
    if not found:
        pytest.skip(f"needs pyenv's Python 3.{minor} under {PYENV_ROOT}")
    return found[-1]


def bare_env(
    tmp_path: Path, *, path: Path | None = None, pyenv: Path | None = None
) -> dict[str, str]:
    """An environment with nothing on PATH and no pyenv unless given."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return {
        "PATH": str(path or empty),
        "PYENV_ROOT": str(pyenv or empty),
        "HOME": str(empty),
    }


def fake_pyenv(tmp_path: Path, versions: dict[str, Path]) -> Path:
    """A pyenv root whose ``versions/NAME/bin/python`` link to real interpreters."""
    root = tmp_path / "pyenv"
    for name, python in versions.items():
        bin_dir = root / "versions" / name / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").symlink_to(python)
    return root


@pytest.mark.parametrize("minor", [10, 12, 13])
def test_pyenv_versions_are_found_and_verified_by_running_them(tmp_path: Path, minor: int) -> None:
    real = pyenv_python(minor)
    target = get_target(f"python3.{minor}-x86_64" if _host_x86() else f"python3.{minor}-arm64")
    found = find_interpreter(target, env=bare_env(tmp_path, pyenv=PYENV_ROOT))
    assert found.source == "pyenv"
    assert found.python_version == (3, minor)
    assert found.cache_tag == f"cpython-3{minor}"
    assert found.implementation == "cpython"
    assert found.path.resolve() == real.resolve()


def test_python_on_path_comes_before_pyenv_and_a_misfit_there_is_skipped(tmp_path: Path) -> None:
    lying, honest = tmp_path / "lying", tmp_path / "honest"
    lying.mkdir()
    honest.mkdir()
    (lying / "python3.12").symlink_to(pyenv_python(10))
    (honest / "python3.12").symlink_to(pyenv_python(12))
    pyenv = fake_pyenv(tmp_path, {"3.12.1": pyenv_python(12)})
    target = get_target(_own_target(12))
    found = find_interpreter(target, env=bare_env(tmp_path, path=lying, pyenv=pyenv))
    assert (found.source, found.python) == ("pyenv", "3.12")
    found = find_interpreter(target, env=bare_env(tmp_path, path=honest, pyenv=pyenv))
    assert (found.source, found.path) == ("PATH", honest / "python3.12")


def test_pyenv_prefers_the_newest_final_release(tmp_path: Path) -> None:
    real = pyenv_python(12)
    pyenv = fake_pyenv(tmp_path, {"3.12.0": real, "3.12.9rc1": real, "3.12.10": real})
    broken = pyenv / "versions" / "3.12.10" / "bin" / "python"
    broken.unlink()
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    target = get_target(_own_target(12))
    with pytest.raises(InterpreterNotFoundError):
        find_interpreter(get_target(_own_target(13)), env=bare_env(tmp_path, pyenv=pyenv))
    # 3.12.10 fails to run, so the next final (3.12.0) wins over the release candidate
    found = find_interpreter(target, env=bare_env(tmp_path, pyenv=pyenv))
    assert (found.source, found.path) == ("pyenv", pyenv / "versions/3.12.0/bin/python")
    assert probe(str(broken)) == "fails to run (exit code 3)"


def test_none_found_names_the_interpreter_and_how_to_give_it(tmp_path: Path) -> None:
    target = get_target("python3.14-x86_64")
    with pytest.raises(InterpreterNotFoundError) as caught:
        find_interpreter(target, env=bare_env(tmp_path))
    error = caught.value
    assert error.exit_code == 2
    assert error.message == (
        "no CPython 3.14 interpreter on x86_64 found for python3.14-x86_64"
        " (none on PATH or in pyenv)"
    )
    assert error.tip == (
        "install one (pyenv install 3.14), put python3.14 on PATH, pass --target-python PATH,"
        ' or set python = {"python3.14-x86_64" = "/path/to/python3.14"} in [tool.lambda-pack]'
    )
    assert find_optional(target, env=bare_env(tmp_path)) is None


def test_other_machine_is_a_misfit_unless_any_machine(tmp_path: Path) -> None:
    other = get_target("python3.12-arm64" if _host_x86() else "python3.12-x86_64")
    pyenv = fake_pyenv(tmp_path, {"3.12.1": pyenv_python(12)})
    env = bare_env(tmp_path, pyenv=pyenv)
    with pytest.raises(InterpreterNotFoundError) as caught:
        find_interpreter(other, env=env)
    assert f"runs on {_host_machine()}, not {other.machine}" in caught.value.message
    assert find_interpreter(other, env=env, any_machine=True).python == "3.12"


def test_flag_wins_and_a_wrong_flag_is_an_error_not_a_skip(tmp_path: Path) -> None:
    target = get_target(_own_target(12))
    env = bare_env(tmp_path, pyenv=PYENV_ROOT)
    wrong = pyenv_python(10)
    with pytest.raises(InterpreterError) as caught:
        find_interpreter(target, flag=wrong, env=env)
    assert not isinstance(caught.value, InterpreterNotFoundError)
    assert caught.value.message == f"{wrong} (from --target-python) is Python 3.10, not 3.12"
    assert caught.value.tip == (
        f"point --target-python at a CPython 3.12 interpreter on {target.machine}"
    )
    found = find_interpreter(target, flag=pyenv_python(12), env=env)
    assert found.source == "--target-python"
    missing = tmp_path / "nope" / "python"
    with pytest.raises(InterpreterError, match="cannot be run"):
        find_interpreter(target, flag=missing, env=env)


def test_config_by_target_name_then_version_then_any(tmp_path: Path) -> None:
    target = get_target(_own_target(12))
    env = bare_env(tmp_path)
    py12, py13 = str(pyenv_python(12)), str(pyenv_python(13))
    by_name = {target.name: py12, "3.12": py13, "": py13}
    assert (
        find_interpreter(target, configured=by_name, env=env).path.resolve() == Path(py12).resolve()
    )
    with pytest.raises(InterpreterError, match=r"\(from the python config key\) is Python 3.13"):
        find_interpreter(target, configured={"3.12": py13, "": py12}, env=env)
    found = find_interpreter(target, configured={"": py12}, env=env)
    assert found.source == "the python config key"


def test_probe_runs_each_interpreter_once_per_process(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    wrapper = tmp_path / "counting-python"
    wrapper.write_text(f'#!/bin/sh\necho run >> {counter}\nexec {pyenv_python(12)} "$@"\n')
    wrapper.chmod(0o755)
    target = get_target(_own_target(12))
    for _ in range(3):
        found = find_interpreter(target, flag=wrapper, env=bare_env(tmp_path))
        assert found.python == "3.12"
    assert probe(str(wrapper)) is not None
    assert counter.read_text() == "run\n"


def test_project_python_key_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    config = tmp_path / "lambda-pack.toml"
    body = '[functions.f]\nhandler = "app.handler"\ncode = "app"\ndependencies = []\n'
    config.write_text(
        'python = {"python3.12-x86_64" = "bin/python3.12", "3.13" = "python3.13"}\n' + body
    )
    project = load_project(config)
    assert project.python == (
        ("3.13", "python3.13"),
        ("python3.12-x86_64", str(tmp_path / "bin" / "python3.12")),
    )
    config.write_text(f'python = "{pyenv_python(12)}"\n' + body)
    project = load_project(config)
    assert project.python == (("", str(pyenv_python(12))),)
    found = for_project(project, get_target(_own_target(12)))
    assert found.source == "the python config key"
    config.write_text("python = 3\n" + body)
    with pytest.raises(ConfigError, match="python must be a path or a table"):
        load_project(config)


def test_target_python_flag_reaches_the_project(tmp_path: Path) -> None:
    from pip_lambda_pack.cli import build_parser

    args = build_parser().parse_args(["lock", "--target-python", sys.executable])
    assert args.target_python == Path(sys.executable)


def _host_machine() -> str:
    machine = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)


def _host_x86() -> bool:
    return _host_machine() == "x86_64"


def _own_target(minor: int) -> str:
    return f"python3.{minor}-{'x86_64' if _host_x86() else 'arm64'}"

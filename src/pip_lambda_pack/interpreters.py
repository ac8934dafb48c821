"""Finding an interpreter of the target's Python on this machine (sdist builds, bytecode).

One lookup, in this order: the ``--target-python`` flag, the project's ``python`` config
key, ``python3.X`` on ``PATH`` (pyenv's shims skipped: they are slow scripts, and the next
step finds what they would run), then pyenv's versions (``$PYENV_ROOT`` and ``~/.pyenv``,
else what ``pyenv root`` says: ``versions/3.X.*/bin/python``, newest final release
first). Every candidate is run once to learn what it really is (version, machine,
implementation); the answers are cached for the life of the process. A candidate the user
named that does not fit is an error; one found by searching that does not fit is skipped,
with the reason kept for the error message.

This module is an edge: it runs programs and reads ``PATH``, ``PYENV_ROOT`` and ``HOME``
from the environment it is given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InterpreterError, InterpreterNotFoundError
from .target import Target

if TYPE_CHECKING:
    from .config import Project

# platform.machine() spellings -> the target's machine names (x86_64, aarch64)
MACHINES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}
_PROBE = (
    "import json, platform, sys, sysconfig; print(json.dumps({"
    "'version': list(sys.version_info[:3]), 'machine': platform.machine(), "
    "'implementation': sys.implementation.name, 'cache_tag': sys.implementation.cache_tag, "
    "'executable': sys.executable, "
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))"
)
_PROBE_TIMEOUT = 60.0
_PYENV_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?$")
_PRERELEASE = {"a": 0, "b": 1, "rc": 2, None: 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Interpreter:
    """A Python interpreter that was run and reported what it is."""

    path: Path  # sys.executable as the interpreter itself reports it (no pyenv shim)
    version: tuple[int, int, int]
    machine: str  # normalised: x86_64 or aarch64
    implementation: str  # sys.implementation.name: cpython
    cache_tag: str  # sys.implementation.cache_tag: cpython-312
    free_threaded: bool
    source: str  # how it was found: --target-python, config, PATH, pyenv

    @property
    def python_version(self) -> tuple[int, int]:
        return self.version[:2]

    @property
    def python(self) -> str:
        """``3.12``."""
        return "%d.%d" % self.python_version

    @property
    def full_version(self) -> str:
        """``3.12.1``."""
        return "%d.%d.%d" % self.version

    def misfit(self, target: Target, *, any_machine: bool = False) -> str | None:
        """Why this interpreter cannot stand in for ``target``, or None when it can."""
        if self.implementation != "cpython":
            return f"is {self.implementation}, not CPython"
        if self.python_version != target.python_version:
            return f"is Python {self.python}, not {target.python}"
        if self.free_threaded:
            return "is a free-threaded build (the target's ABI is " + target.abi + ")"
        if not any_machine and self.machine != target.machine:
            return f"runs on {self.machine}, not {target.machine}"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Candidate:
    path: str
    source: str
    explicit: bool  # named by the user: a misfit is an error, not a skip


_PROBED: dict[str, Interpreter | str] = {}
_FOUND: dict[tuple[object, ...], Interpreter] = {}
_PYENV_ROOTS: dict[tuple[str, str], str | None] = {}


def find_interpreter(
    target: Target,
    *,
    flag: Path | None = None,
    configured: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    any_machine: bool = False,
) -> Interpreter:
    """The first interpreter that can run code for ``target``.

    ``flag`` is ``--target-python``; ``configured`` is the project's ``python`` table
    (keys: a target name such as ``python3.12-x86_64``, a version ``3.12``, or ``""`` for
    any target; values: a path or a command name). ``env`` supplies ``PATH``,
    ``PYENV_ROOT`` and ``HOME`` (default: this process's environment). With
    ``any_machine`` an interpreter of another architecture will do (bytecode does not
    depend on the machine). Raises InterpreterError when a named interpreter does not fit
    and InterpreterNotFoundError when the search finds none.
    """
    env = os.environ if env is None else env
    configured = configured or {}
    key = (target.name, flag, tuple(sorted(configured.items())), any_machine, _env_key(env))
    if key not in _FOUND:
        _FOUND[key] = _search(target, flag, configured, env, any_machine)
    return _FOUND[key]


def for_project(project: Project, target: Target, *, any_machine: bool = False) -> Interpreter:
    """find_interpreter with the project's ``--target-python`` and ``python`` config."""
    return find_interpreter(
        target,
        flag=project.target_python,
        configured=dict(project.python),
        any_machine=any_machine,
    )


def find_optional(
    target: Target,
    *,
    flag: Path | None = None,
    configured: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    any_machine: bool = False,
) -> Interpreter | None:
    """Like find_interpreter, but None when the search finds none (a named misfit still raises)."""
    try:
        return find_interpreter(
            target, flag=flag, configured=configured, env=env, any_machine=any_machine
        )
    except InterpreterNotFoundError:
        return None


def configured_path(configured: Mapping[str, str], target: Target) -> str | None:
    """The configured interpreter for ``target``: by target name, then version, then any."""
    for key in (target.name, target.python, f"python{target.python}", ""):
        if key in configured:
            return configured[key]
    return None


def probe(path: str) -> Interpreter | str:
    """Run ``path`` once and ask what it is; the Interpreter, or why it cannot be used."""
    if path not in _PROBED:
        _PROBED[path] = _run_probe(path)
    return _PROBED[path]


def _search(
    target: Target,
    flag: Path | None,
    configured: Mapping[str, str],
    env: Mapping[str, str],
    any_machine: bool,
) -> Interpreter:
    tried: list[str] = []
    for candidate in _candidates(target, flag, configured, env):
        found = probe(candidate.path)
        reason = found if isinstance(found, str) else found.misfit(target, any_machine=any_machine)
        if reason is None and not isinstance(found, str):
            return _with_source(found, candidate.source)
        if candidate.explicit:
            raise InterpreterError(
                f"{candidate.path} (from {candidate.source}) {reason}",
                f"point {candidate.source} at a CPython {target.python} interpreter"
                + ("" if any_machine else f" on {target.machine}"),
            )
        tried.append(f"{candidate.path} {reason}")
    raise InterpreterNotFoundError(
        target=target.name,
        python=target.python,
        machine=None if any_machine else target.machine,
        tried=tuple(tried),
    )


def _with_source(found: Interpreter, source: str) -> Interpreter:
    if found.source == source:
        return found
    return Interpreter(
        path=found.path,
        version=found.version,
        machine=found.machine,
        implementation=found.implementation,
        cache_tag=found.cache_tag,
        free_threaded=found.free_threaded,
        source=source,
    )


def _candidates(
    target: Target, flag: Path | None, configured: Mapping[str, str], env: Mapping[str, str]
) -> Iterator[_Candidate]:
    if flag is not None:
        yield _Candidate(path=_command(str(flag), env), source="--target-python", explicit=True)
        return
    named = configured_path(configured, target)
    if named is not None:
        yield _Candidate(path=_command(named, env), source="the python config key", explicit=True)
        return
    for on_path in _on_path(f"python{target.python}", env):
        yield _Candidate(path=on_path, source="PATH", explicit=False)
    for path in _pyenv_pythons(target.python_version, env):
        yield _Candidate(path=str(path), source="pyenv", explicit=False)


def _command(value: str, env: Mapping[str, str]) -> str:
    """A path as given (made absolute), or a bare command name looked up on ``PATH``."""
    if os.sep in value or "/" in value:
        return os.path.abspath(value)
    return shutil.which(value, path=env.get("PATH", os.defpath)) or value


def _pyenv_pythons(version: tuple[int, int], env: Mapping[str, str]) -> list[Path]:
    """``ROOT/versions/3.X.*/bin/python`` of every pyenv root, finals first, newest first."""
    found: list[tuple[tuple[int, int], Path]] = []
    for root in _pyenv_roots(env):
        versions = Path(root, "versions")
        if not versions.is_dir():
            continue
        for entry in versions.iterdir():
            match = _PYENV_VERSION.match(entry.name)
            if match is None or (int(match[1]), int(match[2])) != version:
                continue
            python = entry / "bin" / "python"
            if python.is_file():
                found.append(((_PRERELEASE[match[4]], int(match[3])), python))
    found.sort(key=lambda item: (item[0], item[1].name), reverse=True)
    return list(dict.fromkeys(path for _, path in found))


def _on_path(command: str, env: Mapping[str, str]) -> list[str]:
    """Every executable ``command`` on ``PATH``, in order, pyenv's shims left out."""
    found = []
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        path = Path(folder or ".", command)
        if path.is_file() and os.access(path, os.X_OK) and not _pyenv_shim(path):
            found.append(str(path))
    return list(dict.fromkeys(found))


def _pyenv_shim(path: Path) -> bool:
    """Whether ``path`` is one of pyenv's shims (a slow script; the pyenv search that
    follows finds the interpreter it would run)."""
    return path.parent.name == "shims" and (path.parent.parent / "versions").is_dir()


def _pyenv_roots(env: Mapping[str, str]) -> list[str]:
    """``$PYENV_ROOT``, ``~/.pyenv``, and only when neither exists what ``pyenv root`` says."""
    roots = [env.get("PYENV_ROOT", "")]
    if env.get("HOME"):
        roots.append(str(Path(env["HOME"], ".pyenv")))
    roots = [root for root in dict.fromkeys(roots) if root and Path(root, "versions").is_dir()]
    return roots or [root for root in [_pyenv_root_command(env)] if root]


def _pyenv_root_command(env: Mapping[str, str]) -> str:
    """What ``pyenv root`` prints (once per PATH), or "" without a working pyenv."""
    key = (env.get("PATH", ""), env.get("PYENV_ROOT", ""))
    if key not in _PYENV_ROOTS:
        _PYENV_ROOTS[key] = _run_pyenv_root(env)
    return _PYENV_ROOTS[key] or ""


def _run_pyenv_root(env: Mapping[str, str]) -> str | None:
    pyenv = shutil.which("pyenv", path=env.get("PATH", os.defpath))
    if pyenv is None:
        return None
    try:
        done = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT, env=dict(env)
        )
    except (OSError, subprocess.SubprocessError):
        return None
    root = done.stdout.strip()
    return root if done.returncode == 0 and root else None


def _run_probe(path: str) -> Interpreter | str:
    try:
        done = subprocess.run(
            [path, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=_PROBE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return f"did not answer within {_PROBE_TIMEOUT:.0f} s"
    except OSError as exc:
        return f"cannot be run ({exc.strerror or exc})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[0]
        return f"fails to run ({last})"
    return _parse_probe(done.stdout, path)


def _parse_probe(output: str, path: str) -> Interpreter | str:
    try:
        data = json.loads(output.strip().splitlines()[-1])
        major, minor, micro = (int(part) for part in data["version"])
        machine = str(data["machine"])
        return Interpreter(
            path=Path(str(data["executable"]) or path),
            version=(major, minor, micro),
            machine=MACHINES.get(machine.lower(), machine),
            implementation=str(data["implementation"]),
            cache_tag=str(data["cache_tag"]),
            free_threaded=bool(data["free_threaded"]),
            source="",
        )
    except (ValueError, KeyError, IndexError, TypeError):
        return "is not a Python interpreter this tool understands"


def _env_key(env: Mapping[str, str]) -> tuple[str, str, str]:
    return (env.get("PATH", ""), env.get("PYENV_ROOT", ""), env.get("HOME", ""))

"""Wheels built from sdists and source trees, by an interpreter of the target's Python.

A build runs ``pip wheel`` in the target's interpreter (``interpreters.py``), so a
``setup.py`` that reads ``sys.version_info`` and a ``python_requires`` see the target's
Python, never the host's. A pure-Python result may come from an interpreter of any machine;
a platform-specific one only from an interpreter of the target's machine, for the target's
ABI, needing no newer glibc than the target has. Before anything is compiled, a source that
shows the signs of native code (C/C++/Cython/Rust sources, ``ext_modules``, a native build
backend) is refused when no interpreter of the target's machine is available: building it
would take minutes and could only end in a wheel we must reject.
"""

from __future__ import annotations

import contextlib
import email.parser
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_wheel_filename

from .atomic import sha256_of
from .errors import InterpreterNotFoundError, NoWheelError
from .interpreters import Interpreter, find_interpreter
from .progress import Log
from .target import Target

BUILD_TIMEOUT = 1800  # seconds for one build
BUILD_FORMAT = 2  # part of the cache key: 1 was built by the host's Python
# any_machine -> the target's interpreter (InterpreterNotFoundError when there is none)
PythonLookup = Callable[[bool], Interpreter]
WaysOut = Callable[[str, str], NoWheelError]  # (message, project) -> the error with a tip

NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".pyx", ".rs", ".f90", ".cu")
NATIVE_BACKENDS = ("maturin", "mesonpy", "scikit_build_core", "pybind11", "setuptools_rust")
NATIVE_SETUP = ("ext_modules", "Extension(", "cffi_modules", "rust_extensions")
_SMALL = 1 << 20  # bytes of a setup.py / pyproject.toml read for the signs

# Projects that publish only an sdist (or mainly one) with a usual prebuilt twin.
BINARY_TWINS = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "pysqlite3": "pysqlite3-binary",
    "mysqlclient": "PyMySQL (pure Python)",
    "pycrypto": "pycryptodome",
    "sasl": "pure-sasl",
    "python-snappy": "cramjam",
    "pylibmc": "pymemcache (pure Python)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """What to build: an sdist file or a source directory, and how it reads in messages."""

    path: Path
    name: str  # canonical project name (may be a directory's name before it is known)
    label: str  # psycopg2-2.9.9.tar.gz, or ./lib
    key: str  # the cache key: the sdist's sha256, or a digest of the tree


def default_lookup(target: Target) -> PythonLookup:
    """The interpreter lookup with no flag or config: PATH, then pyenv."""

    def lookup(any_machine: bool) -> Interpreter:
        return find_interpreter(target, any_machine=any_machine)

    return lookup


def build_wheel(
    source: Source,
    *,
    target: Target,
    build_dir: Path,
    python: PythonLookup,
    pip_args: Sequence[str],
    ways_out: WaysOut,
    log: Log | None = None,
) -> Path:
    """The wheel built from ``source`` for ``target``, cached under ``build_dir``.

    ``pip_args`` say where build dependencies come from (index options for ``pip wheel``).
    Raises NoWheelError (with ``ways_out``'s tip) when the source cannot give a wheel that
    runs on the target, InterpreterNotFoundError when the target's Python is not here.
    """
    out = Path(build_dir) / f"{BUILD_FORMAT}-{source.key}-{target.name}"
    built = sorted(out.glob("*.whl"))
    if not built:
        interpreter = _builder(source, target, python, ways_out)
        if log:
            log(f"building {source.label} with {interpreter.path} ({interpreter.source})")
        _run_pip_wheel(source, out, interpreter, pip_args, target, ways_out)
        built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        raise ways_out(f"building {source.label} gave {len(built)} wheels, not 1", source.name)
    problem = unfit(built[0], target)
    if problem:
        raise ways_out(
            f"{source.label} has no wheel for {target.name}, and it builds {problem}",
            source.name,
        )
    return built[0]


def _builder(
    source: Source, target: Target, python: PythonLookup, ways_out: WaysOut
) -> Interpreter:
    """The interpreter to build with: of the target's machine for a native source."""
    sign = native_sign(source.path)
    try:
        return python(sign is None)
    except InterpreterNotFoundError as exc:
        if sign is None:
            raise NoWheelError(
                f"{source.label} has no wheel for {target.name} and must be built by "
                f"CPython {target.python}, but {exc.message}",
                exc.tip,
            ) from None
        raise ways_out(
            f"{source.label} has no wheel for {target.name} and is native ({sign}); it can "
            f"only be built by a CPython {target.python} on {target.machine}, and none is "
            "here, so it was not compiled",
            source.name,
        ) from None


TREE_SKIP = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".tox", ".nox", "build", "dist"}
    | {".mypy_cache", ".pytest_cache", ".ruff_cache", ".lambda-pack", "node_modules"}
)


def tree_digest(path: Path) -> str:
    """A digest of a source tree's files (paths, executable bits, bytes), skipping what
    builds and tools leave in it (``build/``, ``*.egg-info``, caches, VCS folders)."""
    digest = hashlib.sha256()
    for file in sorted(_tree_files(path)):
        relative = file.relative_to(path).as_posix()
        executable = os.access(file, os.X_OK)
        digest.update(f"{relative}\0{int(executable)}\0{sha256_of(file)}\n".encode())
    return digest.hexdigest()


def _tree_files(path: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in TREE_SKIP and not d.endswith(".egg-info")]
        for name in files:  # the lock, when the tree is the project (-e .), is our output
            if not name.endswith((".pyc", ".pyo")) and name != "lambda-pack.lock":
                yield Path(root, name)


def native_sign(path: Path) -> str | None:
    """Why the sdist or source tree at ``path`` looks like it compiles native code, or None."""
    for name, read in _members(path):
        if name.lower().endswith(NATIVE_SUFFIXES):
            return f"it has {Path(name).suffix} sources: {name}"
        base = name.rsplit("/", 1)[-1]
        if base in ("setup.py", "pyproject.toml", "setup.cfg") and name.count("/") <= 1:
            text = read()
            found = next((s for s in (*NATIVE_SETUP, *NATIVE_BACKENDS) if s in text), None)
            if found is not None:
                return f"its {base} names {found}"
    return None


def _members(path: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    """(archive path, reader of its text) of every file of an sdist or a source tree."""
    if path.is_dir():
        for file in sorted(_tree_files(path)):
            yield file.relative_to(path).as_posix(), _file_reader(file)
    elif path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                yield _strip_root(info.filename), _zip_reader(archive, info)
    else:
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    yield _strip_root(member.name), _tar_reader(archive, member)


def _strip_root(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name else name


def _file_reader(file: Path) -> Callable[[], str]:
    return lambda: file.read_bytes()[:_SMALL].decode("utf-8", "replace")


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], str]:
    return lambda: archive.read(info)[:_SMALL].decode("utf-8", "replace")


def _tar_reader(archive: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], str]:
    def read() -> str:
        handle = archive.extractfile(member)
        return handle.read(_SMALL).decode("utf-8", "replace") if handle else ""

    return read


def unfit(wheel: Path, target: Target) -> str | None:
    """Why a built wheel cannot run on ``target`` (``a platform-specific wheel (NAME) ...``),
    or None: pure Python, or for the target's ABI and machine with shared objects that need
    no newer glibc than the target's and no library outside manylinux's (or the wheel)."""
    if _is_pure(wheel):
        return None
    what = f"a platform-specific wheel ({wheel.name})"
    tags = parse_wheel_filename(wheel.name)[3]
    if not all(t.abi in (target.abi, "abi3") and t.platform.endswith(target.machine) for t in tags):
        return f"{what} for another Python or machine"
    try:
        from .elf import shared_object_problem
    except ImportError:
        return f"{what}, and checking it needs pip-lambda-pack[native] (pyelftools)"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        bundled = {name.rsplit("/", 1)[-1] for name in names}
        for name in names:
            if _is_shared_object(name):
                problem = shared_object_problem(archive.read(name), target, bundled)
                if problem:
                    return f"{what} whose {name} {problem}"
    return None


def _is_shared_object(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def _is_pure(wheel: Path) -> bool:
    """``Root-Is-Purelib: true`` and only ``none-any`` tags."""
    tags = parse_wheel_filename(wheel.name)[3]
    if not all(tag.abi == "none" and tag.platform == "any" for tag in tags):
        return False
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/WHEEL")]
        names = [n for n in names if n.split("/")[0].endswith(".dist-info")]
        if not names:
            return False
        message = email.parser.BytesParser().parsebytes(archive.read(names[0]))
    return str(message.get("Root-Is-Purelib", "")).strip().lower() == "true"


def twin_tip(name: str) -> str:
    """``require psycopg2-binary instead, `` where a project has a usual prebuilt twin."""
    twin = BINARY_TWINS.get(name)
    return f"require {twin} instead (the usual prebuilt twin of {name}), " if twin else ""


def _missing_build_dependency(lines: Sequence[str]) -> str | None:
    """The build requirement pip says it could not find (``setuptools>=40.8.0``), or None."""
    for line in lines:
        found = re.search(r"satisfies the requirement (\S+)", line)
        if found:
            return found[1]
    return None


def _run_pip_wheel(
    source: Source,
    out: Path,
    interpreter: Interpreter,
    pip_args: Sequence[str],
    target: Target,
    ways_out: WaysOut,
) -> None:
    """Build into a temp dir beside ``out``, then move it into place in one rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".build-"))
    command = [str(interpreter.path), "-I", "-m", "pip", "wheel", "--no-deps"]
    command += ["--disable-pip-version-check", "--no-input", "-q", "-w", str(temp)]
    command += [*pip_args, str(source.path)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            reason = lines[-1].strip() if lines else f"exit code {done.returncode}"
            missing = _missing_build_dependency(lines)
            if missing:
                raise NoWheelError(
                    f"building {source.label} for {target.name} needs {missing}, which is "
                    "on none of the indexes and find-links it may use",
                    f"put a wheel of {missing} in --find-links, or drop --no-index",
                )
            raise ways_out(
                f"building {source.label} for {target.name} with Python "
                f"{interpreter.full_version} failed: {reason}",
                source.name,
            )
        with contextlib.suppress(OSError):  # another process built it first: keep theirs
            os.rename(temp, out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)

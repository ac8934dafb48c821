"""Bytecode for the target: PEP 552 hash-based ``.pyc`` compiled by the target's Python.

Lambda's ``/opt`` and ``/var/task`` are read-only, so a module without a valid ``.pyc``
beside it is compiled again at every cold start. Hash-based ``.pyc`` files carry the
source's hash instead of its mtime, so no zip timestamp can make them stale, and their
bytes depend only on the source and the compiling interpreter's version.

Compiling runs in subprocesses of the target interpreter (``-S``, hash seed 0, no
``PYTHON*`` variables). A ``.pyc``'s bytes can depend on what the same process compiled
before (CPython 3.12 shares a frozenset constant between functions or not depending on
whether its strings were interned earlier: 8 of the bench corpus's 6,045 modules differ
between a batch and alone), so each process compiles one *batch*: the modules of one
top-level package (or module) in path order, at most ``CHUNK`` of them. A batch's output
is a function of its input alone, so it is the unit of the on-disk cache
(``cache_dir/bytecode``, keyed by the sha256 of the batch's sources and file names, the
mode, the compiler's version and the worker's text; each file carries the sha256 of its
body, checked on every read) and the same package compiles to the same bytes in every
layer that holds it. Optimisation level 0, as Lambda runs Python.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .atomic import remove_stale, write_bytes
from .errors import BuildError, ConfigError
from .interpreters import Interpreter
from .target import Target
from .workers import usable_cpus

_T = TypeVar("_T")
_R = TypeVar("_R")
MODES = ("checked-hash", "unchecked-hash", "none")
DEFAULT_MODE = "checked-hash"
CHUNK = 200  # sources per compile process at most; fixed, so the output never depends on the pool
BATCHING = "top-level/200"  # how sources are cut into batches: part of what the bytes depend on
_LIMIT = threading.BoundedSemaphore(usable_cpus())  # compile processes at once
_RUNNING: dict[str, Future[bytes]] = {}  # batches being compiled, by key: asked for twice, run once
_RUNNING_LOCK = threading.Lock()
_WORKER = """\
import struct, sys
from importlib.util import source_hash
from importlib._bootstrap_external import _code_to_hash_pyc
data = sys.stdin.buffer.read()
checked = sys.argv[1] == "checked-hash"
out = sys.stdout.buffer
pos = 0
while pos < len(data):
    n, m = struct.unpack_from("<II", data, pos)
    dfile = data[pos + 8:pos + 8 + n].decode("utf-8")
    source = data[pos + 8 + n:pos + 8 + n + m]
    pos += 8 + n + m
    try:
        code = compile(source, dfile, "exec", dont_inherit=True, optimize=0)
        pyc = bytes(_code_to_hash_pyc(code, source_hash(source), checked))
        del code
    except Exception:
        pyc = b""
    out.write(struct.pack("<I", len(pyc)) + pyc)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Compiler:
    """How ``.py`` files become ``.pyc``: the mode and the interpreter that compiles."""

    mode: str  # checked-hash or unchecked-hash
    interpreter: Interpreter
    cache_dir: Path | None = None  # verified batches of .pyc; None: compile everything

    @property
    def key(self) -> list[str]:
        """What the bytes of a ``.pyc`` depend on, for cache keys and build stamps."""
        return [self.mode, self.interpreter.cache_tag, self.interpreter.full_version, BATCHING]


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A module to compile: its path in the zip and the file name its code object keeps."""

    path: str  # python/pkg/mod.py inside a layer zip, pkg/mod.py in a code zip
    dfile: str  # /opt/python/pkg/mod.py: where it lives at run time, for tracebacks
    data: bytes
    group: str = ""  # the wheel (or folder) it came from: batches never mix two groups


def target_cache_tag(target: Target) -> str:
    """The target's ``sys.implementation.cache_tag``: ``cpython-312``."""
    return "cpython-%d%d" % target.python_version


def check_mode(value: object, where: str) -> str:
    """``value`` when it is a bytecode mode; ConfigError naming ``where`` otherwise."""
    if value not in MODES:
        raise ConfigError(
            f"{where}: bytecode must be one of {', '.join(MODES)}, not {value!r}",
            f'write bytecode = "{DEFAULT_MODE}" (the default) or "none"',
        )
    return str(value)


def pyc_path(source: str, cache_tag: str) -> str:
    """``pkg/mod.py`` -> ``pkg/__pycache__/mod.cpython-312.pyc`` (PEP 3147, level 0)."""
    folder, _, name = source.rpartition("/")
    pyc = f"__pycache__/{name.removesuffix('.py')}.{cache_tag}.pyc"
    return f"{folder}/{pyc}" if folder else pyc


def compile_sources(compiler: Compiler, sources: Sequence[Source]) -> dict[str, bytes]:
    """The ``.pyc`` bytes of each source by its path; sources that do not compile for the
    target (a syntax error there) are left out, as pip and compileall do. Batches found in
    the compiler's cache are not compiled again."""
    results = _each(lambda batch: _compiled_batch(compiler, batch), source_batches(sources))
    return {path: pyc for result in results for path, pyc in result.items()}


def fill_cache(compiler: Compiler, sources: Sequence[Source]) -> None:
    """Compile the batches of ``sources`` that the compiler's cache lacks into it (as a
    wheel lands); a batch already there is not read: the layer's compile reads it."""
    jobs = [_job(compiler, batch) for batch in source_batches(sources)]
    missing = [job for job in jobs if job[2] is not None and not job[2].is_file()]
    _each(lambda job: _compiled_once(compiler, *job), missing)


def _each(work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``work`` of each item, in a pool of as many threads as CPUs (the compile processes
    they start are limited to as many as well)."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(len(items), usable_cpus())) as pool:
        return list(pool.map(work, items))


def source_batches(sources: Sequence[Source]) -> list[list[Source]]:
    """``sources`` cut into the batches one process compiles: by group and top-level
    package (``python/pkg``, ``python/mod.py``), in path order, ``CHUNK`` at most; largest
    first, so the pool's two ends finish together. (Cutting at 2 MB of source as well, so
    that no batch is a long tail, cost the bench corpus 1-2 CPU s more in process starts
    than it saved: its largest batch, 7.6 MB, starts first.)"""
    groups: dict[tuple[str, str], list[Source]] = {}
    for source in sorted(sources, key=lambda source: (source.group, source.path)):
        groups.setdefault((source.group, _top_level(source.path)), []).append(source)
    batches = [
        group[i : i + CHUNK]
        for _, group in sorted(groups.items())
        for i in range(0, len(group), CHUNK)
    ]
    return sorted(batches, key=lambda batch: -sum(len(source.data) for source in batch))


def importable(path: str) -> bool:
    """Whether some module name reaches ``path`` (``pkg/mod.py`` below a ``sys.path``
    entry): a dotted name cannot name a folder or module whose own name holds a dot, so
    ``pkg-1.0.dist-info/x.py``, ``pkg.libs/x.py`` and ``setup.cfg.py`` are never imported
    (the import system would compile them itself if code put their folder on ``sys.path``).
    Names that are not identifiers (``foo-bar/x.py``) are reachable through
    ``importlib.import_module`` and stay."""
    *folders, name = path.split("/")
    return "." not in name.removesuffix(".py") and not any("." in part for part in folders)


def _top_level(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[: 2 if parts[0] == "python" and len(parts) > 1 else 1])


def _compiled_batch(compiler: Compiler, batch: Sequence[Source]) -> dict[str, bytes]:
    """One batch's ``.pyc`` bytes: from the cache when a verified copy is there, else
    compiled (and cached)."""
    key, payload, where = _job(compiler, batch)
    output = _read_cached(where) if where else None
    if where is not None and output is not None:
        try:
            compiled = _parse_output(compiler, batch, output)
            with contextlib.suppress(OSError):
                os.utime(where)  # its last use, which ``prune_cache`` evicts by
            return compiled
        except BuildError:
            pass  # the right size for another batch, never ours: compile it again
    return _parse_output(compiler, batch, _compiled_once(compiler, key, payload, where))


def _compiled_once(compiler: Compiler, key: str, payload: bytes, where: Path | None) -> bytes:
    """The worker's output for ``payload``; when another thread is compiling the same
    batch (a wheel compiled as it lands, then its layer), its output once it is done."""
    with _RUNNING_LOCK:
        running = _RUNNING.get(key)
        if running is None:
            mine: Future[bytes] = Future()
            _RUNNING[key] = mine
    if running is not None:
        return running.result()
    try:
        output = _run_worker(compiler, payload)
        if where is not None:
            write_bytes(where, hashlib.sha256(output).digest() + output)
        mine.set_result(output)
        return output
    except BaseException as exc:
        mine.set_exception(exc)
        raise
    finally:
        with _RUNNING_LOCK:
            del _RUNNING[key]


def _job(compiler: Compiler, batch: Sequence[Source]) -> tuple[str, bytes, Path | None]:
    """A batch's key, the worker's input and where its output is cached (None: no cache)."""
    payload = b"".join(_frame(source) for source in batch)
    key = _batch_key(compiler, payload)
    cache = compiler.cache_dir
    return key, payload, cache / key[:2] / f"{key}.pycs" if cache else None


def _batch_key(compiler: Compiler, payload: bytes) -> str:
    digest = hashlib.sha256("\0".join([*compiler.key, _WORKER]).encode())
    digest.update(payload)
    return digest.hexdigest()


def cache_usage(folder: Path) -> tuple[int, int]:
    """How many batches of ``.pyc`` ``folder`` (a compiler's ``cache_dir``) holds, and
    their bytes."""
    found = _cached_batches(folder)
    return len(found), sum(size for _, _, size, _ in found)


def _cached_batches(folder: Path) -> list[tuple[float, str, int, Path]]:
    """(last use, name, bytes, path) of each batch in ``folder``, temp files left out."""
    found = []
    for path in folder.glob("*/[!.]*.pycs") if folder.is_dir() else ():  # not .tmp-*
        with contextlib.suppress(OSError):
            stat = path.stat()
            found.append((stat.st_mtime, path.name, stat.st_size, path))
    return found


def prune_cache(folder: Path, max_bytes: int) -> tuple[int, int]:
    """Remove the least recently used batches of ``.pyc`` in ``folder`` (a compiler's
    ``cache_dir``) until the rest fits ``max_bytes`` (0: all of them), and the temp files
    of killed writers; how many batches went and their bytes. A build reading a batch as
    it goes only compiles that batch again."""
    found = _cached_batches(folder)
    total = sum(size for _, _, size, _ in found)
    removed = freed = 0
    for _, _, size, path in sorted(found):
        if total <= max_bytes:
            break
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed, freed = removed + 1, freed + size
        total -= size
    for sub in folder.iterdir() if folder.is_dir() else ():
        remove_stale(sub)
    return removed, freed


def _read_cached(path: Path) -> bytes | None:
    """The worker output stored at ``path`` when its recorded sha256 matches, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    body = data[32:]
    return body if hashlib.sha256(body).digest() == data[:32] else None


def _run_worker(compiler: Compiler, payload: bytes) -> bytes:
    command = [str(compiler.interpreter.path), "-S", "-s", "-c", _WORKER, compiler.mode]
    with _LIMIT:
        try:
            done = subprocess.run(command, input=payload, capture_output=True, env=_worker_env())
        except OSError as exc:
            raise _failed(compiler, str(exc)) from None
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise _failed(compiler, f"exit code {done.returncode}: {last}")
    return done.stdout


def _frame(source: Source) -> bytes:
    name = source.dfile.encode("utf-8")
    return struct.pack("<II", len(name), len(source.data)) + name + source.data


def _parse_output(compiler: Compiler, chunk: Sequence[Source], output: bytes) -> dict[str, bytes]:
    compiled: dict[str, bytes] = {}
    pos = 0
    for source in chunk:
        if pos + 4 > len(output):
            raise _failed(compiler, "its output ended early")
        (size,) = struct.unpack_from("<I", output, pos)
        pyc = output[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if len(pyc) != size:
            raise _failed(compiler, "its output ended early")
        if size:
            compiled[source.path] = pyc
    if pos != len(output):
        raise _failed(compiler, "it wrote more than was asked for")
    return compiled


def _worker_env() -> dict[str, str]:
    """This environment without ``PYTHON*`` variables, and hash seed 0 (set and frozenset
    constants are marshalled in iteration order, which the seed decides)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    return env


def _failed(compiler: Compiler, detail: str) -> BuildError:
    return BuildError(
        f"compiling bytecode with {compiler.interpreter.path} failed ({detail})",
        "build with --bytecode none, or give another interpreter with --target-python",
    )

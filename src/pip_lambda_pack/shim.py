"""Runtime shim: provision a function's code and layers from a store, then call its handler.

Standard library only, one file, Python 3.10 to 3.14: it runs inside a Lambda runtime as
well as on a laptop. It reads the function's task manifest from the store, makes sure
every blob is unpacked in a node-local cache (verified, atomic, one fetch per blob even
under concurrent processes), puts the code and the layers on ``sys.path`` in Lambda's
order and calls ``handler(event, context)``. The result is JSON on stdout (anything the
handler prints goes to stderr); a handler error is Lambda's error JSON on stdout, exit 1;
bad input (unknown function, corrupt blob, handler not importable, event not JSON) is
``ERROR:``/``TIP:`` on stderr (as the CLI renders errors), exit 2.

    python shim.py --store PATH_OR_FILE_URL --name NAME [--cache DIR] [--event FILE|-]
                   [--memory-mb 128] [--timeout-s 3] [--stats-json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
import types
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

TASK_FORMAT = "lambda-pack-task/1"
DEFAULT_CACHE = "/tmp/lambda-pack-cache"
CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class ShimError(Exception):
    """Something the user can fix: ``message`` says what, ``tip`` says how."""

    def __init__(self, message: str, tip: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip
        self.exit_code = exit_code


class StoreReader(Protocol):
    """Reads a store. A new kind of store (http, oci, s3) is one more class like LocalReader."""

    location: str

    def manifest_digest(self, name: str) -> str:
        """The sha256 hex digest of function ``name``'s task manifest."""
        ...

    def open_blob(self, digest: str) -> BinaryIO:
        """A stream of the blob's bytes (unverified; the caller hashes them)."""
        ...


class LocalReader:
    """A store directory: ``blobs/sha256/<hex>`` and ``functions/<NAME>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def manifest_digest(self, name: str) -> str:
        path = self.root / "functions" / name
        if not _NAME.match(name) or not path.is_file():
            raise ShimError(
                f"no function {name!r} in store {self.location}",
                "push it first (pip-lambda-pack push) or check the name (pip-lambda-pack ls)",
            )
        text = path.read_text(encoding="utf-8").strip()
        digest = text.removeprefix("sha256:")
        if not text.startswith("sha256:") or not _HEX64.match(digest):
            raise ShimError(
                f"store {self.location}: functions/{name} does not hold a sha256 digest",
                "push the function again",
            )
        return digest

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.root / "blobs" / "sha256" / digest, "rb")
        except FileNotFoundError:
            raise ShimError(
                f"blob sha256:{digest} is not in store {self.location}",
                "push the function again",
            ) from None


def open_reader(url: str) -> StoreReader:
    """A reader for a directory path or a ``file://`` URL."""
    match = _SCHEME.match(url)
    if match is None:
        return LocalReader(Path(url).expanduser().resolve())
    if match.group(1).lower() != "file":
        raise ShimError(
            f"store URL scheme {match.group(1)!r} is not supported by this shim yet",
            "use a directory path or a file:// URL",
        )
    return LocalReader(Path(url2pathname(urlsplit(url).path)))


@dataclass(frozen=True, slots=True)
class Blob:
    """A blob of a task: the code zip or a layer zip."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Task:
    """The parts of a task manifest the shim needs."""

    name: str
    handler: str
    code: Blob
    layers: tuple[Blob, ...]


def read_task(reader: StoreReader, name: str) -> Task:
    """Read and verify function ``name``'s task manifest."""
    digest = reader.manifest_digest(name)
    with reader.open_blob(digest) as stream:
        data = stream.read()
    _verify(reader, digest, hashlib.sha256(data).hexdigest())
    try:
        return _parse_task(name, json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise ShimError(
            f"task manifest of {name!r} in store {reader.location} is malformed: {exc}",
            "push the function again with this version of pip-lambda-pack",
        ) from None


def _parse_task(name: str, data: dict[str, Any]) -> Task:
    if data["format"] != TASK_FORMAT:
        raise ValueError(f"format {data['format']!r} is not {TASK_FORMAT!r}")
    handler = data["handler"]
    if not isinstance(handler, str) or "." not in handler:
        raise ValueError(f"handler {handler!r} is not module.function")
    return Task(
        name=name,
        handler=handler,
        code=_blob(data["code"]),
        layers=tuple(_blob(layer) for layer in data["layers"]),
    )


def _blob(data: dict[str, Any]) -> Blob:
    digest, size = data["sha256"], data["size"]
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise ValueError(f"sha256 {digest!r} is not 64 hex digits")
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"size {size!r} is not a non-negative integer")
    return Blob(sha256=digest, size=size)


def _verify(reader: StoreReader, digest: str, actual: str) -> None:
    if actual != digest:
        raise ShimError(
            f"blob sha256:{digest} in store {reader.location} is corrupt "
            f"(its bytes hash to sha256:{actual})",
            "push the function again to restore the blob",
        )


@dataclass(frozen=True, slots=True)
class Provisioned:
    """Where a blob is unpacked, and whether it was already there."""

    path: Path
    hit: bool
    fetched: int  # bytes read from the store


class Cache:
    """Unpacked blobs under ``root/<hex>/``; a per-blob lock makes one process fetch each."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self, blob: Blob, reader: StoreReader) -> Provisioned:
        final = self.root / blob.sha256
        if final.is_dir():
            return Provisioned(path=final, hit=True, fetched=0)
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f"{blob.sha256}.lock"):
            if final.is_dir():  # another process unpacked it while we waited
                return Provisioned(path=final, hit=True, fetched=0)
            _remove_stale(self.root, blob.sha256)
            fetched = self._unpack(blob, reader, final)
        return Provisioned(path=final, hit=False, fetched=fetched)

    def _unpack(self, blob: Blob, reader: StoreReader, final: Path) -> int:
        prefix = f".tmp-{blob.sha256}-"
        fd, download = tempfile.mkstemp(dir=self.root, prefix=prefix, suffix=".zip")
        try:
            with os.fdopen(fd, "wb") as out, reader.open_blob(blob.sha256) as stream:
                actual, size = _copy(stream, out)
            _verify(reader, blob.sha256, actual)
            unpacked = tempfile.mkdtemp(dir=self.root, prefix=prefix)
            extract(Path(download), Path(unpacked), blob.sha256)
            os.rename(unpacked, final)
            return size
        finally:
            os.unlink(download)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_stale(root: Path, digest: str) -> None:
    """Temp files of this blob left by a crashed process (we hold its lock, so no one else)."""
    for stale in root.glob(f".tmp-{digest}-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _copy(stream: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: stream.read(CHUNK), b""):
        digest.update(block)
        out.write(block)
        size += len(block)
    return digest.hexdigest(), size


def extract(archive_path: Path, dest: Path, digest: str) -> None:
    """Unpack a zip, refusing absolute paths, ``..``, and symlinks; modes 0644/0755."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info in archive.infolist():
                _extract_one(archive, info, dest, digest)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ShimError(
            f"blob sha256:{digest} is not a readable zip: {exc}", "push the function again"
        ) from None


def _extract_one(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, digest: str) -> None:
    name = info.filename
    parts = name.rstrip("/").split("/")
    mode = info.external_attr >> 16
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise ShimError(
            f"blob sha256:{digest} has an unsafe path {name!r}", "rebuild it with pip-lambda-pack"
        )
    if stat.S_ISLNK(mode):
        raise ShimError(
            f"blob sha256:{digest} has a symlink {name!r}", "rebuild it with pip-lambda-pack"
        )
    target = dest.joinpath(*parts)
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(target, "xb") as out:
        shutil.copyfileobj(source, out, CHUNK)
    os.chmod(target, 0o755 if mode & 0o111 else 0o644)


@dataclass(frozen=True, slots=True)
class Stats:
    """Provisioning figures for one run."""

    name: str
    blobs: int
    hits: int
    misses: int
    bytes_fetched: int
    ms: int

    def line(self) -> str:
        blobs = "blob" if self.blobs == 1 else "blobs"
        return (
            f"lambda-pack: provisioned {self.name}: {self.blobs} {blobs}, {self.hits} hit, "
            f"{self.misses} missed, {self.bytes_fetched} bytes fetched, {self.ms} ms"
        )


def provision(task: Task, reader: StoreReader, cache: Cache) -> tuple[list[str], Stats]:
    """Unpack code and layers; the ``sys.path`` entries in Lambda's order, and the figures.

    Lambda merges layers in order with later ones overwriting earlier ones, so later
    layers come first here; the code directory (``/var/task``) comes before all of them.
    """
    start = time.monotonic()
    code = cache.ensure(task.code, reader)
    layers = [cache.ensure(layer, reader) for layer in task.layers]
    done = [code, *layers]
    stats = Stats(
        name=task.name,
        blobs=len(done),
        hits=sum(p.hit for p in done),
        misses=sum(not p.hit for p in done),
        bytes_fetched=sum(p.fetched for p in done),
        ms=round((time.monotonic() - start) * 1000),
    )
    paths = [str(code.path)] + [str(p.path / "python") for p in reversed(layers)]
    return paths, stats


def load_handler(handler: str, paths: list[str]) -> Callable[..., Any]:
    """Put ``paths`` first on ``sys.path``, import the module and return the function."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = paths + [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    module_name, _, function = handler.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ShimError(
            f"Runtime.ImportModuleError: Unable to import module {module_name!r}: "
            f"{type(exc).__name__}: {exc}",
            "check the handler setting and that the function's requirements include "
            "what the module imports",
        ) from None
    found = getattr(module, function, None)
    if not callable(found):
        raise ShimError(
            f"Runtime.HandlerNotFound: Handler {function!r} missing on module {module_name!r}",
            f"define {function}(event, context) in {module_name}, or fix the handler setting",
        )
    return found  # type: ignore[no-any-return]


class LambdaContext:
    """The context object Lambda passes to a handler (same attributes and types)."""

    def __init__(self, name: str, memory_mb: int, timeout_s: float, region: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:000000000000:function:{name}"
        self.memory_limit_in_mb = str(memory_mb)  # Lambda's runtime reads it from env: a str
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        day = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.identity: object = None
        self.client_context: object = None
        self._deadline_ms = int(time.time() * 1000 + timeout_s * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def environment(self, handler: str, task_root: str) -> dict[str, str]:
        """The AWS_LAMBDA_* variables the real runtime sets for this context."""
        return {
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": self.function_version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": self.memory_limit_in_mb,
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream_name,
            "LAMBDA_TASK_ROOT": task_root,
            "_HANDLER": handler,
        }


class _Timeout(BaseException):
    """Raised in the handler by the alarm; a BaseException so handlers do not swallow it."""


def call_handler(
    function: Callable[..., Any], event: object, context: LambdaContext, timeout_s: float
) -> tuple[int, str]:
    """Run the handler: (exit code, JSON for stdout) — the result, or Lambda's error JSON."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        result = function(event, context)
    except _Timeout:
        return 1, _error(f"Task timed out after {timeout_s:.2f} seconds", "Sandbox.Timedout", [])
    except Exception as exc:
        return 1, _error(str(exc), type(exc).__name__, _stack(exc), context)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    try:
        return 0, json.dumps(result)
    except (TypeError, ValueError) as exc:
        message = f"Unable to marshal response: {exc}"
        return 1, _error(message, "Runtime.MarshalError", [], context)


def _stack(exc: BaseException) -> list[str]:
    """The handler's frames formatted as Lambda's runtime does (no column carets)."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # drop the shim's own frame
    return traceback.format_list([(f.filename, f.lineno or 0, f.name, f.line) for f in frames])


def _alarm(signum: int, frame: types.FrameType | None) -> None:
    raise _Timeout


def _error(message: str, kind: str, trace: list[str], context: LambdaContext | None = None) -> str:
    body = {"errorMessage": message, "errorType": kind, "stackTrace": trace}
    if context is not None:
        body["requestId"] = context.aws_request_id
    return json.dumps(body)


def read_event(source: str | None) -> object:
    """The event from a file, stdin (``-``) or ``{}``; ShimError when it is not JSON."""
    try:
        if source is None:
            return {}
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        return json.loads(data)
    except FileNotFoundError:
        raise ShimError(f"event file not found: {source}", "pass --event FILE or -") from None
    except ValueError as exc:
        raise ShimError(f"event is not JSON: {exc}", "pass a JSON document, e.g. {}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shim.py", description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="store directory or file:// URL")
    parser.add_argument("--name", required=True, help="the function's name in the store")
    parser.add_argument("--cache", help="cache directory (default: $LAMBDA_PACK_CACHE or /tmp)")
    parser.add_argument("--event", help="event JSON file, or - for stdin (default: {})")
    parser.add_argument("--memory-mb", type=int, default=128)
    parser.add_argument("--timeout-s", type=float, default=3.0)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--stats-json", help="also write the provisioning figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = os.fdopen(os.dup(1), "w")  # stdout is for the result alone
    os.dup2(2, 1)
    try:
        event = read_event(args.event)
        cache = Cache(_cache_root(args.cache))
        reader = open_reader(args.store)
        task = read_task(reader, args.name)
        paths, stats = provision(task, reader, cache)
        _report(stats, args.stats_json)
        context = LambdaContext(task.name, args.memory_mb, args.timeout_s, args.region)
        os.environ.update(context.environment(task.handler, paths[0]))
        os.chdir(paths[0])  # Lambda runs handlers in the task root
        function = load_handler(task.handler, paths)
    except ShimError as exc:
        print(f"ERROR: {exc.message}\nTIP: {exc.tip}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"ERROR: {exc}\nTIP: check the store and the cache directory", file=sys.stderr)
        return 1
    code, body = call_handler(function, event, context, args.timeout_s)
    print(body, file=results, flush=True)
    return code


def _cache_root(option: str | None) -> Path:
    """``--cache``, else $LAMBDA_PACK_CACHE, else /tmp/lambda-pack-cache; made absolute."""
    return Path(option or os.environ.get("LAMBDA_PACK_CACHE") or DEFAULT_CACHE).resolve()


def _report(stats: Stats, stats_json: str | None) -> None:
    print(stats.line(), file=sys.stderr, flush=True)
    if stats_json:
        figures = {
            "name": stats.name,
            "blobs": stats.blobs,
            "hits": stats.hits,
            "misses": stats.misses,
            "bytes_fetched": stats.bytes_fetched,
            "ms": stats.ms,
        }
        Path(stats_json).write_text(json.dumps(figures, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())

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

Why it is longer than the ~600 lines other modules keep to: a layer, a code zip or /tmp
carries it as one file (``invoke.shim_source`` inlines ``wire.py`` between its markers),
so its store readers, cache and runner cannot be modules of their own.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import importlib
import json
import os
import re
import signal
import stat
import sys
import time
import types
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:  # imported where they are used: a cold start that reads a local store
    import argparse  # needs none of them, and they cost it tens of milliseconds
    import http.client
    import zipfile
    from urllib.error import HTTPError

# The wire formats and rules (task manifest, names, digests, store URLs, credentials, redact):
# from the package, or, when this file runs by itself (python shim.py), from wire.py beside
# it. invoke.shim_source() inlines wire.py between these markers to ship one file.
# --- wire.py: begin ---
if __package__:
    from .wire import (
        BACKOFF_S,
        OCI_MANIFEST,
        RETRIES,
        STORE_SECRETS,
        TIMEOUT_S,
        BlobRef,
        TaskLayer,
        TaskManifest,
        WireError,
        check_login,
        corrupt_blob,
        is_digest,
        is_function_name,
        name_digest,
        oci_base,
        parse_challenge,
        redact,
        redact_text,
        registry_credentials,
        s3_client_options,
        s3_location,
        task_digest,
    )
else:  # pragma: no cover - run as a script (serve's environments): wire.py beside it, loaded
    # by its importer under a private name, so its bytecode is cached (compiling it costs a
    # cold start ~20 ms) and no module of the handler's named ``wire`` is shadowed
    import importlib.util

    _SPEC = importlib.util.spec_from_file_location(
        "_lambda_pack_wire", Path(__file__).with_name("wire.py")
    )
    assert _SPEC is not None and _SPEC.loader is not None
    _WIRE = sys.modules[_SPEC.name] = importlib.util.module_from_spec(_SPEC)
    _SPEC.loader.exec_module(_WIRE)
    del sys.modules[_SPEC.name]  # the handler sees no module of ours
    globals().update({k: v for k, v in vars(_WIRE).items() if not k.startswith("__")})
# --- wire.py: end ---

DEFAULT_CACHE = "/tmp/lambda-pack-cache"
CAP_ENV = "LAMBDA_PACK_CACHE_MAX_BYTES"
LAYERS_ENV = "LAMBDA_PACK_LAYERS"  # extract (default) or zip: how layers go on sys.path
LAYER_ZIP = "layer.zip"  # a zipimported layer's file in its cache directory
T = TypeVar("T")
CHUNK = 1 << 20
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
Blob = BlobRef  # the names other code knew the shim's records by
Task = TaskManifest


class ShimError(Exception):
    """Something the user can fix: ``message`` says what, ``tip`` says how."""

    def __init__(self, message: str, tip: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip
        self.exit_code = exit_code


class TransientError(ShimError):
    """A failure worth another attempt: a connection error, a timeout, a 5xx."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "check that the store is up and reachable", 1)


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
        if not is_function_name(name) or not path.is_file():
            raise ShimError(
                f"no function {name!r} in store {self.location}",
                "push it first (pip-lambda-pack push) or check the name (pip-lambda-pack ls)",
            )
        return name_digest(path.read_text(encoding="utf-8"), self.location, name)

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.root / "blobs" / "sha256" / digest, "rb")
        except FileNotFoundError:
            raise ShimError(
                f"blob sha256:{digest} is not in store {self.location}",
                "push the function again",
            ) from None


class Fetcher:
    """urllib GETs with bounded retries (connection errors, timeouts, 5xx) and auth on 401.

    Authorization goes in an unredirected header, so it is never sent on to a redirect
    target (registries redirect blob reads to object storage).
    """

    def __init__(self, location: str, credentials: tuple[str, str] | None, token: str | None):
        self.location = location
        self.credentials = credentials
        self.authorization = f"Bearer {token}" if token else None

    def get(self, url: str, what: str, accept: str | None = None) -> http.client.HTTPResponse:
        """The open response; ShimError naming the store and ``what`` when it fails."""
        return retried(lambda: self._get_authorized(url, what, accept))

    def _get_authorized(self, url: str, what: str, accept: str | None) -> http.client.HTTPResponse:
        from urllib.error import HTTPError

        try:
            return self._open(url, what, accept)
        except HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "")
            if exc.code != 401 or self.authorization or not self._authenticate(challenge, what):
                raise self._error(exc, what) from None
        try:
            return self._open(url, what, accept)
        except HTTPError as exc:
            raise self._error(exc, what) from None

    def _open(self, url: str, what: str, accept: str | None) -> http.client.HTTPResponse:
        import http.client
        from urllib.error import HTTPError, URLError
        from urllib.request import Request, urlopen

        request = Request(url)
        if accept:
            request.add_header("Accept", accept)
        if self.authorization:
            request.add_unredirected_header("Authorization", self.authorization)
        try:
            return urlopen(request, timeout=TIMEOUT_S)  # type: ignore[no-any-return]
        except HTTPError as exc:
            if exc.code >= 500:
                raise TransientError(f"{self._where(what)}: HTTP {exc.code}") from None
            raise
        except (URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientError(f"{self._where(what)}: {reason}") from None

    def _authenticate(self, challenge: str, what: str) -> bool:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic" and self.credentials:
            pair = ":".join(self.credentials).encode()
            self.authorization = "Basic " + base64.b64encode(pair).decode()
            return True
        if scheme == "bearer" and "realm" in params:
            self.authorization = "Bearer " + self._token(params, what)
            return True
        return False

    def _token(self, params: dict[str, str], what: str) -> str:
        from urllib.error import HTTPError, URLError
        from urllib.request import Request, urlopen

        query = urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
        request = Request(params["realm"] + ("?" + query if query else ""))
        if self.credentials:
            pair = base64.b64encode(":".join(self.credentials).encode()).decode()
            request.add_unredirected_header("Authorization", f"Basic {pair}")
        try:
            with urlopen(request, timeout=TIMEOUT_S) as response:
                body = json.loads(response.read())
            return str(body.get("token") or body["access_token"])
        except HTTPError as exc:
            raise self._error(exc, f"a token for {what}") from None
        except (URLError, OSError, ValueError, KeyError) as exc:
            raise TransientError(f"{self._where(what)}: token service: {exc}") from None

    def _where(self, what: str) -> str:
        return f"store {self.location}: {what}"

    def _error(self, exc: HTTPError, what: str) -> ShimError:
        if exc.code in (401, 403):
            return ShimError(
                f"{self._where(what)}: authentication failed (HTTP {exc.code})",
                "check the credentials ($LAMBDA_PACK_REGISTRY_USERNAME/_PASSWORD, "
                "~/.docker/config.json, $LAMBDA_PACK_HTTP_TOKEN or user:password@ in the URL)",
            )
        if exc.code == 404:
            return ShimError(f"{self._where(what)}: not found", "push the function again")
        return ShimError(f"{self._where(what)}: HTTP {exc.code}", "check the store URL", 1)


class HttpReader:
    """An HTTP(S) directory in the local store's layout, e.g. nginx with WebDAV."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        credentials = None
        if parts.username is not None:
            credentials = (parts.username, parts.password or "")
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self.base = urlunsplit(parts).rstrip("/")
        self.location = redact(url)
        token = os.environ.get("LAMBDA_PACK_HTTP_TOKEN")
        self.fetcher = Fetcher(self.location, credentials, token)

    def manifest_digest(self, name: str) -> str:
        _check_name(name, self.location)
        what = f"function {name!r}"
        with self.fetcher.get(f"{self.base}/functions/{name}", what) as response:
            return name_digest(response.read().decode(), self.location, name)

    def open_blob(self, digest: str) -> BinaryIO:
        url = f"{self.base}/blobs/sha256/{digest}"
        return self.fetcher.get(url, f"blob sha256:{digest}")


class OciReader:
    """A repository of an OCI registry: functions are tags of artifact manifests."""

    def __init__(self, url: str) -> None:
        self.base, self.repository = oci_base(url)
        self.location = redact(url)
        host = urlsplit(self.base).netloc
        token = os.environ.get("LAMBDA_PACK_REGISTRY_TOKEN")
        self.fetcher = Fetcher(self.location, registry_credentials(host), token)

    def manifest_digest(self, name: str) -> str:
        _check_name(name, self.location)
        url = f"{self.base}/v2/{self.repository}/manifests/{name}"
        with self.fetcher.get(url, f"function {name!r}", OCI_MANIFEST) as response:
            data = json.loads(response.read())
        return task_digest(data, self.location, name)

    def open_blob(self, digest: str) -> BinaryIO:
        url = f"{self.base}/v2/{self.repository}/blobs/sha256:{digest}"
        return self.fetcher.get(url, f"blob sha256:{digest}")


class S3Reader:
    """An S3 bucket and prefix in the local store's layout, through boto3 (imported here)."""

    def __init__(self, url: str) -> None:
        self.bucket, self.prefix, options = s3_location(url)
        self.location = redact(url)
        try:
            import boto3  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ShimError(
                "boto3 is needed to read an s3:// store", "pip install 'pip-lambda-pack[s3]'"
            ) from None
        self.client = boto3.client("s3", **s3_client_options(options))

    def manifest_digest(self, name: str) -> str:
        _check_name(name, self.location)
        with contextlib.closing(self._get("functions/" + name, f"function {name!r}")) as body:
            return name_digest(body.read().decode(), self.location, name)

    def open_blob(self, digest: str) -> BinaryIO:
        return self._get(f"blobs/sha256/{digest}", f"blob sha256:{digest}")  # type: ignore[no-any-return]

    def _get(self, key: str, what: str) -> Any:
        key = f"{self.prefix}/{key}" if self.prefix else key
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:  # botocore's errors, imported lazily like boto3
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ShimError(
                    f"store {self.location}: {what}: not found", "push it again"
                ) from None
            raise TransientError(f"store {self.location}: {what}: {exc}") from None


def _check_name(name: str, location: str) -> None:
    if not is_function_name(name):
        raise ShimError(f"no function {name!r} in store {location}", "check the name")


def open_reader(url: str) -> StoreReader:
    """A reader for a directory, ``file://``, ``http(s)://``, ``oci://`` or ``s3://`` URL."""
    match = _SCHEME.match(url)
    if match is None:
        return LocalReader(Path(os.path.expanduser(url)).resolve())
    scheme = match.group(1).lower()
    check_login(url)
    if scheme == "file":
        from urllib.request import url2pathname

        return LocalReader(Path(url2pathname(urlsplit(url).path)))
    readers: dict[str, Callable[[str], StoreReader]] = {
        "http": HttpReader,
        "https": HttpReader,
        "oci": OciReader,
        "s3": S3Reader,
    }
    if scheme not in readers:
        raise ShimError(
            f"store URL scheme {scheme!r} is not supported",
            "use a directory, file://, http(s)://, oci:// or s3:// URL",
        )
    return readers[scheme](url)


def read_task(reader: StoreReader, name: str) -> TaskManifest:
    """Read and verify function ``name``'s task manifest (named as it was asked for: a tag
    copied to another name keeps its manifest)."""
    digest = reader.manifest_digest(name)
    data = retried(lambda: _read_all(reader, digest), _broken(reader, digest))
    _verify(reader, digest, hashlib.sha256(data).hexdigest())
    try:
        task = TaskManifest.from_dict(json.loads(data))
    except (ValueError, RecursionError) as exc:
        raise ShimError(
            f"task manifest of {name!r} in store {reader.location} is malformed: {exc}",
            "push the function again with this version of pip-lambda-pack",
        ) from None
    return task._replace(name=name)


def _read_all(reader: StoreReader, digest: str) -> bytes:
    with reader.open_blob(digest) as stream:
        return stream.read()  # a task manifest is small


def retried(action: Callable[[], T], broken: Callable[[Exception], ShimError] | None = None) -> T:
    """``action()``, tried up to RETRIES times with exponential backoff.

    A TransientError (connection error, timeout, 5xx) is tried again; so is a stream that
    broke mid-read (OSError, HTTPException) when ``broken`` is given, which makes the error
    to report after the last attempt.
    """
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            return action()
        except TransientError:
            if attempt == RETRIES - 1:
                raise
        except _io_errors() as exc:
            if broken is None:
                raise
            if attempt == RETRIES - 1:
                raise broken(exc) from None
    raise AssertionError("unreachable")


def _io_errors() -> tuple[type[Exception], ...]:
    """OSError, and http.client's errors once a store reader has imported it (only then
    can one be raised)."""
    client = sys.modules.get("http.client")
    return (OSError, client.HTTPException) if client is not None else (OSError,)


def _broken(reader: StoreReader, digest: str) -> Callable[[Exception], ShimError]:
    def error(exc: Exception) -> ShimError:
        return ShimError(
            f"store {reader.location}: blob sha256:{digest}: download failed "
            f"(tried {RETRIES} times): {exc or type(exc).__name__}",
            "check that the store is up and reachable",
            1,
        )

    return error


def _verify(reader: StoreReader, digest: str, actual: str) -> None:
    if actual != digest:
        raise ShimError(
            corrupt_blob(reader.location, digest, actual),
            "push the function again to restore the blob",
        )


class Provisioned(NamedTuple):
    """Where a blob is unpacked, and whether it was already there."""

    path: Path
    hit: bool
    fetched: int  # bytes read from the store


class Entry(NamedTuple):
    """A blob unpacked in the cache: its size on disk, when it was last used, if in use."""

    sha256: str
    size: int
    last_used: float
    in_use: bool


class Cache:
    """Unpacked blobs under ``root/<hex>/``, shared by every function on the machine.

    ``root/<hex>.lock`` is held shared while a process uses the blob and exclusive while
    one fetches it or evicts it; ``root/<hex>.used`` holds the unpacked size, and its
    mtime is the last use. Lock files are never removed (a removed lock file would let
    two processes lock two different files for one blob).

    The cache trusts only what a shim verified: ``root/<hex>/.lambda-pack-verified`` is
    written after the blob's sha256 was checked and it was unpacked, inside the directory
    that is then renamed into place. An entry without it, or not owned by this user, or
    writable by others, is fetched again. The root is made 0700 and refused when another
    user owns it or can write to it.
    """

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._held: dict[str, BinaryIO] = {}  # shared locks kept until the process ends
        self.seconds = {"fetch": 0.0, "extract": 0.0}  # this process's misses, by step

    def ensure(self, blob: BlobRef | TaskLayer, reader: StoreReader) -> Provisioned:
        """Unpack the blob unless it is there; hold it in use for this process's lifetime."""
        self._check_root()
        lock = self._hold(blob.sha256)
        final = self.root / blob.sha256
        for _ in range(RETRIES):
            if self.trusted(blob.sha256):
                self._touch(blob.sha256, final)
                return Provisioned(path=final, hit=True, fetched=0)
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # drops our shared lock, then waits
            try:
                fetched = 0 if self.trusted(blob.sha256) else self._fetch(blob, reader, final)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
            if self.trusted(blob.sha256):  # else an evictor slipped in between the two locks
                return Provisioned(path=final, hit=fetched == 0, fetched=fetched)
        raise ShimError(f"blob sha256:{blob.sha256} keeps being evicted", "raise the cache cap")

    def _check_root(self) -> None:
        """Make the root (0700) unless it exists; refuse one another user could write to."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(self.root)
        if stat.S_ISDIR(info.st_mode) and _only_ours(info):
            return
        raise ShimError(
            f"cache {self.root} is not safe: another user owns it or can write to it",
            "use a directory only you can write (--cache DIR or $LAMBDA_PACK_CACHE); "
            "the shim creates it 0700",
        )

    def trusted(self, digest: str) -> bool:
        """Whether ``root/<hex>`` is a blob a shim of this user verified and unpacked."""
        final = self.root / digest
        try:
            info, mark = os.lstat(final), os.lstat(final / VERIFIED)
            if not (stat.S_ISDIR(info.st_mode) and stat.S_ISREG(mark.st_mode)):
                return False
            return _only_ours(info) and _only_ours(mark) and _read_mark(final) == digest
        except OSError:
            return False

    def _hold(self, digest: str) -> BinaryIO:
        if digest not in self._held:
            handle = open(self.root / f"{digest}.lock", "a+b")  # noqa: SIM115 (held on purpose)
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            self._held[digest] = handle
        return self._held[digest]

    def _fetch(self, blob: BlobRef | TaskLayer, reader: StoreReader, final: Path) -> int:
        _remove_stale(self.root, blob.sha256)
        if os.path.lexists(final):  # there, but not verified by us: set aside, fetch again
            import uuid

            os.rename(final, self.root / f".tmp-{blob.sha256}-{uuid.uuid4().hex}")
            _remove_stale(self.root, blob.sha256)
        return retried(lambda: self._unpack(blob, reader, final), _broken(reader, blob.sha256))

    def _unpack(self, blob: BlobRef | TaskLayer, reader: StoreReader, final: Path) -> int:
        import shutil
        import tempfile

        prefix = f".tmp-{blob.sha256}-"
        fd, download = tempfile.mkstemp(dir=self.root, prefix=prefix, suffix=".zip")
        unpacked = Path(tempfile.mkdtemp(dir=self.root, prefix=prefix))
        try:
            start = time.monotonic()
            with os.fdopen(fd, "wb") as out, reader.open_blob(blob.sha256) as stream:
                actual, size = _copy(stream, out)
            _verify(reader, blob.sha256, actual)
            self.seconds["fetch"] += time.monotonic() - start
            start = time.monotonic()
            if isinstance(blob, TaskLayer) and zip_layer(Path(download), blob.sha256):
                os.chmod(download, 0o644)
                os.rename(download, unpacked / LAYER_ZIP)  # zipimport reads it in place
                written = size
            else:
                written = extract(Path(download), unpacked, blob.sha256, self._limit(blob))
            (unpacked / VERIFIED).write_text(blob.sha256)
            (self.root / f"{blob.sha256}.used").write_text(f"{written}\n")
            os.rename(unpacked, final)
            self.seconds["extract"] += time.monotonic() - start
            return size
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # no retry fixes a full disk
                raise disk_full(self.root) from None
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(download)
            shutil.rmtree(unpacked, ignore_errors=True)

    @staticmethod
    def _limit(blob: BlobRef | TaskLayer) -> Limit:
        """The most a blob may unpack to: a layer's declared size. A code zip declares none
        (lambda-pack-task/1 has no field for it): each entry stops at its own declared size,
        and what it unpacks to counts against the cap like any blob."""
        if isinstance(blob, TaskLayer):
            return Limit(blob.unzipped_size, "the unzipped_size its task manifest declares")
        return Limit(None, "")

    def _touch(self, digest: str, final: Path) -> None:
        used = self.root / f"{digest}.used"
        try:
            os.utime(used)
        except FileNotFoundError:  # unpacked by an older shim
            used.write_text(f"{_tree_size(final)}\n")

    def entries(self) -> list[Entry]:
        """Every unpacked blob, least recently used first."""
        found = []
        for used in self.root.glob("*.used") if self.root.is_dir() else ():
            digest = used.name[: -len(".used")]
            if is_digest(digest) and (self.root / digest).is_dir():
                found.append(_entry(used, digest, self._in_use(digest)))
        return sorted(found, key=lambda e: (e.last_used, e.sha256))

    def _in_use(self, digest: str) -> bool:
        if digest in self._held:
            return True
        with _try_exclusive(self.root / f"{digest}.lock") as free:
            return not free

    def evict(self, max_bytes: int | None = None, trash: list[Path] | None = None) -> list[Entry]:
        """Remove least recently used blobs not in use until the rest fit ``max_bytes``.

        With ``trash``, a removed blob's tree is only moved aside (out of the cache at once)
        and listed there for the caller to delete later: deleting thousands of files takes
        seconds that a cold start should not wait for (bootstrap deletes in the background).
        """
        cap = self.max_bytes if max_bytes is None else max_bytes
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed: list[Entry] = []
        for entry in entries:
            if cap is None or total <= cap:
                break
            if not entry.in_use and self._remove(entry.sha256, trash):
                removed.append(entry)
                total -= entry.size
        return removed

    def remove_stale(self, older_than_s: float = 3600.0) -> int:
        """Remove the temp files and directories of crashed fetches and evictions: those of
        blobs nobody is fetching or evicting now, untouched for ``older_than_s``; how many."""
        removed = 0
        now = time.time()
        for stale in self.root.glob(".tmp-*") if self.root.is_dir() else ():
            digest = stale.name[len(".tmp-") :].partition("-")[0]
            with contextlib.suppress(OSError):
                if not is_digest(digest) or now - os.lstat(stale).st_mtime < older_than_s:
                    continue
                with _try_exclusive(self.root / f"{digest}.lock") as free:
                    if free:
                        _remove_path(stale)
                        removed += 1
        return removed

    def _remove(self, digest: str, later: list[Path] | None = None) -> bool:
        import shutil
        import tempfile

        with _try_exclusive(self.root / f"{digest}.lock") as free:
            if not free or not (self.root / digest).is_dir():
                return False
            trash = tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{digest}-")
            os.rename(self.root / digest, Path(trash) / "old")
            (self.root / f"{digest}.used").unlink(missing_ok=True)
        if later is None:
            shutil.rmtree(trash, ignore_errors=True)
        else:
            later.append(Path(trash))
        return True


VERIFIED = ".lambda-pack-verified"  # in an unpacked blob: its digest, written last


class Limit(NamedTuple):
    """The most bytes a blob may unpack to (None: no bound), and where that figure is from."""

    most: int | None
    source: str


def _only_ours(info: os.stat_result) -> bool:
    """Owned by this user, and neither its group nor others may write to it."""
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _read_mark(final: Path) -> str:
    with open(final / VERIFIED, encoding="ascii", errors="replace") as handle:
        return handle.read(65)


def _entry(used: Path, digest: str, in_use: bool) -> Entry:
    try:
        size = int(used.read_text().strip() or 0)
        last_used = used.stat().st_mtime
    except (OSError, ValueError):
        size, last_used = 0, 0.0
    return Entry(sha256=digest, size=size, last_used=last_used, in_use=in_use)


def _tree_size(root: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(root)
        for name in names
    )


@contextlib.contextmanager
def _try_exclusive(path: Path) -> Iterator[bool]:
    """An exclusive lock if nobody holds one of any kind: yields whether it was had."""
    try:
        handle = open(path, "a+b")  # noqa: SIM115
    except OSError:
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_stale(root: Path, digest: str) -> None:
    """Temp files of this blob left by a crashed process (we hold its lock, so no one else)."""
    for stale in root.glob(f".tmp-{digest}-*"):
        _remove_path(stale)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _copy(stream: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: stream.read(CHUNK), b""):
        digest.update(block)
        out.write(block)
        size += len(block)
    return digest.hexdigest(), size


def zip_layer(archive_path: Path, digest: str) -> bool:
    """Whether a layer stays a zip on ``sys.path`` (zipimport) instead of being unpacked.

    Only with $LAMBDA_PACK_LAYERS=zip, and only a layer of nothing but modules and their
    metadata (no extension module, data file or script needs a real file). Unpacking is the
    default because it is faster with bytecode: zipimport only reads a ``.pyc`` that sits
    beside its ``.py``, never ``__pycache__/``, so a zipped layer compiles every module it
    imports, and ``importlib.metadata`` finds no distribution in a folder of a zip
    (docs/benchmarks.md, Cold start).
    """
    if os.environ.get(LAYERS_ENV, "extract") != "zip":
        return False
    import zipfile

    try:
        with zipfile.ZipFile(archive_path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ShimError(
            f"blob sha256:{digest} is not a readable zip: {exc}", "push the function again"
        ) from None
    return all(name.startswith("python/") and _module_file(name) for name in names)


def _module_file(name: str) -> bool:
    top = name.split("/")[1] if name.count("/") > 1 else ""
    return top.endswith(".dist-info") or name.endswith((".py", ".pyc", ".pyi", "/py.typed"))


def layer_path(unpacked: Path) -> str:
    """The ``sys.path`` entry of a provisioned layer: its ``python/``, in the zip or not."""
    archive = unpacked / LAYER_ZIP
    return str(archive / "python") if archive.is_file() else str(unpacked / "python")


def extract(archive_path: Path, dest: Path, digest: str, limit: Limit | None = None) -> int:
    """Unpack a zip, refusing absolute paths, ``..``, symlinks and more bytes than ``limit``
    (the central directory's sizes are checked before anything is written, and each entry
    stops at its declared size); modes 0644/0755. The bytes written."""
    import zipfile
    import zlib

    limit = limit or Limit(None, "")
    try:
        with zipfile.ZipFile(archive_path) as archive, open(archive_path, "rb") as raw:
            infos = archive.infolist()
            _check_declared(infos, digest, limit)
            writer = _Writer(archive, raw, dest, digest)
            return _write_all(writer, infos)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(dest) from None
        raise _unreadable(digest, exc) from None
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise _unreadable(digest, exc) from None
    except ValueError as exc:  # e.g. a negative or overflowing offset in a forged header
        raise _unreadable(digest, exc) from None


def _unreadable(digest: str, exc: BaseException) -> ShimError:
    return ShimError(
        f"blob sha256:{digest} is not a readable zip: {exc or type(exc).__name__}",
        "push the function again",
    )


def disk_full(where: Path) -> ShimError:
    """The error for a full disk (or quota) under ``where``: not worth a retry."""
    return ShimError(
        f"no space left on the device of {where}",
        "free some space, lower the cache cap ($LAMBDA_PACK_CACHE_MAX_BYTES) or point "
        "--cache / $LAMBDA_PACK_CACHE at a bigger disk",
        1,
    )


def _check_declared(infos: list[zipfile.ZipInfo], digest: str, limit: Limit) -> None:
    total = sum(info.file_size for info in infos)
    if limit.most is not None and total > limit.most:
        raise ShimError(
            f"blob sha256:{digest} unpacks to {total} bytes, more than {limit.most}, "
            f"{limit.source}",
            "rebuild and push the function with pip-lambda-pack",
        )


SMALL_ENTRY = 4 << 20  # entries up to this size are unpacked in memory, in one write
UNPACK_THREADS = 3  # inflate, crc32, open and write release the GIL: threads overlap them
SERIAL_BYTES = 1 << 20  # a zip that unpacks to less is written by this thread alone


def _write_all(writer: _Writer, infos: list[zipfile.ZipInfo]) -> int:
    """Every entry written, in up to ``UNPACK_THREADS`` threads for a larger zip (entries
    dealt largest first to the least loaded, so one big file is not the tail); the bytes
    written. The first error (in entry order) is raised once every thread has stopped."""
    total = sum(info.file_size for info in infos)
    threads = min(UNPACK_THREADS, os.cpu_count() or 1, len(infos))
    if total < SERIAL_BYTES or threads < 2:
        return sum(writer.write(info) for info in infos)
    import threading

    shares: list[list[int]] = [[] for _ in range(threads)]
    loads = [0] * threads
    for index in sorted(range(len(infos)), key=lambda i: -infos[i].file_size):
        least = loads.index(min(loads))
        shares[least].append(index)
        loads[least] += infos[index].file_size + 4096  # a file's cost beyond its bytes
    written = [0] * len(infos)
    failed: dict[int, BaseException] = {}

    def work(share: list[int]) -> None:
        for index in sorted(share):
            try:
                written[index] = writer.write(infos[index])
            except BaseException as exc:  # raised again below, the first in entry order
                failed[index] = exc
                return

    helpers = [threading.Thread(target=work, args=(share,)) for share in shares[1:]]
    for helper in helpers:
        helper.start()
    work(shares[0])
    for helper in helpers:
        helper.join()
    if failed:
        raise failed[min(failed)]
    return sum(written)


class _Writer:
    """Writes a zip's entries under ``dest``: folders made once each, small entries read
    straight from the archive's bytes (``pread``, one inflate, CRC checked) and written
    with their mode in one ``open``, larger ones streamed through ``zipfile`` (whose
    shared file is locked per read). Safe to call from several threads at once."""

    def __init__(self, archive: zipfile.ZipFile, raw: BinaryIO, dest: Path, digest: str) -> None:
        self.archive = archive
        self.fd = raw.fileno()  # the archive's bytes, read at each entry's own offset
        self.dest = str(dest)
        self.digest = digest
        self.made = {self.dest}

    def write(self, info: zipfile.ZipInfo) -> int:
        parts = _safe_parts(info, self.digest)
        if info.is_dir():
            self._folder(parts)
            return 0
        target = f"{self._folder(parts[:-1])}/{parts[-1]}"
        mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
        if info.file_size > SMALL_ENTRY:
            return self._streamed(info, target, mode)
        data = self._small(info)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)  # whatever the umask took away
        finally:
            os.close(fd)
        return len(data)

    def _folder(self, parts: list[str]) -> str:
        folder = self.dest
        for part in parts:
            folder = f"{folder}/{part}"
            if folder not in self.made:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder)
                self.made.add(folder)
        return folder

    def _small(self, info: zipfile.ZipInfo) -> bytes:
        import zipfile
        import zlib

        if info.flag_bits & 0x1:
            raise zipfile.BadZipFile(f"{info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise NotImplementedError(f"compression method {info.compress_type}")
        header = os.pread(self.fd, 30, info.header_offset)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
        skip = int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
        payload = os.pread(self.fd, info.compress_size, info.header_offset + 30 + skip)
        if info.compress_type == zipfile.ZIP_STORED:
            data = payload
        else:
            data = zlib.decompressobj(-15).decompress(payload, info.file_size + 1)
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"bad CRC or size for {info.filename!r}")
        return data

    def _streamed(self, info: zipfile.ZipInfo, target: str, mode: int) -> int:
        with self.archive.open(info) as source, open(target, "xb") as out:
            written = _copy_at_most(source, out, info.file_size)
        if written > info.file_size:
            raise ShimError(
                f"blob sha256:{self.digest}: {info.filename!r} unpacks to more than the "
                f"{info.file_size} bytes its zip entry declares",
                "rebuild and push the function with pip-lambda-pack",
            )
        os.chmod(target, mode)
        return written


def _safe_parts(info: zipfile.ZipInfo, digest: str) -> list[str]:
    """The entry's path split into its parts; ShimError for an unsafe path or a symlink."""
    name = info.filename
    parts = name.rstrip("/").split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise ShimError(
            f"blob sha256:{digest} has an unsafe path {name!r}", "rebuild it with pip-lambda-pack"
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ShimError(
            f"blob sha256:{digest} has a symlink {name!r}", "rebuild it with pip-lambda-pack"
        )
    return parts


def _copy_at_most(source: IO[bytes], out: IO[bytes], most: int) -> int:
    """Copy until the end, or one byte past ``most``: the bytes copied."""
    written = 0
    while written <= most:
        block = source.read(min(CHUNK, most + 1 - written))
        if not block:
            break
        out.write(block)
        written += len(block)
    return written


class Stats(NamedTuple):
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


def provision(task: TaskManifest, reader: StoreReader, cache: Cache) -> tuple[list[str], Stats]:
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
    paths = [str(code.path)] + [layer_path(p.path) for p in reversed(layers)]
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
        import uuid

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
    import traceback

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
    except OSError as exc:
        raise ShimError(
            f"cannot read event {source}: {exc.strerror}", "pass --event FILE or -"
        ) from None
    except ValueError as exc:
        raise ShimError(f"event is not JSON: {exc}", "pass a JSON document, e.g. {}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(prog="shim.py", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=os.environ.get("LAMBDA_PACK_STORE"), help="store URL")
    parser.add_argument("--name", required=True, help="the function's name in the store")
    parser.add_argument("--cache", help="cache directory (default: $LAMBDA_PACK_CACHE or /tmp)")
    parser.add_argument(
        "--cache-max-bytes", type=int, help="cache size cap (default: $%s)" % CAP_ENV
    )
    parser.add_argument("--event", help="event JSON file, or - for stdin (default: {})")
    parser.add_argument("--memory-mb", type=int, default=128)
    parser.add_argument("--timeout-s", type=float, default=3.0)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--stats-json", help="also write the provisioning figures here")
    args = parser.parse_args(argv)
    if not args.store:
        parser.error("--store (or $LAMBDA_PACK_STORE) is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = os.fdopen(os.dup(1), "w")  # stdout is for the result alone
    os.dup2(2, 1)
    try:
        event = read_event(args.event)
        cache = Cache(_cache_root(args.cache), cache_cap(args.cache_max_bytes))
        reader = open_reader(args.store)
        scrub_secrets(os.environ)  # read by now; the handler never sees them
        task = read_task(reader, args.name)
        paths, stats = provision(task, reader, cache)
        _report(stats, args.stats_json)
        _evict(cache)
        context = LambdaContext(task.name, args.memory_mb, args.timeout_s, args.region)
        os.environ.update(context.environment(task.handler, paths[0]))
        os.chdir(paths[0])  # Lambda runs handlers in the task root
        function = load_handler(task.handler, paths)
    except Exception as exc:
        error = as_shim_error(exc)
        print(f"ERROR: {error.message}\nTIP: {error.tip}", file=sys.stderr)
        return error.exit_code
    code, body = call_handler(function, event, context, args.timeout_s)
    print(body, file=results, flush=True)
    return code


def as_shim_error(exc: Exception) -> ShimError:
    """Any failure before the handler runs as one ERROR/TIP: ours as they are, a full disk
    said so, other I/O errors as such, anything else (a bug) by its type; URLs redacted."""
    if isinstance(exc, ShimError):
        return exc
    if isinstance(exc, WireError):
        return ShimError(exc.message, exc.tip)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(Path(exc.filename or "the cache"))
    if isinstance(exc, _io_errors()):
        return ShimError(redact_text(str(exc)), "check the store and the cache directory", 1)
    text = str(exc).strip().splitlines()
    return ShimError(
        redact_text(f"unexpected {type(exc).__name__}" + (f": {text[0]}" if text else "")),
        "this is a bug of the shim: please report it with the command that was run",
        1,
    )


def scrub_secrets(environ: MutableMapping[str, str]) -> None:
    """Remove the store credentials from ``environ`` (and so from the handler's and its
    children's environment): the secret variables, and a store URL with a login in it."""
    for name in STORE_SECRETS:
        environ.pop(name, None)
    store = environ.get("LAMBDA_PACK_STORE")
    if store is not None and redact(store) != store:
        del environ["LAMBDA_PACK_STORE"]


def _cache_root(option: str | None) -> Path:
    """``--cache``, else $LAMBDA_PACK_CACHE, else /tmp/lambda-pack-cache; made absolute."""
    return Path(option or os.environ.get("LAMBDA_PACK_CACHE") or DEFAULT_CACHE).resolve()


def cache_cap(option: int | None) -> int | None:
    """``--cache-max-bytes``, else $LAMBDA_PACK_CACHE_MAX_BYTES, else no cap."""
    if option is not None:
        return option
    value = os.environ.get(CAP_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ShimError(f"${CAP_ENV} is not a number of bytes: {value!r}", "e.g. 400000000")
    return int(value)


def _evict(cache: Cache) -> None:
    removed = cache.evict()
    if removed:
        freed = sum(e.size for e in removed)
        print(f"lambda-pack: evicted {len(removed)} blobs ({freed} bytes)", file=sys.stderr)


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

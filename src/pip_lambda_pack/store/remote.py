"""What the HTTP and OCI stores share: an httpx client, bounded retries, verified downloads.

Retries (connection errors, timeouts, 5xx) back off exponentially through ``retry.retried``,
the tool's one loop; every error names the store (credentials redacted), the blob and the
cause. The retry budget is wire.py's, the same the shim uses, so the tool and a worker
behave alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from .. import wire
from ..atomic import atomic_writer
from ..errors import BlobNotFoundError, HashMismatchError, StoreAuthError, StoreError
from ..retry import ServerError, retried
from ..wire import BACKOFF_S, RETRIES, TIMEOUT_S

CHUNK = 1 << 20
Body = Callable[[], bytes | None]
T = TypeVar("T")


def new_client(auth: httpx.Auth | None = None) -> httpx.Client:
    """A client for one store (thread-safe, so parallel uploads share it)."""
    return httpx.Client(
        timeout=httpx.Timeout(TIMEOUT_S), follow_redirects=True, auth=auth, trust_env=False
    )


def send(
    client: httpx.Client, location: str, what: str, method: str, url: str, **kwargs: object
) -> httpx.Response:
    """One request, tried again on connection errors and 5xx; the last answer below 500."""

    def once() -> httpx.Response:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        if response.status_code >= 500:
            raise ServerError(response.status_code)
        return response

    try:
        return _retried(once)
    except httpx.TransportError as exc:
        raise unreachable(location, what, exc) from exc
    except ServerError as exc:
        raise StoreError(
            f"store {location}: {what}: HTTP {exc.status} (tried {RETRIES} times)",
            "the server failed; try again later or check its logs",
        ) from exc


def _retried(attempt: Callable[[], T]) -> T:
    """``attempt()`` with the tool's retry loop, on the shim's budget."""
    return retried(
        attempt, transient=(httpx.TransportError, ServerError), tries=RETRIES, backoff_s=BACKOFF_S
    )


def unreachable(location: str, what: str, exc: Exception) -> StoreError:
    cause = str(exc) or type(exc).__name__
    return StoreError(
        f"store {location}: {what}: {cause} (tried {RETRIES} times)",
        "check that the store is up and reachable",
    )


def check(response: httpx.Response, location: str, what: str) -> httpx.Response:
    """The response if it is a success; else the error for its status."""
    status = response.status_code
    if status < 300:
        return response
    if status in (401, 403):
        raise StoreAuthError(
            f"store {location}: {what}: authentication failed (HTTP {status})",
            "check the credentials (see README, Remote stores); they are never printed",
        )
    if status == 404:
        raise BlobNotFoundError(f"store {location}: {what}: not found", "push it first")
    raise StoreError(f"store {location}: {what}: HTTP {status}", "check the store URL")


def download(client: httpx.Client, location: str, url: str, digest: str, dest: Path) -> None:
    """Stream a blob to ``dest`` atomically, sha256 verified before it is renamed in place."""
    what = f"blob sha256:{digest}"
    try:
        _retried(lambda: _download_once(client, location, url, digest, dest))
    except httpx.TransportError as exc:
        raise unreachable(location, what, exc) from exc
    except ServerError as exc:
        raise StoreError(f"store {location}: {what}: HTTP {exc.status}", "try again later") from exc


def _download_once(client: httpx.Client, location: str, url: str, digest: str, dest: Path) -> None:
    what = f"blob sha256:{digest}"
    with client.stream("GET", url) as response:
        if response.status_code >= 500:
            raise ServerError(response.status_code)
        check(response, location, what)
        with atomic_writer(dest) as out:  # an error discards the temp file
            hasher = hashlib.sha256()
            for block in response.iter_bytes(CHUNK):
                hasher.update(block)
                out.write(block)
            verify(location, digest, hasher.hexdigest())


def verify(location: str, digest: str, actual: str) -> None:
    """HashMismatchError when a blob read from a store is not what its name says."""
    if actual != digest:
        raise HashMismatchError(
            wire.corrupt_blob(location, digest, actual),
            "push the function again to restore the blob",
        )


def read_small(client: httpx.Client, location: str, url: str, digest: str) -> bytes:
    """A small blob's verified bytes (task manifests)."""
    what = f"blob sha256:{digest}"
    data = check(send(client, location, what, "GET", url), location, what).content
    verify(location, digest, hashlib.sha256(data).hexdigest())
    return data


def checked_file(path: Path, digest: str) -> None:
    """HashMismatchError unless the file about to be uploaded hashes to ``digest``."""
    hasher = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(CHUNK), b""):
            hasher.update(block)
    if hasher.hexdigest() != digest:
        raise HashMismatchError(
            f"{path} (for blob {digest}): bytes hash to sha256:{hasher.hexdigest()}",
            "build again, then push",
        )

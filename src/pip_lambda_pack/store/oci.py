"""A store in an OCI registry repository, over the distribution API (ECR, GHCR, Harbor, CNCF).

``oci://HOST[:PORT]/REPOSITORY[?mount-from=OTHER/REPO]``. Blobs are registry blobs:
HEAD skips one already there, a cross-repository mount (from ``mount-from``) is tried
first, then POST and a monolithic PUT, or PATCH chunks for blobs over ``chunk_size``.
Each function is an OCI artifact manifest (``artifactType``, the empty config) tagged
with its name, whose blobs are the task manifest, the code and the layers, so registry
tools (oras, crane, skopeo) show them. Auth: anonymous, basic, or the bearer-token flow
the registry's ``WWW-Authenticate`` asks for; credentials from
$LAMBDA_PACK_REGISTRY_USERNAME/_PASSWORD, $LAMBDA_PACK_REGISTRY_TOKEN or
~/.docker/config.json. Loopback registries are spoken to over plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from ..errors import StoreError
from ..manifest import parse_task
from ..wire import (
    OCI_MANIFEST,
    TASK_MEDIA_TYPE,
    TaskManifest,
    WireError,
    is_function_name,
    oci_base,
    parse_challenge,
    redact,
    registry_credentials,
    task_digest,
)
from .local import check_digest, check_name
from .remote import check, checked_file, download, new_client, read_small, send

ARTIFACT_TYPE = "application/vnd.lambda-pack.function.v1"
CODE_MEDIA_TYPE = "application/vnd.lambda-pack.code.v1+zip"
LAYER_MEDIA_TYPE = "application/vnd.lambda-pack.layer.v1+zip"
EMPTY = b"{}"
EMPTY_DIGEST = hashlib.sha256(EMPTY).hexdigest()
EMPTY_CONFIG = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": f"sha256:{EMPTY_DIGEST}",
    "size": 2,
    "data": base64.b64encode(EMPTY).decode(),
}
CHUNK_SIZE = 8 << 20


class RegistryAuth(httpx.Auth):
    """Answers a 401 once: basic credentials, or a token from the bearer realm."""

    requires_response_body = True

    def __init__(self, credentials: tuple[str, str] | None, token: str | None) -> None:
        self.credentials = credentials
        self.header = f"Bearer {token}" if token else None
        self.lock = threading.Lock()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.header:
            request.headers["Authorization"] = self.header
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self.credentials:
            header = httpx.BasicAuth(*self.credentials)._auth_header
        elif scheme == "bearer" and "realm" in params:
            answer = yield self._token_request(params)
            if answer.status_code != 200:
                return
            body = answer.json()
            header = f"Bearer {body.get('token') or body.get('access_token')}"
        else:
            return
        with self.lock:
            self.header = header
        request.headers["Authorization"] = header
        yield request

    def _token_request(self, params: dict[str, str]) -> httpx.Request:
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        request = httpx.Request("GET", params["realm"], params=query)
        if self.credentials:
            request.headers["Authorization"] = httpx.BasicAuth(*self.credentials)._auth_header
        return request


class OciStore:
    """A BlobStore in one repository of an OCI registry."""

    def __init__(self, url: str, chunk_size: int = CHUNK_SIZE) -> None:
        try:
            self.base, self.repository = oci_base(url.partition("?")[0])
        except WireError as exc:
            raise StoreError(exc.message, exc.tip) from None
        self._location = redact(url)
        self.mount_from = parse_qs(urlsplit(url).query).get("mount-from", [])
        self.chunk_size = chunk_size
        credentials = registry_credentials(urlsplit(self.base).netloc)
        token = os.environ.get("LAMBDA_PACK_REGISTRY_TOKEN")
        self.client = new_client(RegistryAuth(credentials, token))
        self._tasks: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"OciStore({self._location!r})"

    @property
    def location(self) -> str:
        return self._location

    def has(self, digest: str) -> bool:
        what = f"blob sha256:{digest}"
        response = self._send(what, "HEAD", self._blob(digest))
        return response.status_code != 404 and check(response, self.location, what) is not None

    def put_file(self, path: Path, digest: str) -> None:
        checked_file(path, digest)
        with open(path, "rb") as source:
            self._upload(source.read(), digest)

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._tasks[digest] = data
        self._upload(data, digest)
        return digest

    def fetch(self, digest: str, dest: Path) -> None:
        download(self.client, self.location, self._blob(digest), digest, dest)

    def read_bytes(self, digest: str) -> bytes:
        if digest in self._tasks:
            return self._tasks[digest]
        return read_small(self.client, self.location, self._blob(digest), digest)

    def set_name(self, name: str, digest: str) -> None:
        """Tag an artifact manifest ``name`` whose blobs are the task, code and layers."""
        check_name(name)
        task = parse_task(self.read_bytes(digest), f"task manifest of {name}")
        if not self.has(EMPTY_DIGEST):
            self.put_bytes(EMPTY)
        body = json.dumps(artifact_manifest(name, digest, len(self.read_bytes(digest)), task))
        what = f"manifest {name!r}"
        url = f"{self.base}/v2/{self.repository}/manifests/{name}"
        headers = {"Content-Type": OCI_MANIFEST}
        check(self._send(what, "PUT", url, content=body.encode(), headers=headers), *self._at(what))

    def get_name(self, name: str) -> str:
        check_name(name)
        what = f"function {name!r}"
        url = f"{self.base}/v2/{self.repository}/manifests/{name}"
        response = self._send(what, "GET", url, headers={"Accept": OCI_MANIFEST})
        try:
            return task_digest(check(response, *self._at(what)).json(), self.location, name)
        except WireError as exc:
            raise StoreError(exc.message, exc.tip) from None
        except ValueError as exc:
            raise StoreError(str(exc), "push the function again with pip-lambda-pack") from None

    def delete_name(self, name: str) -> None:
        """Untag function ``name``: its manifest is deleted (blobs stay, shared)."""
        check_name(name)
        what = f"function {name!r}"
        url = f"{self.base}/v2/{self.repository}/manifests/{name}"
        response = self._send(what, "HEAD", url, headers={"Accept": OCI_MANIFEST})
        if response.status_code == 404:
            return
        digest = check(response, *self._at(what)).headers.get("Docker-Content-Digest", "")
        if not digest.startswith("sha256:"):
            raise StoreError(f"{self.location}: {what}: no manifest digest", "check the registry")
        gone = f"{self.base}/v2/{self.repository}/manifests/{digest}"
        check(self._send(what, "DELETE", gone), *self._at(what))

    def names(self) -> list[str]:
        what = "the tag list"
        url: str | None = f"{self.base}/v2/{self.repository}/tags/list"
        tags: list[str] = []
        while url:
            response = self._send(what, "GET", url)
            if response.status_code == 404:
                return []
            tags += check(response, *self._at(what)).json().get("tags") or []
            url = _next_link(response, self.base)
        return sorted(t for t in tags if is_function_name(t))

    def _upload(self, data: bytes, digest: str) -> None:
        what = f"blob sha256:{digest}"
        location = self._start_upload(digest, what)
        if location is None:  # mounted from another repository
            return
        if len(data) > self.chunk_size:
            location = self._patch_chunks(location, data, what)
            data = b""
        url = location + ("&" if "?" in location else "?") + f"digest=sha256:{digest}"
        headers = {"Content-Type": "application/octet-stream"}
        check(self._send(what, "PUT", url, content=data, headers=headers), *self._at(what))

    def _start_upload(self, digest: str, what: str) -> str | None:
        """POST an upload (a mount attempt first): its URL, or None if the blob was mounted."""
        uploads = f"{self.base}/v2/{self.repository}/blobs/uploads/"
        params = (
            {"mount": f"sha256:{digest}", "from": self.mount_from[0]} if self.mount_from else {}
        )
        response = check(self._send(what, "POST", uploads, params=params), *self._at(what))
        return None if response.status_code == 201 else self._next(response)

    def _patch_chunks(self, location: str, data: bytes, what: str) -> str:
        for start in range(0, len(data), self.chunk_size):
            chunk = data[start : start + self.chunk_size]
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(chunk) - 1}",
            }
            response = self._send(what, "PATCH", location, content=chunk, headers=headers)
            location = self._next(check(response, *self._at(what)))
        return location

    def _next(self, response: httpx.Response) -> str:
        where = str(response.headers.get("Location", ""))
        if not where:
            raise StoreError(
                f"store {self.location}: upload gave no Location", "check the registry"
            )
        return urljoin(self.base + "/", where)

    def _send(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return send(self.client, self.location, what, method, url, **kwargs)

    def _at(self, what: str) -> tuple[str, str]:
        return self.location, what

    def _blob(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.base}/v2/{self.repository}/blobs/sha256:{digest}"


def artifact_manifest(name: str, digest: str, size: int, task: TaskManifest) -> dict[str, Any]:
    """The OCI artifact manifest of one function: task manifest, code, layers in order."""
    blobs = [_descriptor(TASK_MEDIA_TYPE, digest, size, f"{name}.task.json")]
    blobs.append(_descriptor(CODE_MEDIA_TYPE, task.code.sha256, task.code.size, f"{name}.zip"))
    blobs += [
        _descriptor(LAYER_MEDIA_TYPE, layer.sha256, layer.size, f"layer-{i}-{layer.sha256}.zip")
        for i, layer in enumerate(task.layers)
    ]
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": EMPTY_CONFIG,
        "layers": blobs,
        "annotations": {"dev.lambda-pack.function": name, "dev.lambda-pack.target": task.target},
    }


def _descriptor(media_type: str, digest: str, size: int, title: str) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{digest}",
        "size": size,
        "annotations": {"org.opencontainers.image.title": title},
    }


def _next_link(response: httpx.Response, base: str) -> str | None:
    link = response.links.get("next", {}).get("url")
    return urljoin(base + "/", str(link)) if link else None

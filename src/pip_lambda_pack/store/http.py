"""A store on a plain HTTP(S) server in the local store's layout (nginx WebDAV, artifact servers).

``http(s)://HOST/PREFIX``: blobs at ``PREFIX/blobs/sha256/<hex>``, names at
``PREFIX/functions/<NAME>``; GET, HEAD and PUT. Auth: a bearer token from
$LAMBDA_PACK_HTTP_TOKEN, or basic auth from the URL's user info (redacted in messages).
``names`` reads the ``functions/`` listing (nginx ``autoindex`` JSON or HTML links).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from .. import wire
from .local import check_digest, check_name, name_digest
from .remote import check, checked_file, download, new_client, read_small, send

_HREF = re.compile(r'href="([^"/?#]*)"')


class HttpStore:
    """A BlobStore over HTTP GET/HEAD/PUT."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        auth: httpx.Auth | None = None
        if parts.username is not None:
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self.base = urlunsplit(parts).rstrip("/")
        self._location = wire.redact(url)
        self.client = new_client(auth)
        token = os.environ.get("LAMBDA_PACK_HTTP_TOKEN")
        if token:
            self.client.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"HttpStore({self._location!r})"

    @property
    def location(self) -> str:
        return self._location

    def has(self, digest: str) -> bool:
        what = f"blob sha256:{digest}"
        response = send(self.client, self.location, what, "HEAD", self._blob(digest))
        return response.status_code != 404 and check(response, self.location, what) is not None

    def put_file(self, path: Path, digest: str) -> None:
        checked_file(path, digest)
        with open(path, "rb") as source:
            self._put(self._blob(digest), source.read(), f"blob sha256:{digest}")

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._put(self._blob(digest), data, f"blob sha256:{digest}")
        return digest

    def fetch(self, digest: str, dest: Path) -> None:
        download(self.client, self.location, self._blob(digest), digest, dest)

    def read_bytes(self, digest: str) -> bytes:
        return read_small(self.client, self.location, self._blob(digest), digest)

    def set_name(self, name: str, digest: str) -> None:
        check_name(name)
        data = wire.format_ref(check_digest(digest)).encode()
        self._put(f"{self.base}/functions/{name}", data, f"function {name!r}")

    def get_name(self, name: str) -> str:
        check_name(name)
        what = f"function {name!r}"
        url = f"{self.base}/functions/{name}"
        text = check(send(self.client, self.location, what, "GET", url), self.location, what).text
        return name_digest(text, self.location, name)

    def delete_name(self, name: str) -> None:
        """Remove function ``name`` (WebDAV DELETE; its blobs stay, shared)."""
        check_name(name)
        what = f"function {name!r}"
        response = send(self.client, self.location, what, "DELETE", f"{self.base}/functions/{name}")
        if response.status_code != 404:
            check(response, self.location, what)

    def names(self) -> list[str]:
        what = "the functions/ listing"
        url = f"{self.base}/functions/"
        response = send(self.client, self.location, what, "GET", url)
        if response.status_code == 404:
            return []
        return sorted(set(_listing(check(response, self.location, what).text)))

    def _blob(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.base}/blobs/sha256/{digest}"

    def _put(self, url: str, data: bytes, what: str) -> None:
        check(send(self.client, self.location, what, "PUT", url, content=data), self.location, what)


def _listing(text: str) -> list[str]:
    """File names in a directory listing: nginx's autoindex JSON, else HTML links."""
    try:
        entries = json.loads(text)
    except ValueError:
        return [n for n in _HREF.findall(text) if wire.is_function_name(n)]
    if not isinstance(entries, list):
        return []
    names = [e.get("name") for e in entries if isinstance(e, dict) and e.get("type") == "file"]
    return [n for n in names if wire.is_function_name(n)]

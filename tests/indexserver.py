"""A real simple-API index on 127.0.0.1 serving a directory of wheels and sdists, for tests.

    with IndexServer(wheel_dir, yanked={"foo-2.0-py3-none-any.whl": "broken"}) as server:
        server.url       # "http://127.0.0.1:PORT/simple"
        server.requests  # ["/simple/foo/", "/files/foo-1.0-py3-none-any.whl.metadata", ...]

Project pages are PEP 691 JSON or PEP 503 HTML, negotiated by ``Accept``; files are served
from ``/files/<filename>`` and, for wheels, ``/files/<filename>.metadata`` (PEP 658); a
file request with a ``Range: bytes=A-B`` or ``bytes=-N`` header gets a 206 with those bytes,
as PyPI's file host answers. The directory is read on every request, so a test may add files
while the server runs.
"""

from __future__ import annotations

import base64
import email.parser
import hashlib
import html
import json
import threading
import zipfile
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


def _project(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[0]
        return parse_sdist_filename(filename)[0]
    except ValueError:
        return None


def wheel_metadata(path: Path) -> bytes:
    """The METADATA bytes inside a wheel."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


class IndexServer:
    """A threaded HTTP index over ``directory``; use as a context manager.

    ``json=False`` serves only HTML; ``metadata=False`` offers no ``.metadata`` files;
    ``hashes=False`` publishes no sha256; ``yanked`` maps filenames to a reason ("" for
    none); ``requires_python`` overrides the Requires-Python read from a wheel;
    ``fail_next`` answers that many requests with HTTP 503 first; ``ranges=False`` ignores
    ``Range`` headers (the whole file, 200); ``max_age`` sends project pages with that
    ``Cache-Control: max-age`` (PyPI gives 600). ``requests`` lists the paths asked for,
    ``accepts`` the Accept headers sent, ``ranges_asked`` the (path, Range) of ranged
    requests, in order. ``auth=(user, password)`` answers 401 to any request without that
    basic auth (``authorized`` lists, per request, whether it carried it).
    """

    def __init__(
        self,
        directory: Path,
        *,
        json: bool = True,
        metadata: bool = True,
        hashes: bool = True,
        yanked: Mapping[str, str] | None = None,
        requires_python: Mapping[str, str] | None = None,
        fail_next: int = 0,
        ranges: bool = True,
        max_age: int | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.json = json
        self.metadata = metadata
        self.hashes = hashes
        self.yanked = dict(yanked or {})
        self.requires_python = dict(requires_python or {})
        self.fail_next = fail_next
        self.ranges = ranges
        self.max_age = max_age
        self.auth = auth
        self.authorized: list[bool] = []
        self.requests: list[str] = []
        self.ranges_asked: list[tuple[str, str]] = []
        self.accepts: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.root + "/simple"

    def file_requests(self, suffix: str = ".whl") -> list[str]:
        """Paths of requests for files ending in ``suffix``."""
        return [p for p in self.requests if p.startswith("/files/") and p.endswith(suffix)]

    def __enter__(self) -> IndexServer:
        handler = type("Handler", (_Handler,), {"index": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    # -- what the pages say

    def files_of(self, project: str) -> list[Path]:
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file() and _project(p.name) == project and not p.name.endswith(".metadata")
        )

    def file_entry(self, path: Path) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "filename": path.name,
            "url": f"../../files/{path.name}",
            "hashes": {"sha256": _sha256(path.read_bytes())} if self.hashes else {},
            "size": path.stat().st_size,
        }
        requires_python = self._requires_python(path)
        if requires_python:
            entry["requires-python"] = requires_python
        if path.name in self.yanked:
            entry["yanked"] = self.yanked[path.name] or True
        if self.metadata and path.name.endswith(".whl"):
            meta = {"sha256": _sha256(wheel_metadata(path))}
            entry["core-metadata"] = entry["dist-info-metadata"] = meta
        return entry

    def _requires_python(self, path: Path) -> str | None:
        if path.name in self.requires_python:
            return self.requires_python[path.name]
        if not path.name.endswith(".whl"):
            return None
        message = email.parser.BytesParser().parsebytes(wheel_metadata(path))
        value = message.get("Requires-Python")
        return str(value) if value else None

    def json_page(self, project: str) -> bytes:
        files = [self.file_entry(p) for p in self.files_of(project)]
        page = {"meta": {"api-version": "1.1"}, "name": project, "files": files}
        return json.dumps(page).encode()

    def html_page(self, project: str) -> bytes:
        anchors = [self._anchor(self.file_entry(p)) for p in self.files_of(project)]
        body = "\n".join(anchors)
        return f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n".encode()

    def _anchor(self, entry: dict[str, Any]) -> str:
        href = f"/files/{entry['filename']}"
        if entry["hashes"]:
            href += f"#sha256={entry['hashes']['sha256']}"
        attrs = [f'href="{html.escape(href)}"']
        if "requires-python" in entry:
            attrs.append(f'data-requires-python="{html.escape(entry["requires-python"])}"')
        if "yanked" in entry:
            reason = entry["yanked"]
            attrs.append(
                f'data-yanked="{html.escape(reason)}"' if reason is not True else "data-yanked"
            )
        if "core-metadata" in entry:
            value = f"sha256={entry['core-metadata']['sha256']}"
            attrs += [f'data-dist-info-metadata="{value}"', f'data-core-metadata="{value}"']
        return f"<a {' '.join(attrs)}>{html.escape(entry['filename'])}</a><br/>"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    index: IndexServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        index = self.index
        with index._lock:
            index.requests.append(self.path)
            index.accepts.append(self.headers.get("Accept", ""))
            failing = index.fail_next > 0
            index.fail_next -= failing
            allowed = self._authorized()
            index.authorized.append(allowed)
        if not allowed:
            self._send(401, b"log in", "text/plain", {"WWW-Authenticate": 'Basic realm="i"'})
        elif failing:
            self._send(503, b"try again", "text/plain")
        elif self.path.startswith("/simple/"):
            self._project_page(self.path[len("/simple/") :].strip("/"))
        elif self.path.startswith("/files/"):
            self._file(self.path[len("/files/") :])
        else:
            self._send(404, b"not found", "text/plain")

    def _authorized(self) -> bool:
        if self.index.auth is None:
            return True
        user, password = self.index.auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {token}"

    def _project_page(self, name: str) -> None:
        project = canonicalize_name(name)
        if name != project:
            self.send_response(301)
            self.send_header("Location", f"/simple/{project}/")
            self.end_headers()
            return
        if not self.index.files_of(project):
            self._send(404, b"no such project", "text/plain")
        elif self.index.json and JSON_TYPE in self.headers.get("Accept", ""):
            self._send(200, self.index.json_page(project), JSON_TYPE, self._caching())
        else:
            self._send(200, self.index.html_page(project), HTML_TYPE, self._caching())

    def _caching(self) -> dict[str, str]:
        age = self.index.max_age
        return {} if age is None else {"Cache-Control": f"max-age={age}, public"}

    def _file(self, filename: str) -> None:
        if filename.endswith(".metadata") and self.index.metadata:
            wheel = self.index.directory / filename[: -len(".metadata")]
            if wheel.is_file() and wheel.name.endswith(".whl"):
                self._send(200, wheel_metadata(wheel), "application/octet-stream")
                return
        path = self.index.directory / filename
        if "/" in filename or not path.is_file() or filename.endswith(".metadata"):
            self._send(404, b"not found", "text/plain")
            return
        wanted = self.headers.get("Range")
        if wanted is not None:
            with self.index._lock:
                self.index.ranges_asked.append((self.path, wanted))
        if wanted is not None and self.index.ranges:
            self._send_range(path.read_bytes(), wanted)
        else:
            self._send(200, path.read_bytes(), "application/octet-stream")

    def _send_range(self, data: bytes, wanted: str) -> None:
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        if not first:  # the last N bytes
            start, end = max(0, len(data) - int(last)), len(data) - 1
        else:
            start, end = int(first), min(len(data) - 1, int(last)) if last else len(data) - 1
        body = data[start : end + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        self.wfile.write(body)

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        etag = '"' + _sha256(body)[:16] + '"'
        if status == 200 and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

"""The real servers scripts/services starts (registry, nginx WebDAV, moto S3), and a proxy
that injects faults in front of one of them.

``servers()`` reads $LAMBDA_PACK_SERVICES_DIR/servers.json (default
/tmp/lambda-pack-services). Without it a test skips, saying how to start the servers;
under scripts/test ($LAMBDA_PACK_REQUIRE_SERVERS=1) it fails instead.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

SERVICES_DIR = Path(os.environ.get("LAMBDA_PACK_SERVICES_DIR", "/tmp/lambda-pack-services"))
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def servers() -> dict[str, Any]:
    """The servers' URLs and test credentials; skip (or fail under scripts/test) without."""
    path = SERVICES_DIR / "servers.json"
    if not path.is_file():
        message = f"no {path}: start the test servers with scripts/services"
        if os.environ.get("LAMBDA_PACK_REQUIRE_SERVERS"):
            pytest.fail(message)
        pytest.skip(message)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def unique(prefix: str) -> str:
    """A fresh repository, bucket or folder name, so runs never see each other's blobs."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_bucket(endpoint: str) -> str:
    import boto3

    bucket = unique("lp")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    client.create_bucket(Bucket=bucket)
    return bucket


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


Fault = Callable[["_Handler", str], bool]  # (handler, method) -> handled?


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        self.server.requests.append(f"{method} {self.path}")
        if self.server.fault is not None and self.server.fault(self, method):
            return
        self.forward(method)

    def forward(self, method: str) -> tuple[int, bytes]:
        status, headers, body = self.upstream(method)
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
        return status, body

    def upstream(self, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        target = urlsplit(self.server.upstream)
        connection = http.client.HTTPConnection(target.netloc, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        connection.request(method, self.path, body=data, headers=headers)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, response.getheaders(), body

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    upstream: str
    fault: Fault | None
    requests: list[str]


@contextmanager
def proxy(upstream: str, fault: Fault | None = None) -> Iterator[_ProxyServer]:
    """A loopback HTTP proxy to ``upstream`` (scheme://host:port) that lets ``fault`` answer
    a request instead (it returns True when it did). ``.server_address`` is where it is."""
    server = _ProxyServer(("127.0.0.1", 0), _Handler)
    server.upstream, server.fault, server.requests = upstream, fault, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def proxy_url(server: _ProxyServer, path: str) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def fail_first(count: int, status: int = 500, match: str = "/blobs/") -> Fault:
    """The first ``count`` requests whose path contains ``match`` get ``status``."""
    left = [count]

    def fault(handler: _Handler, method: str) -> bool:
        if match not in handler.path or left[0] <= 0:
            return False
        left[0] -= 1
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    return fault


def cut_off(match: str = "/blobs/") -> Fault:
    """GETs of ``match`` paths: full headers, half the body, then the connection drops,
    as when the server stops mid-download."""

    def fault(handler: _Handler, method: str) -> bool:
        if method != "GET" or match not in handler.path:
            return False
        status, _, body = handler.upstream(method)
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(2)
        return True

    return fault

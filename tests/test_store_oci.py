"""OCI auth: the bearer-token flow from ``WWW-Authenticate`` (store over httpx, shim over
urllib) against a small token-guarded registry front, and docker config credentials."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from pip_lambda_pack import shim, wire
from pip_lambda_pack.store.oci import OciStore

BLOB = b"layer bytes"
DIGEST = hashlib.sha256(BLOB).hexdigest()
BASIC = "Basic " + base64.b64encode(b"lp-user:lp-secret").decode()


class _Registry(http.server.BaseHTTPRequestHandler):
    """Blob GETs need ``Bearer good-token``; /token hands it out for the right password."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        auth = self.headers.get("Authorization", "")
        self.seen.append(f"{self.path.split('?')[0]} {auth.split(' ')[0]}")
        if self.path.startswith("/token"):
            ok = auth == BASIC and "scope=repository%3Ateam%2Ffns%3Apull" in self.path
            return self._send(200 if ok else 401, json.dumps({"token": "good-token"}).encode())
        if auth != "Bearer good-token":
            challenge = (
                f'Bearer realm="http://127.0.0.1:{port}/token",service="test",'
                'scope="repository:team/fns:pull"'
            )
            return self._send(401, b"{}", {"WWW-Authenticate": challenge})
        return self._send(200, BLOB)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Registry.seen = []
    yield f"oci://127.0.0.1:{server.server_address[1]}/team/fns"
    server.shutdown()
    server.server_close()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(b"lp-user:lp-secret").decode()
    config = {"auths": {"http://127.0.0.1:1": {}, "127.0.0.1": {"auth": auth}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("LAMBDA_PACK_REGISTRY_USERNAME", raising=False)


def test_store_follows_the_bearer_flow(registry: str, tmp_path: Path, docker_config: None) -> None:
    port = registry.split(":")[2].split("/")[0]
    (tmp_path / "config.json").write_text(
        (tmp_path / "config.json").read_text().replace('"127.0.0.1"', f'"127.0.0.1:{port}"')
    )
    store = OciStore(registry)
    store.fetch(DIGEST, tmp_path / "blob")
    store.fetch(DIGEST, tmp_path / "again")  # the token is reused
    assert (tmp_path / "blob").read_bytes() == BLOB
    assert _Registry.seen == [
        f"/v2/team/fns/blobs/sha256:{DIGEST} ",
        "/token Basic",
        f"/v2/team/fns/blobs/sha256:{DIGEST} Bearer",
        f"/v2/team/fns/blobs/sha256:{DIGEST} Bearer",
    ]


def test_shim_follows_the_bearer_flow(registry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_PACK_REGISTRY_USERNAME", "lp-user")
    monkeypatch.setenv("LAMBDA_PACK_REGISTRY_PASSWORD", "lp-secret")
    reader = shim.open_reader(registry)
    with reader.open_blob(DIGEST) as stream:
        assert stream.read() == BLOB
    assert _Registry.seen == [
        f"/v2/team/fns/blobs/sha256:{DIGEST} ",
        "/token Basic",
        f"/v2/team/fns/blobs/sha256:{DIGEST} Bearer",
    ]


def test_shim_wrong_password_is_one_clear_error(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_PACK_REGISTRY_USERNAME", "lp-user")
    monkeypatch.setenv("LAMBDA_PACK_REGISTRY_PASSWORD", "wrong")
    with pytest.raises(shim.ShimError) as info:
        shim.open_reader(registry).open_blob(DIGEST)
    assert info.value.message == (
        f"store {registry}: a token for blob sha256:{DIGEST}: authentication failed (HTTP 401)"
    )


def test_docker_config_credentials(docker_config: None) -> None:
    assert wire.registry_credentials("127.0.0.1") == ("lp-user", "lp-secret")
    assert wire.registry_credentials("ghcr.io") is None

"""Faults against real servers: a 500 then success, the server gone mid-download or stopped,
a corrupted blob, a wrong password. Each ends in a retry that succeeds or one clear error,
and the shim's cache never keeps a partial or corrupt blob."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pip_lambda_pack import shim
from pip_lambda_pack.errors import HashMismatchError, StoreError
from pip_lambda_pack.store import open_store
from pip_lambda_pack.store.http import HttpStore
from projects import fill_wheelhouse, run, write_project
from servers import cut_off, fail_first, proxy, proxy_url, servers, unique


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    return servers()


@pytest.fixture(scope="module")
def pushed(live: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The test project pushed to a fresh nginx folder: (its path on the server, the URL)."""
    root = tmp_path_factory.mktemp("faults")
    (root / "wheelhouse").mkdir()
    fill_wheelhouse(root / "wheelhouse")
    project = write_project(root / "project", root / "wheelhouse")
    folder = unique("faults")
    url = f"{live['http']}/{folder}"
    result = run(project, "push", "--store", url)
    assert result.returncode == 0, result.stderr
    return f"/open/{folder}", url


def run_shim(store: str, cache: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, shim.__file__, "--store", store, "--name", "hello"]
    command += ["--cache", str(cache), "--event", "-"]
    return subprocess.run(
        command, input='{"name": "x"}', capture_output=True, text=True, timeout=120
    )


def unpacked(cache: Path) -> list[str]:
    """What the cache holds besides lock files: unpacked blobs, their records, temp files."""
    if not cache.is_dir():
        return []
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


def origin(live: dict[str, Any]) -> str:
    parts = urlsplit(live["http"])
    return f"{parts.scheme}://{parts.netloc}"


def test_a_500_then_success(live: dict[str, Any], pushed: tuple[str, str], tmp_path: Path) -> None:
    path, _ = pushed
    with proxy(origin(live), fail_first(2)) as server:
        result = run_shim(proxy_url(server, path), tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["message"] == "[1.0] hello x"
    assert sum(r.startswith("GET") and "/blobs/" in r for r in server.requests) == 2 + 4


def test_push_retries_a_500(live: dict[str, Any], pushed: tuple[str, str], tmp_path: Path) -> None:
    with proxy(origin(live), fail_first(1, match="/retry-")) as server:
        store = HttpStore(proxy_url(server, f"/open/{unique('retry')}"))
        digest = store.put_bytes(b"payload")
    assert store.read_bytes(digest) == b"payload"
    assert [r.split()[0] for r in server.requests] == ["PUT", "PUT", "GET"]


def test_server_gone_mid_download(
    live: dict[str, Any], pushed: tuple[str, str], tmp_path: Path
) -> None:
    path, _ = pushed
    cache = tmp_path / "cache"
    with proxy(origin(live), cut_off()) as server:
        result = run_shim(proxy_url(server, path), cache)
        with pytest.raises(StoreError) as info:
            store = HttpStore(proxy_url(server, path))
            store.fetch(store.get_name("hello"), tmp_path / "task.json")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("ERROR: store http://127.0.0.1:"), result.stderr
    assert "download failed" in lines[-2] and lines[-1].startswith("TIP: ")
    assert unpacked(cache) == []
    assert "(tried 4 times)" in info.value.message
    assert not (tmp_path / "task.json").exists()


def test_server_stopped(pushed: tuple[str, str], tmp_path: Path, live: dict[str, Any]) -> None:
    path, _ = pushed
    with proxy(origin(live)) as server:
        url = proxy_url(server, path)
    result = run_shim(url, tmp_path / "cache")
    assert result.returncode == 1
    assert "Connection refused" in result.stderr, result.stderr
    assert unpacked(tmp_path / "cache") == []


def test_corrupted_blob(live: dict[str, Any], tmp_path: Path) -> None:
    folder = unique("corrupt")
    store = open_store(f"{live['http']}/{folder}", tmp_path)
    digest = store.put_bytes(b"the real bytes")
    blob = Path(live["nginx_root"]) / "open" / folder / "blobs" / "sha256" / digest
    blob.write_bytes(b"the fake bytes")
    with pytest.raises(HashMismatchError) as info:
        store.fetch(digest, tmp_path / "out")
    assert info.value.message.endswith(
        f"blob sha256:{digest} is corrupt (its bytes hash to "
        f"sha256:{shim.hashlib.sha256(b'the fake bytes').hexdigest()})"
    )
    assert not (tmp_path / "out").exists()


def test_corrupted_layer_is_never_cached(
    live: dict[str, Any], pushed: tuple[str, str], tmp_path: Path
) -> None:
    path, url = pushed
    store = open_store(url, tmp_path)
    task = json.loads(store.read_bytes(store.get_name("hello")))
    layer = task["layers"][0]["sha256"]
    blob = Path(live["nginx_root"]) / path.lstrip("/") / "blobs" / "sha256" / layer
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    try:
        result = run_shim(url, tmp_path / "cache")
    finally:
        blob.write_bytes(good)
    assert result.returncode == 2
    assert f"store {url}: blob sha256:{layer} is corrupt" in result.stderr
    assert layer not in " ".join(unpacked(tmp_path / "cache"))


@pytest.mark.parametrize("kind", ["http_basic", "oci_auth"])
def test_wrong_password(kind: str, live: dict[str, Any], tmp_path: Path) -> None:
    wrong = "not-the-password"
    if kind == "http_basic":
        url = live["http_basic"].replace("http://", f"http://lp-user:{wrong}@") + "/x"
        env = {}
    else:
        url = f"{live['oci_auth']}/{unique('fns')}"
        env = {"LAMBDA_PACK_REGISTRY_USERNAME": "lp-user", "LAMBDA_PACK_REGISTRY_PASSWORD": wrong}
    result = run(tmp_path, "ls", "--store", url, env=env)
    assert result.returncode == 2  # bad input, as from the shim below
    error, tip = result.stderr.strip().splitlines()[-2:]
    assert "authentication failed (HTTP 401)" in error and tip.startswith("TIP: ")
    shimmed = subprocess.run(
        [sys.executable, shim.__file__, "--store", url, "--name", "hello"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin"},
        timeout=60,
    )
    assert "authentication failed (HTTP 401)" in shimmed.stderr, shimmed.stderr
    assert shimmed.returncode == 2
    for output in (result.stdout, result.stderr, shimmed.stderr):
        assert wrong not in output

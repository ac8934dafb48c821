"""End to end against real servers: push a project to each kind of remote store, list it, and
invoke each function from an empty cache reading only from that store; oras pulls and
verifies what we pushed to the registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from projects import fill_wheelhouse, run, write_project
from servers import S3_ENV, make_bucket, servers, unique

KINDS = ["oci", "oci_auth", "s3", "http", "http_basic", "http_token"]


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    return servers()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-function test project, locked and built once."""
    root = tmp_path_factory.mktemp("remote")
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir()
    fill_wheelhouse(wheelhouse)
    project = write_project(root / "project", wheelhouse)
    ok(run(project, "build"))
    return project


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def store_for(kind: str, live: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """A fresh store URL of this kind and the environment its credentials come from."""
    user, password = live["username"], live["password"]
    if kind == "oci":
        return f"{live['oci']}/{unique('fns')}", {}
    if kind == "oci_auth":
        env = {"LAMBDA_PACK_REGISTRY_USERNAME": user, "LAMBDA_PACK_REGISTRY_PASSWORD": password}
        return f"{live['oci_auth']}/team/{unique('fns')}", env
    if kind == "s3":
        bucket = make_bucket(live["s3_endpoint"])
        return f"s3://{bucket}/team/fns?endpoint_url={live['s3_endpoint']}", dict(S3_ENV)
    if kind == "http_basic":
        host = live["http_basic"].replace("http://", f"http://{user}:{password}@")
        return f"{host}/{unique('fns')}", {}
    if kind == "http_token":
        return f"{live['http_token']}/{unique('fns')}", {"LAMBDA_PACK_HTTP_TOKEN": live["token"]}
    return f"{live['http']}/{unique('fns')}", {}


@pytest.mark.parametrize("kind", KINDS)
def test_push_ls_and_invoke_from_an_empty_cache(
    kind: str, live: dict[str, Any], built: Path, tmp_path: Path
) -> None:
    url, env = store_for(kind, live)
    pushed = ok(run(built, "push", "--store", url, env=env))
    assert "uploaded" in pushed.stderr + pushed.stdout
    again = ok(run(built, "push", "--store", url, env=env))
    assert "0 blobs uploaded" in again.stdout + again.stderr, again.stderr
    elsewhere = tmp_path / "elsewhere"  # no project, no local store, an empty cache
    elsewhere.mkdir()
    assert ok(run(elsewhere, "ls", "--store", url, env=env)).stdout.split() == ["hello", "other"]
    result = ok(
        run(
            elsewhere,
            "invoke",
            "hello",
            "--store",
            url,
            "--event",
            "-",
            env=env,
            stdin='{"name": "lambda"}',
        )
    )
    assert json.loads(result.stdout)["message"] == "[1.0] hello lambda"
    assert "0 hit, 3 missed" in result.stderr, result.stderr
    other = ok(
        run(
            elsewhere,
            "invoke",
            "other",
            "--store",
            url,
            "--event",
            "-",
            env=env,
            stdin='{"x": [1, 2]}',
        )
    )
    assert json.loads(other.stdout) == {"x": [1, 2]}
    for secret in (live["password"], live["token"]):
        assert secret not in pushed.stdout + pushed.stderr + result.stderr


def test_oras_pulls_and_verifies_what_we_pushed(
    live: dict[str, Any], built: Path, tmp_path: Path
) -> None:
    import oras.client

    url, _ = store_for("oci", live)
    ok(run(built, "push", "--store", url))
    host_repo = url.removeprefix("oci://")
    client = oras.client.OrasClient(hostname=host_repo.split("/")[0], insecure=True)
    manifest = client.get_manifest(f"{host_repo}:hello")
    assert manifest["artifactType"] == "application/vnd.lambda-pack.function.v1"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    files = client.pull(target=f"{host_repo}:hello", outdir=str(tmp_path / "pulled"))
    build = json.loads((built / ".lambda-pack" / "build" / "manifest.json").read_text())
    entry = build["functions"]["hello"]
    expected = {entry["code"]["sha256"]} | {layer["sha256"] for layer in entry["layers"]}
    pulled = {hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}
    assert expected <= pulled
    task = next(Path(f) for f in files if f.endswith(".task.json"))
    assert json.loads(task.read_text())["handler"] == "app.handler"
    shutil.rmtree(tmp_path / "pulled")


def test_chunked_upload_and_cross_repository_mount(live: dict[str, Any], tmp_path: Path) -> None:
    from pip_lambda_pack.store.oci import OciStore

    data = bytes(range(256)) * 40  # 10 kB: three PATCH chunks of 4 kB
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "blob").write_bytes(data)
    source = f"{live['oci']}/{unique('src')}"
    first = OciStore(source, chunk_size=4096)
    first.put_file(tmp_path / "blob", digest)
    first.fetch(digest, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    repository = source.split("/", 3)[3]
    second = OciStore(f"{live['oci']}/{unique('dst')}?mount-from={repository}")
    assert not second.has(digest)
    calls: list[tuple[str, int]] = []
    second.client.event_hooks["response"] = [
        lambda response: calls.append((response.request.method, response.status_code))
    ]
    second.put_file(tmp_path / "blob", digest)
    assert calls == [("POST", 201)]  # mounted: no upload, no bytes sent
    assert second.has(digest) and second.read_bytes(digest) == data

"""``serve`` over every kind of store the test servers provide: local, OCI (with and without
auth), S3, HTTP. Each: boto3 lists and invokes a pushed function from an empty cache, and
CreateFunction then DeleteFunction round-trips through the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from projects import built_project, run
from servers import servers
from serving import create, serve
from test_remote_e2e import store_for

pytest.importorskip("aiohttp")

KINDS = ["local", "oci", "oci_auth", "s3", "http_basic"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_project(tmp_path_factory.mktemp("serve-stores"))


@pytest.mark.parametrize("kind", KINDS)
def test_serve_reads_and_writes_each_store(kind: str, project: Path, tmp_path: Path) -> None:
    if kind == "local":
        url, env = str(tmp_path / "store"), {}
    else:
        url, env = store_for(kind, servers())
    pushed = run(project, "push", "--store", url, env=env)
    assert pushed.returncode == 0, pushed.stderr
    wheelhouse = str(project.parent / "wheelhouse")
    cache = tmp_path / "cache"
    args = ["--store", url, "--cache", str(cache), "--no-index", "-f", wheelhouse]
    with serve(project, *args, env=env) as served:
        client: Any = served.client()
        names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
        assert names == ["hello", "other"]
        response = client.invoke(FunctionName="hello", Payload=b'{"name": "store"}')
        body = json.loads(response["Payload"].read())
        assert body.get("message") == "[1.0] hello store", body
        create(client, "made", "def handler(event, context):\n    return event\n", ["tiny"])
        again = client.invoke(FunctionName="made", Payload=b"[1]")
        assert json.loads(again["Payload"].read()) == [1]
        client.delete_function(FunctionName="made")
        with pytest.raises(ClientError):
            client.get_function(FunctionName="made")
        names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
        assert names == ["hello", "other"]
    assert served.process.returncode == 0, served.output()
    assert "password" not in served.output().lower() or kind == "local"

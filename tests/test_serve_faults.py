"""``serve`` when things go wrong around it: the store down during a cold start, SIGTERM
with calls in flight, idle environments, a host other than loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from projects import built_project, run
from servers import cut_off, fail_first, proxy, proxy_url, servers, unique
from serving import Served, create, serve

pytest.importorskip("aiohttp")

SLOW = """\
import os, subprocess, time

def handler(event, context):
    child = subprocess.Popen(["sleep", "60"])
    time.sleep(event.get("s", 0))
    return {"pid": os.getpid(), "child": child.pid}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_project(tmp_path_factory.mktemp("serve-faults"))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def invoke(client: Any, name: str, event: object) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return response, json.loads(response["Payload"].read())


@pytest.mark.parametrize("fault", ["down", "cut"])
def test_store_down_during_a_cold_start(project: Path, tmp_path: Path, fault: str) -> None:
    live = servers()
    url = f"{live['http']}/{unique('fns')}"
    pushed = run(project, "push", "--store", url)
    assert pushed.returncode == 0, pushed.stderr
    upstream = url.split("/open/")[0]
    path = "/open/" + url.split("/open/")[1]
    manifest = json.loads((project / ".lambda-pack" / "build" / "manifest.json").read_text())
    layer = manifest["functions"]["hello"]["layers"][0]["sha256"]
    match = f"/blobs/sha256/{layer}"  # the task manifest and code come through; this does not
    failing = fail_first(10**6, 503, match) if fault == "down" else cut_off(match)
    cache = tmp_path / "cache"
    with proxy(upstream) as server:
        front = proxy_url(server, path)
        with serve(project, "--store", front, "--cache", str(cache)) as served:
            client = served.client()
            server.fault = failing  # the store fails while the first environment provisions
            response, body = invoke(client, "hello", {"name": "x"})
            assert response["FunctionError"] == "Unhandled"
            assert body["errorType"] == "LambdaPack.ProvisionError"
            assert "TIP:" in body["errorMessage"]
            left = [p.name for p in cache.iterdir()]
            assert not [n for n in left if n.startswith(".tmp") or n in (layer, f"{layer}.used")]
            assert f"{layer}.lock" in left  # it was being fetched: nothing of it half-cached
            server.fault = None  # the store is back
            _, body = invoke(client, "hello", {"name": "back"})
            assert body["message"] == "[1.0] hello back"


def _pids(served: Served) -> list[int]:
    return [int(line.split("(pid ")[1].rstrip(")")) for line in served.lines if "(pid " in line]


def test_sigterm_finishes_calls_in_flight_and_leaves_no_process(
    project: Path, tmp_path: Path
) -> None:
    wheelhouse = str(project.parent / "wheelhouse")
    args = ["--store", str(tmp_path / "store"), "--no-index", "-f", wheelhouse]
    with serve(project, *args) as served:
        client = served.client()
        create(client, "slow", SLOW, Timeout=30)
        _, warm = invoke(client, "slow", {})
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(invoke(client, "slow", {"s": 1.5})))
        thread.start()
        time.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
        thread.join(30)
        assert served.process.wait(30) == 0
    assert result and result[0][1]["pid"] == warm["pid"]  # the call in flight finished
    pids = [*_pids(served), warm["child"], result[0][1]["child"]]
    assert pids and not [pid for pid in pids if alive(pid)]
    assert "serve: stopping" in served.output()


def test_idle_environments_stop(project: Path, tmp_path: Path) -> None:
    wheelhouse = str(project.parent / "wheelhouse")
    args = ["--store", str(tmp_path / "store"), "--no-index", "-f", wheelhouse, "--idle-s", "1"]
    with serve(project, *args) as served:
        client = served.client()
        create(client, "slow", SLOW)
        _, body = invoke(client, "slow", {})
        deadline = time.monotonic() + 15
        while alive(body["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(body["pid"])
        assert not alive(body["child"])
        _, again = invoke(client, "slow", {})  # a fresh environment
        assert again["pid"] != body["pid"]


def test_another_host_warns_and_a_taken_port_is_one_error(project: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "pip_lambda_pack", "serve", "--store", str(tmp_path)]
    done = subprocess.run(
        [*command, "--host", "192.0.2.1", "--port", "0"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.splitlines()
    assert "without authentication" in done.stderr or "no authentication" in done.stderr
    assert done.returncode == 2
    assert lines[-2].startswith("ERROR: cannot listen on 192.0.2.1:0")
    assert lines[-1].startswith("TIP: ")


def test_total_cap_stops_another_functions_idle_environment(project: Path, tmp_path: Path) -> None:
    wheelhouse = str(project.parent / "wheelhouse")
    args = ["--store", str(tmp_path / "store"), "--no-index", "-f", wheelhouse]
    with serve(project, *args, "--max-environments", "1") as served:
        client = served.client()
        create(client, "one", SLOW)
        create(client, "two", SLOW)
        _, first = invoke(client, "one", {})
        _, second = invoke(client, "two", {})  # one's idle environment makes room
        assert second["pid"] != first["pid"]
        deadline = time.monotonic() + 10
        while alive(first["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(first["pid"])
        assert invoke(client, "two", {})[1]["pid"] == second["pid"]  # still warm


def _code_bytes(store: Path) -> int:
    """The store's code and layer zips (its task manifests and record are JSON)."""
    blobs = (store / "blobs" / "sha256").iterdir()
    return sum(p.stat().st_size for p in blobs if not p.read_bytes().startswith(b"{"))


def test_code_storage_cap_is_lambdas_code_storage_exceeded(project: Path, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    from serving import code_zip, store_listing

    store = tmp_path / "store"
    args = ["--store", str(store), "--no-index", "-f", str(project.parent / "wheelhouse")]
    with serve(project, *args, "--code-storage-max-bytes", "1") as served:
        with pytest.raises(ClientError) as caught:
            create(served.client(), "first", SLOW)
        error = caught.value.response
        assert error["Error"]["Code"] == "CodeStorageExceededException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "more than the 1 bytes allowed" in error["Error"]["Message"]
    assert not (store / "functions").exists() or not list((store / "functions").iterdir())
    with serve(project, *args) as served:
        create(served.client(), "first", SLOW)
    cap = _code_bytes(store)  # exactly what the store holds now
    with serve(project, *args, "--code-storage-max-bytes", str(cap)) as served:
        client = served.client()
        zipped = code_zip({"app.py": SLOW, "requirements.txt": ""})
        client.update_function_code(FunctionName="first", ZipFile=zipped)  # replaces, fits
        before = store_listing(store)
        with pytest.raises(ClientError) as caught:
            create(client, "second", SLOW + "# another code zip\n")
        assert caught.value.response["Error"]["Code"] == "CodeStorageExceededException"
        assert store_listing(store) == before
        assert [f["FunctionName"] for f in client.list_functions()["Functions"]] == ["first"]

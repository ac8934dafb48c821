"""``serve`` through boto3: the Lambda API's shapes, warm environments, errors and faults.

One service for the module (a real process on a free port) over a pushed two-function
project; the other functions are made through CreateFunction, as a client would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from projects import pushed_project
from serving import Served, create, serve, store_listing

pytest.importorskip("aiohttp")

FAULTS = """\
import os, sys, time

def handler(event, context):
    what = event.get("do")
    if what == "sleep":
        time.sleep(event["s"])
    if what == "forever":
        while True:
            time.sleep(1)
    if what == "exit":
        os._exit(3)
    if what == "raise":
        raise ValueError("no good: " + event.get("why", ""))
    if what == "print":
        print("hello from the handler")
        print("to stderr", file=sys.stderr)
    if what == "pidfile":
        open(event["path"], "w").write(str(os.getpid()))
        time.sleep(30)
    if what == "append":
        with open(event["path"], "a") as out:
            out.write("x\\n")
        raise RuntimeError("fail on purpose")
    if what == "big":
        return "x" * (7 * 1024 * 1024)
    if what == "memory":
        block = b"x" * (event["mb"] << 20)  # written, so resident
        return {"held": len(block) >> 20}
    return {"pid": os.getpid(), "event": event, "remaining": context.get_remaining_time_in_millis()}
"""
ENVIRON = """\
import os

def handler(event, context):
    return {k: v for k, v in os.environ.items()}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pushed_project(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def service(root: Path) -> Iterator[Served]:
    wheelhouse = str(root.parent / "wheelhouse")
    args = ["--no-index", "-f", wheelhouse, "--max-concurrency", "4", "--queue", "8"]
    with serve(root, *args, env={"AWS_SECRET_ACCESS_KEY": "store-secret"}) as served:
        client = served.client()
        create(client, "faults", FAULTS, ["tiny"], Timeout=1)
        create(
            client,
            "environ",
            ENVIRON,
            MemorySize=256,
            Environment={"Variables": {"GREETING": "hi"}},
        )
        yield served


@pytest.fixture(scope="module")
def client(service: Served) -> Any:
    return service.client()


def call(client: Any, name: str, event: object, **extra: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **extra)
    return response, json.loads(response["Payload"].read())


def log_of(response: dict[str, Any]) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def test_list_and_get_functions(client: Any) -> None:
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert names == ["environ", "faults", "hello", "other"]
    first = client.list_functions(MaxItems=3)
    assert [f["FunctionName"] for f in first["Functions"]] == ["environ", "faults", "hello"]
    rest = client.list_functions(MaxItems=3, Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in rest["Functions"]] == ["other"]
    assert "NextMarker" not in rest
    config = client.get_function(FunctionName="hello")["Configuration"]
    assert config["Handler"] == "app.handler"
    assert config["State"] == "Active"
    assert config["Runtime"] == "python%d.%d" % sys.version_info[:2]
    assert len(config["Layers"]) >= 1
    assert all(":layer:sha256-" in layer["Arn"] for layer in config["Layers"])
    same = client.get_function_configuration(FunctionName="hello")
    assert same["CodeSha256"] == config["CodeSha256"]
    assert same["FunctionArn"].endswith(":function:hello")


def test_invoke_cold_then_warm_with_tail(client: Any) -> None:
    response, body = call(client, "hello", {"name": "serve"}, LogType="Tail")
    assert body == {
        "message": "[1.0] hello serve",
        "greet": "1.0",
        "colors": "1.0",
        "function": "hello",
    }
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    first = log_of(response)
    assert first.startswith("START RequestId: ")
    report = first.splitlines()[-1]
    assert report.startswith("REPORT RequestId: ")
    assert "Init Duration: " in report and "Layers Missed: " in report
    figures = dict(re.findall(r"(\w+(?: \w+)?): ([\d.]+)", report))
    # the cold start's misses split into their download and their unpacking, both inside it
    assert float(figures["Fetch Duration"]) > 0 and float(figures["Extract Duration"]) > 0
    steps = float(figures["Fetch Duration"]) + float(figures["Extract Duration"])
    assert steps <= float(figures["Provision Duration"]) <= float(figures["Init Duration"])
    memory = int(report.split("Max Memory Used: ")[1].split(" MB")[0])
    assert memory > 5
    again, _ = call(client, "hello", {"name": "again"}, LogType="Tail")
    assert "Init Duration" not in log_of(again)


def test_warm_environment_is_reused(client: Any) -> None:
    pids = {call(client, "faults", {})[1]["pid"] for _ in range(5)}
    assert len(pids) == 1


def test_handler_output_is_in_the_tail(client: Any) -> None:
    response, _ = call(client, "faults", {"do": "print"}, LogType="Tail")
    lines = log_of(response).splitlines()
    assert lines[1:3] == ["hello from the handler", "to stderr"]
    assert lines[3].startswith("END RequestId: ")


def test_function_error_has_lambdas_shape(client: Any) -> None:
    response, body = call(client, "faults", {"do": "raise", "why": "test"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "no good: test"
    assert any("app.py" in frame for frame in body["stackTrace"])


def test_environment_variables(client: Any) -> None:
    _, env = call(client, "environ", {})
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "environ"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/environ"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["GREETING"] == "hi"
    assert Path(env["LAMBDA_TASK_ROOT"], "app.py").is_file()
    assert not [k for k in env if k.startswith("LAMBDA_PACK_")]
    assert "store-secret" not in json.dumps(env)


def test_event_and_dry_run(client: Any, tmp_path: Path) -> None:
    dry = client.invoke(FunctionName="faults", InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    marker = tmp_path / "calls"
    event = client.invoke(
        FunctionName="faults",
        InvocationType="Event",
        Payload=json.dumps({"do": "append", "path": str(marker)}).encode(),
    )
    assert event["StatusCode"] == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not marker.exists() or len(marker.read_text()) < 6):
        time.sleep(0.1)
    time.sleep(0.5)
    assert marker.read_text() == "x\nx\nx\n"  # the call and Lambda's two retries


def test_timeout_kills_the_environment(client: Any) -> None:
    response, body = call(client, "faults", {"do": "forever"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    _, fine = call(client, "faults", {"n": 1})
    assert fine["event"] == {"n": 1}


def test_os_exit_fails_that_call_only(client: Any) -> None:
    response, body = call(client, "faults", {"do": "exit"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in body["errorMessage"]
    assert call(client, "faults", {"n": 2})[1]["event"] == {"n": 2}


def test_environment_killed_mid_invocation(client: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(call, client, "faults", {"do": "pidfile", "path": str(pidfile)})
        deadline = time.monotonic() + 20
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        _, body = future.result(30)
    assert body["errorType"] == "Runtime.ExitError"
    assert "signal: kill" in body["errorMessage"]
    assert call(client, "faults", {"n": 3})[1]["event"] == {"n": 3}


def test_going_past_the_memory_setting_is_lambdas_out_of_memory(client: Any) -> None:
    _, fine = call(client, "faults", {"do": "memory", "mb": 30})  # under its 128 MB
    assert fine == {"held": 30}
    response, body = call(client, "faults", {"do": "memory", "mb": 300}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: kill" in body["errorMessage"]
    log = log_of(response)
    assert "Runtime.OutOfMemory" in log
    used = int(log.split("Max Memory Used: ")[1].split(" MB")[0])
    assert used > 128
    assert call(client, "faults", {"n": 4})[1]["event"] == {"n": 4}  # a new environment


def test_response_over_6mb_is_an_error(client: Any) -> None:
    response, body = call(client, "faults", {"do": "big"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"


def test_latest_is_the_only_version(client: Any, root: Path) -> None:
    before = store_listing(root / ".lambda-pack" / "store")
    response, body = call(client, "hello", {"name": "q"}, Qualifier="$LATEST")
    assert response["ExecutedVersion"] == "$LATEST" and body["message"].endswith("hello q")
    versions = client.list_versions_by_function(FunctionName="hello")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST"]
    assert client.list_aliases(FunctionName="hello")["Aliases"] == []
    assert client.get_function(FunctionName="hello", Qualifier="$LATEST")["Configuration"]
    with pytest.raises(ClientError) as caught:
        client.publish_version(FunctionName="hello")
    assert _error(caught) == ("InvalidParameterValueException", 400)
    assert "no versions or aliases" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        client.create_alias(FunctionName="hello", Name="live", FunctionVersion="$LATEST")
    assert _error(caught) == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as caught:
        client.get_alias(FunctionName="hello", Name="live")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        client.get_function(FunctionName="hello", Qualifier="1")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        client.publish_version(FunctionName="nope")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    assert store_listing(root / ".lambda-pack" / "store") == before


def test_bad_invocations(client: Any, root: Path) -> None:
    before = store_listing(root / ".lambda-pack" / "store")
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="hello", Payload=b"{not json")
    assert _error(caught) == ("InvalidRequestContentException", 400)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="nope", Payload=b"{}")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="hello", Qualifier="7", Payload=b"{}")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="hello:live", Payload=b"{}")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="hello", Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert _error(caught) == ("RequestTooLargeException", 413)
    with pytest.raises(ClientError) as caught:
        client.get_function(FunctionName="nope")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    assert store_listing(root / ".lambda-pack" / "store") == before


def test_concurrency_cap_queue_then_429(service: Served) -> None:
    client = service.client(timeout=120)

    def one(i: int) -> str:
        try:
            _, body = call(client, "faults", {"do": "sleep", "s": 0.3})
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return str(body["pid"])

    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, range(64)))
    throttled = results.count("TooManyRequestsException")
    pids = {r for r in results if r.isdigit()}
    assert throttled > 0
    assert throttled + sum(r.isdigit() for r in results) == 64
    assert 1 <= len(pids) <= 4, service.output()[-3000:]
    text = urllib.request.urlopen(service.url + "/metrics").read().decode()
    assert 'lambda_pack_throttles_total{function="faults"}' in text


def test_metrics(service: Served, client: Any) -> None:
    call(client, "other", {"x": 1})
    text = urllib.request.urlopen(service.url + "/metrics").read().decode()
    assert 'lambda_pack_invocations_total{function="other"}' in text
    assert 'lambda_pack_cold_starts_total{function="other"} 1.0' in text
    assert 'lambda_pack_duration_seconds_bucket{function="other",le="+Inf"}' in text
    assert "lambda_pack_fetched_bytes_total" in text


def _error(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _functions(root: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in (root / ".lambda-pack" / "store" / "functions").iterdir()
        if p.name != "lambda-pack-serve"
    }


def test_create_function_builds_and_pushes(client: Any, root: Path) -> None:
    import hashlib

    from serving import code_zip

    before = _functions(root)
    source = "import greet\n\ndef handler(event, context):\n    return greet.hello(event['n'])\n"
    data = code_zip({"app.py": source, "requirements.txt": "greet\ncolors<2\n"})
    version = "python%d.%d" % sys.version_info[:2]
    config = client.create_function(
        FunctionName="fresh",
        Runtime=version,
        Role="arn:aws:iam::000000000000:role/x",
        Handler="app.handler",
        Code={"ZipFile": data},
        Timeout=5,
        MemorySize=192,
        Description="made by a test",
    )
    assert config["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert config["State"] == "Active"
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert config["CodeSize"] == len(data)
    assert (config["Timeout"], config["MemorySize"]) == (5, 192)
    assert config["Description"] == "made by a test"
    assert config["Layers"] and all(":layer:sha256-" in x["Arn"] for x in config["Layers"])
    assert call(client, "fresh", {"n": "new"})[1] == "[1.0] hello new"
    after = _functions(root)
    assert {k: v for k, v in after.items() if k in before} == before  # others untouched
    hello = client.get_function(FunctionName="hello")["Configuration"]["Layers"]
    shared = {x["Arn"] for x in hello} & {x["Arn"] for x in config["Layers"]}
    assert shared  # greet and colors<2 are hello's too: its layers are reused


def test_update_and_delete_function(client: Any) -> None:
    create(client, "changing", "def handler(event, context):\n    return 1\n")
    assert call(client, "changing", {})[1] == 1
    from serving import code_zip

    data = code_zip({"app.py": "def handler(event, context):\n    return 2\n"})
    updated = client.update_function_code(FunctionName="changing", ZipFile=data)
    assert updated["Handler"] == "app.handler"
    assert call(client, "changing", {})[1] == 2
    client.delete_function(FunctionName="changing")
    with pytest.raises(ClientError) as caught:
        client.get_function(FunctionName="changing")
    assert _error(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="changing", Payload=b"{}")
    assert _error(caught) == ("ResourceNotFoundException", 404)


def test_init_errors_have_lambdas_types(client: Any) -> None:
    create(
        client, "badimport", "import not_a_module_anywhere\n\ndef handler(e, c):\n    return 1\n"
    )
    response, body = call(client, "badimport", {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "not_a_module_anywhere" in body["errorMessage"]
    create(client, "nohandler", "def other(e, c):\n    return 1\n")
    response, body = call(client, "nohandler", {})
    assert body["errorType"] == "Runtime.HandlerNotFound"


def test_bad_create_requests_change_nothing(client: Any, root: Path) -> None:
    from serving import code_zip

    store = root / ".lambda-pack" / "store"
    before = store_listing(store)
    version = "python%d.%d" % sys.version_info[:2]
    good = code_zip({"app.py": "def handler(e, c):\n    return 1\n"})
    cases: list[tuple[dict[str, Any], str, int, str]] = [
        ({"Code": {"ZipFile": b"not a zip"}}, "InvalidParameterValueException", 400, "unzip"),
        (
            {"Code": {"ZipFile": code_zip({"other.py": "x = 1\n"})}},
            "InvalidParameterValueException",
            400,
            "no module for handler",
        ),
        (
            {"Code": {"ZipFile": code_zip({"app.py": "", "requirements.txt": "no-such-pkg\n"})}},
            "InvalidParameterValueException",
            400,
            "no-such-pkg",  # our one line, then our tip
        ),
        ({"Runtime": "python2.7"}, "InvalidParameterValueException", 400, "python2.7"),
        ({"FunctionName": "bad name!"}, "InvalidParameterValueException", 400, "functionName"),
        ({"FunctionName": "hello"}, "ResourceConflictException", 409, "already exist"),
        ({"FunctionName": "lambda-pack-serve"}, "InvalidParameterValueException", 400, "reserved"),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            "InvalidParameterValueException",
            400,
            "AWS_REGION",
        ),
    ]
    for change, code, status, words in cases:
        request = {
            "FunctionName": "wrong",
            "Runtime": version,
            "Role": "arn:aws:iam::000000000000:role/x",
            "Handler": "app.handler",
            "Code": {"ZipFile": good},
            **change,
        }
        with pytest.raises(ClientError) as caught:
            client.create_function(**request)
        assert _error(caught) == (code, status), change
        assert words in caught.value.response["Error"]["Message"], change
    with pytest.raises(ClientError) as caught:
        client.update_function_code(FunctionName="hello", ZipFile=b"not a zip")
    assert _error(caught) == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as caught:
        client.update_function_code(FunctionName="nope", ZipFile=good)
    assert _error(caught) == ("ResourceNotFoundException", 404)
    assert store_listing(store) == before


def aws(service: Served, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The AWS CLI (awscli from PyPI) against the service."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(cwd / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "none"),
    }
    command = [sys.executable, "-m", "awscli", "lambda", *args, "--endpoint-url", service.url]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_aws_cli(service: Served, tmp_path: Path) -> None:
    from serving import code_zip

    listed = aws(service, "list-functions", "--max-items", "2", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    names = [f["FunctionName"] for f in page["Functions"]]
    assert len(names) == 2 and names == sorted(names) and "NextToken" in page
    (tmp_path / "event.json").write_text('{"name": "cli"}')
    done = aws(
        service,
        "invoke",
        "--function-name",
        "hello",
        "--payload",
        "fileb://event.json",
        "--log-type",
        "Tail",
        "out.json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out.json").read_text())["message"] == "[1.0] hello cli"
    meta = json.loads(done.stdout)
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    assert "REPORT RequestId" in base64.b64decode(meta["LogResult"]).decode()
    (tmp_path / "fn.zip").write_bytes(code_zip({"app.py": ENVIRON}))
    created = aws(
        service,
        "create-function",
        "--function-name",
        "fromcli",
        "--runtime",
        "python%d.%d" % sys.version_info[:2],
        "--role",
        "arn:aws:iam::000000000000:role/x",
        "--handler",
        "app.handler",
        "--zip-file",
        "fileb://fn.zip",
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["State"] == "Active"
    missing = aws(service, "get-function", "--function-name", "nope", cwd=tmp_path)
    assert missing.returncode == 255  # the AWS CLI v1's code for a service error
    assert "ResourceNotFoundException" in missing.stderr


def test_cold_starts_are_recorded_and_lock_reads_them(client: Any, root: Path) -> None:
    from pip_lambda_pack.config import load_project
    from pip_lambda_pack.graph import pin_graph
    from pip_lambda_pack.lock import read_lock
    from pip_lambda_pack.planning import plan_params, with_observed_usage
    from pip_lambda_pack.serve.record import read_record
    from pip_lambda_pack.store import LocalStore

    call(client, "hello", {"name": "counted"})
    call(client, "other", {})
    store = LocalStore(root / ".lambda-pack" / "store")
    deadline = time.monotonic() + 20
    usage = read_record(store).usage
    while not {"hello", "other"} <= set(usage) and time.monotonic() < deadline:
        time.sleep(0.25)  # the service writes what it saw every few seconds
        usage = read_record(store).usage
    hello, other = usage["hello"], usage["other"]
    assert hello.cold_starts >= 1 and other.cold_starts >= 1
    assert hello.layer_misses >= 1  # the first cold start fetched its blobs
    project = load_project(root / "lambda-pack.toml")
    graph = pin_graph(read_lock(project.lock_path).closures())
    params = with_observed_usage(project, graph, plan_params(project))
    total = hello.cold_starts + other.cold_starts
    assert params.usage == pytest.approx(
        {
            "tiny==0.1": 1.0,
            "greet==1.0": hello.cold_starts / total,
            "colors==1.0": hello.cold_starts / total,
        }
    )

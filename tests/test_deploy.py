"""deploy against moto's server (Lambda, S3, IAM) on loopback, through boto3 as against AWS."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import make_wheel
from projects import fill_wheelhouse, run, write_project
from servers import proxy, proxy_url

boto3 = pytest.importorskip("boto3")

from pip_lambda_pack.cli import main  # noqa: E402
from pip_lambda_pack.config import load_project  # noqa: E402
from pip_lambda_pack.deploy import deploy  # noqa: E402
from pip_lambda_pack.deploy_aws import aws_error  # noqa: E402
from pip_lambda_pack.deploy_model import DeployOptions, Outcome  # noqa: E402
from pip_lambda_pack.errors import DeployError, UserError  # noqa: E402
from pip_lambda_pack.manifest import read_manifest  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/lambda-exec"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
READS = ("Get", "List", "Head")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto_server did not start")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """Our own moto_server on a free loopback port, for this module's tests."""
    process, endpoint = _start_moto()
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh moto (reset), boto3 pointed at it by the environment, an execution role."""
    request = urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    for key, value in {
        **KEYS,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_LAMBDA"):
        monkeypatch.delenv(key, raising=False)
    boto3.client("iam", region_name="us-east-1").create_role(
        RoleName="lambda-exec", AssumeRolePolicyDocument="{}"
    )
    return moto_endpoint


class Calls:
    """Every AWS call boto3 makes through a session, by service and operation."""

    def __init__(self, session: Any) -> None:
        self.made: list[tuple[str, str, dict[str, Any]]] = []
        session.events.register("before-parameter-build", self._seen)

    def _seen(self, event_name: str, model: Any, params: Any, **_: Any) -> None:
        service = event_name.split(".")[1]
        self.made.append((service, model.name, dict(params)))

    def writes(self) -> list[tuple[str, str]]:
        return [(s, op) for s, op, _ in self.made if not op.startswith(READS)]

    def clear(self) -> None:
        self.made.clear()


def _build(root: Path) -> None:
    code = main(["build", "--config", str(root / "lambda-pack.toml"), "-q"])
    assert code == 0


def _deploy(root: Path, session: Any, **options: Any) -> tuple[Outcome, list[str]]:
    """Build, then deploy the project at ``root`` through ``session``: outcome, step lines."""
    _build(root)
    project = load_project(root / "lambda-pack.toml")
    out = root / ".lambda-pack" / "build"
    lines: list[str] = []
    opts = DeployOptions(prefix="demo", role=ROLE, **options)
    outcome = deploy(project, read_manifest(out), out, opts, session, lines.append)
    return outcome, lines


@pytest.fixture
def session(aws: str) -> Any:
    """boto3's default session (the S3 store uses it too), fresh for each test."""
    boto3.setup_default_session(region_name="us-east-1")
    return boto3.DEFAULT_SESSION


def _project(tmp_path: Path, extra: str = "") -> Path:
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    fill_wheelhouse(wheelhouse)
    root = write_project(tmp_path / "project", wheelhouse)
    config = root / "lambda-pack.toml"
    config.write_text(config.read_text() + extra)
    return root


def _config(name: str) -> dict[str, Any]:
    got: dict[str, Any] = boto3.client("lambda").get_function(FunctionName=name)
    return got


def _layer_versions(name: str) -> list[int]:
    versions = boto3.client("lambda").list_layer_versions(LayerName=name)["LayerVersions"]
    return sorted(v["Version"] for v in versions)


def _layer_sha(arn: str) -> str:
    """The CodeSha256 of a layer version (moto's GetLayerVersionByArn fails: by name)."""
    name, version = arn.split(":")[-2], int(arn.split(":")[-1])
    got = boto3.client("lambda").get_layer_version(LayerName=name, VersionNumber=version)
    return str(got["Content"]["CodeSha256"])


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


SETTINGS = """
[functions.hello.environment]
GREETING = "hi"
[functions.hello.tags]
team = "web"
"""


def test_first_deploy_creates_layers_and_functions_in_merge_order(
    tmp_path: Path, session: Any
) -> None:
    root = _project(tmp_path, SETTINGS)
    text = (
        (root / "lambda-pack.toml")
        .read_text()
        .replace(
            'requirements = "requirements.txt"\n',
            'requirements = "requirements.txt"\nmemory = 256\ntimeout = 30\n'
            'ephemeral-storage-mb = 1024\ndescription = "says hello"\n',
            1,
        )
    )
    (root / "lambda-pack.toml").write_text(text)
    calls = Calls(session)
    outcome, lines = _deploy(root, session)
    manifest = read_manifest(root / ".lambda-pack" / "build")
    assert outcome.functions == {"hello": "created", "other": "created"}
    for key, entry in manifest.functions.items():
        got = _config(f"demo-{key}")
        config = got["Configuration"]
        layer_arns = [layer["Arn"] for layer in config["Layers"]]
        assert [arn.split(":")[-2] for arn in layer_arns] == [
            f"demo-{layer.sha256[:12]}" for layer in entry.layers
        ]
        for arn, layer in zip(layer_arns, entry.layers, strict=True):
            assert _layer_sha(arn) == _b64(layer.sha256)
        assert config["CodeSha256"] == _b64(entry.code.sha256)
        assert (config["Handler"], config["Runtime"]) == ("app.handler", manifest_runtime())
        assert config["Architectures"] == ["x86_64"]
        assert config["Role"] == ROLE
    hello = _config("demo-hello")
    assert hello["Configuration"]["MemorySize"] == 256
    assert hello["Configuration"]["Timeout"] == 30
    assert hello["Configuration"]["EphemeralStorage"] == {"Size": 1024}
    assert hello["Configuration"]["Description"] == "says hello"
    assert hello["Configuration"]["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert hello["Tags"] == {"team": "web"}
    assert _config("demo-other")["Configuration"]["MemorySize"] == 128  # Lambda's default
    distinct = {layer.sha256 for e in manifest.functions.values() for layer in e.layers}
    publishes = [op for s, op in calls.writes() if op == "PublishLayerVersion"]
    assert len(publishes) == len(distinct)  # each distinct layer exactly once
    assert sorted(calls.writes()) == sorted(
        [("lambda", "PublishLayerVersion")] * len(distinct) + [("lambda", "CreateFunction")] * 2
    )
    assert "function demo-hello: created" in "\n".join(lines)


def manifest_runtime() -> str:
    return "python%d.%d" % sys.version_info[:2]


def test_unchanged_redeploy_makes_no_write_call(tmp_path: Path, session: Any) -> None:
    root = _project(tmp_path, SETTINGS)
    _deploy(root, session)
    layer_names = sorted(
        f"demo-{layer.sha256[:12]}"
        for e in read_manifest(root / ".lambda-pack" / "build").functions.values()
        for layer in e.layers
    )
    calls = Calls(session)
    outcome, lines = _deploy(root, session)
    assert calls.writes() == []
    assert calls.made  # it did look
    assert outcome.calls == ()
    assert outcome.functions == {"hello": "unchanged", "other": "unchanged"}
    assert (
        outcome.summary() == "no changes: 2 functions and 2 layers already deployed (0 write calls)"
    )
    assert lines == []
    assert [_layer_versions(name) for name in layer_names] == [[1]] * len(layer_names)


def test_changed_requirements_move_only_that_function(tmp_path: Path, session: Any) -> None:
    root = _project(tmp_path)
    _deploy(root, session)
    before = _config("demo-hello")["Configuration"]
    make_wheel(tmp_path / "wheels", "extra", "1.0")
    config = root / "lambda-pack.toml"
    config.write_text(config.read_text().replace('["tiny"]', '["tiny", "extra"]'))
    calls = Calls(session)
    outcome, _ = _deploy(root, session)
    assert outcome.functions == {"hello": "unchanged", "other": "updated"}
    touched = {p.get("FunctionName") for s, op, p in calls.made if not op.startswith(READS)}
    assert touched == {None, "demo-other"}  # None: the new layer
    assert calls.writes() == [
        ("lambda", "PublishLayerVersion"),
        ("lambda", "UpdateFunctionConfiguration"),
    ]
    entry = read_manifest(root / ".lambda-pack" / "build").functions["other"]
    assert [x.wheels for x in entry.layers] == [("extra==1.0",), ("tiny==0.1",)]
    layers = _config("demo-other")["Configuration"]["Layers"]
    assert [x["Arn"].split(":")[-2] for x in layers] == [
        f"demo-{x.sha256[:12]}" for x in entry.layers
    ]
    after = _config("demo-hello")["Configuration"]
    assert (after["LastModified"], after["Layers"]) == (before["LastModified"], before["Layers"])


def test_changed_code_updates_only_the_code(tmp_path: Path, session: Any) -> None:
    root = _project(tmp_path)
    _deploy(root, session)
    (root / "other" / "app.py").write_text("def handler(event, context):\n    return 2\n")
    calls = Calls(session)
    _, lines = _deploy(root, session)
    assert calls.writes() == [("lambda", "UpdateFunctionCode")]
    assert lines == [lines[0]] and lines[0].startswith("function demo-other: code updated")
    code = read_manifest(root / ".lambda-pack" / "build").functions["other"].code
    assert _config("demo-other")["Configuration"]["CodeSha256"] == _b64(code.sha256)


def test_publish_makes_a_version_once(tmp_path: Path, session: Any) -> None:
    root = _project(tmp_path)
    _deploy(root, session, publish=True)
    versions = boto3.client("lambda").list_versions_by_function(FunctionName="demo-hello")
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]
    calls = Calls(session)
    _deploy(root, session, publish=True)
    assert calls.writes() == []


def test_dry_run_prints_the_calls_and_makes_none(tmp_path: Path, session: Any) -> None:
    root = _project(tmp_path)
    calls = Calls(session)
    outcome, lines = _deploy(root, session, dry_run=True)
    assert calls.writes() == []
    assert len(lines) == len(outcome.calls) == 4  # two layers, two functions
    create = next(line for line in lines if "CreateFunction" in line)
    assert create.startswith("would call lambda.CreateFunction(FunctionName='demo-hello', ")
    assert ":new" in create and "Role='" + ROLE + "'" in create
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        boto3.client("lambda").get_function(FunctionName="demo-hello")


def _big_wheel(wheelhouse: Path) -> None:
    data = random.Random(7).randbytes(52 * 1000 * 1000)  # incompressible: a 52 MB zip
    make_wheel(wheelhouse, "bigdata", "1.0", files={"bigdata/blob.bin": data})


@pytest.mark.slow
def test_layer_over_50_mb_goes_through_s3_once(tmp_path: Path, session: Any) -> None:
    root = _project(tmp_path)
    _big_wheel(tmp_path / "wheels")
    config = root / "lambda-pack.toml"
    config.write_text(config.read_text().replace('["tiny"]', '["tiny", "bigdata"]'))
    with pytest.raises(
        UserError, match=r"over Lambda's 50.0 MB \(50,000,000 bytes\) direct upload"
    ) as info:
        _deploy(root, session)
    assert "--s3-bucket" in info.value.tip
    boto3.client("s3").create_bucket(Bucket="deploy-zips")
    calls = Calls(session)
    _deploy(root, session, s3_bucket="deploy-zips")
    manifest = read_manifest(root / ".lambda-pack" / "build")
    big = max((x for e in manifest.functions.values() for x in e.layers), key=lambda x: x.size)
    assert big.size > 50 * 1000 * 1000
    assert calls.writes().count(("s3", "PutObject")) == 1
    key = f"lambda-pack/sha256/{big.sha256}.zip"
    head = boto3.client("s3").head_object(Bucket="deploy-zips", Key=key)
    assert head["ContentLength"] == big.size
    arn = next(
        x["Arn"]
        for x in _config("demo-other")["Configuration"]["Layers"]
        if big.sha256[:12] in x["Arn"]
    )
    assert _layer_sha(arn) == _b64(big.sha256)
    calls.clear()
    _deploy(root, session, s3_bucket="deploy-zips")
    assert calls.writes() == []


def test_shim_delivered_function_runs_from_its_store(tmp_path: Path, session: Any) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shim-store")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    store = f"s3://shim-store/tasks?endpoint_url={endpoint}&region=us-east-1"
    root = _project(tmp_path)
    config = root / "lambda-pack.toml"
    text = config.read_text().replace(
        'requirements = "requirements.txt"\n',
        'requirements = "requirements.txt"\ndelivery = "shim"\nenvironment = { GREETING = "hi" }\n',
    )
    config.write_text(f'store = "{store}"\n' + text)
    outcome, _ = _deploy(root, session)
    assert outcome.functions == {"hello": "created", "other": "created"}
    hello = _config("demo-hello")["Configuration"]
    assert hello["Handler"] == "pip_lambda_pack.wrapper.handler"
    variables = hello["Environment"]["Variables"]
    assert variables["LAMBDA_PACK_STORE"] == store
    assert variables["LAMBDA_PACK_TASK"] == "hello"
    assert variables["GREETING"] == "hi"
    [bootstrap] = hello["Layers"]
    zips = sorted((root / ".lambda-pack" / "build" / "bootstrap").glob("*.zip"))
    assert len(zips) == 1
    assert _layer_sha(bootstrap["Arn"]) == _b64(zips[0].stem)
    # moto cannot run handlers without Docker: run the wrapper from the bootstrap layer here,
    # with the function's variables and an empty cache, against the same store.
    opt = tmp_path / "opt"
    with zipfile.ZipFile(zips[0]) as archive:
        assert sorted(archive.namelist())[0] == "python/pip_lambda_pack/__init__.py"
        archive.extractall(opt)
    result = _run_wrapper(opt, variables, tmp_path / "tmp-cache", {"name": "moto"})
    assert result == {
        "message": "[1.0] hello moto",
        "greet": "1.0",
        "colors": "1.0",
        "function": "demo-hello",
    }
    assert sorted((tmp_path / "tmp-cache").iterdir())  # fetched into the empty cache
    env = {**KEYS, "AWS_DEFAULT_REGION": "us-east-1"}
    invoked = run(root, "invoke", "hello", "--event", "-", stdin='{"name": "cli"}', env=env)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["message"] == "[1.0] hello cli"  # the same store
    calls = Calls(session)
    _deploy(root, session)
    assert calls.writes() == []  # the store too: it shares boto3's default session


def _run_wrapper(opt: Path, variables: dict[str, str], cache: Path, event: object) -> Any:
    script = (
        "import json, sys, types\n"
        f"sys.path[:0] = [{str(opt / 'python')!r}]\n"
        "from pip_lambda_pack.wrapper import handler\n"
        "context = types.SimpleNamespace(function_name='demo-hello')\n"
        "print(json.dumps(handler(json.loads(sys.argv[1]), context)))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        **KEYS,
        **variables,
        "LAMBDA_PACK_CACHE": str(cache),
    }
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, json.dumps(event)],
        env=env,
        capture_output=True,
        text=True,
        cwd=opt,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- errors ---------------------------------------------------------------------------------


def test_cli_deploy_of_examples_style_project_and_errors(tmp_path: Path, aws: str) -> None:
    root = _project(tmp_path)
    env = {**KEYS, "AWS_ENDPOINT_URL": aws, "AWS_REGION": "us-east-1"}
    done = run(root, "deploy", "--prefix", "demo", env=env)
    assert done.returncode == 2
    assert "ERROR: function demo-hello does not exist yet and no role is set for it" in done.stderr
    assert "TIP: pass --role ARN" in done.stderr
    done = run(root, "deploy", "--prefix", "demo", "--role", ROLE, "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["functions"]["hello"]["action"] == "created"
    assert data["functions"]["hello"]["arn"].endswith(":function:demo-hello")
    assert data["writes"] == 4
    done = run(root, "deploy", "--prefix", "demo", "--role", ROLE, env=env)
    assert done.returncode == 0
    assert done.stderr.strip().splitlines()[-1] == (
        "no changes: 2 functions and 2 layers already deployed (0 write calls)"
    )


def test_missing_role_no_region_no_credentials(tmp_path: Path, aws: str) -> None:
    root = _project(tmp_path)
    base = {"AWS_ENDPOINT_URL": aws, "AWS_REGION": "us-east-1", **KEYS}
    missing = "arn:aws:iam::123456789012:role/nope"
    done = run(root, "deploy", "--role", missing, env=base)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-2:] == [
        f"ERROR: the role {missing} does not exist",
        "TIP: create it (with a trust policy for lambda.amazonaws.com) or fix role/--role",
    ]
    home = tmp_path / "home"  # no ~/.aws
    no_region = {**base, "AWS_REGION": "", "HOME": str(home), "AWS_CONFIG_FILE": str(home / "c")}
    done = run(root, "deploy", "--role", ROLE, env=no_region)
    assert done.returncode == 2
    assert "ERROR: no AWS region is set" in done.stderr and "TIP: pass --region" in done.stderr
    no_keys = {
        "AWS_ENDPOINT_URL": aws,
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "c"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "k"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = run(root, "deploy", "--role", ROLE, "--region", "us-east-1", env=no_keys)
    assert done.returncode == 2
    assert "ERROR: no AWS credentials found" in done.stderr
    assert "Traceback" not in done.stderr
    assert boto3.client("lambda").list_functions()["Functions"] == []


def test_access_denied_is_a_user_error(tmp_path: Path) -> None:
    process, endpoint = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        root = _project(tmp_path)
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", **KEYS}
        done = run(root, "deploy", "--role", ROLE, env=env)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert done.returncode == 2, done.stderr
    error, tip = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("ERROR: AWS denied lambda.")
    assert tip.startswith("TIP: check AWS_PROFILE")


def _throttle(path_part: str) -> Any:
    def fault(handler: Any, method: str) -> bool:
        if method != "PUT" or not handler.path.endswith(path_part):
            return False
        length = int(handler.headers.get("Content-Length") or 0)
        handler.rfile.read(length)
        body = json.dumps({"message": "Rate exceeded"}).encode()
        handler.send_response(429)
        handler.send_header("x-amzn-ErrorType", "TooManyRequestsException")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    return fault


def test_throttled_code_update_leaves_the_function_as_it_was(
    tmp_path: Path, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    _deploy(root, session)
    before = _config("demo-other")["Configuration"]
    (root / "other" / "app.py").write_text("def handler(event, context):\n    return 3\n")
    make_wheel(tmp_path / "wheels", "extra", "1.0")
    config = root / "lambda-pack.toml"
    config.write_text(config.read_text().replace('["tiny"]', '["tiny", "extra"]'))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    with proxy(endpoint, _throttle("/code")) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy_url(server, ""))
        boto3.setup_default_session(region_name="us-east-1")
        with pytest.raises(DeployError) as info:
            _deploy(root, boto3.DEFAULT_SESSION)
        codes = [r for r in server.requests if r.startswith("PUT") and r.endswith("/code")]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert len(codes) == 2  # boto3's standard retry mode tried again
    assert info.value.message.startswith("AWS throttled lambda.UpdateFunctionCode (demo-other)")
    assert info.value.message.endswith("(demo-other left as it was)")
    assert "deploy again" in info.value.tip
    after = _config("demo-other")["Configuration"]
    assert after["Layers"] == before["Layers"]  # the configuration was put back
    assert after["CodeSha256"] == before["CodeSha256"]


def _client_error(code: str, message: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, "PublishLayerVersion")


def test_aws_errors_become_one_error_and_one_tip() -> None:
    quota = aws_error(
        _client_error("CodeStorageExceededException", "Code storage limit exceeded."),
        "lambda.PublishLayerVersion",
        "demo-0123",
    )
    assert isinstance(quota, UserError)
    assert quota.message.startswith("Lambda's code storage quota (75 GB) is full")
    assert "delete old function and layer versions" in quota.tip
    layers = aws_error(
        _client_error("InvalidParameterValueException", "Cannot reference more than 5 layers."),
        "lambda.UpdateFunctionConfiguration",
        "demo-x",
    )
    assert isinstance(layers, UserError) and 'delivery = "shim"' in layers.tip
    throttled = aws_error(
        _client_error("TooManyRequestsException", "Rate exceeded"), "lambda.CreateFunction", "f"
    )
    assert isinstance(throttled, DeployError) and throttled.exit_code == 1


def test_shim_delivery_plans_within_tmp_and_makes_the_lock_stale(tmp_path: Path) -> None:
    from pip_lambda_pack.planning import plan_params, shim_size_limit

    root = _project(tmp_path)
    assert run(root, "lock", "-q").returncode == 0
    config = root / "lambda-pack.toml"
    config.write_text(
        config.read_text().replace(
            'code = "hello"\n', 'code = "hello"\ndelivery = "shim"\nephemeral-storage-mb = 2048\n'
        )
    )
    params = plan_params(load_project(config))
    assert (params.layers_for("hello"), params.size_for("hello")) == (64, shim_size_limit(2048))
    assert shim_size_limit(2048) == int(2048 * 0.9 * 2**20) - 64 * 2**20
    assert (params.layers_for("other"), params.size_for("other")) == (5, 250 * 2**20)
    done = run(root, "check")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "lambda-pack.lock is stale: delivery or ephemeral-storage-mb of function hello changed"
    )


# -- from PyPI (network) ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
HEX = re.compile(r"\b[0-9a-f]{12}\b")
SIZE = re.compile(r"\(\d+(\.\d+)? [kMG]?B\)")


def _readme_deploy_block() -> list[tuple[str, list[str]]]:
    """The commands of the README's Deploy example, each with the lines it prints."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Deploy", 1)[1]
    block = section.split("```\n", 2)[1]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].split("  #")[0].strip(), []))
        else:
            steps[-1][1].append(line)
    return steps


def _shape(lines: list[str]) -> list[str]:
    return [SIZE.sub("(SIZE)", HEX.sub("HEX", line)) for line in lines]


@pytest.mark.network
@pytest.mark.slow
def test_readme_deploy_of_the_examples_into_moto(tmp_path: Path, aws: str, session: Any) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns(".l*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAMBDA_PACK_CACHE_DIR"] = str(tmp_path / "cache")
    cwd = root
    seen = []
    for command, printed in _readme_deploy_block():
        words = shlex.split(command)
        if words[0] == "moto_server":
            continue  # ours runs already, on another port
        if words[0] == "export":
            env.update(dict(word.split("=", 1) for word in words[1:]))
            env["AWS_ENDPOINT_URL"] = aws
        elif words[0] == "cd":
            cwd = cwd / words[1]
        elif words[0] == "python":
            done = subprocess.run([sys.executable, *words[1:]], env=env, capture_output=True)
            assert done.returncode == 0 or b"EntityAlreadyExists" in done.stderr
        else:
            assert words[0] == "pip-lambda-pack"
            done = subprocess.run(
                [sys.executable, "-m", "pip_lambda_pack", *words[1:]],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr
            shown = [line for line in done.stderr.splitlines() if not _build_line(line)]
            if printed:
                assert _shape(shown) == _shape(printed)
            seen.append(command)
    assert len(seen) == 3
    names = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    assert sorted(names) == ["demo-fetch", "demo-validate"]


def _build_line(line: str) -> bool:
    """The lines build prints before deploy's own."""
    starts = ("resolving ", "warning: ", "wrote ", "fetching ", "building ", "built ", "using ")
    return line.startswith(starts) or line.startswith("would call ")


@pytest.mark.network
@pytest.mark.slow
def test_bench_corpus_deploy_uploads_each_layer_once(tmp_path: Path, session: Any) -> None:
    root = tmp_path / "corpus"
    boto3.client("s3").create_bucket(Bucket="corpus-zips")
    store = f"s3://corpus-zips/store?endpoint_url={os.environ['AWS_ENDPOINT_URL']}"
    lines = ['target = "python3.12-x86_64"', f'store = "{store}"', ""]
    for req in sorted((REPO / "bench" / "corpus").glob("*.txt")):
        (root / "functions" / req.stem).mkdir(parents=True)
        (root / "functions" / req.stem / "app.py").write_text("def handler(e, c):\n    return 1\n")
        shutil.copyfile(req, root / f"{req.stem}.txt")
        lines += [f"[functions.{req.stem}]", 'handler = "app.handler"']
        lines += [f'code = "functions/{req.stem}"', f'requirements = "{req.stem}.txt"']
        if req.stem == "etl":  # pandas + pyarrow: 291 MB, over Lambda's 250 MiB
            lines += ['delivery = "shim"', "ephemeral-storage-mb = 1024"]
        lines.append("")
    (root / "lambda-pack.toml").write_text("\n".join(lines))
    calls = Calls(session)
    outcome, _ = _deploy(root, session, s3_bucket="corpus-zips")
    manifest = read_manifest(root / ".lambda-pack" / "build")
    on_lambda = {k: e for k, e in manifest.functions.items() if k != "etl"}
    distinct = {x.sha256: x for e in on_lambda.values() for x in e.layers}
    uses = sum(len(e.layers) for e in on_lambda.values())
    assert uses > len(distinct)  # layers are shared, so uploading per function would repeat
    [bootstrap] = (root / ".lambda-pack" / "build" / "bootstrap").glob("*.zip")
    published = [p for s, op, p in calls.made if op == "PublishLayerVersion"]
    assert sorted(p["LayerName"] for p in published) == sorted(
        f"demo-{sha[:12]}" for sha in [*distinct, bootstrap.stem]
    )
    big = [x for x in distinct.values() if x.size > 50 * 1000 * 1000]
    keys = [p["Key"] for s, op, p in calls.made if s == "s3" and not op.startswith(READS)]
    assert sorted(k for k in keys if k.startswith("lambda-pack/")) == sorted(
        f"lambda-pack/sha256/{x.sha256}.zip" for x in big
    )
    etl = manifest.functions["etl"]
    blobs = {etl.code.sha256, *(x.sha256 for x in etl.layers)}
    written = {k for k in keys if k.startswith("store/")}
    assert len(written) == len(blobs) + 2  # each blob once, the task manifest, the name
    assert {f"store/blobs/sha256/{d}" for d in blobs} < written
    assert set(outcome.functions.values()) == {"created"}
    calls.clear()
    _deploy(root, session, s3_bucket="corpus-zips")
    assert calls.writes() == []


POLARS_HANDLER = """\
import polars as pl
import pyarrow as pa


def handler(event, context):
    frame = pl.DataFrame({"n": event["numbers"]})
    table = frame.to_arrow()
    return {"sum": int(frame["n"].sum()), "rows": table.num_rows,
            "arrow": pa.__version__.split(".")[0].isdigit(), "function": context.function_name}
"""


@pytest.mark.network
@pytest.mark.slow
def test_polars_and_pyarrow_past_250_mb_through_the_shim(tmp_path: Path, session: Any) -> None:
    boto3.client("s3").create_bucket(Bucket="big-store")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    store = f"s3://big-store/tasks?endpoint_url={endpoint}&region=us-east-1"
    root = tmp_path / "big"
    (root / "etl").mkdir(parents=True)
    (root / "etl" / "app.py").write_text(POLARS_HANDLER)
    target = "python%d.%d-x86_64" % sys.version_info[:2]
    (root / "lambda-pack.toml").write_text(
        f'target = "{target}"\nstore = "{store}"\n[functions.hello]\nhandler = "app.handler"\n'
        'code = "etl"\ndependencies = ["polars", "pyarrow"]\ndelivery = "shim"\n'
        "ephemeral-storage-mb = 2048\nmemory = 1024\n"
    )
    outcome, _ = _deploy(root, session)
    assert outcome.functions == {"hello": "created"}
    entry = read_manifest(root / ".lambda-pack" / "build").functions["hello"]
    unzipped = sum(x.unzipped_size for x in entry.layers)
    assert unzipped > 250 * 1024 * 1024  # past Lambda's limit for layers
    config = _config("demo-hello")["Configuration"]
    assert config["Handler"] == "pip_lambda_pack.wrapper.handler"
    assert len(config["Layers"]) == 1 and config["EphemeralStorage"] == {"Size": 2048}
    [bootstrap] = sorted((root / ".lambda-pack" / "build" / "bootstrap").glob("*.zip"))
    opt = tmp_path / "opt"
    with zipfile.ZipFile(bootstrap) as archive:
        archive.extractall(opt)
    variables = config["Environment"]["Variables"]
    result = _run_wrapper(opt, variables, tmp_path / "tmp-cache", {"numbers": [1, 2, 39]})
    assert result == {"sum": 42, "rows": 3, "arrow": True, "function": "demo-hello"}


# -- the checks before any write (pure) -----------------------------------------------------


def _manifest(layer_count: int, unzipped: int = 1000) -> Any:
    from pip_lambda_pack.manifest import BuildManifest, CodeEntry, FunctionEntry, LayerEntry

    layers = tuple(
        LayerEntry(
            path=f"layers/{i:064x}.zip",
            sha256=f"{i:064x}",
            size=100,
            unzipped_size=unzipped,
            wheels=(f"p{i}==1",),
        )
        for i in range(1, layer_count + 1)
    )
    code = CodeEntry(path="functions/hello.zip", sha256="f" * 64, size=10)
    entry = FunctionEntry(handler="app.handler", code=code, layers=layers)
    return BuildManifest(target="python3.12-x86_64", functions={"hello": entry})


def _one_function(tmp_path: Path) -> Any:
    (tmp_path / "src").mkdir(exist_ok=True)
    config = tmp_path / "lambda-pack.toml"
    config.write_text('[functions.hello]\nhandler = "app.handler"\ncode = "src"\n')
    return load_project(config)


def test_more_layers_than_lambda_takes_is_refused_before_any_call(tmp_path: Path) -> None:
    from pip_lambda_pack.deploy import wanted

    project = _one_function(tmp_path)
    layers, functions = wanted(project, _manifest(5), tmp_path, DeployOptions(prefix="p"))
    assert len(layers) == 5 and functions[0].name == "p-hello"
    with pytest.raises(UserError) as info:
        wanted(project, _manifest(6), tmp_path, DeployOptions(prefix="p"))
    assert info.value.message == "function hello has 6 layers, over Lambda's 5"
    assert 'delivery = "shim"' in info.value.tip
    with pytest.raises(
        UserError, match=r"layers unzip to 315.0 MB, over Lambda's 250 MiB \(262,144,000 bytes\)"
    ):
        wanted(project, _manifest(3, 105 * 10**6), tmp_path, DeployOptions(prefix="p"))


def test_a_full_code_storage_quota_is_refused_before_any_call(tmp_path: Path) -> None:
    from pip_lambda_pack.deploy import wanted
    from pip_lambda_pack.deploy_calls import plan_calls
    from pip_lambda_pack.deploy_model import State

    project = _one_function(tmp_path)
    options = DeployOptions(prefix="p", role=ROLE)
    layers, functions = wanted(project, _manifest(2), tmp_path, options)
    gb = 10**9
    room = State(layers={}, functions={"p-hello": None}, code_storage=(70 * gb, 75 * gb))
    assert [c.operation for c in plan_calls(layers, functions, room, options)] == [
        "PublishLayerVersion",
        "PublishLayerVersion",
        "CreateFunction",
    ]
    full = State(layers={}, functions={"p-hello": None}, code_storage=(75 * gb - 100, 75 * gb))
    with pytest.raises(UserError) as info:
        plan_calls(layers, functions, full, options)
    assert info.value.message == (
        "Lambda's code storage would be over its quota: 75.0 GB used + 210 B new > 75.0 GB"
    )
    assert info.value.tip.startswith("delete old function and layer versions")


def test_long_names_and_local_stores_for_the_shim_are_refused(tmp_path: Path) -> None:
    from pip_lambda_pack.deploy import wanted

    project = _one_function(tmp_path)
    with pytest.raises(UserError, match="'x{59}-hello' is 65 characters, over Lambda's 64"):
        wanted(project, _manifest(1), tmp_path, DeployOptions(prefix="x" * 59))
    config = tmp_path / "lambda-pack.toml"
    config.write_text(config.read_text() + 'delivery = "shim"\n')
    project = load_project(config)
    with pytest.raises(UserError) as info:
        wanted(project, _manifest(1), tmp_path, DeployOptions(prefix="p"), project.store)
    assert "the store .lambda-pack/store is a local directory" in info.value.message
    assert info.value.tip.startswith('set store = "s3://BUCKET/PREFIX"')
    secret = "s3://b/p?endpoint_url=http://user:pw@127.0.0.1:1"
    with pytest.raises(UserError, match="holds a credential"):
        wanted(project, _manifest(1), tmp_path, DeployOptions(prefix="p"), secret)


def test_profile_and_service_endpoints_come_from_boto3s_chain(
    tmp_path: Path, aws: str, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text("[profile team]\nregion = us-east-1\n")
    (home / ".aws" / "credentials").write_text(
        "[team]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    env = {
        "HOME": str(home),
        "AWS_PROFILE": "team",
        "AWS_ENDPOINT_URL_LAMBDA": aws,
        "AWS_ENDPOINT_URL_IAM": aws,
    }
    done = run(root, "deploy", "--role", ROLE, "--prefix", "prof", "--json", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["region"] == "us-east-1"
    lam = session.client(
        "lambda", endpoint_url=aws, aws_access_key_id="t", aws_secret_access_key="t"
    )
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert sorted(names) == ["prof-hello", "prof-other"]


def test_the_bootstrap_layer_ships_the_shims_bytecode_for_the_target(tmp_path: Path) -> None:
    from pip_lambda_pack.deploy import wanted
    from pip_lambda_pack.interpreters import find_optional
    from pip_lambda_pack.target import get_target

    python = find_optional(get_target("python3.12-x86_64"), any_machine=True)
    if python is None:
        pytest.skip("needs a Python 3.12 interpreter (pyenv install 3.12)")
    (tmp_path / "src").mkdir()
    config = tmp_path / "lambda-pack.toml"

    def bootstrap(out: str, mode: str) -> Path:
        config.write_text(
            f'bytecode = "{mode}"\n[functions.hello]\nhandler = "app.handler"\ncode = "src"\n'
            'delivery = "shim"\n'
        )
        args = (load_project(config), _manifest(1), tmp_path / out, DeployOptions(prefix="p"))
        layers, _ = wanted(*args, "s3://b/p")
        [layer] = [want for want in layers if want.description == "pip-lambda-pack shim"]
        return layer.zip.path

    first, second = bootstrap("one", "checked-hash"), bootstrap("two", "checked-hash")
    assert first.read_bytes() == second.read_bytes()
    pycache = "python/pip_lambda_pack/__pycache__/"
    with zipfile.ZipFile(first) as archive:
        pycs = sorted(name for name in archive.namelist() if name.endswith(".pyc"))
        shim_pyc = archive.read(pycache + "shim.cpython-312.pyc")
        archive.extractall(tmp_path / "opt")
    assert pycs == [pycache + f"{m}.cpython-312.pyc" for m in ("__init__", "shim", "wrapper")]
    assert int.from_bytes(shim_pyc[4:8], "little") == 0b11  # PEP 552: hash-based, checked
    site = tmp_path / "opt" / "python"
    done = subprocess.run(
        [str(python.path), "-v", "-c", "import pip_lambda_pack.shim"],
        env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(site), "PATH": os.defpath},
        capture_output=True,
        text=True,
        check=True,
    )
    cached = site / "pip_lambda_pack" / "__pycache__" / "shim.cpython-312.pyc"
    assert f"code object from '{cached}'" in done.stderr  # used as shipped, not compiled
    with zipfile.ZipFile(bootstrap("bare", "none")) as archive:
        assert not [name for name in archive.namelist() if name.endswith(".pyc")]

"""bootstrap.py: the Runtime API loop answers as AWS's own runtime client does.

The same build runs three ways against tests/lambda_runtime.py's Runtime API: unpacked as
Lambda unpacks it under ``awslambdaric`` (AWS's client, driving the handler in our
place), unpacked under our bootstrap, and provisioned by our bootstrap from a store
through the shim. The answers (and the error shapes) must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_wheel
from lambda_runtime import (
    Invocation,
    RuntimeAPI,
    build_function,
    run_on_runtime_client,
    unpack_like_lambda,
)
from pip_lambda_pack import bootstrap
from pip_lambda_pack.manifest import read_manifest
from pip_lambda_pack.store import LocalStore, push

HANDLER = """\
import os
from importlib.metadata import version

import tinydep
import shared

SECRET = os.environ.get("LAMBDA_PACK_REGISTRY_PASSWORD")

def handler(event, context):
    return {
        "echo": event,
        "dist_version": version("tinydep"),
        "module_version": tinydep.VERSION,
        "shared": shared.WHO,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining_positive": context.get_remaining_time_in_millis() > 0,
        "cwd_is_task_root": os.path.samefile(os.getcwd(), os.environ["LAMBDA_TASK_ROOT"]),
        "secret_seen": SECRET is not None or "LAMBDA_PACK_REGISTRY_PASSWORD" in os.environ,
    }

def fails(event, context):
    raise KeyError(event["missing"])
"""
EVENT = {"hello": ["world", 1]}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    first = [
        make_wheel(wheels, "tinydep", "2.3.1"),
        make_wheel(wheels, "shared-one", "1.0", files={"shared.py": "WHO = 'one'\n"}),
    ]
    second = [make_wheel(wheels, "shared-two", "1.0", files={"shared.py": "WHO = 'two'\n"})]
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    target = "python%d.%d-x86_64" % sys.version_info[:2]
    build_function(tmp_path / "build", "boot", "app.handler", code, [first, second], target)
    return tmp_path / "build"


def run_bootstrap(env: dict[str, str], event: object, timeout_s: float = 30.0) -> Invocation:
    """``python bootstrap.py`` (as a script, beside shim.py) against a Runtime API."""
    with RuntimeAPI(event, "boot", timeout_s) as api:
        full = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "boot",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            **env,
        }
        process = subprocess.Popen(
            [sys.executable, str(Path(bootstrap.__file__))],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            finished = api.invocation.done.wait(timeout_s)
        finally:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
        assert finished, output
        return api.invocation


def _unpacked(build: Path, root: Path) -> tuple[Path, Path]:
    function = read_manifest(build).functions["boot"]
    return unpack_like_lambda(build, function, root)


def test_bootstrap_answers_like_awslambdaric(build: Path, tmp_path: Path) -> None:
    task, opt = _unpacked(build, tmp_path / "lambda")
    theirs = run_on_runtime_client(task, opt, "app.handler", EVENT, "boot")
    env = {"LAMBDA_TASK_ROOT": str(task), "LAMBDA_PACK_OPT": str(opt), "_HANDLER": "app.handler"}
    ours = run_bootstrap(env, EVENT)
    assert (ours.status, theirs.status) == ("response", "response"), ours.body
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert json.loads(ours.body)["shared"] == "two"  # later layers win, as on Lambda


def test_bootstrap_provisions_from_a_store(build: Path, tmp_path: Path) -> None:
    push(build, LocalStore(tmp_path / "store"))
    env = {
        "LAMBDA_PACK_STORE": str(tmp_path / "store"),
        "LAMBDA_PACK_CACHE": str(tmp_path / "cache"),
        "LAMBDA_PACK_REGISTRY_PASSWORD": "hunter2",
    }
    answer = run_bootstrap(env, EVENT)
    assert answer.status == "response", answer.body
    body = json.loads(answer.body)
    assert body["echo"] == EVENT and body["shared"] == "two"
    assert body["cwd_is_task_root"] is True
    assert body["secret_seen"] is False  # removed before the handler's module was imported
    assert any(p.is_dir() for p in (tmp_path / "cache").iterdir())


def test_handler_errors_match_awslambdaric(build: Path, tmp_path: Path) -> None:
    task, opt = _unpacked(build, tmp_path / "lambda")
    theirs = json.loads(run_on_runtime_client(task, opt, "app.fails", {"k": 1}, "boot").body)
    env = {"LAMBDA_TASK_ROOT": str(task), "LAMBDA_PACK_OPT": str(opt), "_HANDLER": "app.fails"}
    answer = run_bootstrap(env, {"k": 1})
    assert answer.status == "error"
    ours = json.loads(answer.body)
    assert sorted(ours) == sorted(theirs)
    assert (ours["errorType"], ours["errorMessage"]) == ("KeyError", "'missing'")
    assert (ours["errorType"], ours["errorMessage"]) == (
        theirs["errorType"],
        theirs["errorMessage"],
    )
    assert [line.split(", ", 1)[1] for line in ours["stackTrace"]] == [
        line.split(", ", 1)[1] for line in theirs["stackTrace"]
    ]


def test_init_error_bodies() -> None:
    from pip_lambda_pack.shim import ShimError

    missing = ShimError("Runtime.ImportModuleError: Unable to import module 'app': boom", "tip")
    assert bootstrap.init_error_body(missing) == {
        "errorMessage": "Unable to import module 'app': boom",
        "errorType": "Runtime.ImportModuleError",
        "stackTrace": [],
    }
    down = ShimError("store http://x: blob sha256:ab: not found", "push it again")
    assert bootstrap.init_error_body(down)["errorType"] == "LambdaPack.ProvisionError"
    assert bootstrap.init_error_body(down)["errorMessage"].endswith("(TIP: push it again)")

"""Fidelity: our layers behave on AWS's own runtime client exactly as through the shim.

The layers and code zip are unpacked the way Lambda does (layers into one ``/opt`` in
order, code into the task root) and run by ``python -m awslambdaric`` against a local
Runtime API; the same build pushed to a store and run by the shim must answer the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_wheel
from lambda_runtime import build_function, run_on_runtime_client, unpack_like_lambda
from pip_lambda_pack import shim
from pip_lambda_pack.manifest import read_manifest
from pip_lambda_pack.store import LocalStore, push

pytestmark = pytest.mark.slow

HANDLER = """\
import os, sys
from importlib.metadata import version

import tinydep
import shared

def handler(event, context):
    return {
        "echo": event,
        "module_version": tinydep.VERSION,
        "dist_version": version("tinydep"),
        "shared": shared.WHO,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "request_id_is_str": isinstance(context.aws_request_id, str),
        "remaining_positive": context.get_remaining_time_in_millis() > 0,
        "cwd_is_task_root": os.path.samefile(os.getcwd(), os.environ["LAMBDA_TASK_ROOT"]),
    }

def fails(event, context):
    raise KeyError(event["missing"])
"""


def _build(tmp_path: Path, handler: str = "app.handler") -> Path:
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
    build_function(tmp_path / "build", "fid", handler, code, [first, second])
    return tmp_path / "build"


EXPECTED = {
    "echo": {"hello": ["world", 1]},
    "module_version": "2.3.1",
    "dist_version": "2.3.1",
    "shared": "two",
    "function_name": "fid",
    "memory": "128",
    "request_id_is_str": True,
    "remaining_positive": True,
    "cwd_is_task_root": True,
}


def test_layers_run_on_the_aws_runtime_client(tmp_path: Path) -> None:
    build = _build(tmp_path)
    function = read_manifest(build).functions["fid"]
    task_root, opt = unpack_like_lambda(build, function, tmp_path / "lambda")
    answer = run_on_runtime_client(
        task_root, opt, "app.handler", {"hello": ["world", 1]}, "fid", timeout_s=30
    )
    assert answer.status == "response", answer.body
    assert json.loads(answer.body) == EXPECTED


def _shim(tmp_path: Path, build: Path, event: str) -> subprocess.CompletedProcess[str]:
    push(build, LocalStore(tmp_path / "store"))
    command = [sys.executable, str(Path(shim.__file__)), "--store", str(tmp_path / "store")]
    command += ["--name", "fid", "--cache", str(tmp_path / "cache"), "--event", "-"]
    return subprocess.run(command, input=event, capture_output=True, text=True, timeout=60)


def test_shim_answers_like_the_runtime_client(tmp_path: Path) -> None:
    done = _shim(tmp_path, _build(tmp_path), '{"hello": ["world", 1]}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED


def test_handler_errors_have_the_runtime_client_shape(tmp_path: Path) -> None:
    build = _build(tmp_path, handler="app.fails")
    function = read_manifest(build).functions["fid"]
    task_root, opt = unpack_like_lambda(build, function, tmp_path / "lambda")
    answer = run_on_runtime_client(task_root, opt, "app.fails", {"k": 1}, "fid")
    assert answer.status == "error"
    theirs = json.loads(answer.body)
    done = _shim(tmp_path, build, '{"k": 1}')
    assert done.returncode == 1
    ours = json.loads(done.stdout)
    assert sorted(ours) == sorted(theirs)
    assert (ours["errorType"], ours["errorMessage"]) == ("KeyError", "'missing'")
    assert (ours["errorType"], ours["errorMessage"]) == (
        theirs["errorType"],
        theirs["errorMessage"],
    )
    assert [line.split(", ", 1)[1] for line in ours["stackTrace"]] == [
        line.split(", ", 1)[1] for line in theirs["stackTrace"]
    ]

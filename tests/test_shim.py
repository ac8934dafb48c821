"""The runtime shim, run as Lambda would run it: a fresh interpreter on a store and a cache."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import make_wheel
from lambda_runtime import build_function
from pip_lambda_pack import shim
from pip_lambda_pack.errors import InvokeError, TargetError
from pip_lambda_pack.invoke import invoke
from pip_lambda_pack.store import LocalStore, push
from pip_lambda_pack.target import TARGETS, Target
from pip_lambda_pack.wire import BlobRef, TaskManifest

SHIM = Path(shim.__file__)

HANDLER = """\
import json, os, sys
import alpha, shared
from importlib.metadata import version

def handler(event, context):
    print("this goes to stderr")
    return {
        "event": event,
        "alpha": alpha.VERSION,
        "alpha_dist": version("alpha"),
        "shared": shared.WHO,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 3000,
        "request_id_len": len(context.aws_request_id),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "path_head": sys.path[:3],
    }

def fails(event, context):
    raise ValueError("bad event: " + json.dumps(event))
"""


def _publish(tmp_path: Path, handler: str = "app.handler", code: str = HANDLER) -> Path:
    """Two layers (both provide ``shared``), a code dir, pushed as function ``api``."""
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    first = [
        make_wheel(wheels, "alpha", "1.5"),
        make_wheel(wheels, "shared-one", "1.0", files={"shared.py": "WHO = 'one'\n"}),
    ]
    second = [make_wheel(wheels, "shared-two", "1.0", files={"shared.py": "WHO = 'two'\n"})]
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "app.py").write_text(code)
    build_function(tmp_path / "build", "api", handler, code_dir, [first, second])
    store = tmp_path / "store"
    push(tmp_path / "build", LocalStore(store))
    return store


def _run(
    store: Path, cache: Path, *extra: str, event: bytes = b'{"k": 1}', name: str = "api"
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SHIM), "--store", str(store), "--name", name]
    command += ["--cache", str(cache), "--event", "-", *extra]
    return subprocess.run(command, input=event.decode(), capture_output=True, text=True)


def _stats_line(stderr: str) -> str:
    line = next(x for x in stderr.splitlines() if x.startswith("lambda-pack: "))
    return line.rsplit(",", 1)[0]  # without the milliseconds


def test_runs_handler_then_hits_cache(tmp_path: Path) -> None:
    store, cache = _publish(tmp_path), tmp_path / "cache"
    first = _run(store, cache)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    code_dir = str(next(p for p in cache.iterdir() if (p / "app.py").is_file()))
    assert result == {
        "event": {"k": 1},
        "alpha": "1.5",
        "alpha_dist": "1.5",
        "shared": "two",
        "function_name": "api",
        "function_version": "$LATEST",
        "memory": "128",
        "arn": "arn:aws:lambda:us-east-1:000000000000:function:api",
        "remaining_ok": True,
        "request_id_len": 36,
        "task_root": code_dir,
        "path_head": result["path_head"],
    }
    assert "this goes to stderr" in first.stderr
    blobs = (store / "blobs" / "sha256").iterdir()
    fetched = sum(p.stat().st_size for p in blobs if p.name != _task_digest(store))
    assert _stats_line(first.stderr) == (
        f"lambda-pack: provisioned api: 3 blobs, 0 hit, 3 missed, {fetched} bytes fetched"
    )
    second = _run(store, cache, "--stats-json", str(tmp_path / "stats.json"))
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["shared"] == "two"
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert {k: stats[k] for k in ("blobs", "hits", "misses", "bytes_fetched")} == {
        "blobs": 3,
        "hits": 3,
        "misses": 0,
        "bytes_fetched": 0,
    }


def test_sys_path_is_code_then_later_layers_first(tmp_path: Path) -> None:
    store, cache = _publish(tmp_path), tmp_path / "cache"
    result = json.loads(_run(store, cache).stdout)
    task = TaskManifest.from_bytes(
        LocalStore(store).read_bytes(LocalStore(store).get_name("api")), "api"
    )
    first, second = task.layers
    assert result["path_head"] == [
        str(cache / task.code.sha256),
        str(cache / second.sha256 / "python"),
        str(cache / first.sha256 / "python"),
    ]


def test_handler_error_is_lambda_error_json(tmp_path: Path) -> None:
    store = _publish(tmp_path, handler="app.fails")
    done = _run(store, tmp_path / "cache")
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["errorMessage"] == 'bad event: {"k": 1}'
    assert error["errorType"] == "ValueError"
    assert len(error["stackTrace"]) == 1
    assert error["stackTrace"][0].endswith('raise ValueError("bad event: " + json.dumps(event))\n')
    assert "Traceback" not in done.stderr


def test_corrupted_blob_is_refused(tmp_path: Path) -> None:
    store = _publish(tmp_path)
    task = TaskManifest.from_bytes(
        LocalStore(store).read_bytes(LocalStore(store).get_name("api")), "api"
    )
    blob = store / "blobs" / "sha256" / task.layers[0].sha256
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    done = _run(store, tmp_path / "cache")
    actual = hashlib.sha256(blob.read_bytes()).hexdigest()
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"ERROR: store {store}: blob sha256:{task.layers[0].sha256} is corrupt "
        f"(its bytes hash to sha256:{actual})\n"
        "TIP: push the function again to restore the blob\n"
    )
    assert not (tmp_path / "cache" / task.layers[0].sha256).exists()


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("app.nope", "ERROR: Runtime.HandlerNotFound: Handler 'nope' missing on module 'app'"),
        (
            "missing.handler",
            "ERROR: Runtime.ImportModuleError: Unable to import module 'missing': "
            "ModuleNotFoundError: No module named 'missing'",
        ),
    ],
)
def test_bad_handler_is_exit_2(tmp_path: Path, handler: str, message: str) -> None:
    done = _run(_publish(tmp_path, handler=handler), tmp_path / "cache")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[-2] == message
    assert lines[-1].startswith("TIP: ")
    assert "Traceback" not in done.stderr


def test_unknown_function_and_bad_event(tmp_path: Path) -> None:
    store = _publish(tmp_path)
    unknown = _run(store, tmp_path / "cache", name="nope")
    assert (unknown.returncode, unknown.stderr.splitlines()[0]) == (
        2,
        f"ERROR: no function 'nope' in store {store}",
    )
    bad = _run(store, tmp_path / "cache", event=b"{not json")
    assert bad.returncode == 2
    assert bad.stderr.startswith("ERROR: event is not JSON: Expecting property name")
    assert bad.stderr.splitlines()[1] == "TIP: pass a JSON document, e.g. {}"


def test_dotdot_zip_entry_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("app.py", "def handler(e, c):\n    return 1\n")
        archive.writestr("../escaped.py", "X = 1\n")
    code = store.put_bytes(evil.read_bytes())
    task = TaskManifest(
        name="api",
        target="python3.12-x86_64",
        handler="app.handler",
        code=BlobRef(sha256=code, size=evil.stat().st_size),
        layers=(),
    )
    store.set_name("api", store.put_bytes(task.to_bytes()))
    cache = tmp_path / "deep" / "cache"
    done = _run(tmp_path / "store", cache)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-2] == (
        f"ERROR: blob sha256:{code} has an unsafe path '../escaped.py'"
    )
    assert not (tmp_path / "deep" / "escaped.py").exists()
    assert not (cache / code).exists()


def test_two_processes_at_once_fetch_each_blob_once(tmp_path: Path) -> None:
    store, cache = _publish(tmp_path), tmp_path / "cache"
    processes = []
    for i in range(2):
        command = [sys.executable, str(SHIM), "--store", str(store), "--name", "api"]
        command += ["--cache", str(cache), "--stats-json", str(tmp_path / f"s{i}.json")]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert json.loads(out)["shared"] == "two"
    stats = [json.loads((tmp_path / f"s{i}.json").read_text()) for i in range(2)]
    assert sum(s["misses"] for s in stats) == 3
    assert sum(s["hits"] for s in stats) == 3
    unpacked = (p.name for p in cache.iterdir() if not p.name.endswith((".lock", ".used")))
    assert sorted(unpacked) == sorted(
        p.name for p in (store / "blobs" / "sha256").iterdir() if p.name != _task_digest(store)
    )


def _task_digest(store: Path) -> str:
    return LocalStore(store).get_name("api")


SLOW_AND_ODD = """\
import time

def slow(event, context):
    time.sleep(5)

def odd(event, context):
    return {"when": object()}
"""


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("app.slow", "Sandbox.Timedout", "Task timed out after 0.50 seconds"),
        (
            "app.odd",
            "Runtime.MarshalError",
            "Unable to marshal response: Object of type object is not JSON serializable",
        ),
    ],
)
def test_timeout_and_unmarshallable_result(
    tmp_path: Path, handler: str, error_type: str, message: str
) -> None:
    store = _publish(tmp_path, handler=handler, code=SLOW_AND_ODD)
    done = _run(store, tmp_path / "cache", "--timeout-s", "0.5")
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert (error["errorType"], error["errorMessage"]) == (error_type, message)


def _host_target() -> str:
    machine = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    return "python%d.%d-%s" % (*sys.version_info[:2], machine)


def test_invoke_runs_the_shim_in_a_fresh_interpreter(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "app.py").write_text("def handler(event, context):\n    return [event, 2]\n")
    build_function(tmp_path / "build", "api", "app.handler", code_dir, [], target=_host_target())
    push(tmp_path / "build", LocalStore(tmp_path / "store"))
    code = invoke(
        store_url="store",
        base_dir=tmp_path,
        name="api",
        event=b'{"a": 1}',
        python=None,
        target=None,
        cache_dir=tmp_path / "cache",
    )
    out, err = capfd.readouterr()
    assert (code, json.loads(out)) == (0, [{"a": 1}, 2])
    assert "lambda-pack: provisioned api: 1 blob, 0 hit, 1 missed" in err


def _invoke_nowhere(tmp_path: Path, event: bytes, target: Target | None) -> int:
    return invoke(
        store_url="s",
        base_dir=tmp_path,
        name="api",
        event=event,
        python=None,
        target=target,
        cache_dir=None,
    )


def test_invoke_refuses_bad_event_and_wrong_host(tmp_path: Path) -> None:
    with pytest.raises(InvokeError) as info:
        _invoke_nowhere(tmp_path, b"nope", None)
    assert info.value.message == "event is not JSON: Expecting value: line 1 column 1 (char 0)"
    other = next(t for t in TARGETS.values() if t.python_version != sys.version_info[:2])
    with pytest.raises(TargetError) as wrong:
        _invoke_nowhere(tmp_path, b"{}", other)
    host = "%d.%d" % sys.version_info[:2]
    machine = {"arm64": "aarch64"}.get(platform.machine(), platform.machine())
    # no interpreter of that target here either (the lookup is tried before asking)
    assert wrong.value.message.startswith(
        f"this Python ({host}, {machine}) cannot load wheels for {other.name}, and no CPython "
        f"{other.python} interpreter on {other.machine} found for {other.name}"
    )
    assert wrong.value.tip == (
        f"pass --python PATH to a Python {other.python} on {other.machine} "
        f"(or install one: pyenv install {other.python}), or build for {_host_target()}"
    )

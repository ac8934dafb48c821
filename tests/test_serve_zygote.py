"""``serve``'s fork servers: an environment forked from a zygote is what a new
``python bootstrap.py`` process would be, dies with the service, and a zygote that cannot
start or that dies leaves the exec path working."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from projects import pushed_project
from serving import create, serve

pytest.importorskip("aiohttp")

PROBE = """\
import locale, os, subprocess, sys, time

def _target(fd):
    try:
        where = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        return "gone"
    return fd + "=" + where.split(":")[0]

def handler(event, context):
    if event.get("do") == "child":
        child = subprocess.Popen(["sleep", "60"])
        return {"pid": os.getpid(), "ppid": os.getppid(), "child": child.pid}
    if event.get("do") == "memory":
        block = b"x" * (event["mb"] << 20)
        print("held", len(block) >> 20)
        return {}
    print("from the handler")
    print("to stderr", file=sys.stderr)
    flags = ("optimize", "dont_write_bytecode", "no_user_site", "no_site", "hash_randomization")
    return {
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "path": sys.path,
        "flags": [getattr(sys.flags, name) for name in flags],
        "tz": list(time.tzname),
        "encodings": [sys.getfilesystemencoding(), locale.getpreferredencoding(False),
                      sys.stdout.encoding, sys.stdout.write_through, sys.stderr.write_through],
        "stdin": os.readlink("/proc/self/fd/0"),
        "group": os.getpgid(0) == os.getpid(),
        "version": list(sys.version_info[:2]),
        "parent": open(f"/proc/{os.getppid()}/cmdline").read().split("\\0"),
        "descriptors": sorted(_target(fd) for fd in os.listdir("/proc/self/fd")),
    }
"""
VOLATILE = ("AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "_X_AMZN_TRACE_ID")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pushed_project(tmp_path_factory.mktemp("zygote"))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def call(client: Any, name: str, event: object, **extra: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **extra)
    return response, json.loads(response["Payload"].read())


def log_of(response: dict[str, Any]) -> str:
    import base64

    return base64.b64decode(response["LogResult"]).decode()


def _serve_args(root: Path, *more: str) -> list[str]:
    wheelhouse = str(root.parent / "wheelhouse")
    return ["--no-index", "-f", wheelhouse, "--cache", str(root.parent / "cache"), *more]


def _probe(root: Path, *more: str) -> tuple[dict[str, Any], str]:
    with serve(root, *_serve_args(root, *more)) as served:
        client = served.client()
        if not any(f["FunctionName"] == "probe" for f in client.list_functions()["Functions"]):
            create(client, "probe", PROBE, Environment={"Variables": {"GREETING": "hi"}})
        response, seen = call(client, "probe", {}, LogType="Tail")
    return seen, log_of(response)


def test_a_forked_environment_is_what_a_new_process_is(root: Path) -> None:
    forked, forked_log = _probe(root)
    started, started_log = _probe(root, "--no-fork-server")
    assert "zygote.py" in " ".join(forked["parent"])  # forked by the zygote ...
    assert "zygote.py" not in " ".join(started["parent"])  # ... or started by serve
    assert "serve" in started["parent"]
    for seen in (forked, started):
        for name in VOLATILE:
            seen["env"].pop(name, None)
        seen.pop("parent")
    descriptors = forked.pop("descriptors")
    started.pop("descriptors")  # (uvloop's exec leaves it some of the service's)
    assert forked == started  # environment, cwd, argv, sys.path, flags, TZ, stdio
    assert forked["env"]["GREETING"] == "hi"
    assert forked["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "probe"
    assert forked["cwd"] == forked["env"]["LAMBDA_TASK_ROOT"]
    assert not [k for k in forked["env"] if k.startswith("LAMBDA_PACK_")]
    assert descriptors == ["0=/dev/null", "1=pipe", "2=pipe", "3=socket", "gone"]
    assert forked["tz"] == ["UTC", "UTC"] and forked["stdin"] == "/dev/null" and forked["group"]
    for log in (forked_log, started_log):
        assert "from the handler\nto stderr\n" in log
        assert "Init Duration" in log


def test_logs_and_peak_memory_of_a_forked_environment(root: Path) -> None:
    with serve(root, *_serve_args(root)) as served:
        client = served.client()
        create(client, "memory", PROBE, MemorySize=128)
        response, _ = call(client, "memory", {"do": "memory", "mb": 60}, LogType="Tail")
        log = log_of(response)
        assert "held 60\n" in log
        used = int(log.split("Max Memory Used: ")[1].split(" MB")[0])
        assert 60 < used < 128
        response, body = call(client, "memory", {"do": "memory", "mb": 200})
        assert body["errorType"] == "Runtime.OutOfMemory"
        _, fine = call(client, "memory", {"do": "memory", "mb": 1})
        assert fine == {}  # a new environment, forked again
        assert "warning" not in served.output()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_service_ending_leaves_no_process(root: Path, how: signal.Signals) -> None:
    with serve(root, *_serve_args(root)) as served:
        client = served.client()
        create(client, f"child{how.value}", PROBE)
        _, seen = call(client, f"child{how.value}", {"do": "child"})
        pids = [seen["pid"], seen["ppid"], seen["child"]]  # environment, zygote, its child
        assert all(alive(pid) for pid in pids)
        served.process.send_signal(how)
        served.process.wait(30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]


def test_a_killed_zygote_takes_its_environments_and_is_replaced(root: Path) -> None:
    with serve(root, *_serve_args(root)) as served:
        client = served.client()
        create(client, "again", PROBE)
        _, first = call(client, "again", {"do": "child"})
        os.kill(first["ppid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (alive(first["pid"]) or alive(first["child"])) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(first["pid"]) and not alive(first["child"])
        _, second = call(client, "again", {"do": "child"})
        assert second["pid"] != first["pid"] and second["ppid"] != first["ppid"]
        assert second["ppid"] != served.process.pid  # a new zygote forked it


def test_each_runtime_is_forked_from_a_zygote_of_its_own_python(root: Path) -> None:
    from pip_lambda_pack.interpreters import find_optional
    from pip_lambda_pack.target import get_target

    other = (3, 12) if sys.version_info[:2] != (3, 12) else (3, 13)
    name = f"python{other[0]}.{other[1]}"
    if find_optional(get_target(f"{name}-x86_64"), any_machine=True) is None:
        pytest.skip(f"needs a Python {other[0]}.{other[1]} interpreter (pyenv install)")
    with serve(root, *_serve_args(root)) as served:
        client = served.client()
        create(client, "onhost", PROBE)
        create(client, "onother", PROBE, runtime=name)
        seen = {fn: call(client, fn, {})[1] for fn in ("onhost", "onother")}
    assert seen["onhost"]["version"] == list(sys.version_info[:2])
    assert seen["onother"]["version"] == list(other)
    for probe in seen.values():
        assert "zygote.py" in " ".join(probe["parent"])
    assert seen["onhost"]["parent"][0] != seen["onother"]["parent"][0]  # two interpreters


def test_an_environment_that_sets_start_up_variables_is_a_new_process(root: Path) -> None:
    with serve(root, *_serve_args(root)) as served:
        client = served.client()
        create(client, "seeded", PROBE, Environment={"Variables": {"PYTHONHASHSEED": "0"}})
        _, seen = call(client, "seeded", {})
    assert "zygote.py" not in " ".join(seen["parent"])
    assert seen["flags"][-1] == 0  # the interpreter read PYTHONHASHSEED at its start


def test_a_zygote_that_cannot_start_is_one_warning_then_new_processes(
    root: Path, tmp_path: Path
) -> None:
    """A real interpreter (a wrapper) that runs bootstrap.py but fails zygote.py."""
    from pip_lambda_pack.serve.environments import Environments
    from pip_lambda_pack.serve.model import FunctionSettings, Limits

    python = tmp_path / "python"
    script = f'case "$1" in *zygote.py) exit 3;; esac\nexec {sys.executable} "$@"\n'
    python.write_text("#!/bin/sh\n" + script)
    python.chmod(0o755)
    base_env = {
        "LAMBDA_PACK_STORE": str(root / ".lambda-pack" / "store"),
        "LAMBDA_PACK_CACHE": str(tmp_path / "cache"),
    }
    settings = FunctionSettings(name="hello", target="t", python=str(python), handler="x")
    warnings: list[str] = []

    async def main() -> tuple[list[bytes], list[int]]:
        envs = Environments(
            limits=Limits(), base_env=base_env, region="us-east-1", warn=warnings.append
        )
        await envs.start()
        try:
            outcomes = await asyncio.gather(
                *(envs.invoke(settings, b'{"name": "x"}') for _ in range(2))
            )
            parents = [_parent(e.process.pid) for e in envs.pools["hello"].environments]
        finally:
            await envs.close(1.0)
        return [o.body for o in outcomes], parents

    bodies, parents = asyncio.run(main())
    assert [json.loads(b)["message"] for b in bodies] == ["[1.0] hello x"] * 2
    assert parents == [os.getpid()] * 2  # started as new processes, by this one
    assert len(warnings) == 1
    assert warnings[0].startswith(f"serve: warning: no fork server for {python} (")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

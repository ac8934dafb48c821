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


class ScriptedServer:
    """A loopback TCP server that answers each connection's requests with given raw bytes.

    ``script`` holds, per connection, the answers to its requests in order; ``None`` closes
    the connection without answering. It records every request it read."""

    def __init__(self, script: list[list[bytes | None]]) -> None:
        import socket
        import threading

        self.script = script
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.listener.getsockname()[1]

    def _serve(self) -> None:
        for answers in self.script:
            conn, _ = self.listener.accept()
            with conn:
                for answer in answers:
                    self.requests.append(_read_request(conn))
                    if answer is None:
                        break
                    conn.sendall(answer)

    def close(self) -> None:
        self.listener.close()


def _read_request(conn: object) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)  # type: ignore[attr-defined]
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            while len(body) < int(line.split(b":")[1]):
                body += conn.recv(65536)  # type: ignore[attr-defined]
    return head + b"\r\n\r\n" + body


NEXT_HEADERS = b"Lambda-Runtime-Aws-Request-Id: id-1\r\nContent-Type: application/json\r\n"


def test_runtime_client_reads_chunked_and_close_delimited_bodies() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"Transfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"a":\r\n3;ext=1\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    to_close = b"HTTP/1.0 200 OK\r\n" + NEXT_HEADERS + b'\r\n{"b": 2}'
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"
    server = ScriptedServer([[chunked, accepted, to_close]])
    try:
        client = bootstrap.RuntimeClient(server.address)
        request_id, headers, body = client.next()
        assert (request_id, body) == ("id-1", b'{"a": 1}')
        assert headers["content-type"] == "application/json"
        client.respond("id-1", b'"done"')
        assert client.next()[2] == b'{"b": 2}'  # to the end of the connection
    finally:
        server.close()
    first, answer, last = server.requests
    assert last == first  # the third request asked for the next invocation again
    assert first.startswith(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n")
    assert answer.startswith(b"POST /2018-06-01/runtime/invocation/id-1/response HTTP/1.1\r\n")
    assert answer.endswith(b'\r\nContent-Length: 6\r\n\r\n"done"')


def test_runtime_client_opens_a_new_connection_when_the_kept_one_went_stale() -> None:
    ok = b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"Content-Length: 2\r\n\r\n{}"
    server = ScriptedServer([[ok, None], [ok]])  # the second request finds the first closed
    try:
        client = bootstrap.RuntimeClient(server.address)
        assert client.next()[2] == b"{}"
        assert client.next()[2] == b"{}"
    finally:
        server.close()
    assert len(server.requests) == 3  # the lost one was sent again, once


def test_runtime_client_keeps_hostile_ids_and_types_inside_their_fields() -> None:
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"
    server = ScriptedServer([[accepted]])
    try:
        client = bootstrap.RuntimeClient(server.address)
        error = {"errorType": "Bad\r\nX-Injected: 1", "errorMessage": "m"}
        client.error("../id 1/\r\n", error)
    finally:
        server.close()
    [request] = server.requests
    head = request.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /2018-06-01/runtime/invocation/%2E%2E%2Fid%201%2F%0D%0A/error HTTP/1.1"
    assert b"Lambda-Runtime-Function-Error-Type: Bad??X-Injected: 1" in head
    assert not any(line.startswith(b"X-Injected") for line in head)


def test_runtime_client_refuses_an_answer_that_is_not_http() -> None:
    server = ScriptedServer([[b"SSH-2.0-OpenSSH\r\n\r\n"]])
    try:
        client = bootstrap.RuntimeClient(server.address)
        with pytest.raises(ConnectionError, match="not an HTTP response"):
            client.next()
    finally:
        server.close()

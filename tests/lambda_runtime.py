"""Build a function into layers, unpack it the way Lambda does, run it on a real runtime client.

Reusable by any test that wants Lambda's behaviour rather than ours: ``build_function``
writes layer and code zips plus ``manifest.json``; ``unpack_like_lambda`` makes an
``/opt``-shaped directory (layers in order, later overwriting earlier) and a task root;
``run_on_runtime_client`` runs ``python -m awslambdaric HANDLER`` against ``RuntimeAPI``,
a tiny Lambda Runtime API server in a thread, and returns what the function answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pip_lambda_pack.layers import build_code_zip, build_layer
from pip_lambda_pack.manifest import (
    BuildManifest,
    CodeEntry,
    FunctionEntry,
    LayerEntry,
    write_manifest,
)

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def build_function(
    out_dir: Path,
    name: str,
    handler: str,
    code_dir: Path,
    layers: Sequence[Sequence[Path]],
    target: str = "python3.12-x86_64",
) -> BuildManifest:
    """Build one function (layers from groups of wheels, in merge order) into ``out_dir``."""
    entries = []
    for wheels in layers:
        artifact = build_layer(wheels, out_dir)
        entries.append(
            LayerEntry(
                path=artifact.path.relative_to(out_dir).as_posix(),
                sha256=artifact.sha256,
                size=artifact.size,
                unzipped_size=artifact.unzipped_size,
                wheels=tuple(sorted(_pin(w) for w in wheels)),
            )
        )
    code = build_code_zip(code_dir, out_dir, name)
    function = FunctionEntry(
        handler=handler,
        code=CodeEntry(
            path=code.path.relative_to(out_dir).as_posix(), sha256=code.sha256, size=code.size
        ),
        layers=tuple(entries),
    )
    manifest = BuildManifest(target=target, functions={name: function})
    write_manifest(manifest, out_dir)
    return manifest


def _pin(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version}"


def unpack_like_lambda(build_dir: Path, function: FunctionEntry, root: Path) -> tuple[Path, Path]:
    """Unzip layers into ``root/opt`` in order (later overwrite) and code into ``root/task``."""
    opt, task = root / "opt", root / "task"
    for layer in function.layers:
        _unzip(build_dir / layer.path, opt)
    _unzip(build_dir / function.code.path, task)
    return task, opt


def _unzip(archive_path: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod((info.external_attr >> 16) & 0o777 or 0o644)


@dataclass
class Invocation:
    """What the runtime client posted back for one invocation."""

    request_id: str
    status: str = ""  # "response" or "error"
    body: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class RuntimeAPI:
    """A Lambda Runtime API serving one event, on 127.0.0.1, in a thread."""

    def __init__(self, event: object, function_name: str, timeout_s: float = 30.0) -> None:
        self.event = json.dumps(event).encode()
        self.invocation = Invocation(request_id=str(uuid.uuid4()))
        self.function_name = function_name
        self.timeout_s = timeout_s
        self._served = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> RuntimeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.invocation.done.set()  # release a runtime waiting for a second event
        self._server.shutdown()
        self._server.server_close()

    def next_event(self) -> tuple[int, dict[str, str], bytes]:
        """The first call gets the event; later calls wait until the test is over."""
        if self._served:
            self.invocation.done.wait(self.timeout_s)
            return 503, {}, b""
        self._served = True
        deadline = int((time.time() + self.timeout_s) * 1000)
        headers = {
            "Lambda-Runtime-Aws-Request-Id": self.invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": ARN + self.function_name,
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            "Content-Type": "application/json",
        }
        return 200, headers, self.event

    def record(self, status: str, body: bytes) -> None:
        self.invocation.status = status
        self.invocation.body = body
        self.invocation.done.set()


def _handler_class(api: RuntimeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/2018-06-01/runtime/invocation/next":
                self._reply(404, {}, b"")
                return
            self._reply(*api.next_event())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            prefix = f"/2018-06-01/runtime/invocation/{api.invocation.request_id}/"
            if self.path.startswith(prefix):
                api.record(self.path.removeprefix(prefix), body)
            self._reply(202, {}, b"{}")

        def _reply(self, code: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def run_on_runtime_client(
    task_root: Path, opt: Path, handler: str, event: object, name: str, timeout_s: float = 30.0
) -> Invocation:
    """Run ``python -m awslambdaric HANDLER`` with Lambda's paths and env; its one answer."""
    with RuntimeAPI(event, name, timeout_s) as api:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "LAMBDA_TASK_ROOT": str(task_root),
            "PYTHONPATH": f"{task_root}:{opt / 'python'}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "_HANDLER": handler,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", handler],
            cwd=task_root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            finished = api.invocation.done.wait(timeout_s)
        finally:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
        if not finished:
            raise AssertionError(f"no answer from the runtime in {timeout_s} s:\n{output}")
        return api.invocation

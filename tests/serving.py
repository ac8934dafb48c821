"""A running ``pip-lambda-pack serve`` for tests: started as a real process on a free
loopback port, stopped with SIGTERM; boto3 clients and zips for CreateFunction."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import S3_ENV

_LISTENING = re.compile(r"Lambda API on http://127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    """A service process and what it printed."""

    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, retries: int = 1, timeout: float = 60.0) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": retries, "mode": "standard"},
            read_timeout=timeout,
            connect_timeout=5,
            max_pool_connections=100,
        )
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@contextmanager
def serve(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """``python -m pip_lambda_pack serve --port 0 ARGS`` in ``cwd`` until the block ends."""
    full = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(cwd / ".cache"), **S3_ENV, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "pip_lambda_pack", "serve", "--port", "0", "-v", *args],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    port = _wait_for_port(process, lines)
    served = Served(process=process, port=port, lines=lines)
    try:
        yield served
    finally:
        served.stop()


def _wait_for_port(process: subprocess.Popen[str], lines: list[str]) -> int:
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not ready.wait(0.1) and time.monotonic() < deadline:
        pass
    if not found:
        process.kill()
        raise AssertionError("serve did not start:\n" + "\n".join(lines))
    return found[0]


def code_zip(files: Mapping[str, str]) -> bytes:
    """A zip of ``files`` (name -> text), as a user's zip for CreateFunction."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def create(
    client: Any,
    name: str,
    source: str,
    requirements: Sequence[str] = (),
    runtime: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """CreateFunction of ``app.handler`` with ``source`` as app.py."""
    files = {"app.py": source, "requirements.txt": "".join(f"{r}\n" for r in requirements)}
    version = "python%d.%d" % sys.version_info[:2]
    result: dict[str, Any] = client.create_function(
        FunctionName=name,
        Runtime=runtime or version,
        Role="arn:aws:iam::000000000000:role/test",
        Handler="app.handler",
        Code={"ZipFile": code_zip(files)},
        **extra,
    )
    return result


def store_listing(root: Path) -> dict[str, bytes]:
    """Every file of a local store with its bytes, to show a request changed nothing; the
    service's own record (usage it writes as it goes) left out."""
    found = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() else b""
        if path.is_file() and path.name != "lambda-pack-serve" and not _record(data):
            found[str(path.relative_to(root))] = data
    return found


def _record(data: bytes) -> bool:
    """The service's record, or the task manifest that names it."""
    return data.startswith(b'{"format":"lambda-pack-serve/1"') or (
        b'"name":"lambda-pack-serve"' in data and data.startswith(b'{"code":')
    )

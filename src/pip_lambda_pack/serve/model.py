"""The execution service's records (functions' settings, invocations, environments, pools,
limits) and the Lambda text an invocation reports (REPORT lines, exit and error types).

Kept apart from ``environments.py``, which runs them: these are values and pure functions.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

LOG_TAIL = 4096  # bytes of log X-Amz-Log-Result carries


class Throttled(Exception):
    """Every environment of the function (or of the service) is busy and the queue is full."""


class ShuttingDown(Exception):
    """The service is stopping: no new invocation is taken."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSettings:
    """What an environment needs to know of its function."""

    name: str
    target: str  # e.g. python3.12-x86_64
    python: str  # the interpreter that runs the target
    handler: str = ""
    memory_mb: int = 128
    timeout_s: float = 3.0
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One finished invocation: the payload or Lambda's error JSON, its log and figures."""

    request_id: str
    body: bytes
    error_type: str | None  # None: the handler returned; else X-Amz-Function-Error is set
    log: str
    cold: bool
    duration_ms: float
    init_ms: float | None  # on a cold start
    max_memory_mb: int
    provisioning: Mapping[str, Any]  # hits, misses, bytes_fetched, provision_ms (cold only)

    @property
    def tail(self) -> bytes:
        """The last 4 KB of the log, as X-Amz-Log-Result carries it (before base64)."""
        return self.log.encode()[-LOG_TAIL:]


@dataclass(eq=False, slots=True, kw_only=True)
class Invocation:
    """One invocation while it waits or runs."""

    settings: FunctionSettings
    payload: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    future: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    lines: list[str] = field(default_factory=list)
    started: float = 0.0
    deadline_ms: int = 0
    environment: Environment | None = None
    timer: asyncio.TimerHandle | None = None


class Process(Protocol):
    """An environment's process as the service uses it (``asyncio.subprocess.Process``, or
    one a zygote forked): its pid, which is its process group's, and its exit status."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


@dataclass(eq=False, slots=True, kw_only=True)
class Environment:
    """One process, its Runtime API site, and what it is doing."""

    id: str
    settings: FunctionSettings
    process: Process
    site: web.SockSite
    port: int
    spawned: float
    init_ms: float | None = None
    init_error: bytes | None = None
    provisioning: dict[str, Any] = field(default_factory=dict)
    output: int  # the read end of its stdout and stderr pipe (non-blocking)
    waiter: asyncio.Future[Invocation | None] | None = None
    current: Invocation | None = None
    logging: list[str] | None = None  # the running invocation's lines, while it runs
    partial: bytes = b""  # output after the last newline
    pending_log: list[str] = field(default_factory=list)  # output before the next invocation
    output_closed: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = -1  # /proc/PID/status, open, for its peak RSS
    idle_since: float = 0.0
    invocations: int = 0
    dead: bool = False
    retired: bool = False  # its function changed: it takes no more work
    returning: bool = False  # answered; its next /next is on the way
    killed_for: str = ""
    peak_mb: int = 0  # the last reading of its peak RSS


@dataclass(eq=False, slots=True)
class Pool:
    """The environments of one function and its queue."""

    name: str
    environments: list[Environment] = field(default_factory=list)
    idle: list[Environment] = field(default_factory=list)
    queue: deque[Invocation] = field(default_factory=deque)
    starting: int = 0  # environments not yet ready for work
    returning: int = 0  # environments that answered and will ask for work again
    spawning: int = 0  # processes being started (not yet in ``environments``)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How many environments and queued invocations, and how long environments idle."""

    max_concurrency: int = 10  # per function
    max_total: int = 64  # all functions together
    queue_size: int = 100  # per function, beyond the running ones
    idle_s: float = 300.0
    init_timeout_s: float = 120.0


def exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
        except ValueError:
            return f"signal: {-code}"
    return f"exit status {code}"


def error_type_of(body: bytes, default: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return default
    kind = data.get("errorType") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) and kind else default


def stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};Sampled=0"


def peak_rss_mb(status: int) -> int:
    """The process's peak resident set (VmHWM) in MB, as Lambda's Max Memory Used.

    ``status`` is its ``/proc/PID/status`` kept open: read again from the start, it is the
    figure now (no open and close on the warm path)."""
    try:
        text = os.pread(status, 4096, 0)
        start = text.index(b"VmHWM:") + 6
        return math.ceil(int(text[start : text.index(b"kB", start)]) / 1024)
    except (OSError, ValueError):
        return 0


def report_line(
    request_id: str,
    duration_ms: float,
    env: Environment,
    cold: bool,
    memory_mb: int,
    figures: Mapping[str, Any],
) -> str:
    """Lambda's REPORT line, with the layers hit and missed and the bytes fetched."""
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms",
        f"Memory Size: {env.settings.memory_mb} MB",
        f"Max Memory Used: {memory_mb} MB",
    ]
    if cold and env.init_ms is not None:
        parts.append(f"Init Duration: {env.init_ms:.2f} ms")
    if cold and figures:
        parts.append(f"Layers Hit: {figures.get('hits', 0)}")
        parts.append(f"Layers Missed: {figures.get('misses', 0)}")
        parts.append(f"Bytes Fetched: {figures.get('bytes_fetched', 0)}")
        parts.append(f"Provision Duration: {float(figures.get('provision_ms', 0)):.2f} ms")
        for key, label in (("fetch_ms", "Fetch"), ("extract_ms", "Extract")):
            if key in figures:  # the misses' download and verify, and their unpacking
                parts.append(f"{label} Duration: {float(figures[key]):.2f} ms")
    return "\t".join(parts) + "\t"

"""Execution environments: a process per environment, each looping on a Runtime API we host.

An environment is ``python bootstrap.py`` with Lambda's variables: it provisions its
function from the store through the shim (the shared worker cache, its locks and its LRU
cap), imports the handler, then asks ``/2018-06-01/runtime/invocation/next`` for work on
its own loopback port, as a Lambda sandbox asks its own Runtime API. An idle environment
takes the next invocation of its function (warm); a function has at most
``max_concurrency`` environments and all functions together ``max_total``; past them
invocations wait in a bounded queue, and past that they are throttled.

Everything here runs on one asyncio loop; the processes are the only concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from .. import bootstrap
from .model import (
    Environment,
    FunctionSettings,
    Invocation,
    Limits,
    Outcome,
    Pool,
    Process,
    ShuttingDown,
    Throttled,
    error_type_of,
    exit_text,
    peak_rss_mb,
    report_line,
    stamp,
    trace_id,
)
from .zygotes import Zygotes

BOOTSTRAP = Path(bootstrap.__file__).resolve()
API = f"/{bootstrap.API_VERSION}/runtime"
MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous request and response limit
MEMORY_WATCH_S = 0.05  # how often working environments' memory is read
_ACCEPTED = b'{"status": "OK"}'
ACCOUNT = "000000000000"
_CONSTANT_ENV = {
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "PYTHONUNBUFFERED": "1",  # output in the order it was written, as on Lambda
}


class Environments:
    """Every environment of the service, and the Runtime API they call."""

    def __init__(
        self,
        *,
        limits: Limits,
        base_env: Mapping[str, str],
        region: str,
        log: Callable[[str], None] = lambda line: None,
        zygote: bool = True,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits
        self.base_env = dict(base_env)
        self.region = region
        self.log = log
        self.zygotes = Zygotes({**self.base_env, **_CONSTANT_ENV}, zygote, warn or log)
        self.pools: dict[str, Pool] = {}
        self.by_port: dict[int, Environment] = {}
        self.closing = False
        self.tasks: set[asyncio.Task[None]] = set()
        app = web.Application(client_max_size=MAX_PAYLOAD + 1024 * 1024)
        app.add_routes(
            [
                web.get(f"{API}/invocation/next", self._next),
                web.post(f"{API}/invocation/{{id}}/response", self._response),
                web.post(f"{API}/invocation/{{id}}/error", self._error),
                web.post(f"{API}/init/error", self._init_error),
            ]
        )
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )

    async def start(self) -> None:
        await self.runner.setup()
        self._keep(asyncio.create_task(self._watch_memory()))

    # -- memory -------------------------------------------------------------------------

    async def _watch_memory(self) -> None:
        """Kill an environment whose peak resident memory passed its function's ``memory``
        while it starts or works, as Lambda's sandbox does: read every ``MEMORY_WATCH_S``,
        and once more when an invocation answers (the peak catches what came between)."""
        while not self.closing:
            await asyncio.sleep(MEMORY_WATCH_S)
            for env in list(self.by_port.values()):
                if (env.current is not None or env.init_ms is None) and self._over_memory(env):
                    _kill(env)

    def _over_memory(self, env: Environment) -> bool:
        if env.dead or env.killed_for:
            return env.killed_for == "memory"
        env.peak_mb = max(env.peak_mb, peak_rss_mb(env.status))
        if env.peak_mb <= env.settings.memory_mb:
            return False
        env.killed_for = "memory"
        return True

    def _keep(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- invoking -----------------------------------------------------------------------

    async def invoke(self, settings: FunctionSettings, payload: bytes) -> Outcome:
        """Run one invocation on a warm environment, a new one, or after a queued wait."""
        if self.closing:
            raise ShuttingDown
        pool = self.pools.setdefault(settings.name, Pool(settings.name))
        invocation = Invocation(settings=settings, payload=payload)
        if pool.idle:
            self._assign(pool.idle.pop(), invocation)
        else:
            needed = pool.starting + pool.returning <= len(pool.queue)
            spawn = needed and self._can_spawn(pool)  # may stop another function's idle one
            if not spawn and len(pool.queue) >= self.limits.queue_size:
                raise Throttled
            pool.queue.append(invocation)
            if spawn:
                try:
                    await self._spawn(pool, settings)
                except OSError:
                    pool.queue.remove(invocation)
                    raise
        return await invocation.future

    def _can_spawn(self, pool: Pool) -> bool:
        if self.closing or _alive(pool) >= self.limits.max_concurrency:
            return False
        if sum(_alive(p) for p in self.pools.values()) < self.limits.max_total:
            return True
        return self._evict_idle(pool)

    def _evict_idle(self, pool: Pool) -> bool:
        """At the total cap: stop the longest idle environment of another function."""
        idle = [(e.idle_since, e) for p in self.pools.values() if p is not pool for e in p.idle]
        if not idle:
            return False
        _, env = min(idle, key=lambda pair: pair[0])
        self.pools[env.settings.name].idle.remove(env)
        env.retired = True  # no longer counted: its place is taken at once
        _kill(env, signal.SIGTERM)
        return True

    def _assign(self, env: Environment, invocation: Invocation) -> None:
        env.current = invocation
        invocation.environment = env
        waiter, env.waiter = env.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(invocation)

    def warm(self) -> dict[str, int]:
        """Function -> environments alive."""
        return {name: len(p.environments) for name, p in self.pools.items() if p.environments}

    # -- environments -------------------------------------------------------------------

    async def _spawn(self, pool: Pool, settings: FunctionSettings) -> None:
        pool.spawning += 1
        pool.starting += 1
        try:
            await self._start_process(pool, settings)
        except BaseException:
            pool.starting -= 1
            raise
        finally:
            pool.spawning -= 1

    async def _start_process(self, pool: Pool, settings: FunctionSettings) -> None:
        spawned = time.monotonic()  # Init Duration runs from here, as the baseline's from Popen
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        site = web.SockSite(self.runner, sock)
        await site.start()
        output, output_w = os.pipe()
        try:
            process = await self._launch(settings, self._environment(settings, port), output_w)
        except OSError:
            os.close(output)
            await site.stop()
            raise
        finally:
            os.close(output_w)
        os.set_blocking(output, False)
        env = Environment(
            id=uuid.uuid4().hex[:12],
            settings=settings,
            process=process,
            site=site,
            port=port,
            spawned=spawned,
            output=output,
        )
        with contextlib.suppress(OSError):
            env.status = os.open(f"/proc/{process.pid}/status", os.O_RDONLY | os.O_CLOEXEC)
        pool.environments.append(env)
        self.by_port[port] = env
        asyncio.get_running_loop().add_reader(output, self._read_output, env)
        self._keep(asyncio.create_task(self._watch(pool, env)))
        asyncio.get_running_loop().call_later(self.limits.init_timeout_s, self._init_timed_out, env)
        self.log(f"serve: {settings.name}: environment {env.id} started (pid {process.pid})")

    async def _launch(
        self, settings: FunctionSettings, env: dict[str, str], output: int
    ) -> Process:
        """The environment's process: forked by its interpreter's zygote where one runs and
        the start-up would be the same, else ``python bootstrap.py``."""
        zygote = await self.zygotes.get(settings.python) if self.zygotes.fits(env) else None
        if zygote is not None:
            try:
                return await zygote.spawn(env, "/", [str(BOOTSTRAP)], output)
            except OSError as exc:
                self.log(f"serve: {settings.name}: fork server: {exc}; starting a new process")
        return await asyncio.create_subprocess_exec(
            settings.python,
            str(BOOTSTRAP),
            env=env,
            cwd="/",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,  # its own process group: killed whole, no orphans
        )

    def _environment(self, settings: FunctionSettings, port: int) -> dict[str, str]:
        """Lambda's variables, the function's own, then the store's (scrubbed before import)."""
        name = settings.name
        day = time.strftime("%Y/%m/%d", time.gmtime())
        python = settings.target.split("-")[0]
        lambda_env = {
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{python}",
            "AWS_REGION": self.region,
            "_HANDLER": settings.handler,
            "AWS_DEFAULT_REGION": self.region,
            "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            **_CONSTANT_ENV,
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            bootstrap.SERVE_LOG_ENV: "1",
        }
        return {**dict(settings.environment), **self.base_env, **lambda_env}

    def _read_output(self, env: Environment, limit: int = 1 << 20) -> None:
        """Read what the process wrote so far (up to ``limit`` bytes) into its log lines.

        Called when the pipe is readable, and at once when an invocation starts and when
        its answer arrives: bootstrap flushes its output before it posts the answer, so
        what the pipe holds then is exactly that invocation's output, in order."""
        chunks = []
        while limit > 0 and env.output >= 0:
            try:
                data = os.read(env.output, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._close_output(env)
                break
            chunks.append(data)
            limit -= len(data)
        if chunks:
            *lines, env.partial = (env.partial + b"".join(chunks)).split(b"\n")
            for line in lines:
                self._line(env, line.decode(errors="replace"))

    def _end_output(self, env: Environment) -> None:
        """The running invocation's output is complete: later output is the next one's."""
        self._read_output(env)
        if env.partial:
            line, env.partial = env.partial, b""
            self._line(env, line.decode(errors="replace"))
        env.logging = None

    def _line(self, env: Environment, line: str) -> None:
        if line.startswith(bootstrap.CONTROL):
            kind, _, rest = line[len(bootstrap.CONTROL) :].partition(" ")
            if kind == "init":
                with contextlib.suppress(ValueError):
                    env.provisioning = dict(json.loads(rest))
            return
        (env.pending_log if env.logging is None else env.logging).append(line)
        self.log(f"[{env.settings.name} {env.id}] {line}")

    def _close_output(self, env: Environment) -> None:
        if env.output >= 0:
            asyncio.get_running_loop().remove_reader(env.output)
            os.close(env.output)
            env.output = -1
        env.output_closed.set()

    async def _watch(self, pool: Pool, env: Environment) -> None:
        """When the process ends: fail what it held, forget it, start one for the queue."""
        code = await env.process.wait()
        env.dead = True
        with contextlib.suppress(asyncio.TimeoutError):  # a child of the handler may hold it
            await asyncio.wait_for(env.output_closed.wait(), 2.0)
        self._end_output(env)
        self._close_output(env)
        if env.status >= 0:
            os.close(env.status)
            env.status = -1
        self._forget(pool, env)
        await env.site.stop()
        if env.current is not None and not env.current.future.done():
            self._fail_current(env, code)
        elif env.init_ms is None and pool.queue:
            self._fail_init(pool, env, code)
        self.log(f"serve: {pool.name}: environment {env.id} ended ({exit_text(code)})")
        waiting = pool.starting + pool.returning < len(pool.queue)
        if waiting and self._can_spawn(pool):
            await self._spawn(pool, pool.queue[-1].settings)

    def _forget(self, pool: Pool, env: Environment) -> None:
        if env in pool.environments:
            pool.environments.remove(env)
        if env in pool.idle:
            pool.idle.remove(env)
        if env.init_ms is None:
            pool.starting -= 1
        if env.returning:
            env.returning = False
            pool.returning -= 1
        self.by_port.pop(env.port, None)
        if env.waiter is not None and not env.waiter.done():
            env.waiter.set_result(None)

    def _fail_current(self, env: Environment, code: int) -> None:
        invocation = env.current
        assert invocation is not None
        if env.killed_for == "timeout":
            message = f"Task timed out after {env.settings.timeout_s:.2f} seconds"
            body = {
                "errorMessage": f"{stamp()} {invocation.request_id} {message}",
                "errorType": "Sandbox.Timedout",
            }
            invocation.lines.append(f"{stamp()} {invocation.request_id} {message}")
        else:
            error = f"Runtime exited with error: {exit_text(code)}"
            kind = "Runtime.OutOfMemory" if env.killed_for == "memory" else "Runtime.ExitError"
            body = {
                "errorMessage": f"RequestId: {invocation.request_id} Error: {error}",
                "errorType": kind,
            }
            invocation.lines.append(f"RequestId: {invocation.request_id} Error: {error}")
            if env.killed_for == "memory":
                invocation.lines.append(kind)
        self._finish(env, invocation, json.dumps(body).encode(), str(body["errorType"]))

    def _fail_init(self, pool: Pool, env: Environment, code: int) -> None:
        """An environment that died before it asked for work fails the oldest queued call."""
        invocation = pool.queue.popleft()
        invocation.lines = [*env.pending_log, *invocation.lines]
        if env.init_error is not None:
            body, kind = env.init_error, error_type_of(env.init_error, "Runtime.Unknown")
        elif env.killed_for == "memory":
            error = {
                "errorMessage": f"RequestId: {invocation.request_id} Error: Runtime exited "
                f"with error: {exit_text(code)}",
                "errorType": "Runtime.OutOfMemory",
            }
            body, kind = json.dumps(error).encode(), "Runtime.OutOfMemory"
        else:
            why = "init timed out" if env.killed_for == "init" else exit_text(code)
            error = {
                "errorMessage": f"RequestId: {invocation.request_id} Error: Runtime exited "
                f"without providing a reason: {why}",
                "errorType": "Runtime.ExitError",
            }
            body, kind = json.dumps(error).encode(), "Runtime.ExitError"
        invocation.started = env.spawned
        invocation.environment = env
        self._finish(env, invocation, body, kind)

    def _init_timed_out(self, env: Environment) -> None:
        if env.init_ms is None and not env.dead:
            env.killed_for = "init"
            _kill(env)

    def _on_timeout(self, env: Environment, invocation: Invocation) -> None:
        if env.current is invocation and not invocation.future.done():
            env.killed_for = "timeout"
            _kill(env)

    def _finish(
        self, env: Environment, invocation: Invocation, body: bytes, error_type: str | None
    ) -> None:
        if invocation.timer is not None:
            invocation.timer.cancel()
        if env.current is invocation:
            env.current = None
        cold = env.invocations == 1 or env.init_ms is None
        duration = (time.monotonic() - invocation.started) * 1000
        memory = env.peak_mb  # read as it answered (_over_memory), or its last reading
        figures = env.provisioning if cold else {}
        report = report_line(invocation.request_id, duration, env, cold, memory, figures)
        log = "\n".join(
            [f"START RequestId: {invocation.request_id} Version: $LATEST", *invocation.lines]
        )
        log += f"\nEND RequestId: {invocation.request_id}\n{report}\n"
        outcome = Outcome(
            request_id=invocation.request_id,
            body=body,
            error_type=error_type,
            log=log,
            cold=cold,
            duration_ms=duration,
            init_ms=env.init_ms if cold else None,
            max_memory_mb=memory,
            provisioning=figures,
        )
        if not invocation.future.done():
            invocation.future.set_result(outcome)

    # -- the Runtime API ----------------------------------------------------------------

    def _env_of(self, request: web.Request) -> Environment:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        env = self.by_port.get(sockname[1]) if sockname else None
        if env is None or env.dead:
            raise web.HTTPGone()
        return env

    async def _next(self, request: web.Request) -> web.StreamResponse:
        env = self._env_of(request)
        pool = self.pools[env.settings.name]
        if env.init_ms is None:
            if self._over_memory(env):  # init passed the function's memory: it fails
                _kill(env)
                return web.Response(status=503, text="out of memory")
            env.init_ms = (time.monotonic() - env.spawned) * 1000
            pool.starting -= 1
        if env.returning:
            env.returning = False
            pool.returning -= 1
        invocation = env.current
        if env.retired and invocation is None:
            _kill(env, signal.SIGTERM)
            return web.Response(status=503, text="retired")
        if invocation is None and pool.queue:
            invocation = pool.queue.popleft()
            self._assign(env, invocation)
        if invocation is None:
            env.waiter = asyncio.get_running_loop().create_future()
            env.idle_since = time.monotonic()
            pool.idle.append(env)
            invocation = await env.waiter
            if invocation is None:
                return web.Response(status=503, text="shutting down")
        return self._begin(env, invocation)

    def _begin(self, env: Environment, invocation: Invocation) -> web.Response:
        env.invocations += 1
        self._read_output(env)
        invocation.lines = [*env.pending_log, *invocation.lines]
        env.pending_log = []
        env.logging = invocation.lines
        invocation.started = time.monotonic()
        timeout = env.settings.timeout_s
        invocation.deadline_ms = int((time.time() + timeout) * 1000)
        invocation.timer = asyncio.get_running_loop().call_later(
            timeout, self._on_timeout, env, invocation
        )
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{env.settings.name}"
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": arn,
            "Lambda-Runtime-Trace-Id": trace_id(),
            "Content-Type": "application/json",
        }
        return web.Response(body=invocation.payload, headers=headers)

    async def _response(self, request: web.Request) -> web.Response:
        return await self._answer(request, None)

    async def _error(self, request: web.Request) -> web.Response:
        kind = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unhandled")
        return await self._answer(request, kind)

    async def _answer(self, request: web.Request, error_type: str | None) -> web.Response:
        env = self._env_of(request)
        invocation = env.current
        if invocation is None or invocation.request_id != request.match_info["id"]:
            return _runtime_error(400, "InvalidRequestID", "no such invocation in progress")
        if self._over_memory(env):  # it answered, but went past its memory on the way
            _kill(env)  # the call fails with Runtime.OutOfMemory once the process is gone
            return web.Response(body=_ACCEPTED, status=202, content_type="application/json")
        size = request.content_length or 0
        body = await request.read() if size <= MAX_PAYLOAD else b""
        if error_type is not None:
            error_type = error_type_of(body, error_type)
        elif size > MAX_PAYLOAD or len(body) > MAX_PAYLOAD:
            message = f"Response payload size ({size} bytes) exceeded maximum allowed "
            error = {
                "errorMessage": message + f"payload size ({MAX_PAYLOAD} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
            body, error_type = json.dumps(error).encode(), "Function.ResponseSizeTooLarge"
        env.current = None
        env.returning = True
        self.pools[env.settings.name].returning += 1
        self._end_output(env)
        self._finish(env, invocation, body, error_type)
        return web.Response(body=_ACCEPTED, status=202, content_type="application/json")

    async def _init_error(self, request: web.Request) -> web.Response:
        env = self._env_of(request)
        env.init_error = await request.read()
        return web.json_response({"status": "OK"}, status=202)

    # -- stopping -----------------------------------------------------------------------

    def reap_idle(self) -> int:
        """Stop environments idle for longer than ``idle_s``; how many were stopped."""
        now = time.monotonic()
        stopped = 0
        for pool in self.pools.values():
            for env in list(pool.idle):
                if now - env.idle_since >= self.limits.idle_s:
                    pool.idle.remove(env)
                    _kill(env, signal.SIGTERM)
                    stopped += 1
        return stopped

    def stop_function(self, name: str) -> None:
        """Stop every environment of ``name`` (its code changed or it was deleted)."""
        pool = self.pools.get(name)
        for env in list(pool.environments if pool else ()):
            env.retired = True
            if env.current is None:
                _kill(env, signal.SIGTERM)
        if pool is not None:
            pool.idle.clear()

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop taking work, let running invocations finish within ``grace_s``, end all."""
        self.closing = True
        for pool in self.pools.values():
            while pool.queue:
                invocation = pool.queue.popleft()
                if not invocation.future.done():
                    invocation.future.set_exception(ShuttingDown())
        running = [
            e.current.future
            for p in self.pools.values()
            for e in p.environments
            if e.current is not None
        ]
        if running:
            await asyncio.wait(running, timeout=grace_s)
        envs = [e for p in self.pools.values() for e in p.environments]
        for env in envs:
            _kill(env, signal.SIGTERM)
        await _wait_all(envs, 2.0)
        for env in envs:
            _kill(env)
        await _wait_all(envs, 2.0)
        await self.zygotes.close()
        await self.runner.cleanup()


def _alive(pool: Pool) -> int:
    """Environments of the pool that count against the caps (retired ones are leaving)."""
    return pool.spawning + sum(not e.retired for e in pool.environments)


async def _wait_all(envs: list[Environment], timeout: float) -> None:
    waits = [asyncio.ensure_future(e.process.wait()) for e in envs if e.process.returncode is None]
    if waits:
        await asyncio.wait(waits, timeout=timeout)


def _kill(env: Environment, sig: int = signal.SIGKILL) -> None:
    """Signal the environment's whole process group (its handler's children too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(env.process.pid, sig)


def _runtime_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"errorType": kind, "errorMessage": message}, status=status)


def host_python() -> str:
    """This interpreter, for environments of a target it matches."""
    return sys.executable

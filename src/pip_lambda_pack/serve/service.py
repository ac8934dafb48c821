"""The service: the Lambda API on one port, environments behind it, until SIGTERM.

``run(options)`` blocks: it listens (127.0.0.1:3001 by default, as ``sam local
start-lambda``), stops idle environments after ``idle_s``, writes observed usage to the
store every few seconds, and on SIGTERM or SIGINT stops taking requests, lets running
invocations finish (``grace_s``), ends every environment process and flushes the usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import ConfigError
from ..store import BlobStore, LocalStore
from .api import Api
from .catalog import Catalog, interpreter
from .environments import Environments
from .metrics import Metrics
from .model import Limits, Outcome
from .record import FunctionRecord, ServeRecord, Usage

# Variables an environment may need to read its store; bootstrap removes them before the
# handler's module is imported.
STORE_VARIABLES = (
    "LAMBDA_PACK_REGISTRY_USERNAME",
    "LAMBDA_PACK_REGISTRY_PASSWORD",
    "LAMBDA_PACK_REGISTRY_TOKEN",
    "LAMBDA_PACK_REGISTRY_PLAIN_HTTP",
    "LAMBDA_PACK_HTTP_TOKEN",
    "LAMBDA_PACK_S3_ENDPOINT_URL",
    "DOCKER_CONFIG",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "HOME",
)
FLUSH_S = 5.0  # how often observed usage goes to the store


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Everything ``serve`` was told."""

    store: BlobStore
    store_url: str  # as the shim reads it (a local store by absolute path)
    cache_dir: Path
    cache_max_bytes: int | None = None
    host: str = "127.0.0.1"
    port: int = 3001
    limits: Limits = field(default_factory=Limits)
    region: str = "us-east-1"
    defaults: Mapping[str, FunctionRecord] = field(default_factory=dict)
    grace_s: float = 10.0
    deployer: Callable[[Catalog, Environments], Any] | None = None
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    log: Callable[[str], None] = lambda line: None
    zygote: bool = True  # environments forked from a fork server per interpreter


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def environment_variables(options: Options) -> dict[str, str]:
    """What every environment gets besides Lambda's variables: the store and the cache."""
    passed = {k: os.environ[k] for k in STORE_VARIABLES if k in os.environ}
    if "DOCKER_CONFIG" not in passed and "HOME" in passed:
        passed["DOCKER_CONFIG"] = str(Path(passed["HOME"]) / ".docker")
    env = {
        **passed,
        "LAMBDA_PACK_STORE": options.store_url,
        "LAMBDA_PACK_CACHE": str(options.cache_dir),
        "LAMBDA_PACK_SCRUB": ",".join(sorted(passed)),
    }
    if options.cache_max_bytes is not None:
        env["LAMBDA_PACK_CACHE_MAX_BYTES"] = str(options.cache_max_bytes)
    return env


def stored_interpreters(catalog: Catalog, most: int = 32) -> set[str]:
    """The interpreters the store's functions run on (the first ``most`` names, read through
    the catalog, which keeps them for their first cold start; what cannot be read now is
    left out: its fork server starts on first use instead)."""
    pythons: set[str] = set()
    with contextlib.suppress(Exception):
        for name in catalog.names()[:most]:
            with contextlib.suppress(Exception):  # the cold start itself reports the error
                function = catalog.get(name)
                if function is not None:
                    pythons.add(interpreter(function.task.target))
    return pythons


def shim_store_url(store: BlobStore, url: str) -> str:
    return str(store.root.resolve()) if isinstance(store, LocalStore) else url


class Service:
    """One running service (also what tests start in a thread)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.metrics = Metrics()
        self.catalog = Catalog(options.store, options.defaults, options.region)
        self.environments = Environments(
            limits=options.limits,
            base_env=environment_variables(options),
            region=options.region,
            log=options.log,
            zygote=options.zygote,
            warn=options.say,
        )
        self.api = Api(self.catalog, self.environments, self.metrics, self.observe)
        if options.deployer is not None:
            self.api.deployer = options.deployer(self.catalog, self.environments)
        self.pending: dict[str, Usage] = {}
        self.stopping = asyncio.Event()
        self.port = options.port
        self._runner: web.AppRunner | None = None

    def observe(self, name: str, outcome: Outcome) -> None:
        """Count a cold start and the blobs it fetched, for the store's usage record."""
        if outcome.cold:
            misses = int(outcome.provisioning.get("misses", 0))
            seen = Usage(cold_starts=1, layer_misses=misses)
            self.pending[name] = self.pending.get(name, Usage()).plus(seen)

    def flush(self) -> None:
        """Add the usage seen since the last flush to the store's record (blocking)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        record = self.catalog.record()
        usage = dict(record.usage)
        for name, seen in pending.items():
            usage[name] = usage.get(name, Usage()).plus(seen)
        self.catalog.save(ServeRecord(functions=record.functions, usage=usage))

    async def start(self) -> int:
        """Listen; the port (useful with port 0). The fork servers of the store's functions'
        interpreters are started first, so a cold start right after does not wait for one."""
        await self.environments.start()
        if self.options.zygote:
            pythons = await asyncio.to_thread(stored_interpreters, self.catalog)
            await self.environments.zygotes.warm(pythons)
        self._runner = web.AppRunner(
            self.api.app(), access_log=None, handle_signals=False, shutdown_timeout=1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as exc:
            await self.environments.close(0)
            await self._runner.cleanup()
            where = f"{self.options.host}:{self.options.port}"
            raise ConfigError(
                f"cannot listen on {where}: {exc.strerror or exc}",
                "pick another --port (0: any free one), or stop what is using it",
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def serve_until_stopped(self) -> None:
        ticks = 0
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            self.environments.reap_idle()
            ticks += 1
            if ticks % int(FLUSH_S) == 0:
                await asyncio.to_thread(self._safe_flush)

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the store is down: keep serving, try again later
            self.options.say(f"serve: warning: cannot record usage in the store: {exc}")

    async def stop(self) -> None:
        """Stop taking requests, finish or fail what runs, end every environment."""
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()
        await self.environments.close(self.options.grace_s)
        for task in list(self.api.events):
            task.cancel()
        await asyncio.to_thread(self._safe_flush)
        if self._runner is not None:
            await self._runner.cleanup()


async def _main(options: Options) -> None:
    service = Service(options)
    port = await service.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stopping.set)
    options.say(
        f"serve: Lambda API on http://{_url_host(options.host)}:{port} "
        f"(store {options.store.location}); stop with Ctrl-C or SIGTERM"
    )
    try:
        await service.serve_until_stopped()
    finally:
        options.say("serve: stopping")
        await service.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run(options: Options) -> int:
    """Serve until SIGTERM or SIGINT; the exit code."""
    if not is_loopback(options.host):
        options.say(
            f"serve: WARNING: listening on {options.host}: anyone who can reach it can run "
            "the store's functions, with no authentication"
        )
    _run_loop(_main(options))
    return 0


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it is installed (the serve extra has it): the warm path's sockets and
    callbacks cost about a third less CPU than on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)

"""``serve`` from the command line: options -> a running service (imported by cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..settings import Settings
    from .record import FunctionRecord


def serve(
    args: argparse.Namespace,
    location: tuple[str, Path, int | None],
    settings: Settings,
    cache_root: Path,
) -> int:
    """Run the service until SIGTERM; the exit code."""
    try:
        from . import service
        from .create import Builder
        from .model import Limits
    except ImportError as exc:
        raise ConfigError(
            f"serve needs the serve extra ({exc.name} is not installed)",
            "pip install 'pip-lambda-pack[serve]'",
        ) from None
    from ..requirements import IndexOptions
    from ..store import open_store

    url, base, cap = location
    _check(args)
    store = open_store(url, base)
    index = IndexOptions(
        index_url=args.index_url,
        extra_index_urls=tuple(args.extra_index_url),
        find_links=tuple(v if "://" in v else str(Path(v).resolve()) for v in args.find_links),
        no_index=args.no_index,
    )
    options = service.Options(
        store=store,
        store_url=service.shim_store_url(store, url),
        cache_dir=(args.cache or cache_root / "runtime").resolve(),
        cache_max_bytes=args.cache_max_bytes if args.cache_max_bytes is not None else cap,
        host=args.host,
        port=args.port,
        limits=Limits(
            max_concurrency=args.max_concurrency,
            max_total=args.max_environments,
            queue_size=args.queue,
            idle_s=args.idle_s,
        ),
        region=args.region,
        defaults=project_defaults(args),
        deployer=lambda catalog, envs: Builder(
            catalog, envs, settings, index, args.code_storage_max_bytes
        ),
        log=settings.log,
        zygote=args.fork_server,
    )
    return service.run(options)


def _check(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--max-concurrency", args.max_concurrency),
        ("--max-environments", args.max_environments),
    ):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, not {value}", f"e.g. {flag} 4")
    if args.code_storage_max_bytes < 0:
        raise ConfigError(
            f"--code-storage-max-bytes must be 0 or more, not {args.code_storage_max_bytes}",
            "e.g. --code-storage-max-bytes 80530636800 (Lambda's 75 GB)",
        )
    if args.queue < 0 or args.idle_s <= 0 or not 0 <= args.port <= 65535:
        raise ConfigError(
            "--queue must be 0 or more, --idle-s above 0 and --port from 0 to 65535",
            "e.g. --queue 100 --idle-s 300 --port 3001",
        )


def project_defaults(args: argparse.Namespace) -> dict[str, FunctionRecord]:
    """Each function's memory, timeout and environment from the project config, if any."""
    from ..config import find_config, load_project
    from .record import FunctionRecord

    path = args.config or find_config(Path.cwd())
    if path is None:
        return {}
    project = load_project(Path(path))
    return {
        spec.name: FunctionRecord(
            memory=spec.memory, timeout=float(spec.timeout), environment=dict(spec.environment)
        )
        for spec in project.functions
    }

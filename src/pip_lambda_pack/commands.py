"""The commands, one function each (``args -> exit code``), and the plumbing they share:
the project from flags and config, the machine settings, stderr lines said once.

Heavy modules are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import PlannerOptions, Project
    from .manifest import BuildManifest
    from .settings import Finders, Settings


# -- shared plumbing --------------------------------------------------------------------


def _settings(args: argparse.Namespace, offline: bool = False) -> Settings:
    from .settings import Settings

    def say(message: str) -> None:
        if message.startswith("warning: ") and _said_key(message) in SAID:
            return  # once per command, though lock and plan both find it
        SAID.add(_said_key(message))
        if not args.quiet:
            _line(message)

    def log(message: str) -> None:
        if args.verbose:
            _line(message)

    from .progress import make_progress

    progress = make_progress(quiet=args.quiet, stream=sys.stderr)
    pip = getattr(args, "pip_options", None)
    if pip is None:
        return Settings(
            cache_dir=_cache_dir(args), offline=offline, log=log, say=say, progress=progress
        )
    return Settings(
        cache_dir=_cache_dir(args),
        offline=offline,
        log=log,
        say=say,
        index_defaults=pip.index,
        network=pip.network,
        formats=pip.formats,
        progress=progress,
    )


_STDERR = threading.Lock()
SAID: set[str] = set()  # what this command said already (main() starts it empty)
_LAYER_ID = re.compile(r"\blayer L?[0-9a-f]{12}\b")


def _said_key(message: str) -> str:
    """A message as said once: lock names a layer by its plan id, plan by its zip's id."""
    return _LAYER_ID.sub("layer", message)


def _line(message: str) -> None:
    """One whole line on stderr: the resolver's threads log at once, and ``print`` writes
    the text and its newline apart, so lines would run into each other."""
    with _STDERR:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def _cache_dir(args: argparse.Namespace) -> Path:
    if args.cache_dir:
        return Path(args.cache_dir).resolve()
    if os.environ.get("LAMBDA_PACK_CACHE_DIR"):
        return Path(os.environ["LAMBDA_PACK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pip-lambda-pack"


def _project(args: argparse.Namespace) -> Project:
    from .config import find_config, load_project, shortcut_project, with_overrides
    from .requirements import IndexOptions

    if getattr(args, "handler", None) or getattr(args, "requirement", None):
        project = _shortcut(args, shortcut_project)
    else:
        path = args.config or find_config(Path.cwd())
        if path is None:
            raise ConfigError(
                "no lambda-pack.toml or pyproject.toml with [tool.lambda-pack] here",
                "create one, pass --config PATH, or use -r REQS --handler MOD.FUNC --code DIR",
            )
        project = load_project(Path(path))
    index = IndexOptions(
        index_url=args.index_url,
        extra_index_urls=tuple(args.extra_index_url),
        find_links=tuple(_find_link(v) for v in args.find_links),
        no_index=args.no_index,
        pre=args.pre,
    )
    project = with_overrides(
        project,
        target=args.target,
        store=args.store,
        max_layers=args.max_layers,
        strategy=args.strategy,
        index=index,
        planner=_planner_options(args),
    )
    if args.bytecode is not None:
        from .config import with_bytecode

        project = with_bytecode(project, args.bytecode)
    if args.target_python is not None:
        project = dataclasses.replace(project, target_python=args.target_python.expanduser())
    from .inputs import materialize
    from .pipeline import check_settings

    check_settings(project)  # an unknown target or strategy fails before any work
    return materialize(project)


def _planner_options(args: argparse.Namespace) -> PlannerOptions:
    """The planner flags given: each ``--KEY`` of a planner option (``planner.model``)."""
    from .config import planner_options
    from .planner.model import OPTION_KEYS

    given = {key: getattr(args, key.replace("-", "_"), None) for key in OPTION_KEYS}
    return planner_options(given, "command line")


def _shortcut(args: argparse.Namespace, shortcut_project: Any) -> Project:
    if not args.handler or not args.code:
        raise ConfigError(
            "the one-function shortcut needs --handler and --code",
            "e.g. build -r requirements.txt --handler app.handler --code src/",
        )
    code = Path(args.code)
    project: Project = shortcut_project(
        requirements=args.requirement,
        handler=args.handler,
        code=code,
        name=args.name or (code.resolve().name or "function"),
        root=Path.cwd(),
        target=args.target or "python3.12-x86_64",
    )
    return project


def _find_link(value: str) -> str:
    return value if "://" in value else str(Path(value).resolve())


def _finders(settings: Settings) -> Finders:
    from .settings import Finders

    return Finders(settings)


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


# -- commands ---------------------------------------------------------------------------


def lock(args: argparse.Namespace) -> int:
    from .pipeline import lock_project

    project = _project(args)
    settings = _settings(args)
    finders = _finders(settings)
    try:
        lock = lock_project(project, settings, finders)
    finally:
        finders.close()
    if args.json_output:
        emit_json(
            {
                "lock": str(project.lock_path),
                "target": lock.target,
                "strategy": lock.strategy,
                "wheels": sorted(lock.wheels),
                "layers": {lid: list(pins) for lid, pins in lock.layers.items()},
                "functions": {name: list(f.layers) for name, f in lock.functions.items()},
            }
        )
    return 0


def _dry_run(args: argparse.Namespace) -> bool:
    """Whether ad-hoc planner flags were given: then graph and plan never write the lock."""
    from .planner.model import OPTION_KEYS

    flags = ("strategy", "max-layers", *OPTION_KEYS)
    return any(getattr(args, flag.replace("-", "_"), None) is not None for flag in flags)


def _shown(project: Project, args: argparse.Namespace) -> Any:
    from .pipeline import shown_lock

    settings = _settings(args)
    finders = _finders(settings)
    try:
        shown = shown_lock(project, settings, finders, write=not _dry_run(args))
    finally:
        finders.close()
    return shown


def graph(args: argparse.Namespace) -> int:
    from .graph import build_graph, render_tree, to_json

    shown = _shown(_project(args), args)
    graph = build_graph(shown.lock.closures())
    if args.format == "json" or args.json_output:
        emit_json({**to_json(graph), "warnings": list(shown.warnings)})
    else:
        for name in sorted(shown.lock.functions):
            print("\n".join(render_tree(graph, name)))
    for warning in shown.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def plan(args: argparse.Namespace) -> int:
    baselines: list[dict[str, Any]] = []
    if args.fleet:
        report = _fleet_report(args)
        if args.report:
            baselines = _baselines(report["strategy"], *_fleet_inputs(args))
    else:
        from .pipeline import plan_report, shown_lock

        project = _project(args)
        settings = _settings(args)
        finders = _finders(settings)
        try:
            shown = shown_lock(project, settings, finders, write=not _dry_run(args))
            report = plan_report(project, shown, settings, finders)
        finally:
            finders.close()
        if args.report:
            from .graph import pin_graph
            from .planning import fleet_of, plan_params

            fleet = fleet_of(project, pin_graph(shown.lock.closures()))
            baselines = _baselines(report["strategy"], fleet, plan_params(project))
    _show_plan(report, args, baselines)
    return 0


def _fleet_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The ``--fleet`` file and the planner parameters from the flags."""
    from .planning import load_fleet, planner_params

    fleet = load_fleet(args.fleet)
    return fleet, planner_params(_planner_options(args), args.max_layers, args.target)


def _fleet_report(args: argparse.Namespace) -> dict[str, Any]:
    """The plan of a ``--fleet`` file (no wheels, so its layer ids are digests of pins)."""
    from .planner import DEFAULT_STRATEGY, get_strategy, make_plan
    from .planner.report import plan_to_json

    strategy = args.strategy or DEFAULT_STRATEGY
    get_strategy(strategy)
    fleet, params = _fleet_inputs(args)
    report: dict[str, Any] = plan_to_json(make_plan(fleet, params, strategy), fleet, params)
    return report


def _baselines(strategy: str, fleet: Any, params: Any) -> list[dict[str, Any]]:
    """``single`` and ``nixery`` on the same fleet, for the report page to show beside."""
    from .planner import make_plan
    from .planner.report import plan_to_json

    others = [s for s in ("single", "nixery") if s != strategy]
    return [plan_to_json(make_plan(fleet, params, s), fleet, params) for s in others]


def _show_plan(
    report: dict[str, Any], args: argparse.Namespace, baselines: list[dict[str, Any]]
) -> None:
    from .planner.report import plan_text

    if args.format == "json" or args.json_output:
        emit_json(report)
    elif not args.report:  # a warning lock already gave on stderr is not given again
        unsaid = [w for w in report["warnings"] if _said_key(f"warning: {w}") not in SAID]
        print("\n".join(plan_text({**report, "warnings": unsaid})))
    if args.report:
        from .atomic import write_text
        from .planner.page import render_html

        write_text(Path(args.report), render_html(report, baselines))
        if not args.quiet:
            print(f"wrote {args.report}", file=sys.stderr)


def _default_out(project: Project, args: argparse.Namespace) -> Path:
    return Path(args.out).resolve() if args.out else project.root / ".lambda-pack" / "build"


def _build_into(args: argparse.Namespace) -> tuple[Project, Path, BuildManifest]:
    from .building import build_project
    from .pipeline import current_lock

    project = _project(args)
    settings = _settings(args)
    out = _default_out(project, args)
    finders = _finders(settings)
    try:
        lock = current_lock(project, settings, finders)
        manifest = build_project(project, lock, out, settings, finders)
    finally:
        finders.close()
    layers = {layer.sha256 for f in manifest.functions.values() for layer in f.layers}
    from .units import plural

    counts = f"{plural(len(manifest.functions), 'function')}, {plural(len(layers), 'layer')}"
    settings.say(f"built {counts} in {out}")
    return project, out, manifest


def build(args: argparse.Namespace) -> int:
    _, out, manifest = _build_into(args)
    if args.json_output:
        emit_json({"out": str(out), **manifest.to_dict()})
    return 0


def push(args: argparse.Namespace) -> int:
    from .store import open_store, push

    project, out, _ = _build_into(args)
    store = open_store(project.store, project.root)
    settings = _settings(args)
    result = push(out, store, log=settings.log, progress=settings.progress)
    if args.json_output:
        emit_json(dataclasses.asdict(result))
    elif not args.quiet:
        print(result.summary(), file=sys.stderr)
    return 0


def export(args: argparse.Namespace) -> int:
    from .atomic import write_text
    from .export import export
    from .manifest import read_manifest

    project, out, _ = _build_into(args)
    output = Path(args.output).resolve() if args.output else None
    relative_to = output.parent if output else Path.cwd()
    document = export(read_manifest(out), out, relative_to, args.format, project, args.prefix)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output and output.suffix in (".yaml", ".yml"):
        from .export import to_yaml

        text = to_yaml(document)
    if output:
        write_text(output, text)
    else:
        sys.stdout.write(text)
    return 0


def _store_location(args: argparse.Namespace) -> tuple[str, Path, int | None]:
    """The store URL, the directory relative paths are taken from, the cache cap."""
    from .config import DEFAULT_STORE, find_config, load_project

    path = args.config or find_config(Path.cwd())
    project = load_project(Path(path)) if path is not None else None
    cap = project.cache_max_bytes if project else None
    if args.store:
        return args.store, Path.cwd(), cap
    if project is None:
        return DEFAULT_STORE, Path.cwd(), cap
    return project.store, project.root, cap


def invoke(args: argparse.Namespace) -> int:
    from .invoke import invoke
    from .target import get_target

    store, base, cap = _store_location(args)
    event = _read_event(args.event)
    target = get_target(args.target) if args.target else None
    return invoke(
        store_url=store,
        base_dir=base,
        name=args.name,
        event=event,
        python=args.python,
        target=target,
        cache_dir=_cache_dir(args) / "runtime",
        cache_max_bytes=cap,
        configured_python=_configured_python(args),
    )


def _configured_python(args: argparse.Namespace) -> dict[str, str]:
    """The project's ``python`` config key, for invoke's target-interpreter lookup."""
    from .config import find_config, load_project

    path = args.config or find_config(Path.cwd())
    return dict(load_project(Path(path)).python) if path is not None else {}


def _read_event(source: str | None) -> bytes:
    if source is None:
        return b"{}"
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"event file not found: {source}", "pass --event FILE or -") from None
    except IsADirectoryError:
        raise ConfigError(f"event {source} is a directory", "pass --event FILE or -") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read event {source}: {exc.strerror}", "pass --event FILE or -"
        ) from None


def ls(args: argparse.Namespace) -> int:
    from .store import open_store
    from .wire import redact

    store_url, base, _ = _store_location(args)
    names = open_store(store_url, base).names()
    if args.json_output:
        emit_json({"store": redact(store_url), "functions": names})
    else:
        for name in names:
            print(name)
    return 0


def cache(args: argparse.Namespace) -> int:
    from . import cache

    root = args.cache.resolve() if args.cache else _cache_dir(args) / "runtime"
    bytecode = None if args.cache else _cache_dir(args) / "bytecode"  # a worker's has none
    if args.action == "info":
        if args.json_output:
            found = cache.info_json(root)
            if bytecode is not None:
                found["bytecode"] = cache.bytecode_info_json(bytecode)
            emit_json(found)
        else:
            print(cache.info(root))
            if bytecode is not None:
                print(cache.bytecode_info(bytecode))
        return 0
    print(cache.prune(root, args.max_bytes))
    if bytecode is not None:  # the tool's own cache too
        print(cache.prune_bytecode(bytecode, args.max_bytes))
    return 0


def check(args: argparse.Namespace) -> int:
    from .lock import read_lock, staleness
    from .planning import check_lock_limits, strategy_of

    project = _project(args)
    lock = read_lock(project.lock_path)
    reason = staleness(lock, project, strategy_of(project))
    if reason is None:
        check_lock_limits(project, lock)
    if args.json_output:
        emit_json({"lock": str(project.lock_path), "fresh": reason is None, "reason": reason})
        return 0 if reason is None else 1
    if reason:
        print(f"{project.lock_path.name} is stale: {reason}", file=sys.stderr)
        print("TIP: run: pip-lambda-pack lock", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{project.lock_path.name} is fresh", file=sys.stderr)
    return 0


def serve(args: argparse.Namespace) -> int:
    from .serve.command import serve

    return serve(args, _store_location(args), _settings(args), _cache_dir(args))


def deploy(args: argparse.Namespace) -> int:
    from .deploy import deploy
    from .deploy_aws import boto3_session
    from .deploy_model import DeployOptions
    from .lambda_settings import check_role

    project, out, manifest = _build_into(args)
    options = DeployOptions(
        prefix=args.prefix or project.prefix,
        role=check_role(args.role, "--role") if args.role else None,
        s3_bucket=args.s3_bucket,
        publish=args.publish,
        dry_run=args.dry_run,
    )
    settings = _settings(args)
    session = boto3_session(args.region)
    outcome = deploy(project, manifest, out, options, session, settings.say)
    if args.json_output:
        emit_json(outcome.to_json())
    settings.say(outcome.summary())
    return 0

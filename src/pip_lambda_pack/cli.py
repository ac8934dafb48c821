"""Commands -> library calls; the one place errors are rendered.

``main(argv) -> int`` is what ``pip-lambda-pack``, ``python -m pip_lambda_pack`` and (later)
``pip lambda-pack`` all call. Heavy modules are imported inside the commands so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .errors import ConfigError, LambdaPackError

if TYPE_CHECKING:
    from .config import PlannerOptions, Project
    from .manifest import BuildManifest
    from .pipconf import PipOptions
    from .pipeline import Finders, Settings

PROG = "pip-lambda-pack"


def main(
    argv: Sequence[str] | None = None, prog: str = PROG, pip_options: PipOptions | None = None
) -> int:
    """Run one command; returns the exit code (0 ok, 1 failure, 2 bad input).

    ``pip_options`` is pip's configuration when run as ``pip lambda-pack``: its indexes go
    under the project's and our flags, its network options (cert, proxy, ...) are used as is.
    """
    parser = build_parser(prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    _SAID.clear()
    try:
        args = parser.parse_args(argv)
    except LambdaPackError as exc:  # a usage error, rendered like every other error
        _error(exc.message, exc.tip, as_json="--json" in argv)
        return exc.exit_code
    args.pip_options = pip_options
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
        return result
    except LambdaPackError as exc:
        _error(exc.message, exc.tip, as_json=args.json_output)
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted", "")
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # anything else: one line, never a raw traceback
        return _unexpected(exc, args)


def _unexpected(exc: Exception, args: argparse.Namespace) -> int:
    """A full disk said so; any other exception (a bug of ours) as one ERROR line, exit 1.

    ``-v`` prints the traceback first. URLs in the message are redacted.
    """
    from .wire import redact_text

    if args.verbose:
        traceback.print_exception(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f": {exc.filename}" if exc.filename else ""
        _error(
            redact_text(f"no space left on the device{where}"),
            "free some space, or point --out / --cache-dir / the store at a bigger disk",
            as_json=args.json_output,
        )
        return 1
    text = str(exc).strip().splitlines()
    message = f"unexpected {type(exc).__name__}" + (f": {text[0]}" if text else "")
    _error(
        redact_text(message),
        "rerun with -v to see the traceback; if it is not your input, please report it",
        as_json=args.json_output,
    )
    return 1


def _error(message: str, tip: str, as_json: bool = False) -> None:
    """``ERROR:``/``TIP:`` on stderr; under ``--json`` also ``{"error", "tip"}`` on stdout."""
    print(f"ERROR: {message}", file=sys.stderr)
    if tip:
        print(f"TIP: {tip}", file=sys.stderr)
    if as_json:
        _emit_json({"error": message, "tip": tip})


# -- parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigErrors, so they render as ERROR/TIP, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message, f"see: {self.prog} --help")


# The last lines of each command's --help: one command a user can copy.
EXAMPLES = {
    "lock": "%(prog)s --target python3.12-x86_64",
    "graph": "%(prog)s --format json > graph.json",
    "plan": "%(prog)s --strategy nixery --max-layers 4\n"
    "  %(prog)s --fleet bench/fleets/fleet-dev.json --report plan.html",
    "build": "%(prog)s --out out",
    "push": "%(prog)s --store oci://ghcr.io/acme/functions",
    "invoke": 'echo \'{"name": "lambda"}\' | %(prog)s fetch --event -',
    "ls": "%(prog)s --store s3://acme-artifacts/lambda",
    "cache": "%(prog)s prune --max-bytes 200000000",
    "check": "%(prog)s && echo fresh",
    "export": "%(prog)s --format sam -o template.json",
    "serve": "%(prog)s --store .lambda-pack/store --max-concurrency 4",
    "deploy": "%(prog)s --region eu-west-1 --dry-run",
}


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Package Python serverless functions into deterministic, cache-friendly "
        "Lambda layers, resolved for the target runtime.",
        epilog=f"example:\n  {prog} lock --target python3.12-x86_64 && {prog} plan\n"
        f"each command's options: {prog} COMMAND --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-V", "--version", action="version", version=f"%(prog)s {__version__}", help="the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_options()
    project = _project_options()
    _add(commands, "lock", "resolve and plan; write lambda-pack.lock", [common, project], _lock)
    graph = _add(commands, "graph", "show the dependency graph", [common, project], _graph)
    graph.add_argument(
        "--format", choices=["tree", "json"], default="tree", help="output (default tree)"
    )
    plan = _add(commands, "plan", "show the layer plan", [common, project], _plan)
    plan.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="output (default text); --json is the same as --format json",
    )
    plan.add_argument("--fleet", type=Path, help="plan a lambda-pack-fleet/1 file, no index")
    plan.add_argument(
        "--report", type=Path, metavar="FILE", help="write a self-contained HTML page instead"
    )
    build = _add(commands, "build", "build layer and code zips", [common, project], _build)
    build.add_argument("--out", type=Path, help="output directory (default .lambda-pack/build)")
    push = _add(commands, "push", "build, then push to the store", [common, project], _push)
    push.add_argument("--out", type=Path, help="build directory (default .lambda-pack/build)")
    invoke = _add(commands, "invoke", "run a function through the shim", [common], _invoke)
    invoke.add_argument("name", help="the function's name")
    invoke.add_argument("--store", help="store URL or path (default: the project's)")
    invoke.add_argument("--event", default=None, help="event JSON file, or - for stdin")
    invoke.add_argument(
        "--python",
        help="interpreter to run the function with (default: this one if it fits the target, "
        "else python3.X on PATH or in pyenv)",
    )
    ls = _add(commands, "ls", "list the functions in a store", [common], _ls)
    ls.add_argument("--store", help="store URL or path (default: the project's)")
    cache = _add(commands, "cache", "show or prune the runtime cache", [common], _cache)
    cache.add_argument("action", choices=["info", "prune"], help="info: list; prune: evict")
    cache.add_argument("--cache", type=Path, help="cache directory (default: invoke's)")
    cache.add_argument("--max-bytes", type=int, default=0, help="prune down to this size")
    _add(
        commands, "check", "offline: is the lock fresh and within limits", [common, project], _check
    )
    export = _add(
        commands, "export", "build, then write a deploy template", [common, project], _export
    )
    export.add_argument(
        "--format",
        choices=["sam", "terraform", "json"],
        default="sam",
        help="AWS SAM, Terraform JSON or our own JSON (default sam)",
    )
    export.add_argument("--out", type=Path, help="build directory (default .lambda-pack/build)")
    export.add_argument(
        "-o", "--output", type=Path, help="file to write (default: stdout; .yaml: YAML)"
    )
    export.add_argument("--prefix", help="names: PREFIX-FUNCTION, PREFIX-<layer hex>")
    _add_serve(commands, common)
    _deploy_parser(commands, [common, project])
    return parser


def _add_serve(commands: Any, common: argparse.ArgumentParser) -> None:
    index = argparse.ArgumentParser(add_help=False)
    index.add_argument("-i", "--index-url", metavar="URL", help="index CreateFunction uses")
    index.add_argument(
        "--extra-index-url", action="append", default=[], metavar="URL", help="another index"
    )
    index.add_argument(
        "-f", "--find-links", action="append", default=[], metavar="DIR|URL", help="wheels too"
    )
    index.add_argument("--no-index", action="store_true", help="use --find-links alone")
    serve = _add(
        commands,
        "serve",
        "run the store's functions behind the AWS Lambda API",
        [common, index],
        _serve,
    )
    serve.add_argument("--store", help="store URL or path (default: the project's)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=3001, help="port (default 3001; 0: any)")
    serve.add_argument("--cache", type=Path, help="worker cache directory (default: invoke's)")
    serve.add_argument("--cache-max-bytes", type=int, help="worker cache size cap")
    serve.add_argument("--max-concurrency", type=int, default=10, help="environments per function")
    serve.add_argument("--max-environments", type=int, default=64, help="environments in all")
    serve.add_argument("--queue", type=int, default=100, help="queued calls per function")
    serve.add_argument("--idle-s", type=float, default=300.0, help="stop idle environments")
    serve.add_argument(
        "--region", default=os.environ.get("AWS_REGION", "us-east-1"), help="region in ARNs"
    )


def _deploy_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    deploy = _add(commands, "deploy", "build, then deploy to AWS Lambda", parents, _deploy)
    deploy.add_argument("--region", help="AWS region (default: boto3's: AWS_REGION, profile)")
    deploy.add_argument("--role", help="execution role ARN for functions without role = ...")
    deploy.add_argument("--prefix", help="names: PREFIX-FUNCTION, PREFIX-<layer hex>")
    deploy.add_argument("--s3-bucket", help="bucket for zips over 50 MB (same region)")
    deploy.add_argument("--publish", action="store_true", help="publish a version of each")
    deploy.add_argument("--dry-run", action="store_true", help="print the calls, make none")
    deploy.add_argument("--out", type=Path, help="build directory (default .lambda-pack/build)")


def _add(
    commands: Any, name: str, help_text: str, parents: list[argparse.ArgumentParser], run: Any
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        parents=parents,
        epilog=f"example:\n  {EXAMPLES[name]}" if name in EXAMPLES else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(run=run)
    return sub


def _common_options() -> argparse.ArgumentParser:
    from .target import TARGETS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="lambda-pack.toml or pyproject.toml")
    common.add_argument(
        "--target", metavar="TARGET", help="Lambda runtime preset: " + ", ".join(TARGETS)
    )
    common.add_argument(
        "--cache-dir", type=Path, help="download and layer cache (default ~/.cache/pip-lambda-pack)"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="say more: every rejected file and why"
    )
    common.add_argument("-q", "--quiet", action="store_true", help="only errors and results")
    common.add_argument(
        "--json",
        dest="json_output",
        action="store_true",
        help="print the result (or the error) as JSON on stdout",
    )
    return common


def _project_options() -> argparse.ArgumentParser:
    from .planner import STRATEGIES

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-i", "--index-url", metavar="URL", help="package index (default https://pypi.org/simple)"
    )
    options.add_argument(
        "--extra-index-url", action="append", default=[], metavar="URL", help="another index"
    )
    options.add_argument(
        "-f",
        "--find-links",
        action="append",
        default=[],
        metavar="DIR|URL",
        help="a directory or page of wheels to use too",
    )
    options.add_argument("--no-index", action="store_true", help="use --find-links alone")
    options.add_argument("--pre", action="store_true", help="allow pre-releases")
    options.add_argument("--store", help="store URL or path")
    options.add_argument(
        "--strategy", choices=list(STRATEGIES), help="planning strategy (default expected-time)"
    )
    options.add_argument("--max-layers", type=_layer_count, help="layers per function (default 5)")
    model = options.add_argument_group("planner model (defaults: docs/planner.md)")
    model.add_argument(
        "--runtime-provided",
        choices=["bundle", "exclude"],
        help="bundle boto3 & co. in layers, or leave them to the runtime",
    )
    model.add_argument("--latency-ms", type=float, help="per-fetch latency")
    model.add_argument(
        "--bandwidth-mb-s",
        "--bandwidth-mbps",
        type=float,
        metavar="MB_S",
        help="transfer rate in MB/s (--bandwidth-mbps is the old name)",
    )
    model.add_argument("--cache-mb", type=float, help="worker cache size in MB")
    model.add_argument("--fetch", choices=["parallel", "serial"], help="how layers are fetched")
    model.add_argument(
        "--plan-effort",
        type=float,
        metavar="X",
        help="how long the planner's local search may run, a multiple of the default (1; 0: none)",
    )
    shortcut = options.add_argument_group("one function without a config file")
    shortcut.add_argument("-r", "--requirement", type=Path, help="requirements file")
    shortcut.add_argument("--handler", help="module.function")
    shortcut.add_argument("--code", type=Path, help="the function's code directory")
    shortcut.add_argument("--name", default=None, help="the function's name (default: code dir)")
    options.add_argument(
        "--target-python", type=Path, help="the target's Python (sdist builds, bytecode)"
    )
    options.add_argument(
        "--bytecode",
        choices=["checked-hash", "unchecked-hash", "none"],
        help=".pyc compiled for the target in layers and code zips (default checked-hash)",
    )
    return options


def _layer_count(text: str) -> int:
    """``--max-layers``: an integer from 1 to 1000, as in the config."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return value


# -- shared plumbing --------------------------------------------------------------------


def _settings(args: argparse.Namespace, offline: bool = False) -> Settings:
    from .pipeline import Settings

    def say(message: str) -> None:
        if message.startswith("warning: ") and _said_key(message) in _SAID:
            return  # once per command, though lock and plan both find it
        _SAID.add(_said_key(message))
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
_SAID: set[str] = set()  # what this command said already (main() starts it empty)
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
    from .config import (
        IndexOptions,
        find_config,
        load_project,
        shortcut_project,
        with_overrides,
    )

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
    from .pipeline import Finders

    return Finders(settings)


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


# -- commands ---------------------------------------------------------------------------


def _lock(args: argparse.Namespace) -> int:
    from .pipeline import lock_project

    project = _project(args)
    settings = _settings(args)
    finders = _finders(settings)
    try:
        lock = lock_project(project, settings, finders)
    finally:
        finders.close()
    if args.json_output:
        _emit_json(
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


def _graph(args: argparse.Namespace) -> int:
    from .graph import build_graph, render_tree, to_json

    shown = _shown(_project(args), args)
    graph = build_graph(shown.lock.closures())
    if args.format == "json" or args.json_output:
        _emit_json({**to_json(graph), "warnings": list(shown.warnings)})
    else:
        for name in sorted(shown.lock.functions):
            print("\n".join(render_tree(graph, name)))
    for warning in shown.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace) -> int:
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
            from .pipeline import fleet_of, plan_params

            fleet = fleet_of(project, pin_graph(shown.lock.closures()))
            baselines = _baselines(report["strategy"], fleet, plan_params(project))
    _show_plan(report, args, baselines)
    return 0


def _fleet_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The ``--fleet`` file and the planner parameters from the flags."""
    from .pipeline import load_fleet, planner_params

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
        _emit_json(report)
    elif not args.report:  # a warning lock already gave on stderr is not given again
        unsaid = [w for w in report["warnings"] if _said_key(f"warning: {w}") not in _SAID]
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
    from .pipeline import build_project, current_lock

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


def _build(args: argparse.Namespace) -> int:
    _, out, manifest = _build_into(args)
    if args.json_output:
        _emit_json({"out": str(out), **manifest.to_dict()})
    return 0


def _push(args: argparse.Namespace) -> int:
    from .store import open_store, push

    project, out, _ = _build_into(args)
    store = open_store(project.store, project.root)
    settings = _settings(args)
    result = push(out, store, log=settings.log, progress=settings.progress)
    if args.json_output:
        _emit_json(dataclasses.asdict(result))
    elif not args.quiet:
        print(result.summary(), file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
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


def _invoke(args: argparse.Namespace) -> int:
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


def _ls(args: argparse.Namespace) -> int:
    from .store import open_store
    from .wire import redact

    store_url, base, _ = _store_location(args)
    names = open_store(store_url, base).names()
    if args.json_output:
        _emit_json({"store": redact(store_url), "functions": names})
    else:
        for name in names:
            print(name)
    return 0


def _cache(args: argparse.Namespace) -> int:
    from . import cache

    root = args.cache.resolve() if args.cache else _cache_dir(args) / "runtime"
    if args.action == "info":
        if args.json_output:
            _emit_json(cache.info_json(root))
        else:
            print(cache.info(root))
        return 0
    print(cache.prune(root, args.max_bytes))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .lock import read_lock, staleness
    from .pipeline import check_lock_limits, strategy_of

    project = _project(args)
    lock = read_lock(project.lock_path)
    reason = staleness(lock, project, strategy_of(project))
    if reason is None:
        check_lock_limits(project, lock)
    if args.json_output:
        _emit_json({"lock": str(project.lock_path), "fresh": reason is None, "reason": reason})
        return 0 if reason is None else 1
    if reason:
        print(f"{project.lock_path.name} is stale: {reason}", file=sys.stderr)
        print("TIP: run: pip-lambda-pack lock", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{project.lock_path.name} is fresh", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve.command import serve

    return serve(args, _store_location(args), _settings(args), _cache_dir(args))


def _deploy(args: argparse.Namespace) -> int:
    from .config import check_role
    from .deploy import DeployOptions, boto3_session, deploy

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
        _emit_json(outcome.to_json())
    settings.say(outcome.summary())
    return 0

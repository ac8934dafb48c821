"""The command line: the parser and ``main(argv) -> int``, the one place errors are rendered.

``main`` is what ``pip-lambda-pack``, ``python -m pip_lambda_pack`` and ``pip lambda-pack``
all call; each command is a function of ``commands`` (args -> exit code). Heavy modules are
imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from . import commands as run
from .commands import SAID, emit_json
from .errors import ConfigError, LambdaPackError

if TYPE_CHECKING:
    from .pipconf import PipOptions


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
    SAID.clear()
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
        emit_json({"error": message, "tip": tip})


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
    _add(commands, "lock", "resolve and plan; write lambda-pack.lock", [common, project], run.lock)
    graph = _add(commands, "graph", "show the dependency graph", [common, project], run.graph)
    graph.add_argument(
        "--format", choices=["tree", "json"], default="tree", help="output (default tree)"
    )
    plan = _add(commands, "plan", "show the layer plan", [common, project], run.plan)
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
    build = _add(commands, "build", "build layer and code zips", [common, project], run.build)
    build.add_argument("--out", type=Path, help="output directory (default .lambda-pack/build)")
    push = _add(commands, "push", "build, then push to the store", [common, project], run.push)
    push.add_argument("--out", type=Path, help="build directory (default .lambda-pack/build)")
    invoke = _add(commands, "invoke", "run a function through the shim", [common], run.invoke)
    invoke.add_argument("name", help="the function's name")
    invoke.add_argument("--store", help="store URL or path (default: the project's)")
    invoke.add_argument("--event", default=None, help="event JSON file, or - for stdin")
    invoke.add_argument(
        "--python",
        help="interpreter to run the function with (default: this one if it fits the target, "
        "else python3.X on PATH or in pyenv)",
    )
    ls = _add(commands, "ls", "list the functions in a store", [common], run.ls)
    ls.add_argument("--store", help="store URL or path (default: the project's)")
    cache = _add(commands, "cache", "show or prune the runtime cache", [common], run.cache)
    cache.add_argument("action", choices=["info", "prune"], help="info: list; prune: evict")
    cache.add_argument("--cache", type=Path, help="cache directory (default: invoke's)")
    cache.add_argument("--max-bytes", type=int, default=0, help="prune each cache to this size")
    _add(
        commands,
        "check",
        "offline: is the lock fresh and within limits",
        [common, project],
        run.check,
    )
    export = _add(
        commands, "export", "build, then write a deploy template", [common, project], run.export
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
        run.serve,
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
        "--code-storage-max-bytes",
        type=int,
        default=75 * 1024**3,
        help="cap on the store's code and layers CreateFunction may reach (Lambda's 75 GB)",
    )
    serve.add_argument(
        "--region", default=os.environ.get("AWS_REGION", "us-east-1"), help="region in ARNs"
    )
    serve.add_argument(
        "--no-fork-server",
        dest="fork_server",
        action="store_false",
        help="start every environment as a new interpreter, not forked from a warm one",
    )


def _deploy_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    deploy = _add(commands, "deploy", "build, then deploy to AWS Lambda", parents, run.deploy)
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
        "--extract-mb-s",
        type=float,
        metavar="MB_S",
        help="MB/s (unpacked) the shim unpacks a fetched layer at (default 0: not counted)",
    )
    model.add_argument(
        "--worker-cold-starts", type=float, metavar="N", help="cold starts a worker cache lives for"
    )
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

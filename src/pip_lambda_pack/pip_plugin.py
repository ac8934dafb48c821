"""``pip lambda-pack``: our commands as a pip command, under pip's own configuration.

``_pip_lambda_pack_hook`` (loaded by a .pth file) names this class in pip's command table;
pip imports this module only when ``pip lambda-pack`` runs. pip's option parser reads pip.conf,
``PIP_*`` variables and pip options given before our subcommand
(``pip --proxy URL lambda-pack lock``); what it finds becomes ``PipOptions``, and the rest of
the arguments go to ``cli.main`` unchanged, where the project's config and our flags win.
"""

from __future__ import annotations

from pathlib import Path

from pip._internal.cli import cmdoptions
from pip._internal.cli.base_command import Command

from . import cli
from .pipconf import PipOptions, from_pip_values
from .requirements import IndexOptions

PROG = "pip lambda-pack"


class LambdaPackCommand(Command):
    """Package Python serverless functions into deterministic, cache-friendly Lambda layers,
    resolved for the target runtime. pip's index and network settings (pip.conf, PIP_*) apply
    under the project's [tool.lambda-pack] and the command's own flags."""

    usage = """
      %prog [pip options] COMMAND [options]

      COMMAND is one of lock, graph, plan, build, push, ls, invoke, check;
      `pip lambda-pack COMMAND --help` describes each."""
    ignore_require_venv = True

    def add_options(self) -> None:
        """pip's index and binary options, so pip.conf's index-url, find-links, only-binary,
        ... are read too."""
        group = cmdoptions.make_option_group(cmdoptions.index_group, self.parser)
        self.parser.insert_option_group(0, group)
        for option in (cmdoptions.no_binary, cmdoptions.only_binary, cmdoptions.prefer_binary):
            self.cmd_opts.add_option(option())  # pip.conf's only-binary & co. apply too
        self.parser.insert_option_group(0, self.cmd_opts)
        self.parser.disable_interspersed_args()  # pip options end at our subcommand

    def main(self, args: list[str]) -> int:
        if not args or args[0] in ("-h", "--help", "-V", "--version"):  # ours, not pip's
            return cli.main(args[:1] or ["--help"], prog=PROG)
        values, rest = self.parser.parse_args(args)
        return cli.main(_with_verbosity(rest, values), prog=PROG, pip_options=pip_options(values))


def pip_options(values: object) -> PipOptions:
    """pip's values as ``PipOptions``, relative find-links made absolute as pip reads them."""
    options = from_pip_values(values)
    links = tuple(v if "://" in v else str(Path(v).resolve()) for v in options.index.find_links)
    index = IndexOptions(
        index_url=options.index.index_url,
        extra_index_urls=options.index.extra_index_urls,
        find_links=links,
        no_index=options.index.no_index,
    )
    return PipOptions(index=index, network=options.network, formats=options.formats)


def _with_verbosity(rest: list[str], values: object) -> list[str]:
    """``pip -v lambda-pack lock`` means ``lock -v``: pass pip's -v/-q on to the subcommand."""
    if not rest:
        return rest
    verbose = int(getattr(values, "verbose", 0) or 0)
    quiet = ["-q"] if getattr(values, "quiet", 0) else []
    return [rest[0], *["-v"] * verbose, *quiet, *rest[1:]]

"""``poetry lambda-pack``: our commands on the current Poetry project, from its poetry.lock.

A Poetry application plugin (entry-point group ``poetry.application.plugin``). It finds the
Poetry project the way every Poetry command does (``-C``/``--project`` included), insists that
``poetry.lock`` exists and is fresh against pyproject.toml, and runs ``pip-lambda-pack`` with
the project's ``[tool.lambda-pack]``, whose functions take their packages from the lock with
``requirements = "poetry.lock"``. Everything after ``lambda-pack`` is passed through as is,
except that Poetry takes ``-q``/``-v`` and ``--help`` wherever they are: its verbosity is
handed on as ours, and ``poetry lambda-pack [COMMAND] --help`` prints our help, not Cleo's.

Poetry and Cleo are not strictly typed; this module is the only place that touches them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from cleo.commands.help_command import HelpCommand
from cleo.events.console_command_event import ConsoleCommandEvent
from cleo.events.console_events import COMMAND, TERMINATE
from cleo.helpers import argument
from poetry.console.commands.command import Command
from poetry.plugins.application_plugin import ApplicationPlugin

from . import cli

PROG = "poetry lambda-pack"
NAME = "lambda-pack"


class LambdaPackCommand(Command):  # type: ignore[misc]
    name = NAME
    description = "Build Lambda layers for this project's functions from poetry.lock."
    arguments = [  # noqa: RUF012 - Cleo's declaration style
        argument("args", "pip-lambda-pack COMMAND and its options", optional=True, multiple=True)
    ]

    def __init__(self) -> None:
        super().__init__()
        self.ignore_validation_errors()  # our options are not Cleo's: they pass through

    def handle(self) -> int:
        pyproject = Path(self.poetry.file.path)
        locker = self.poetry.locker
        if not locker.is_locked() or not locker.is_fresh():
            self.line_error(f"<error>ERROR: {pyproject.parent / 'poetry.lock'} is missing or stale")
            self.line_error("TIP: run: poetry lock</error>")
            return 2
        argv = passthrough(_tokens(self.io.input), self.argument("args"))
        argv = with_verbosity(argv, _verbosity(self.io.output))
        return cli.main(with_config(argv, pyproject), prog=PROG)


def _verbosity(output: Any) -> int:
    """Poetry's verbosity as a count: -1 quiet, 0 normal, 1 to 3 for -v to -vvv."""
    if output.is_quiet():
        return -1
    checks = (output.is_debug(), output.is_very_verbose(), output.is_verbose())
    return next((3 - i for i, on in enumerate(checks) if on), 0)


_VERBOSITY = {"-q", "--quiet", "-v", "-vv", "-vvv", "--verbose"}


def with_verbosity(argv: list[str], level: int) -> list[str]:
    """``argv`` with Poetry's -q/-v (which it takes from anywhere) as our subcommand's flags.

    Poetry leaves ``-vv`` where it was and moves ``-v``/``-q`` to its own options; either
    way the level it parsed is the one meant, so ours are dropped and set from it once.
    """
    if not argv or argv[0].startswith("-") or level == 0:  # level 0: -q/-v after --, if any
        return argv
    rest = [a for a in argv[1:] if a not in _VERBOSITY]
    flags = ["-q"] if level < 0 else ["-v"] * level
    return [argv[0], *flags, *rest]


def _tokens(command_input: Any) -> list[str] | None:
    tokens = getattr(command_input, "_tokens", None)
    return [str(t) for t in tokens] if isinstance(tokens, list) else None


def passthrough(tokens: list[str] | None, parsed: list[str]) -> list[str]:
    """Every token after ``lambda-pack`` (and an optional ``--``); Cleo's parse as fallback."""
    if tokens is None or NAME not in tokens:
        return list(parsed)
    rest = tokens[tokens.index(NAME) + 1 :]
    return rest[1:] if rest[:1] == ["--"] else rest


def with_config(argv: list[str], pyproject: Path) -> list[str]:
    """``argv`` with ``--config`` pointing at the Poetry project unless the user chose one."""
    if not argv or argv[0].startswith("-") or "--config" in argv:
        return argv
    own = pyproject.parent / "lambda-pack.toml"
    config = own if own.is_file() else pyproject
    return [argv[0], "--config", str(config), *argv[1:]]


class LambdaPackPlugin(ApplicationPlugin):  # type: ignore[misc]
    @property
    def commands(self) -> list[type[Command]]:
        return [LambdaPackCommand]

    def activate(self, application: Any) -> None:
        super().activate(application)
        dispatcher = application.event_dispatcher
        if dispatcher is not None:  # Poetry always has one; Cleo alone may not
            dispatcher.add_listener(COMMAND, _our_help)
            dispatcher.add_listener(TERMINATE, _our_help_exit_code)


def _our_help(event: Any, event_name: str, dispatcher: Any) -> None:
    """``poetry lambda-pack [COMMAND] --help``: argparse's help of ours instead of Cleo's."""
    if not _helps_us(event.command, event.io.input):
        return
    argv = passthrough(_tokens(event.io.input), [])
    argv = [a for a in argv if a not in ("-h", "--help") and a not in _VERBOSITY]
    with contextlib.suppress(SystemExit):  # argparse exits after printing help
        cli.main([*argv[:1], "--help"], prog=PROG)
    event.disable_command()  # Cleo's own help is not shown; _our_help_exit_code says 0


def _helps_us(command: Any, command_input: Any) -> bool:
    """``poetry lambda-pack --help`` or ``poetry help lambda-pack``."""
    if not isinstance(command, HelpCommand):
        return False
    if command._command is not None:
        return isinstance(command._command, LambdaPackCommand)
    with contextlib.suppress(Exception):  # Cleo raises its own errors for unbound input
        return bool(command_input.argument("command_name") == NAME)
    return False


def _our_help_exit_code(event: Any, event_name: str, dispatcher: Any) -> None:
    disabled = event.exit_code == ConsoleCommandEvent.RETURN_CODE_DISABLED
    if disabled and isinstance(event.command, HelpCommand):
        event.set_exit_code(0)

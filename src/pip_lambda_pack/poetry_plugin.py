"""``poetry lambda-pack``: our commands on the current Poetry project, from its poetry.lock.

A Poetry application plugin (entry-point group ``poetry.application.plugin``). It finds the
Poetry project the way every Poetry command does (``-C``/``--project`` included), insists that
``poetry.lock`` exists and is fresh against pyproject.toml, and runs ``pip-lambda-pack`` with
the project's ``[tool.lambda-pack]``, whose functions take their packages from the lock with
``requirements = "poetry.lock"``. Everything after ``lambda-pack`` is passed through as is.

Poetry and Cleo are not strictly typed; this module is the only place that touches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        return cli.main(with_config(argv, pyproject), prog=PROG)


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

"""Adds ``lambda-pack`` to pip's command table when pip imports it; loaded by a .pth file.

pip has no plugin interface, so, like virtualenv's ``_virtualenv.pth``, this module puts a
meta-path finder in front of the import system at interpreter start. The finder answers for
exactly one module, ``pip._internal.commands``: it lets the real loader run and then adds one
``CommandInfo`` entry naming ``pip_lambda_pack.pip_plugin.LambdaPackCommand``, which is only
imported when someone runs ``pip lambda-pack``. Every other program pays one string comparison
per import and nothing else (only ``sys`` is imported); if pip's internals change, the entry is
simply not added.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # no `typing` import at interpreter start
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

COMMANDS_MODULE = "pip._internal.commands"
NAME = "lambda-pack"
MODULE = "pip_lambda_pack.pip_plugin"
CLASS = "LambdaPackCommand"
SUMMARY = "Build Lambda layers for serverless functions."


def register(commands: ModuleType) -> bool:
    """Add our entry to ``commands.commands_dict``; False (and no change) if pip differs."""
    try:
        info = commands.CommandInfo(MODULE, CLASS, SUMMARY)
        table = commands.commands_dict
        if isinstance(table, dict):
            table.setdefault(NAME, info)
            return True
    except Exception:  # any surprise in pip's internals means: stay out of the way
        pass
    return False


class CommandTableFinder:
    """A meta-path finder that only ever answers for pip's command table, to wrap its loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != COMMANDS_MODULE:
            return None
        uninstall()
        spec = _real_spec(fullname, path, target)
        exec_module = getattr(spec.loader, "exec_module", None) if spec else None
        if spec is None or exec_module is None:
            return None
        try:
            spec.loader.exec_module = _ExecThenRegister(exec_module)  # type: ignore[method-assign,union-attr]
        except Exception:  # a loader we cannot wrap: leave pip alone
            return None
        return spec


def _real_spec(
    fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None or isinstance(finder, CommandTableFinder):
            continue
        spec: ModuleSpec | None = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


class _ExecThenRegister:
    """The real loader's ``exec_module``, then ``register`` on the module it filled."""

    def __init__(self, exec_module: Callable[[ModuleType], None]) -> None:
        self._exec_module = exec_module

    def __call__(self, module: ModuleType) -> None:
        self._exec_module(module)
        register(module)


def install() -> None:
    """Put the finder in place (once); if pip's table is already imported, register now."""
    if COMMANDS_MODULE in sys.modules:
        register(sys.modules[COMMANDS_MODULE])
    elif not any(isinstance(finder, CommandTableFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, CommandTableFinder())


def uninstall() -> None:
    """Take the finder out again: after pip's table is found, there is nothing left to do."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, CommandTableFinder)]


install()

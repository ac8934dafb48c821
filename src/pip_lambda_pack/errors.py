"""The one error hierarchy: every failure the tool reports is a LambdaPackError.

Errors are built fully where they are raised: ``message`` says what went wrong in one
line, ``tip`` says what to do in one line. The CLI renders them once (``ERROR``/``TIP``)
and exits with ``exit_code``: 2 for bad input, 1 for failures of the world (network,
servers, disks).
"""

from __future__ import annotations


class LambdaPackError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code = 1

    def __init__(self, message: str, tip: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip

    def __str__(self) -> str:
        return self.message


class UserError(LambdaPackError):
    """Bad input: a config, a requirement, an argument or an artifact the user gave us."""

    exit_code = 2


class ConfigError(UserError):
    """The project config, a requirements file or a command-line option is wrong or missing."""


class TargetError(UserError):
    """An unknown target preset, or a host that cannot run the target's wheels."""


class ResolutionError(UserError):
    """The requirements cannot be satisfied for the target."""


class NoWheelError(ResolutionError):
    """No wheel (and no pure-Python sdist build) fits the target for a package."""


class HashMismatchError(UserError):
    """A downloaded file or a stored blob does not match the sha256 it must have."""


class LockError(UserError):
    """The lock file is malformed or does not fit the project."""


class PlanError(UserError):
    """No plan can satisfy the constraints (size limit, max layers)."""


class BadWheelError(UserError):
    """A file named as a wheel that is not one: not a zip, or no ``.dist-info/METADATA``."""


class BuildError(UserError):
    """A wheel cannot be laid out into a layer (bad archive, unsafe path)."""


class StoreError(LambdaPackError):
    """A blob store cannot be read or written."""


class StoreAuthError(StoreError):
    """A store refused our credentials (or we have none): fixed by the user, so exit 2, the
    same code the shim gives for it."""

    exit_code = 2


class BlobNotFoundError(StoreError):
    """A blob or a function manifest is not in the store."""

    exit_code = 2


class InvokeError(UserError):
    """A function cannot be run: bad event, handler not importable, wrong host Python."""


class IndexFetchError(LambdaPackError):
    """A package index or find-links location could not be read."""


class InterpreterError(UserError):
    """An interpreter the user named (flag or config) is not the target's Python."""


class InterpreterNotFoundError(InterpreterError):
    """No interpreter of the target's Python was found on this machine."""

    def __init__(
        self, *, target: str, python: str, machine: str | None, tried: tuple[str, ...] = ()
    ) -> None:
        command = f"python{python}"
        super().__init__(
            f"no CPython {python} interpreter{f' on {machine}' if machine else ''} found"
            f" for {target}"
            + (f" (tried: {'; '.join(tried)})" if tried else " (none on PATH or in pyenv)"),
            f"install one (pyenv install {python}), put {command} on PATH, pass"
            f' --target-python PATH, or set python = {{"{target}" = "/path/to/{command}"}}'
            " in [tool.lambda-pack]",
        )
        self.target = target
        self.python = python
        self.machine = machine
        self.tried = tried


class DeployError(LambdaPackError):
    """AWS refused or failed a deploy call for a reason the user cannot fix in the project."""

"""A function's Lambda settings (memory, timeout, environment, role, /tmp, tags, delivery)
and the names Lambda accepts (function, handler, prefix), checked against Lambda's limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .wire import WireError, as_function_name

_HANDLER = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")

# Environment variables Lambda sets itself and refuses in a function's configuration.
RESERVED_ENVIRONMENT = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
DELIVERIES = ("layers", "shim")
MAX_EPHEMERAL_STORAGE_MB = 10240
_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def function_settings(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The Lambda settings of one ``functions.NAME`` table, checked against Lambda's limits."""
    return {
        "memory": _int_in(value, "memory", 128, (128, 10240), where),
        "timeout": _int_in(value, "timeout", 3, (1, 900), where),
        "environment": _environment(value.get("environment", {}), f"{where}.environment"),
        "role": check_role(value["role"], f"{where}.role") if "role" in value else None,
        "ephemeral_storage_mb": _int_in(
            value, "ephemeral-storage-mb", 512, (512, MAX_EPHEMERAL_STORAGE_MB), where
        ),
        "description": _description(value.get("description", ""), f"{where}.description"),
        "tags": _tags(value.get("tags", {}), f"{where}.tags"),
        "delivery": _delivery(value.get("delivery", "layers"), f"{where}.delivery"),
    }


def _int_in(
    value: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int], where: str
) -> int:
    number = value.get(key, default)
    low, high = bounds
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ConfigError(
            f"{where}.{key} must be an integer from {low} to {high}, not {number!r}",
            f"write {key} = {default} (Lambda's default) or another value in that range",
        )
    return number


def _string_table(value: object, where: str, example: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{where} must be a table of strings", f"write {example}")
    return value


def _environment(value: object, where: str) -> tuple[tuple[str, str], ...]:
    table = _string_table(value, where, 'environment = { LOG_LEVEL = "info" }')
    for name in table:
        if not _ENV_NAME.match(name) or name in RESERVED_ENVIRONMENT:
            raise ConfigError(
                f"{where}: {name!r} is not a name Lambda accepts",
                "use letters, digits and '_', starting with a letter, and none of the "
                "variables Lambda sets itself (AWS_REGION, _HANDLER, ...)",
            )
    if sum(len(k) + len(v) for k, v in table.items()) > 4096:
        raise ConfigError(f"{where} is over Lambda's 4 KB", "move large values to a file or SSM")
    return tuple(sorted(table.items()))


def check_role(value: object, where: str) -> str:
    """An IAM role ARN as Lambda's ``Role`` takes it."""
    if not isinstance(value, str) or not _ROLE_ARN.match(value):
        raise ConfigError(
            f"{where}: {value!r} is not an IAM role ARN",
            'write role = "arn:aws:iam::123456789012:role/NAME"',
        )
    return value


def _description(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise ConfigError(f"{where} must be a string of at most 256 characters", "shorten it")
    return value


def _tags(value: object, where: str) -> tuple[tuple[str, str], ...]:
    table = _string_table(value, where, 'tags = { team = "data" }')
    for key, tag in table.items():
        if not 1 <= len(key) <= 128 or len(tag) > 256 or key.lower().startswith("aws:"):
            raise ConfigError(
                f"{where}: tag {key!r} is not one Lambda accepts",
                "keys of 1-128 characters not starting with 'aws:', values of at most 256",
            )
    if len(table) > 50:
        raise ConfigError(f"{where} has {len(table)} tags", "keep at most 50 (Lambda's limit)")
    return tuple(sorted(table.items()))


def _delivery(value: object, where: str) -> str:
    if value not in DELIVERIES:
        raise ConfigError(
            f'{where} must be "layers" or "shim", not {value!r}',
            'write delivery = "shim" for a function past 5 layers or 250 MB, else leave it out',
        )
    return str(value)


def default_prefix(root: Path) -> str:
    """The project directory's name, cut to what a Lambda name prefix may hold."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", root.resolve().name).strip("-_")[:40]
    return name if _PREFIX.match(name) else "lambda-pack"


def project_prefix(table: Mapping[str, Any], root: Path, path: Path) -> str:
    value = table.get("prefix")
    if value is None:
        return default_prefix(root)
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise ConfigError(
            f"{path}: prefix {value!r} is not a Lambda name prefix",
            "use 1-40 letters, digits, '-' and '_', starting with a letter or digit",
        )
    return value


def check_function_name(name: str, where: str) -> str:
    try:
        return as_function_name(name)
    except WireError as exc:
        raise ConfigError(f"{where}: {exc.message}", exc.tip) from None


def check_handler(handler: str, where: str) -> str:
    if not _HANDLER.match(handler):
        raise ConfigError(
            f"{where}: handler {handler!r} is not module.function",
            'write it as "app.handler" (module path, then the function name)',
        )
    return handler


def check_code_dir(code: Path, where: str) -> Path:
    if not code.is_dir():
        raise ConfigError(f"{where}: code directory not found: {code}", "create it or fix the path")
    return code.resolve()

"""Project inputs: the ``[tool.lambda-pack]`` config and CLI shortcuts as frozen records.

Everything is read once here (requirements files by ``requirements``, a function's Lambda
settings by ``lambda_settings``) and turned into frozen records; the rest of the pipeline
never opens a config or requirements file itself.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .lambda_settings import (
    check_code_dir,
    check_function_name,
    check_handler,
    default_prefix,
    function_settings,
    project_prefix,
)
from .planner.model import OPTIONS
from .requirements import (
    IndexOptions,
    RequirementSet,
    find_links_location,
    not_utf8,
    parse_requirement,
    read_requirements,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_NAMES = ("lambda-pack.toml", "pyproject.toml")
DEFAULT_MAX_LAYERS = 5
DEFAULT_STORE = ".lambda-pack/store"

# Every key a config may hold, in one place: any other key is an error with a did-you-mean.
# Adding a key? Add it here: top level (PROJECT_KEYS) or in a [functions.NAME] table
# (FUNCTION_KEYS). The planner's keys come from planner.model.OPTIONS (and their old names).
PLANNER_KEYS = frozenset(k for o in OPTIONS.values() for k in (o.key, *o.aliases))
PROJECT_KEYS = PLANNER_KEYS | frozenset(
    {
        "target",
        "store",
        "max-layers",
        "strategy",
        "functions",
        "prefix",
        "python",
        "cache-max-bytes",
        # where packages come from
        "index-url",
        "extra-index-urls",
        "find-links",
        "no-index",
        "pre",
        # the layers (bytecode.py)
        "bytecode",
        "exclude",
    }
)
FUNCTION_KEYS = frozenset(
    {
        "handler",
        "code",
        "requirements",
        "dependencies",
        "extras",
        "groups",
        "weight",
        # Lambda's settings (deploy, export, serve)
        "memory",
        "timeout",
        "environment",
        "role",
        "ephemeral-storage-mb",
        "description",
        "tags",
        "delivery",
        # the layers (bytecode.py)
        "bytecode",
        "exclude",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerOptions:
    """Planner settings from the config or flags by config key (``planner.model.OPTIONS``
    says which keys there are and what each accepts); a key not set means the planner's
    documented default. Made by ``planner_options``, read by ``PlanParams.from_options``."""

    values: Mapping[str, object] = field(default_factory=dict)

    def merged(self, other: PlannerOptions) -> PlannerOptions:
        """``other``'s settings where it has them, ours elsewhere."""
        return PlannerOptions(values={**self.values, **other.values})

    def digest_form(self) -> dict[str, object]:
        """Every option (None when unset) under its field-like name, for the lock's digest;
        one added later only when set (``Option.digested_unset``)."""
        return {
            option.digest_name: self.values.get(option.key)
            for option in OPTIONS.values()
            if option.digested_unset or option.key in self.values
        }


def planner_options(given: Mapping[str, object], where: str) -> PlannerOptions:
    """The planner settings among ``given`` (config keys; None: not set), each checked
    (ConfigError naming ``where``)."""
    return PlannerOptions(
        values={
            option.key: option.read(option.given(given), where)
            for option in OPTIONS.values()
            if option.given(given) is not None
        }
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which optional parts of a project or lock file to include."""

    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSpec:
    """One function of the project.

    ``lock_input`` is a pylock.toml, uv.lock or poetry.lock whose selection depends on the
    target; ``inputs.materialize`` turns it into ``requirements`` once the target is known.
    """

    name: str
    handler: str
    code: Path
    requirements: RequirementSet
    weight: float = 1.0
    lock_input: Path | None = None
    selection: Selection = field(default_factory=Selection)
    requirements_file: str | None = None  # as the config names it, for messages
    # Lambda settings, with Lambda's own defaults (deploy, export and serve read them)
    memory: int = 128  # MB
    timeout: int = 3  # seconds
    environment: tuple[tuple[str, str], ...] = ()  # sorted by name
    role: str | None = None  # IAM role ARN
    ephemeral_storage_mb: int = 512  # /tmp
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()  # sorted by key
    delivery: str = "layers"  # or "shim": past Lambda's layer limits, fetched into /tmp
    # bytecode and exclude of this function (None: the project's)
    bytecode: str | None = None
    exclude: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """The whole project: where it lives, what it targets, its functions."""

    root: Path
    config_path: Path | None
    target: str
    store: str
    max_layers: int
    strategy: str | None
    functions: tuple[FunctionSpec, ...]
    prefix: str = "lambda-pack"  # names of deployed layers and functions: PREFIX-...
    index: IndexOptions = field(default_factory=IndexOptions)
    planner: PlannerOptions = field(default_factory=PlannerOptions)
    cache_max_bytes: int | None = None  # the runtime cache's cap for invoke
    # the python config key: (target name, "3.12", or "" for any target; path or command)
    python: tuple[tuple[str, str], ...] = ()
    target_python: Path | None = None  # --target-python: wins over the config
    bytecode: str = "checked-hash"  # .pyc in layers and code zips; --bytecode wins
    exclude: tuple[str, ...] = ()  # globs of files left out of layers and code zips

    @property
    def lock_path(self) -> Path:
        return self.root / "lambda-pack.lock"

    def function(self, name: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"no function named {name!r} in the project",
            "use one of: " + ", ".join(f.name for f in self.functions),
        )


# -- project config -------------------------------------------------------------------


def find_config(start: Path) -> Path | None:
    """The first ``lambda-pack.toml`` or ``pyproject.toml`` with our table, from ``start`` up."""
    for directory in (start, *start.parents):
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file() and (name != "pyproject.toml" or _has_table(candidate)):
                return candidate
    return None


def _has_table(pyproject: Path) -> bool:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return "lambda-pack" in data.get("tool", {})


def load_project(path: Path) -> Project:
    """Read the project config at ``path`` (lambda-pack.toml or pyproject.toml)."""
    table = _config_table(path)
    root = path.parent.resolve()
    check_keys(table, PROJECT_KEYS, str(path), "")
    functions = table.get("functions")
    if not isinstance(functions, dict) or not functions:
        raise ConfigError(
            f"{path}: no functions configured",
            "add a [functions.NAME] table with handler, code and requirements",
        )
    specs = tuple(
        _function_spec(name, value, root, path) for name, value in sorted(functions.items())
    )
    return Project(
        root=root,
        config_path=path.resolve(),
        target=_string(table, "target", path, default="python3.12-x86_64"),
        store=_string(table, "store", path, default=DEFAULT_STORE),
        max_layers=_max_layers(table.get("max-layers", DEFAULT_MAX_LAYERS), path),
        strategy=_optional_string(table, "strategy", path),
        functions=specs,
        prefix=project_prefix(table, root, path),
        index=_index_options(table, root, path),
        planner=planner_options(table, str(path)),
        cache_max_bytes=_cache_cap(table.get("cache-max-bytes"), path),
        python=_python_paths(table.get("python"), root, path),
        **_build_options(table, str(path), default=True),
    )


def check_keys(table: Mapping[str, Any], known: frozenset[str], path: str, prefix: str) -> None:
    """ConfigError naming the first key of ``table`` that is not ``known``, with the
    known key it most likely means."""
    for key in sorted(set(table) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        raise ConfigError(
            f"{path}: unknown key {prefix}{key}",
            f"did you mean {prefix}{close[0]}?"
            if close
            else f"known keys: {', '.join(sorted(known))}",
        )


def _config_table(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}", "create lambda-pack.toml or pass --config PATH"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the syntax") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory", "pass --config PATH to a file") from None
    if path.name == "pyproject.toml":
        table: object = data.get("tool", {}).get("lambda-pack")
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: no [tool.lambda-pack] table", "add one, or use lambda-pack.toml"
            )
        return table
    return dict(data)


def _string(table: Mapping[str, Any], key: str, path: Path, *, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string", f'write {key} = "..."')
    return value


def _optional_string(table: Mapping[str, Any], key: str, path: Path) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string", f'write {key} = "..."')
    return value


def _max_layers(value: object, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise ConfigError(f"{path}: max-layers must be a positive integer", "write max-layers = 5")
    return value


def _cache_cap(value: object, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"{path}: cache-max-bytes must be a positive integer",
            "write cache-max-bytes = 2000000000",
        )
    return value


def _build_options(table: Mapping[str, Any], where: str, *, default: bool) -> dict[str, Any]:
    """``bytecode`` and ``exclude`` of the project (with defaults) or of one function."""
    from .bytecode import DEFAULT_MODE, check_mode

    options: dict[str, Any] = {"bytecode": DEFAULT_MODE, "exclude": ()} if default else {}
    if "bytecode" in table:
        options["bytecode"] = check_mode(table["bytecode"], where)
    if "exclude" in table:
        globs = table["exclude"]
        if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
            raise ConfigError(
                f"{where}: exclude must be a list of glob patterns",
                'write exclude = ["**/tests/**", "**/*.pyi"]',
            )
        options["exclude"] = tuple(globs)
    return options


def _python_paths(value: object, root: Path, path: Path) -> tuple[tuple[str, str], ...]:
    """``python = "/path"`` (any target) or ``python = {"python3.12-x86_64" = "/path"}``."""
    if value is None:
        return ()
    table = {"": value} if isinstance(value, str) else value
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(
            f"{path}: python must be a path or a table of target = path",
            'write python = {"python3.12-x86_64" = "/usr/bin/python3.12"}',
        )
    return tuple(sorted((str(k), _interpreter_path(v, root)) for k, v in table.items()))


def _interpreter_path(value: str, root: Path) -> str:
    """A path relative to the config file, or a bare command name looked up on PATH."""
    if "/" not in value and os.sep not in value:
        return value
    return os.path.normpath(root / os.path.expanduser(value))  # a symlink stays one


def _index_options(table: Mapping[str, Any], root: Path, path: Path) -> IndexOptions:
    index_url = table.get("index-url")
    if index_url is not None and not isinstance(index_url, str):
        raise ConfigError(f"{path}: index-url must be a string", 'write index-url = "https://..."')
    return IndexOptions(
        index_url=index_url,
        extra_index_urls=_strings(table, "extra-index-urls", path),
        find_links=tuple(find_links_location(v, root) for v in _strings(table, "find-links", path)),
        no_index=_flag(table, "no-index", path),
        pre=_flag(table, "pre", path),
    )


def _strings(table: Mapping[str, Any], key: str, path: Path) -> tuple[str, ...]:
    """A list of strings; a lone string is refused (it is not a list of its characters)."""
    value = table.get(key, [])
    if isinstance(value, str):
        raise ConfigError(
            f"{path}: {key} must be a list of strings, not a string",
            f'write {key} = ["{value}"]',
        )
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of strings", f'write {key} = ["..."]')
    return tuple(value)


def _flag(table: Mapping[str, Any], key: str, path: Path) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: {key} must be true or false", f"write {key} = true")
    return value


def _function_spec(name: str, value: object, root: Path, path: Path) -> FunctionSpec:
    where = f"{path}: functions.{name}"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table", "write [functions.NAME] with handler = ...")
    check_function_name(name, where)
    check_keys(value, FUNCTION_KEYS, str(path), f"functions.{name}.")
    for key, tip in (("code", 'write code = "src"'), ("requirements", _REQUIREMENTS_TIP)):
        if key in value and not isinstance(value[key], str):
            raise ConfigError(f"{where}.{key} must be a string (a path)", tip)
    handler = value.get("handler")
    if not isinstance(handler, str):
        raise ConfigError(f"{where}.handler is missing", 'add handler = "module.function"')
    code = root / str(value.get("code", "."))
    selection = Selection(
        extras=_names(value.get("extras", []), f"{where}.extras"),
        groups=_names(value.get("groups", []), f"{where}.groups"),
    )
    requirements, lock_input = _function_requirements(value, root, where, selection)
    return FunctionSpec(
        name=name,
        handler=check_handler(handler, f"{where}.handler"),
        code=check_code_dir(code, f"{where}.code"),
        requirements=requirements,
        weight=_weight(value.get("weight", 1.0), where),
        lock_input=lock_input,
        selection=selection,
        requirements_file=str(value["requirements"]) if "requirements" in value else None,
        **function_settings(value, where),
        **_build_options(value, where, default=False),
    )


_REQUIREMENTS_TIP = 'write requirements = "requirements.txt", or dependencies = ["..."] for a list'


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of names", 'write e.g. ["s3"]')
    return tuple(value)


def _function_requirements(
    value: Mapping[str, Any], root: Path, where: str, selection: Selection
) -> tuple[RequirementSet, Path | None]:
    """The function's requirements, or the lock file to read them from for the target."""
    if "requirements" in value and "dependencies" in value:
        raise ConfigError(f"{where} has both requirements and dependencies", "keep one of the two")
    if "requirements" not in value:
        return _inline_requirements(value, where, root), None
    from .inputs import input_kind, pyproject_file_requirements

    path = root / str(value["requirements"])
    kind = input_kind(path)
    if kind == "requirements":
        return read_requirements(path), None
    if kind == "pyproject":
        return pyproject_file_requirements(path, selection), None
    if not path.is_file():
        raise ConfigError(f"{where}: lock file not found: {path}", "check the path")
    return RequirementSet(), path.resolve()


def _inline_requirements(value: Mapping[str, Any], where: str, root: Path) -> RequirementSet:
    dependencies = value.get("dependencies", [])
    if not isinstance(dependencies, list):
        raise ConfigError(f"{where}.dependencies must be a list", 'write ["requests>=2"]')
    lines = [
        str(parse_requirement(str(d), f"{where}.dependencies[{i}]", root))
        for i, d in enumerate(dependencies)
    ]
    return RequirementSet(requirements=tuple(lines))


def _weight(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}.weight must be a positive number", "write weight = 1.0")
    return float(value)


def shortcut_project(
    *,
    requirements: Path | None,
    handler: str,
    code: Path,
    name: str,
    root: Path,
    target: str,
    dependencies: Sequence[str] = (),
) -> Project:
    """A one-function project from command-line flags, with no config file."""
    check_function_name(name, "--name")
    lock_input = None
    if requirements is not None:
        table = {"requirements": str(Path(requirements).resolve())}
        reqs, lock_input = _function_requirements(table, root, "-r", Selection())
    else:
        reqs = RequirementSet(
            requirements=tuple(str(parse_requirement(d, "argument")) for d in dependencies)
        )
    spec = FunctionSpec(
        name=name,
        handler=check_handler(handler, "--handler"),
        code=check_code_dir(code, "--code"),
        requirements=reqs,
        lock_input=lock_input,
        requirements_file=str(requirements) if requirements is not None else None,
    )
    return Project(
        root=root.resolve(),
        config_path=None,
        target=target,
        store=DEFAULT_STORE,
        max_layers=DEFAULT_MAX_LAYERS,
        strategy=None,
        functions=(spec,),
        prefix=default_prefix(root),
    )


def with_overrides(
    project: Project,
    *,
    target: str | None = None,
    store: str | None = None,
    max_layers: int | None = None,
    strategy: str | None = None,
    index: IndexOptions | None = None,
    planner: PlannerOptions | None = None,
) -> Project:
    """The project with command-line options on top of its config."""
    return replace(
        project,
        target=target or project.target,
        store=store or project.store,
        max_layers=max_layers or project.max_layers,
        strategy=strategy or project.strategy,
        index=project.index.merged(index) if index else project.index,
        planner=project.planner.merged(planner) if planner else project.planner,
    )


def with_bytecode(project: Project, mode: str) -> Project:
    """The project with ``--bytecode MODE``: for every function, over their own settings."""
    functions = tuple(replace(spec, bytecode=None) for spec in project.functions)
    return replace(project, bytecode=mode, functions=functions)


def function_bytecode(project: Project, spec: FunctionSpec) -> str:
    """The bytecode mode of one function: its own, else the project's."""
    return spec.bytecode if spec.bytecode is not None else project.bytecode


def function_exclude(project: Project, spec: FunctionSpec) -> tuple[str, ...]:
    """The exclude globs of one function: its own list (replacing), else the project's."""
    return spec.exclude if spec.exclude is not None else project.exclude


def function_index(project: Project, spec: FunctionSpec) -> IndexOptions:
    """The index options that apply to one function: project config, then its file's lines."""
    return project.index.merged(spec.requirements.index)

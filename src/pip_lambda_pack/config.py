"""Project inputs: the ``[tool.lambda-pack]`` config, requirements files and CLI shortcuts.

Everything is read once here and turned into frozen records; the rest of the pipeline
never opens a config or requirements file itself.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import ConfigError
from .formats import FormatControl
from .planner.model import OPTIONS
from .wire import WireError, as_function_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_NAMES = ("lambda-pack.toml", "pyproject.toml")
DEFAULT_MAX_LAYERS = 5
DEFAULT_STORE = ".lambda-pack/store"
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_HANDLER = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")

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
class IndexOptions:
    """Where packages come from; later sources extend earlier ones, ``index_url`` replaces."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    pre: bool = False
    trusted_hosts: tuple[str, ...] = ()  # "host" or "host:port": TLS not verified, as pip

    def merged(self, other: IndexOptions) -> IndexOptions:
        """``other`` on top of ``self`` (the way pip lets a later option win)."""
        return IndexOptions(
            index_url=other.index_url or self.index_url,
            extra_index_urls=_unique(self.extra_index_urls + other.extra_index_urls),
            find_links=_unique(self.find_links + other.find_links),
            no_index=self.no_index or other.no_index,
            pre=self.pre or other.pre,
            trusted_hosts=_unique(self.trusted_hosts + other.trusted_hosts),
        )

    def index_urls(self) -> tuple[str, ...]:
        """The indexes to query, in order (none with ``--no-index``)."""
        if self.no_index:
            return ()
        return _unique((self.index_url or "https://pypi.org/simple", *self.extra_index_urls))


@dataclass(frozen=True, slots=True, kw_only=True)
class RequirementSet:
    """Requirements, constraints and hashes of one function, as strings in file order."""

    requirements: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    hashes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # canonical name -> sha256 hexes
    index: IndexOptions = field(default_factory=IndexOptions)
    formats: FormatControl = field(default_factory=FormatControl)  # --only-binary & co.

    def parsed(self) -> list[Requirement]:
        return [Requirement(line) for line in self.requirements]

    def parsed_constraints(self) -> list[Requirement]:
        return [Requirement(line) for line in self.constraints]

    def hash_map(self) -> dict[str, frozenset[str]]:
        return {name: frozenset(values) for name, values in self.hashes}


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
        """Every option (None when unset) under its field-like name, for the lock's digest."""
        return {option.digest_name: self.values.get(option.key) for option in OPTIONS.values()}


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


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# -- requirements files ---------------------------------------------------------------


@dataclass(slots=True)
class _Collected:
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    hashes: dict[str, list[str]] = field(default_factory=dict)
    index: IndexOptions = field(default_factory=IndexOptions)
    formats: FormatControl = field(default_factory=FormatControl)


def read_requirements(path: Path) -> RequirementSet:
    """Parse a pip requirements file with ``-r``, ``-c``, ``--hash`` and index options."""
    collected = _Collected()
    _read_into(Path(path), collected, constraint=False, seen=())
    return RequirementSet(
        requirements=tuple(collected.requirements),
        constraints=tuple(collected.constraints),
        hashes=tuple(sorted((n, tuple(sorted(h))) for n, h in collected.hashes.items())),
        index=collected.index,
        formats=collected.formats,
    )


def _read_into(path: Path, out: _Collected, *, constraint: bool, seen: tuple[Path, ...]) -> None:
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"{path}: requirements files include each other", "remove the loop")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"requirements file not found: {path}", "check the path in the config or on -r"
        ) from None
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory, not a requirements file", "name a file"
        ) from None
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        _read_line(line, where, path.parent, out, constraint, (*seen, resolved))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines joined at trailing backslashes, comments stripped, ``${VAR}`` expanded."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        line = re.sub(r"(^|\s+)#.*$", "", buffer + raw).strip()
        buffer = ""
        if line:
            yield start, _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), line)
    if buffer.strip():
        yield start, buffer.strip()


_OPTION_ALIASES = {
    "-r": "--requirement",
    "-c": "--constraint",
    "-i": "--index-url",
    "-f": "--find-links",
    "-e": "--editable",
}
_IGNORED_OPTIONS = {"--use-feature"}
_SUPPORTED = (
    "-r, -c, -e, --hash, -i, --extra-index-url, -f, --no-index, --pre, --only-binary, "
    "--no-binary, --prefer-binary, --trusted-host"
)


def _read_line(
    line: str, where: str, base: Path, out: _Collected, constraint: bool, seen: tuple[Path, ...]
) -> None:
    if line.startswith("-"):
        _read_option(line, where, base, out, seen)
        return
    try:
        words = shlex.split(line, posix=True)
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"{where}: {exc.args[0].lower()} in {line!r}", "close it") from None
    hashes = [w.split("=", 1)[1] for w in words[1:] if w.startswith("--hash=")]
    requirement = _parse_requirement(_requirement_text(line), where, base)
    (out.constraints if constraint else out.requirements).append(str(requirement))
    if hashes:
        name = canonicalize_name(requirement.name)
        out.hashes.setdefault(name, []).extend(_sha256_values(hashes, where))


def _requirement_text(line: str) -> str:
    """The requirement part of a line, without its trailing ``--hash`` options."""
    return re.split(r"\s+--hash[=\s]", line, maxsplit=1)[0].strip()


def _sha256_values(values: list[str], where: str) -> list[str]:
    digests = []
    for value in values:
        algorithm, _, digest = value.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(
                f"{where}: unsupported hash {value!r}",
                "use --hash=sha256:<64 hex digits>",
            )
        digests.append(digest)
    return digests


def _parse_requirement(text: str, where: str, base: Path | None = None) -> Requirement:
    """A requirement line as a Requirement; a local path (``./lib``, ``dist/x.whl``) or a
    ``name @ URL`` direct reference becomes ``name @ file:///absolute/path`` or the URL."""
    if base is not None and _looks_like_path(text):
        return local_requirement(text, base, where)
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"{where}: malformed requirement {text!r}: {first}",
            "write it as NAME[extras] SPECIFIER [; marker], e.g. requests>=2.31",
        ) from None
    if requirement.url:
        return _direct_reference(requirement, base, where)
    return requirement


def _looks_like_path(text: str) -> bool:
    """pip's rule: a line that starts like a path, or names an archive, is a path."""
    if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@", text):
        return False  # name @ URL: a direct reference
    head = re.split(r"\s*;", text, maxsplit=1)[0].split("[", 1)[0].strip()
    if head.startswith((".", "/", "~")) or os.sep in head:
        return True
    return head.endswith((".whl", ".tar.gz", ".zip"))


def local_requirement(text: str, base: Path, where: str) -> Requirement:
    """``./lib[extra] ; marker`` (or a wheel or sdist path) as ``name @ file:///...``."""
    head, _, marker = text.partition(";")
    path_text, _, extras = head.strip().partition("[")
    try:
        path = (base / Path(path_text.strip()).expanduser()).resolve()
    except RuntimeError:  # ~user of a user this machine does not have
        message = f"{where}: no such user's home in {path_text.strip()}"
        raise ConfigError(message, "write the path in full") from None
    if not path.exists():
        raise ConfigError(f"{where}: {path_text.strip()} does not exist", "fix the path")
    name = local_project_name(path, where)
    extra = f"[{extras}" if extras else ""
    tail = f" ; {marker.strip()}" if marker.strip() else ""
    return Requirement(f"{name}{extra} @ {path.as_uri()}{tail}")


def local_project_name(path: Path, where: str) -> str:
    """The project name of a local wheel, sdist or source tree (pyproject.toml's
    ``[project] name``, or setup.cfg's ``[metadata] name``)."""
    if path.is_file():
        from packaging.utils import parse_sdist_filename, parse_wheel_filename

        try:
            if path.name.endswith(".whl"):
                return str(parse_wheel_filename(path.name)[0])
            return str(parse_sdist_filename(path.name)[0])
        except ValueError:
            raise ConfigError(f"{where}: {path.name} is not a wheel or sdist name", "") from None
    name = _static_name(path)
    if name is None:
        raise ConfigError(
            f"{where}: cannot tell the project name of {path}",
            "give it a [project] name in pyproject.toml (or [metadata] name in setup.cfg), "
            "or write NAME @ file:///path",
        )
    return name


def _static_name(path: Path) -> str | None:
    pyproject = path / "pyproject.toml"
    if pyproject.is_file():
        try:
            name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except tomllib.TOMLDecodeError:
            name = {}
        if isinstance(name.get("name"), str):
            return str(name["name"])
    setup_cfg = path / "setup.cfg"
    if setup_cfg.is_file():
        import configparser

        parser = configparser.ConfigParser()
        with contextlib.suppress(configparser.Error):
            parser.read(setup_cfg, encoding="utf-8")
            if parser.has_option("metadata", "name"):
                return parser.get("metadata", "name")
    return None


def _direct_reference(requirement: Requirement, base: Path | None, where: str) -> Requirement:
    """``name @ URL``: file and http(s) URLs of wheels, sdists or (file) source trees."""
    url = str(requirement.url)
    scheme = url.split(":", 1)[0].lower()
    if scheme == "file" or ("://" not in url and base is not None):
        if scheme != "file":  # name @ ./lib: not PEP 508, but what a monorepo means
            path = (base / url).resolve() if base is not None else Path(url)
            requirement = Requirement(str(requirement).replace(url, path.as_uri(), 1))
        return requirement
    if scheme in ("http", "https"):
        return requirement
    raise ConfigError(
        f"{where}: {scheme} references are not supported: {requirement}",
        "build a wheel of it and reference the file (name @ file:///path/x.whl) or its URL",
    )


def _read_option(
    line: str, where: str, base: Path, out: _Collected, seen: tuple[Path, ...]
) -> None:
    option, value = _split_option(line)
    option = _OPTION_ALIASES.get(option, option)
    if option in ("--requirement", "--constraint"):
        nested = base / value
        _read_into(nested, out, constraint=option == "--constraint", seen=seen)
    elif option == "--editable":  # a layer cannot point back at a tree: built like ./lib
        out.requirements.append(str(local_requirement(value, base, where)))
    elif option == "--index-url":
        out.index = out.index.merged(IndexOptions(index_url=value))
    elif option == "--extra-index-url":
        out.index = out.index.merged(IndexOptions(extra_index_urls=(value,)))
    elif option == "--find-links":
        out.index = out.index.merged(IndexOptions(find_links=(_location(value, base),)))
    elif option == "--no-index":
        out.index = out.index.merged(IndexOptions(no_index=True))
    elif option == "--pre":
        out.index = out.index.merged(IndexOptions(pre=True))
    elif option == "--trusted-host":
        out.index = out.index.merged(IndexOptions(trusted_hosts=(value,)))
    elif option in ("--only-binary", "--no-binary"):
        out.formats = out.formats.with_option(option, value, where)
    elif option == "--prefer-binary":
        out.formats = replace(out.formats, prefer_binary=True)
    elif option not in _IGNORED_OPTIONS:
        raise ConfigError(
            f"{where}: unsupported option {option}", f"remove it; supported: {_SUPPORTED}"
        )


def _split_option(line: str) -> tuple[str, str]:
    if line.startswith("--") and "=" in line.split()[0]:
        option, _, value = line.partition("=")
        return option, value.strip()
    parts = line.split(None, 1)
    if len(parts) == 1 and len(parts[0]) > 2 and not parts[0].startswith("--"):
        return parts[0][:2], parts[0][2:]  # -rother.txt
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _location(value: str, base: Path) -> str:
    """A find-links location: URLs as given, paths made absolute against the file's dir."""
    if "://" in value:
        return value
    return str((base / value).resolve())


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
        prefix=_prefix(table, root, path),
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


def not_utf8(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    """The error for a text input that is not UTF-8 (TOML and requirements files must be)."""
    return ConfigError(
        f"{path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})",
        "save it as UTF-8",
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
        find_links=tuple(_location(v, root) for v in _strings(table, "find-links", path)),
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
        str(_parse_requirement(str(d), f"{where}.dependencies[{i}]", root))
        for i, d in enumerate(dependencies)
    ]
    return RequirementSet(requirements=tuple(lines))


def _weight(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}.weight must be a positive number", "write weight = 1.0")
    return float(value)


# -- Lambda settings of a function (deploy, export, serve) ----------------------------

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


def _prefix(table: Mapping[str, Any], root: Path, path: Path) -> str:
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
            requirements=tuple(str(_parse_requirement(d, "argument")) for d in dependencies)
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

"""pip requirements files: ``-r``/``-c`` includes, ``--hash``, index and format options, local
paths and direct references, read into a ``RequirementSet`` with its ``IndexOptions``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import ConfigError
from .formats import FormatControl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


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
        if "\x00" in line:  # no path, URL or name holds one; the OS refuses it in a path
            raise ConfigError(f"{where}: the line holds a NUL byte", "remove it: the file is text")
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
    requirement = parse_requirement(_requirement_text(line), where, base)
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


def parse_requirement(text: str, where: str, base: Path | None = None) -> Requirement:
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
        out.index = out.index.merged(IndexOptions(find_links=(find_links_location(value, base),)))
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


def find_links_location(value: str, base: Path) -> str:
    """A find-links location: URLs as given, paths made absolute against the file's dir."""
    if "://" in value:
        return value
    return str((base / value).resolve())


def not_utf8(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    """The error for a text input that is not UTF-8 (TOML and requirements files must be)."""
    return ConfigError(
        f"{path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})",
        "save it as UTF-8",
    )

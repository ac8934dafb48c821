"""Which files of a project can serve a target: wheel tags, Requires-Python, --hash lists and
--only-binary / --no-binary, each refusal with the reason ``-v`` shows.

Pure functions of a project's ``FileLink`` records and the ``Target``; the resolver decides
among what is left. Every file of a PyPI page goes through ``rejection`` for every function,
so tag ranks are found by string lookups and remembered.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from .formats import FormatControl
from .index import FileLink, Finder
from .target import Target


@dataclass(frozen=True, slots=True)
class Usable:
    """A file that can serve the target whatever the requirement says."""

    version: Version
    link: FileLink
    rank: int  # wheel tag rank, lower is better; 0 for sdists


def full_python(target: Target) -> str:
    """The target's Python version, as Requires-Python compares it."""
    return target.markers()["python_full_version"]


@functools.lru_cache(maxsize=1 << 17)  # a PyPI page lists thousands; functions share them
def file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except ValueError:
        return None


def _tag_part(filename: str) -> str:
    return "-".join(filename[: -len(".whl")].split("-")[-3:])


@functools.lru_cache(maxsize=1 << 12)
def _python_allows(requires_python: str, full_python: str) -> bool:
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True  # like pip: an unreadable Requires-Python does not exclude the file
    return spec.contains(full_python, prereleases=True)


_TAG_RANKS: dict[str, dict[str, int]] = {}
_FILE_RANKS: dict[tuple[str, str], int | None] = {}  # (target name, wheel name) -> rank


def tag_rank(target: Target, filename: str) -> int | None:
    """``target.tag_rank`` of a valid wheel name by string lookups, without building Tag
    objects, remembered: every file of a PyPI page (tens of thousands for some) goes
    through it, for every function and the lookahead."""
    key = (target.name, filename)
    if key not in _FILE_RANKS:
        _FILE_RANKS[key] = _string_rank(target, filename)
    return _FILE_RANKS[key]


def _string_rank(target: Target, filename: str) -> int | None:
    ranks = _TAG_RANKS.get(target.name)
    if ranks is None:
        ranks = {}
        for rank, tag in enumerate(target.tags):
            ranks.setdefault(str(tag), rank)
        _TAG_RANKS[target.name] = ranks
    interpreters, abis, platforms = filename[: -len(".whl")].lower().split("-")[-3:]
    found = [
        ranks[key]
        for interpreter in interpreters.split(".")
        for abi in abis.split(".")
        for platform in platforms.split(".")
        if (key := f"{interpreter}-{abi}-{platform}") in ranks
    ]
    return min(found, default=None)


def rejection(link: FileLink, target: Target, hashes: frozenset[str] | None = None) -> str | None:
    """Why ``link`` can never serve ``target`` (whatever the requirement), or None."""
    if file_version(link.filename) is None:
        return "not a valid wheel or sdist file name"
    if link.is_wheel and tag_rank(target, link.filename) is None:
        return f"incompatible tag {_tag_part(link.filename)} for {target.name}"
    if link.requires_python and not _python_allows(link.requires_python, full_python(target)):
        return f"requires-python {link.requires_python} excludes {full_python(target)}"
    if hashes is not None and link.sha256 is None:
        return "no sha256 from the index to check against the --hash list"
    if hashes is not None and link.sha256 not in hashes:
        return "hash not in --hash list"
    return None


def newest_with_wheel(name: str, target: Target, finder: Finder) -> Version | None:
    """The newest non-yanked version of ``name`` with a wheel for ``target`` (finals first)."""
    versions = [
        version
        for link in finder.links(name)
        if link.is_wheel and link.yanked is None and rejection(link, target) is None
        for version in [file_version(link.filename)]
        if version is not None
    ]
    finals = [v for v in versions if not v.is_prerelease]
    return max(finals or versions, default=None)


def usable_files(
    links: Iterable[FileLink], target: Target, hashes: frozenset[str] | None = None
) -> tuple[list[Usable], list[tuple[FileLink, str]]]:
    """(files that fit ``target``: newest first, wheels first, best tag first; the rest with
    the reason each was rejected)."""
    found, rejected = [], []
    for link in links:
        reason = rejection(link, target, hashes)
        if reason is not None:
            rejected.append((link, reason))
            continue
        version = file_version(link.filename)
        assert version is not None
        rank = tag_rank(target, link.filename) if link.is_wheel else 0
        found.append(Usable(version, link, rank or 0))
    found.sort(key=lambda u: (u.version, u.link.is_wheel, -u.rank), reverse=True)
    return found, rejected


def by_format(
    name: str, found: list[Usable], formats: FormatControl
) -> tuple[list[Usable], list[tuple[FileLink, str]]]:
    """(the files --only-binary / --no-binary let ``name`` use, the others with the reason)."""
    kept, refused = [], []
    for usable in found:
        if usable.link.is_wheel and not formats.wheels_allowed(name):
            refused.append((usable.link, f"a wheel, and --no-binary takes {name} from its sdist"))
        elif not usable.link.is_wheel and not formats.sdists_allowed(name):
            refused.append((usable.link, f"an sdist, and --only-binary forbids building {name}"))
        else:
            kept.append(usable)
    return kept, refused

"""Files the resolver takes from outside the index listing: wheels built from sdists (by
the target's Python, accepted only when pure), and direct references (``name @ URL``,
local paths and source trees), each checked against its hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from .atomic import sha256_of
from .candidates import (
    newest_with_wheel,
    rejection,
)
from .errors import HashMismatchError, LockError, NoWheelError, ResolutionError
from .index import FileLink, Finder
from .links import file_link, project_of, url_to_path
from .progress import Log
from .sdists import PythonLookup, Source, build_wheel, default_lookup, tree_digest, twin_tip
from .target import Target
from .wire import redact

if TYPE_CHECKING:
    from .resolve import ResolvedPackage


# ---------------------------------------------------------------------- sdist builds


def wheel_path(
    package: ResolvedPackage,
    *,
    target: Target,
    finder: Finder,
    build_dir: Path,
    python: PythonLookup | None = None,
) -> Path:
    """A verified local wheel for ``package``: downloaded, or built from its sdist (cached)."""
    if not package.built_from_sdist:
        return finder.download(package.link)
    return build_sdist(
        package.link, target=target, finder=finder, build_dir=build_dir, python=python
    )


def build_sdist(
    link: FileLink,
    *,
    target: Target,
    finder: Finder,
    build_dir: Path,
    log: Log | None = None,
    python: PythonLookup | None = None,
) -> Path:
    """The wheel built from the sdist ``link`` by the target's interpreter (``python``,
    default: PATH then pyenv), cached by sdist sha256 and target.

    Raises NoWheelError when the build fails or its wheel cannot run on the target.
    """
    source = _tree_source(link) or _sdist_source(link, finder.download(link))
    return build_wheel(
        source,
        target=target,
        build_dir=build_dir,
        python=python or default_lookup(target),
        pip_args=pip_index_args(finder),
        ways_out=lambda message, name: _ways_out(message, name, target, finder),
        log=log,
    )


def _sdist_source(link: FileLink, sdist: Path) -> Source:
    return Source(
        path=sdist,
        name=canonicalize_name(parse_sdist_filename(link.filename)[0]),
        label=link.filename,
        key=link.sha256 or sha256_of(sdist),
    )


def _tree_source(link: FileLink) -> Source | None:
    """The source tree a ``file:`` link of a directory names (its sha256: the tree's digest,
    checked), or None when the link is not a directory's."""
    if not link.url.startswith("file:") or not url_to_path(link.url).is_dir():
        return None
    path = url_to_path(link.url)
    digest = tree_digest(path)
    if link.sha256 and digest != link.sha256:
        raise LockError(
            f"{path} changed since it was locked",
            "run: pip-lambda-pack lock",
        )
    name = canonicalize_name(parse_wheel_filename(link.filename)[0])
    return Source(path=path, name=name, label=path.name, key=digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectFile:
    """The file a direct reference (``name @ URL`` or a local path) stands for."""

    link: FileLink  # the wheel or sdist; for a source tree, the wheel built from it
    tree: FileLink | None = None  # a source tree's own link: its file: URL, its digest


def direct_links(
    requirements: Sequence[Requirement],
    *,
    target: Target,
    finder: Finder,
    build_dir: Path,
    python: PythonLookup,
    log: Log,
    hashes: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, DirectFile]:
    """Project -> the file of each direct reference, hashed (wheels and sdists downloaded,
    source trees built by the target's interpreter). NoWheelError when one cannot serve
    ``target``, ResolutionError when its file is of another project, HashMismatchError
    when ``hashes`` lists the project and the file's sha256 is not among them."""
    found: dict[str, DirectFile] = {}
    for req in requirements:
        name = canonicalize_name(req.name)
        url, _, fragment = str(req.url).partition("#")
        sha256 = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        if url.startswith("file:") and url_to_path(url).is_dir():
            found[name] = _direct_tree(name, url, target, finder, build_dir, python, log)
        else:
            found[name] = DirectFile(link=_direct_file(name, url, sha256, finder))
        allowed = (hashes or {}).get(name)
        if allowed is not None and found[name].tree is None:
            _check_direct_hash(req, found[name].link, allowed)
        reason = rejection(found[name].link, target)
        if reason is not None:
            raise NoWheelError(
                f"{req} does not fit {target.name}: {reason}",
                "point it at a file built for the target, or require the project by name",
            )
    return found


def _check_direct_hash(req: Requirement, link: FileLink, allowed: frozenset[str]) -> None:
    if link.sha256 not in allowed:
        raise HashMismatchError(
            f"{link.filename} of {req.name} @ {redact(link.url)} has sha256 {link.sha256}, "
            "which is not in its --hash list",
            "refresh the hash (pip hash FILE), or point the reference at the file you hashed",
        )


def _direct_file(name: str, url: str, sha256: str | None, finder: Finder) -> FileLink:
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if project_of(filename) != name:
        raise ResolutionError(
            f"{name} @ {redact(url)} is a file of another project ({filename})",
            "fix the name before the @, or the URL",
        )
    link = _link_of(filename, url, sha256)
    path = finder.download(link)  # verified against the #sha256= fragment when there is one
    return dataclasses.replace(link, sha256=sha256 or sha256_of(path))


def _direct_tree(
    name: str,
    url: str,
    target: Target,
    finder: Finder,
    build_dir: Path,
    python: PythonLookup,
    log: Log,
) -> DirectFile:
    path = url_to_path(url)
    source = Source(path=path, name=name, label=path.name, key=tree_digest(path))
    wheel = build_wheel(
        source,
        target=target,
        build_dir=build_dir,
        python=python,
        pip_args=pip_index_args(finder),
        ways_out=lambda message, project: _ways_out(message, project, target, finder),
        log=log,
    )
    if canonicalize_name(parse_wheel_filename(wheel.name)[0]) != name:
        raise ResolutionError(
            f"{path} builds {wheel.name}, not a wheel of {name}", "fix the name before the @"
        )
    built = _link_of(wheel.name, wheel.as_uri(), sha256_of(wheel))
    return DirectFile(link=built, tree=_link_of(wheel.name, url, source.key))


def _link_of(filename: str, url: str, sha256: str | None) -> FileLink:
    return file_link(filename, url, sha256=sha256, size=None, source="a direct reference")


def pip_index_args(finder: Finder) -> list[str]:
    """``pip wheel`` options that take build dependencies from where the finder looks."""
    args = []
    if finder.offline or not finder.index_urls:
        args.append("--no-index")
    else:
        args += ["--index-url", finder.index_urls[0]]
        for url in finder.index_urls[1:]:
            args += ["--extra-index-url", url]
    for location in finder.find_links:
        args += ["--find-links", location]
    return args


def _ways_out(message: str, name: str, target: Target, finder: Finder) -> NoWheelError:
    newest = newest_with_wheel(name, target, finder)
    prebuilt = f"or put a prebuilt wheel for {target.name} in --find-links"
    twin = twin_tip(name)
    if twin:
        return NoWheelError(message, f"{twin}use another --target, {prebuilt}")
    if newest is not None:
        tip = (
            f"require {name}=={newest} (the newest version with a wheel for {target.name}), "
            f"use another --target, {prebuilt}"
        )
    else:
        tip = f"use another --target that {name} publishes wheels for, {prebuilt}"
    return NoWheelError(message, tip)

"""Resolution for a Lambda target: resolvelib over our provider (``provider``), and the pins
it yields.

Markers, wheel tags and Requires-Python are evaluated for the ``Target`` only, never for the
host. Wheels only, except that a project with no fitting wheel for any matching version may
be built from its sdist, and is accepted only when the result is pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.version import Version
from resolvelib import Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from .direct import direct_links
from .errors import ResolutionError
from .formats import ANY_FORMAT, FormatControl
from .index import FileLink, Finder
from .progress import Log
from .provider import (
    PYTHON,
    Candidate,
    LambdaProvider,
    Lookahead,
    ProjectRequirement,
    Reporter,
    requirement_of,
)
from .sdists import PythonLookup, default_lookup
from .target import Target

if TYPE_CHECKING:
    pass


MAX_ROUNDS = 20000


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedPackage:
    """One pinned project of a resolution."""

    name: str  # canonical
    version: str
    link: FileLink  # the chosen wheel, or the sdist when it had to be built
    dependencies: tuple[str, ...]  # canonical names it requires on the target, sorted
    extras: tuple[str, ...]  # extras requested of it, sorted
    built_from_sdist: bool = False


def prefetch(requirements: Iterable[Requirement], *, target: Target, finder: Finder) -> None:
    """Start fetching, in the finder's threads, what resolving ``requirements`` for
    ``target`` is likely to need (see ``Lookahead``); returns at once."""
    roots = (r for r in requirements if not r.url and target.evaluate(r.marker))
    Lookahead(target, finder).start(requirement_of(r, "the requirements") for r in roots)


def resolve(
    requirements: Sequence[Requirement],
    *,
    target: Target,
    finder: Finder,
    constraints: Sequence[Requirement] = (),
    hashes: Mapping[str, frozenset[str]] | None = None,
    allow_prereleases: bool = False,
    formats: FormatControl = ANY_FORMAT,
    build_dir: Path,
    log: Log | None = None,
    warn: Log | None = None,
    python: PythonLookup | None = None,
) -> dict[str, ResolvedPackage]:
    """Pin ``requirements`` (and their closure) for ``target``; keyed and sorted by name.

    ``hashes`` maps a project to the only sha256 values its files may have; ``formats``
    is pip's --only-binary / --no-binary / --prefer-binary; sdists are built into
    ``build_dir`` (a cache, by sdist sha256 and target). ``warn`` gets one line per pin
    that passed over a newer sdist-only version. Raises ResolutionError (NoWheelError
    when a project has no file for the target).
    """
    provider = LambdaProvider(
        target=target,
        finder=finder,
        constraints=constraints,
        hashes=hashes,
        allow_prereleases=allow_prereleases,
        formats=formats,
        build_dir=build_dir,
        log=log,
        python=python,
    )
    wanted = [r for r in requirements if target.evaluate(r.marker)]
    provider.direct = direct_links(
        [r for r in wanted if r.url],
        target=target,
        finder=finder,
        build_dir=build_dir,
        python=python or default_lookup(target),
        log=provider.log,
        hashes=provider.hashes,
    )
    roots = [requirement_of(r, "the requirements", direct=True) for r in wanted]
    provider.lookahead.start([root for root in roots if root.name not in provider.direct])
    resolver: Resolver[ProjectRequirement, Candidate, str] = Resolver(
        provider, Reporter(provider.log)
    )
    try:
        result = resolver.resolve(roots, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        raise provider.explain(list(exc.causes)) from exc
    except ResolutionTooDeep as exc:
        raise ResolutionError(
            f"resolution for {target.name} gave up after {exc.round_count} rounds",
            "add constraints that pin the projects it keeps backtracking on (see -v)",
        ) from exc
    packages = _packages(result.mapping.values(), provider)
    for line in skipped_sdist_warnings(packages, provider.skipped_sdists, target):
        if warn is not None:
            warn(line)
        else:
            provider.log(f"warning: {line}")
    return packages


def skipped_sdist_warnings(
    packages: Mapping[str, ResolvedPackage], skipped: Mapping[str, Version], target: Target
) -> list[str]:
    """One line per pin older than a matching version that has only an sdist for ``target``."""
    lines = []
    for name, newer in sorted(skipped.items()):
        package = packages.get(name)
        if package is None or package.built_from_sdist or Version(package.version) >= newer:
            continue
        lines.append(
            f"pinned {name} {package.version}, not {newer}: {name} {newer} has no wheel for "
            f"{target.name}, only an sdist; to build it, require {name}=={newer} or add "
            f"--no-binary {name} to the requirements (--prefer-binary: keep {package.version} "
            "without this warning)"
        )
    return lines


def _packages(
    candidates: Iterable[Candidate], provider: LambdaProvider
) -> dict[str, ResolvedPackage]:
    """Merge each project's base and extras candidates into one ResolvedPackage."""
    bases: dict[str, Candidate] = {}
    extras: dict[str, set[str]] = {}
    deps: dict[str, set[str]] = {}
    for candidate in candidates:
        if candidate.link is None:
            continue
        if not candidate.extras:
            bases[candidate.name] = candidate
        extras.setdefault(candidate.name, set()).update(candidate.extras)
        names = {req.name for req in provider.get_dependencies(candidate)}
        deps.setdefault(candidate.name, set()).update(names - {PYTHON, candidate.name})
    trees = {name: d.tree for name, d in provider.direct.items() if d.tree is not None}
    return {
        name: ResolvedPackage(
            name=name,
            version=str(base.version),
            link=trees.get(name, base.link),
            dependencies=tuple(sorted(deps[name])),
            extras=tuple(sorted(extras[name])),
            built_from_sdist=name in trees or not base.link.is_wheel,
        )
        for name, base in sorted(bases.items())
        if base.link is not None
    }

"""Resolution for a Lambda target: a resolvelib provider over the index, and the pins it yields.

Markers, wheel tags and Requires-Python are evaluated for the ``Target`` only, never for the
host. Wheels only, except that a project with no fitting wheel for any matching version may
be built from its sdist, and is accepted only when the result is pure Python.
"""

from __future__ import annotations

import dataclasses
import email.message
import email.parser
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from .atomic import sha256_of
from .candidates import (
    Usable,
    by_format,
    file_version,
    full_python,
    newest_with_wheel,
    rejection,
    usable_files,
)
from .errors import HashMismatchError, LockError, NoWheelError, ResolutionError, UserError
from .formats import FormatControl
from .index import FileLink, Finder, metadata_is_cheap
from .links import project_of, url_to_path
from .rangezip import read_wheel_metadata
from .sdists import PythonLookup, Source, build_wheel, default_lookup, tree_digest, twin_tip
from .target import Target
from .wire import redact

if TYPE_CHECKING:
    from resolvelib.structs import RequirementInformation

PYTHON = "<python>"  # the identifier of the target's interpreter, for Requires-Python
MAX_ROUNDS = 20000
_ZERO = Version("0")
ANY_FORMAT = FormatControl()  # wheels and sdists for every project
_PREBUILT = "or put a wheel built for TARGET in --find-links"
CONFLICT_TIP = "loosen one of these requirements or add a constraint"
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedPackage:
    """One pinned project of a resolution."""

    name: str  # canonical
    version: str
    link: FileLink  # the chosen wheel, or the sdist when it had to be built
    dependencies: tuple[str, ...]  # canonical names it requires on the target, sorted
    extras: tuple[str, ...]  # extras requested of it, sorted
    built_from_sdist: bool = False


@dataclass(frozen=True, slots=True)
class _Requirement:
    """What resolvelib sees as a requirement: a project (with extras) and a specifier."""

    name: str  # canonical project name, or PYTHON
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written, for messages


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One version of a project (with extras), backed by one file; the target's Python has none."""

    name: str
    version: Version
    link: FileLink | None
    extras: frozenset[str] = frozenset()


def _key(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


def parse_metadata(data: bytes) -> email.message.Message:
    """The headers of a METADATA file (its body, the long description, is not parsed)."""
    end = data.find(b"\n\n")
    if end >= 0 and b"\r" not in data[:end]:
        data = data[: end + 2]  # the blank line that ends the headers, as the parser sees it
    return email.parser.BytesParser().parsebytes(data)


def requires_dist(
    message: email.message.Message, target: Target, extras: Iterable[str]
) -> tuple[list[Requirement], list[str]]:
    """(the ``Requires-Dist`` of parsed METADATA that apply on ``target`` with ``extras``,
    the lines that are not valid requirements)."""
    wanted = ("", *sorted(extras))
    found, invalid = [], []
    for line in message.get_all("Requires-Dist") or []:
        try:
            req = Requirement(str(line))
        except InvalidRequirement:
            invalid.append(str(line))
            continue
        if any(target.evaluate(req.marker, extra) for extra in wanted):
            found.append(req)
    return found, invalid


def _pins_exactly(specifier: SpecifierSet, version: Version) -> bool:
    return any(
        spec.operator in ("==", "===")
        and not spec.version.endswith(".*")
        and spec.contains(version, prereleases=True)
        for spec in specifier
    )


def _requirement(req: Requirement, parent: str, direct: bool = False) -> _Requirement:
    """``req`` as the resolver sees it; a direct reference only among the roots
    (``direct``): its file is the project's one candidate (see ``direct_links``)."""
    if req.url and not direct:
        raise ResolutionError(
            f"{req} (required by {parent}) is a direct URL reference",
            "require the project by name and put the file in --find-links",
        )
    extras = frozenset(canonicalize_name(extra) for extra in req.extras)
    name = canonicalize_name(req.name)
    text = f"{name}[{','.join(sorted(extras))}]" if extras else name
    return _Requirement(name, extras, req.specifier, text + str(req.specifier))


class LambdaProvider(AbstractProvider[_Requirement, _Candidate, str]):
    """A resolvelib provider that lists, filters and reads candidates for one target.

    Lazy: a project's files are listed when the resolver first asks for it, and a
    candidate's metadata is read (PEP 658 file, wheel or sdist build) only when the
    resolver pins it. Every file rejected for the target is logged once with its reason.
    """

    def __init__(
        self,
        *,
        target: Target,
        finder: Finder,
        constraints: Sequence[Requirement] = (),
        hashes: Mapping[str, frozenset[str]] | None = None,
        allow_prereleases: bool = False,
        formats: FormatControl = ANY_FORMAT,
        build_dir: Path,
        log: Log | None = None,
        python: PythonLookup | None = None,
    ) -> None:
        self.target = target
        self.python_lookup = python
        self.direct: dict[str, DirectFile] = {}  # project -> its direct reference's file
        self.finder = finder
        self.allow_prereleases = allow_prereleases
        self.formats = formats
        self.skipped_sdists: dict[str, Version] = {}  # newer sdist-only versions passed over
        self.build_dir = build_dir
        self.log: Log = log or (lambda _line: None)
        self.hashes: dict[str, frozenset[str]] = {
            canonicalize_name(k): frozenset(v) for k, v in (hashes or {}).items()
        }
        self.constraints: dict[str, list[SpecifierSet]] = {}
        for req in constraints:
            if target.evaluate(req.marker):
                self.constraints.setdefault(canonicalize_name(req.name), []).append(req.specifier)
        self._usable: dict[str, list[Usable]] = {}
        self._dependencies: dict[_Candidate, list[_Requirement]] = {}
        self._logged: set[tuple[str, str]] = set()
        self._rejected: dict[str, list[tuple[FileLink, str]]] = {}
        self.python = _Candidate(PYTHON, Version(full_python(target)), None)
        self.lookahead = Lookahead(target, finder)

    # ------------------------------------------------------------------ resolvelib API

    def identify(self, requirement_or_candidate: _Requirement | _Candidate) -> str:
        return _key(requirement_or_candidate.name, requirement_or_candidate.extras)

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Candidate],
        candidates: Mapping[str, Iterator[_Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[_Requirement, _Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[_Requirement, _Candidate]],
    ) -> tuple[bool, bool, bool, int, str]:
        """The key resolvelib sorts open identifiers by, lowest first.

        ``(not the target's Python, not pinned with == or ===, not a cause of the last
        backtrack, number of candidates, identifier)``: the interpreter check is free, a pin
        has one answer, conflicting projects are best settled early, fewer candidates means
        less to explore, and the name makes the order deterministic.
        """
        pinned = any(
            any(spec.operator in ("==", "===") for spec in info.requirement.specifier)
            for info in information[identifier]
        )
        causes = {cause.requirement.name for cause in backtrack_causes}
        count = sum(1 for _ in candidates[identifier])
        name = identifier.split("[", 1)[0]
        return (identifier != PYTHON, not pinned, name not in causes, count, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Requirement]],
        incompatibilities: Mapping[str, Iterator[_Candidate]],
    ) -> list[_Candidate]:
        """Candidates for ``identifier`` that satisfy all its requirements, newest first.

        One candidate per version: the best-ranked wheel for the target, or the sdist when
        no matching version has a wheel for the target.
        """
        reqs = list(requirements[identifier])
        excluded = {candidate.version for candidate in incompatibilities[identifier]}
        if identifier == PYTHON:
            fits = all(self.is_satisfied_by(req, self.python) for req in reqs)
            return [self.python] if fits and self.python.version not in excluded else []
        name, extras = reqs[0].name, reqs[0].extras
        allowed = self._allowed(name, reqs)
        wheels = [u for u in allowed if u.link.is_wheel]
        self._note_skipped_sdist(name, allowed, wheels)
        by_version: dict[Version, Usable] = {}
        for usable in wheels or allowed:
            by_version.setdefault(usable.version, usable)
        return [
            _Candidate(name, version, usable.link, extras)
            for version, usable in by_version.items()
            if version not in excluded
        ]

    def is_satisfied_by(self, requirement: _Requirement, candidate: _Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: _Candidate) -> list[_Requirement]:
        """The candidate's requirements on the target; an extras candidate needs its base."""
        if candidate.link is None:
            return []
        if candidate not in self._dependencies:
            deps = list(self._read_dependencies(candidate))
            if candidate.extras:
                pin = SpecifierSet(f"=={candidate.version}")
                deps.insert(0, _Requirement(candidate.name, frozenset(), pin, candidate.name))
            self._dependencies[candidate] = deps
            self.lookahead.start(deps)  # the resolver will list most of these soon
        return self._dependencies[candidate]

    # ------------------------------------------------------------------ files

    def usable(self, name: str) -> list[Usable]:
        """Files of ``name`` that fit the target: newest first, wheels first, best tag first."""
        if name in self.direct:
            link = self.direct[name].link
            version = file_version(link.filename)
            assert version is not None
            return [Usable(version, link, 0)]
        if name not in self._usable:
            found, rejected = usable_files(
                self.finder.links(name), self.target, self.hashes.get(name)
            )
            found, refused = by_format(name, found, self.formats)
            for link, reason in [*rejected, *refused]:
                self._reject(link, reason)
                self._rejected.setdefault(name, []).append((link, reason))
            self._usable[name] = found
        return self._usable[name]

    def _allowed(self, name: str, reqs: Sequence[_Requirement]) -> list[Usable]:
        """Usable files of ``name`` that satisfy ``reqs``, the constraints and the yank and
        pre-release rules: pre-releases with --pre, when a specifier names one, or (as PEP
        440 and pip have it) when no final release satisfies the specifiers."""
        specifiers = [req.specifier for req in reqs] + self.constraints.get(name, [])
        usable = self.usable(name)
        pre = self._prereleases_allowed(specifiers) or not any(
            not u.version.is_prerelease and self._refusal(u, specifiers, False) is None
            for u in usable
        )
        allowed = []
        for candidate in usable:
            reason = self._refusal(candidate, specifiers, pre)
            if reason is None:
                allowed.append(candidate)
            elif reason:
                self._reject(candidate.link, reason)
        return allowed

    def _refusal(
        self, usable: Usable, specifiers: Sequence[SpecifierSet], prereleases: bool
    ) -> str | None:
        """None if ``usable`` may be a candidate; "" if the specifiers exclude its version;
        else the reason it is refused (logged)."""
        version = usable.version
        if not all(spec.contains(version, prereleases=True) for spec in specifiers):
            return ""
        if version.is_prerelease and not prereleases:
            return "pre-release"
        yanked = usable.link.yanked
        if yanked is not None and not any(_pins_exactly(s, version) for s in specifiers):
            return f"yanked: {yanked}" if yanked else "yanked"
        return None

    def _note_skipped_sdist(
        self, name: str, allowed: Sequence[Usable], wheels: Sequence[Usable]
    ) -> None:
        """Remember a newer matching version than any wheel's that has only an sdist."""
        if not wheels or allowed[0].link.is_wheel or self.formats.prefer_binary:
            return
        if allowed[0].version > wheels[0].version:
            self.skipped_sdists[name] = allowed[0].version

    def _prereleases_allowed(self, specifiers: Iterable[SpecifierSet]) -> bool:
        return self.allow_prereleases or any(spec.prereleases for spec in specifiers)

    def _reject(self, link: FileLink, reason: str) -> None:
        if (link.url, reason) not in self._logged:
            self._logged.add((link.url, reason))
            self.log(f"skipping {link.filename} from {link.source}: {reason}")

    # ------------------------------------------------------------------ metadata

    def _read_dependencies(self, candidate: _Candidate) -> Iterator[_Requirement]:
        assert candidate.link is not None
        message = parse_metadata(self._metadata(candidate))
        parent = f"{candidate.name} {candidate.version}"
        _check_metadata(message.get("Name"), message.get("Version"), candidate)
        requires_python = message.get("Requires-Python")
        if requires_python and not candidate.link.requires_python:
            spec = _specifier_or_none(str(requires_python))
            if spec is not None:
                yield _Requirement(PYTHON, frozenset(), spec, f"Requires-Python {spec}")
        found, invalid = requires_dist(message, self.target, candidate.extras)
        for line in invalid:
            self.log(f"{parent}: ignoring invalid Requires-Dist {line!r}")
        for req in found:
            yield _requirement(req, parent)

    def _metadata(self, candidate: _Candidate) -> bytes:
        assert candidate.link is not None
        if candidate.link.is_wheel:
            return self.finder.metadata(candidate.link)
        wheel = build_sdist(
            candidate.link,
            target=self.target,
            finder=self.finder,
            build_dir=self.build_dir,
            log=self.log,
            python=self.python_lookup,
        )
        return read_wheel_metadata(wheel)

    # ------------------------------------------------------------------ errors

    def explain(
        self, causes: Sequence[RequirementInformation[_Requirement, _Candidate]]
    ) -> UserError:
        """The user-facing error for resolvelib's ResolutionImpossible ``causes``."""
        for name in dict.fromkeys(cause.requirement.name for cause in causes):
            group = [cause for cause in causes if cause.requirement.name == name]
            error = self._unavailable(name, group)
            if error is not None:
                return error
        return self._conflict(causes)

    def _unavailable(
        self, name: str, group: Sequence[RequirementInformation[_Requirement, _Candidate]]
    ) -> UserError | None:
        """An error when ``name`` has nothing for the target or one requirement fits nothing."""
        if name == PYTHON:
            return self._python_error(group[0])
        target = self.target.name
        if not self.finder.links(name):
            sources = (*self.finder.index_urls, *self.finder.find_links)
            looked = ", ".join(redact(source) for source in sources) or "nowhere"
            return NoWheelError(
                f"no files for {name} (looked in {looked}) for {target}",
                "check the project name, --index-url, --extra-index-url and --find-links",
            )
        usable = self.usable(name)
        if not usable:
            return self._nothing_fits(name)
        for cause in group:
            if not self._allowed(name, [cause.requirement]):
                return self._no_version(name, cause, usable)
        return None

    def _nothing_fits(self, name: str) -> UserError:
        """Every file of ``name`` was rejected: say why for the newest one."""
        rejected = self._rejected.get(name, [])
        target = self.target.name
        if name in self.hashes and all("--hash" in reason for _, reason in rejected):
            return HashMismatchError(
                f"no file of {name} has a sha256 in its --hash list",
                "refresh the hashes (pip hash FILE, or pip-compile --generate-hashes), "
                "or check that the index serves the files you locked",
            )
        link, reason = max(rejected, key=lambda item: file_version(item[0].filename) or _ZERO)
        tip = f"see why each file was rejected with -v; pick another --target, {_PREBUILT}"
        if "--only-binary" in reason:
            tip = f"take {name} out of --only-binary to build it from its sdist, {_PREBUILT}"
        return NoWheelError(
            f"no file of {name} fits {target} (newest: {link.filename}, {reason})",
            tip.replace("TARGET", target),
        )

    def _no_version(
        self,
        name: str,
        cause: RequirementInformation[_Requirement, _Candidate],
        usable: Sequence[Usable],
    ) -> ResolutionError:
        constraints = self.constraints.get(name, [])
        extra = f" with constraint {','.join(map(str, constraints))}" if constraints else ""
        versions = ", ".join(str(v) for v in list(dict.fromkeys(u.version for u in usable))[:5])
        return ResolutionError(
            f"no version of {name} for {self.target.name} matches {_describe(cause)}{extra}",
            f"versions available for {self.target.name}: {versions}; loosen the requirement "
            "(pre-releases need --pre, yanked files an == pin)",
        )

    def _python_error(
        self, cause: RequirementInformation[_Requirement, _Candidate]
    ) -> ResolutionError:
        parent = cause.parent
        who = f"{parent.name} {parent.version}" if parent else "the requirements"
        return ResolutionError(
            f"{who} requires Python {cause.requirement.specifier}, "
            f"but {self.target.name} runs {full_python(self.target)}",
            "constrain it to an older version, or pick a newer --target",
        )

    def _conflict(
        self, causes: Sequence[RequirementInformation[_Requirement, _Candidate]]
    ) -> ResolutionError:
        ordered = sorted(causes, key=lambda c: (c.parent is None, _describe(c)))
        parts = list(dict.fromkeys(_describe(cause) for cause in ordered))
        if len(parts) == 1:
            message = f"cannot satisfy {parts[0]} for {self.target.name}"
        else:
            message = f"{parts[0]} conflicts with {' and '.join(parts[1:])}"
        return ResolutionError(message, CONFLICT_TIP)


def _describe(cause: RequirementInformation[_Requirement, _Candidate]) -> str:
    parent = cause.parent
    if parent is None:
        return f"{cause.requirement.text} (required by the requirements)"
    who = f"{_key(parent.name, parent.extras)} {parent.version}"
    return f"{cause.requirement.text} (required by {who})"


def _specifier_or_none(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def _check_metadata(name: object, version: object, candidate: _Candidate) -> None:
    """The metadata must describe the file it came from."""
    assert candidate.link is not None
    try:
        same = canonicalize_name(str(name)) == candidate.name and Version(str(version)) == (
            candidate.version
        )
    except ValueError:
        same = False
    if not same:
        raise ResolutionError(
            f"{candidate.link.filename} from {candidate.link.source} has metadata for "
            f"{name} {version}",
            "the file is inconsistent: report it to the index, or exclude that version",
        )


class Lookahead:
    """Walks the closure the resolver is likely to pin, ahead of it, in the finder's threads.

    For each project it is asked for: the listing (``Finder.prefetch``), then the
    newest non-yanked wheel that fits the target and the first requirement seen for it, its
    metadata (PEP 658 file, or read from the wheel with range requests), and the same for
    its dependencies. It only fills the finder's memos;
    the resolver decides everything itself, so a wrong guess costs a fetch, never a
    different result. Local wheels are only listed (and hashed) ahead: reading their
    metadata is cheap, and doing it twice in Python threads costs the resolver the GIL.
    """

    def __init__(self, target: Target, finder: Finder) -> None:
        self.target = target
        self.finder = finder
        self._wanted: dict[str, _Requirement] = {}
        self._lock = threading.Lock()

    def start(self, requirements: Iterable[_Requirement]) -> None:
        """Prefetch these projects (and, in the background, what they are likely to need)."""
        fresh = []
        with self._lock:
            for req in requirements:
                if req.name != PYTHON and req.name not in self._wanted:
                    self._wanted[req.name] = req
                    fresh.append(req.name)
        if fresh:
            self.finder.prefetch(fresh, then=self.follow)

    def follow(self, project: str, links: Sequence[FileLink]) -> None:
        """Called by the finder once ``project`` is listed: read ahead its likely pick."""
        with self._lock:
            req = self._wanted.get(project)
        if req is None:
            return
        link = next(
            (
                u.link
                for u in usable_files(links, self.target)[0]
                if u.link.is_wheel and u.link.yanked is None and req.specifier.contains(u.version)
            ),
            None,
        )
        if link is None or link.url.startswith("file:") or not metadata_is_cheap(link):
            return
        message = parse_metadata(self.finder.metadata(link))
        found = requires_dist(message, self.target, req.extras)[0]
        self.start(_requirement(r, project) for r in found if not r.url)


class _Reporter(BaseReporter[_Requirement, _Candidate, str]):
    """Sends pins and backtracks to the -v log."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def pinning(self, candidate: _Candidate) -> None:
        if candidate.link is not None:
            name = _key(candidate.name, candidate.extras)
            self.log(f"pinned {name} {candidate.version} ({candidate.link.filename})")

    def rejecting_candidate(self, criterion: object, candidate: _Candidate) -> None:
        self.log(f"backtracking: {candidate.name} {candidate.version} does not fit")


def prefetch(requirements: Iterable[Requirement], *, target: Target, finder: Finder) -> None:
    """Start fetching, in the finder's threads, what resolving ``requirements`` for
    ``target`` is likely to need (see ``Lookahead``); returns at once."""
    roots = (r for r in requirements if not r.url and target.evaluate(r.marker))
    Lookahead(target, finder).start(_requirement(r, "the requirements") for r in roots)


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
    roots = [_requirement(r, "the requirements", direct=True) for r in wanted]
    provider.lookahead.start([root for root in roots if root.name not in provider.direct])
    resolver: Resolver[_Requirement, _Candidate, str] = Resolver(provider, _Reporter(provider.log))
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
    candidates: Iterable[_Candidate], provider: LambdaProvider
) -> dict[str, ResolvedPackage]:
    """Merge each project's base and extras candidates into one ResolvedPackage."""
    bases: dict[str, _Candidate] = {}
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
    return FileLink(
        filename=filename,
        url=url,
        sha256=sha256,
        requires_python=None,
        yanked=None,
        metadata_sha256=None,
        has_metadata=False,
        size=None,
        source="a direct reference",
    )


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

"""resolvelib's two hooks for a Lambda target: the provider, which lists, filters and reads
candidates for one target and explains a failure, the reporter (pins and backtracks to
the -v log), and the lookahead that fetches the likely closure ahead in threads.

Markers, wheel tags and Requires-Python are evaluated for the ``Target`` only, never for
the host.
"""

from __future__ import annotations

import email.message
import email.parser
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider, BaseReporter

from .candidates import (
    Usable,
    by_format,
    file_version,
    full_python,
    usable_files,
)
from .direct import DirectFile, build_sdist
from .errors import HashMismatchError, NoWheelError, ResolutionError, UserError
from .formats import ANY_FORMAT, FormatControl
from .index import FileLink, Finder, metadata_is_cheap
from .progress import Log
from .rangezip import read_wheel_metadata
from .sdists import PythonLookup
from .target import Target
from .wire import redact

if TYPE_CHECKING:
    from resolvelib.structs import RequirementInformation


PYTHON = "<python>"  # the identifier of the target's interpreter, for Requires-Python
_ZERO = Version("0")
_PREBUILT = "or put a wheel built for TARGET in --find-links"
CONFLICT_TIP = "loosen one of these requirements or add a constraint"


@dataclass(frozen=True, slots=True)
class ProjectRequirement:
    """What resolvelib sees as a requirement: a project (with extras) and a specifier."""

    name: str  # canonical project name, or PYTHON
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written, for messages


@dataclass(frozen=True, slots=True)
class Candidate:
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


def requirement_of(req: Requirement, parent: str, direct: bool = False) -> ProjectRequirement:
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
    return ProjectRequirement(name, extras, req.specifier, text + str(req.specifier))


class LambdaProvider(AbstractProvider[ProjectRequirement, Candidate, str]):
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
        self._dependencies: dict[Candidate, list[ProjectRequirement]] = {}
        self._logged: set[tuple[str, str]] = set()
        self._rejected: dict[str, list[tuple[FileLink, str]]] = {}
        self.python = Candidate(PYTHON, Version(full_python(target)), None)
        self.lookahead = Lookahead(target, finder)

    # ------------------------------------------------------------------ resolvelib API

    def identify(self, requirement_or_candidate: ProjectRequirement | Candidate) -> str:
        return _key(requirement_or_candidate.name, requirement_or_candidate.extras)

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[ProjectRequirement, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[ProjectRequirement, Candidate]],
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
        requirements: Mapping[str, Iterator[ProjectRequirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
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
            Candidate(name, version, usable.link, extras)
            for version, usable in by_version.items()
            if version not in excluded
        ]

    def is_satisfied_by(self, requirement: ProjectRequirement, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> list[ProjectRequirement]:
        """The candidate's requirements on the target; an extras candidate needs its base."""
        if candidate.link is None:
            return []
        if candidate not in self._dependencies:
            deps = list(self._read_dependencies(candidate))
            if candidate.extras:
                pin = SpecifierSet(f"=={candidate.version}")
                deps.insert(0, ProjectRequirement(candidate.name, frozenset(), pin, candidate.name))
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

    def _allowed(self, name: str, reqs: Sequence[ProjectRequirement]) -> list[Usable]:
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

    def _read_dependencies(self, candidate: Candidate) -> Iterator[ProjectRequirement]:
        assert candidate.link is not None
        message = parse_metadata(self._metadata(candidate))
        parent = f"{candidate.name} {candidate.version}"
        _check_metadata(message.get("Name"), message.get("Version"), candidate)
        requires_python = message.get("Requires-Python")
        if requires_python and not candidate.link.requires_python:
            spec = _specifier_or_none(str(requires_python))
            if spec is not None:
                yield ProjectRequirement(PYTHON, frozenset(), spec, f"Requires-Python {spec}")
        found, invalid = requires_dist(message, self.target, candidate.extras)
        for line in invalid:
            self.log(f"{parent}: ignoring invalid Requires-Dist {line!r}")
        for req in found:
            yield requirement_of(req, parent)

    def _metadata(self, candidate: Candidate) -> bytes:
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
        self, causes: Sequence[RequirementInformation[ProjectRequirement, Candidate]]
    ) -> UserError:
        """The user-facing error for resolvelib's ResolutionImpossible ``causes``."""
        for name in dict.fromkeys(cause.requirement.name for cause in causes):
            group = [cause for cause in causes if cause.requirement.name == name]
            error = self._unavailable(name, group)
            if error is not None:
                return error
        return self._conflict(causes)

    def _unavailable(
        self, name: str, group: Sequence[RequirementInformation[ProjectRequirement, Candidate]]
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
        cause: RequirementInformation[ProjectRequirement, Candidate],
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
        self, cause: RequirementInformation[ProjectRequirement, Candidate]
    ) -> ResolutionError:
        parent = cause.parent
        who = f"{parent.name} {parent.version}" if parent else "the requirements"
        return ResolutionError(
            f"{who} requires Python {cause.requirement.specifier}, "
            f"but {self.target.name} runs {full_python(self.target)}",
            "constrain it to an older version, or pick a newer --target",
        )

    def _conflict(
        self, causes: Sequence[RequirementInformation[ProjectRequirement, Candidate]]
    ) -> ResolutionError:
        ordered = sorted(causes, key=lambda c: (c.parent is None, _describe(c)))
        parts = list(dict.fromkeys(_describe(cause) for cause in ordered))
        if len(parts) == 1:
            message = f"cannot satisfy {parts[0]} for {self.target.name}"
        else:
            message = f"{parts[0]} conflicts with {' and '.join(parts[1:])}"
        return ResolutionError(message, CONFLICT_TIP)


def _describe(cause: RequirementInformation[ProjectRequirement, Candidate]) -> str:
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


def _check_metadata(name: object, version: object, candidate: Candidate) -> None:
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
        self._wanted: dict[str, ProjectRequirement] = {}
        self._lock = threading.Lock()

    def start(self, requirements: Iterable[ProjectRequirement]) -> None:
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
        self.start(requirement_of(r, project) for r in found if not r.url)


class Reporter(BaseReporter[ProjectRequirement, Candidate, str]):
    """Sends pins and backtracks to the -v log."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def pinning(self, candidate: Candidate) -> None:
        if candidate.link is not None:
            name = _key(candidate.name, candidate.extras)
            self.log(f"pinned {name} {candidate.version} ({candidate.link.filename})")

    def rejecting_candidate(self, criterion: object, candidate: Candidate) -> None:
        self.log(f"backtracking: {candidate.name} {candidate.version} does not fit")

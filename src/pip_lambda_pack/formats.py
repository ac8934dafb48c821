"""pip's ``--only-binary``, ``--no-binary`` and ``--prefer-binary`` as one frozen record.

The rules are pip's (``FormatControl``): a value is a comma-separated list of project names,
``:all:`` or ``:none:``; a name given to one option is taken out of the other; ``:all:``
empties both and applies to every project a name does not settle; ``:none:`` empties the
option it is given to. Wheels are already preferred over newer sdists here (as with pip's
``--prefer-binary``); the option only silences the warning that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from packaging.utils import canonicalize_name

from .errors import ConfigError

ALL = ":all:"
NONE = ":none:"


@dataclass(frozen=True, slots=True, kw_only=True)
class FormatControl:
    """Which kinds of file each project may be installed from (canonical names, ``:all:``)."""

    only_binary: frozenset[str] = frozenset()  # no sdist builds for these
    no_binary: frozenset[str] = frozenset()  # no wheels for these: build their sdists
    prefer_binary: bool = False

    def with_option(self, option: str, value: str, where: str) -> FormatControl:
        """This record after ``--only-binary VALUE`` or ``--no-binary VALUE``, pip's way."""
        if not value or value.startswith("-"):
            raise ConfigError(
                f"{where}: {option} needs a value",
                f"write {option} :all:, {option} :none: or {option} NAME[,NAME...]",
            )
        only = option == "--only-binary"
        mine, other = (
            (self.only_binary, self.no_binary) if only else (self.no_binary, self.only_binary)
        )
        named, rest = _apply(value.split(","), set(mine), set(other))
        if only:
            return replace(self, only_binary=frozenset(named), no_binary=frozenset(rest))
        return replace(self, no_binary=frozenset(named), only_binary=frozenset(rest))

    def then(self, later: FormatControl) -> FormatControl:
        """``later``'s options applied after ours, as pip applies a requirements file's after
        pip.conf's (the option holding ``:all:`` first: it is the earlier of the two)."""
        first, second = ("--only-binary", "--no-binary")
        if ALL in later.no_binary:
            first, second = second, first
        result = replace(self, prefer_binary=self.prefer_binary or later.prefer_binary)
        for option in (first, second):
            names = later.only_binary if option == "--only-binary" else later.no_binary
            ordered = sorted(names, key=lambda name: name != ALL)  # :all: before the names
            if ordered:
                result = result.with_option(option, ",".join(ordered), "")
        return result

    @classmethod
    def from_pip(cls, only_binary: set[str], no_binary: set[str], prefer: bool) -> FormatControl:
        """The record of pip's own ``FormatControl`` sets (already pip-normalised)."""
        return cls(
            only_binary=frozenset(n if n == ALL else canonicalize_name(n) for n in only_binary),
            no_binary=frozenset(n if n == ALL else canonicalize_name(n) for n in no_binary),
            prefer_binary=prefer,
        )

    def wheels_allowed(self, name: str) -> bool:
        return "binary" in self._formats(name)

    def sdists_allowed(self, name: str) -> bool:
        return "source" in self._formats(name)

    def _formats(self, name: str) -> frozenset[str]:
        """pip's ``get_allowed_formats``: a name settles it, else ``:all:``."""
        name = canonicalize_name(name)
        if name in self.only_binary:
            return frozenset({"binary"})
        if name in self.no_binary:
            return frozenset({"source"})
        if ALL in self.only_binary:
            return frozenset({"binary"})
        if ALL in self.no_binary:
            return frozenset({"source"})
        return frozenset({"binary", "source"})

    def to_data(self) -> dict[str, object]:
        """A plain, sorted form (for the lock's inputs digest)."""
        return {
            "only-binary": sorted(self.only_binary),
            "no-binary": sorted(self.no_binary),
            "prefer-binary": self.prefer_binary,
        }


def _apply(names: list[str], target: set[str], other: set[str]) -> tuple[set[str], set[str]]:
    """pip's ``handle_mutual_excludes`` on copies: (the option's set, the other option's)."""
    while ALL in names:
        other.clear()
        target.clear()
        target.add(ALL)
        names = names[names.index(ALL) + 1 :]
        if NONE not in names:
            return target, other
    for name in names:
        if name == NONE:
            target.clear()
            continue
        canonical = canonicalize_name(name)
        other.discard(canonical)
        target.add(canonical)
    return target, other


ANY_FORMAT = FormatControl()  # wheels and sdists for every project

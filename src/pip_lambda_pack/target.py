"""Lambda runtime presets: the Python, ABI, glibc, wheel tags and markers we build for.

Nothing here reads the host. A ``Target`` is passed explicitly to everything that
evaluates a tag or a marker, so a build on a Mac or a newer glibc picks exactly the
wheels the Lambda runtime can load.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from .errors import TargetError

ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
# The patch release each runtime reports today; only python_full_version markers see it.
PATCH = {(3, 10): 19, (3, 11): 14, (3, 12): 12, (3, 13): 9, (3, 14): 0}
# Amazon Linux 2 (glibc 2.26) for 3.10/3.11, Amazon Linux 2023 (glibc 2.34) from 3.12.
GLIBC = {(3, 10): (2, 26), (3, 11): (2, 26), (3, 12): (2, 34), (3, 13): (2, 34), (3, 14): (2, 34)}
LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One Lambda runtime: ``python3.12-x86_64`` and friends."""

    name: str
    python_version: tuple[int, int]
    arch: str  # the Lambda name: x86_64 or arm64
    machine: str  # what platform.machine() says there: x86_64 or aarch64
    glibc: tuple[int, int]
    tags: tuple[Tag, ...] = field(repr=False)
    environment: tuple[tuple[str, str], ...] = field(repr=False)

    @property
    def python(self) -> str:
        """``3.12``."""
        return "%d.%d" % self.python_version

    @property
    def abi(self) -> str:
        """The CPython ABI tag, ``cp312``."""
        return "cp%d%d" % self.python_version

    def markers(self, extra: str = "") -> dict[str, str]:
        """The PEP 508 marker environment of the runtime, with ``extra`` set."""
        env = dict(self.environment)
        env["extra"] = extra
        return env

    def evaluate(self, marker: Marker | None, extra: str = "") -> bool:
        """Whether ``marker`` holds on the runtime (always true for no marker)."""
        if marker is None:
            return True
        return marker.evaluate(self.markers(extra))

    def tag_rank(self, filename: str) -> int | None:
        """Rank of the wheel's best tag (0 is most preferred), or None if it cannot load."""
        try:
            _, _, _, wheel_tags = parse_wheel_filename(filename)
        except ValueError:
            return None
        ranks = [self._rank[tag] for tag in wheel_tags if tag in self._rank]
        return min(ranks) if ranks else None

    @property
    def _rank(self) -> dict[Tag, int]:
        return _ranks(self)


_RANK_CACHE: dict[str, dict[Tag, int]] = {}


def _ranks(target: Target) -> dict[Tag, int]:
    ranks = _RANK_CACHE.get(target.name)
    if ranks is None:
        ranks = {tag: i for i, tag in reversed(list(enumerate(target.tags)))}
        _RANK_CACHE[target.name] = ranks
    return ranks


def manylinux_platforms(glibc: tuple[int, int], machine: str) -> Iterator[str]:
    """``manylinux_2_N_<machine>`` from the runtime's glibc down, with the legacy aliases."""
    lowest = 5 if machine in ("x86_64", "i686") else 17
    for minor in range(glibc[1], lowest - 1, -1):
        yield f"manylinux_2_{minor}_{machine}"
        legacy = LEGACY_MANYLINUX.get((2, minor))
        if legacy:
            yield f"{legacy}_{machine}"


def _environment(version: tuple[int, int], machine: str) -> tuple[tuple[str, str], ...]:
    full = "%d.%d.%d" % (*version, PATCH[version])
    return (
        ("implementation_name", "cpython"),
        ("implementation_version", full),
        ("os_name", "posix"),
        ("platform_machine", machine),
        ("platform_python_implementation", "CPython"),
        ("platform_release", ""),
        ("platform_system", "Linux"),
        ("platform_version", ""),
        ("python_full_version", full),
        ("python_version", "%d.%d" % version),
        ("sys_platform", "linux"),
    )


def make_target(version: tuple[int, int], arch: str) -> Target:
    """Build the preset for a Python version and a Lambda architecture."""
    machine = ARCHES[arch]
    glibc = GLIBC[version]
    platforms = list(manylinux_platforms(glibc, machine))
    abi = "cp%d%d" % version
    tags = list(cpython_tags(version, [abi], platforms))
    tags += list(compatible_tags(version, abi, platforms))
    return Target(
        name="python%d.%d-%s" % (*version, arch),
        python_version=version,
        arch=arch,
        machine=machine,
        glibc=glibc,
        tags=tuple(dict.fromkeys(tags)),
        environment=_environment(version, machine),
    )


class _Presets(Mapping[str, Target]):
    """Every preset by name, each built (tags and all) only when first asked for."""

    def __init__(self) -> None:
        self._specs = {
            "python%d.%d-%s" % (*v, a): (v, a) for v in sorted(GLIBC) for a in sorted(ARCHES)
        }
        self._built: dict[str, Target] = {}

    def __getitem__(self, name: str) -> Target:
        if name not in self._built:
            self._built[name] = make_target(*self._specs[name])
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


TARGETS: Mapping[str, Target] = _Presets()
DEFAULT_TARGET = "python3.12-x86_64"


def get_target(name: str) -> Target:
    """The preset called ``name``; a TargetError naming the known ones otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(
            f"unknown target {name!r}",
            "use one of: " + ", ".join(TARGETS),
        ) from None

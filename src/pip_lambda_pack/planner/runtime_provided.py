"""Packages the AWS Lambda Python runtimes ship in ``/var/runtime``, and the policy for them.

A function may import boto3 without bundling it: the runtime puts its own copy on
``sys.path`` *after* the layers (``/opt/python``), so a layer that carries another version
shadows the runtime's copy. The policy ``runtime-provided`` decides what the planner does:

- ``"bundle"`` (default): layers carry what the function pinned; a warning says when that
  shadows the runtime's copy with an incompatible version.
- ``"exclude"``: such pins are left out of the layers and the function uses the runtime's
  copy; a warning says when the function pinned an incompatible version.

The versions are a snapshot (``SNAPSHOT``) of AWS's "Runtime-included SDK versions" table and
of ``/var/runtime/*.dist-info`` in the public base images; AWS updates them without notice, so
they guide warnings only and never decide what a function can import.
"""

from __future__ import annotations

from collections.abc import Mapping

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import ConfigError
from .model import RUNTIME_POLICIES as POLICIES
from .model import Fleet, LayerPlan, PlanParams

SNAPSHOT = "AWS Lambda base images public.ecr.aws/lambda/python, 2025 (verify with pip list)"

_AL2 = {
    "boto3": "1.34.42",
    "botocore": "1.34.42",
    "s3transfer": "0.10.0",
    "jmespath": "1.0.1",
    "urllib3": "1.26.18",
    "python-dateutil": "2.8.2",
    "six": "1.16.0",
    "awslambdaric": "2.0.10",
    "simplejson": "3.17.2",
}
_AL2023 = {
    "boto3": "1.34.145",
    "botocore": "1.34.145",
    "s3transfer": "0.10.2",
    "jmespath": "1.0.1",
    "urllib3": "1.26.19",
    "python-dateutil": "2.9.0.post0",
    "six": "1.16.0",
    "awslambdaric": "3.0.0",
    "simplejson": "3.19.3",
}
RUNTIME_PACKAGES: Mapping[str, Mapping[str, str]] = {
    "python3.9": _AL2,
    "python3.10": _AL2,
    "python3.11": _AL2,
    "python3.12": _AL2023,
    "python3.13": _AL2023,
    "python3.14": _AL2023,
}
# boto3, botocore and s3transfer move in lock-step: a minor-version mismatch breaks them.
_LOCKSTEP = frozenset({"boto3", "botocore", "s3transfer"})
# What the runtimes' botocore (1.34, on Python 3.10+) declares it accepts of the packages it
# imports: a layer's copy that fits these does not break the runtime's boto3.
BOTOCORE_ACCEPTS: Mapping[str, SpecifierSet] = {
    "urllib3": SpecifierSet(">=1.25.4,!=2.2.0,<3"),
    "jmespath": SpecifierSet(">=0.7.1,<2.0.0"),
    "python-dateutil": SpecifierSet(">=2.1,<3.0.0"),
}


def runtime_packages(target: str) -> Mapping[str, str]:
    """Canonical name -> version the runtime of ``target`` (e.g. python3.12-x86_64) ships."""
    return RUNTIME_PACKAGES.get(target.split("-")[0], {})


def provided_version(target: str, name: str) -> str | None:
    """The runtime's version of ``name``, or None when the runtime does not ship it."""
    return runtime_packages(target).get(canonicalize_name(name))


def incompatible(name: str, ours: str, theirs: str) -> bool:
    """True when swapping one version for the other can break importers.

    Different major versions are incompatible; for boto3, botocore and s3transfer (which pin
    each other) a different minor version is too. Unparsable versions count as incompatible.
    """
    try:
        a, b = Version(ours), Version(theirs)
    except InvalidVersion:
        return ours != theirs
    depth = 2 if canonicalize_name(name) in _LOCKSTEP else 1
    return a.release[:depth] != b.release[:depth]


def breaks_runtime(name: str, ours: str, theirs: str) -> bool:
    """True when a layer's ``ours`` shadowing the runtime's ``theirs`` can break the runtime's
    SDK: for what botocore imports (urllib3, jmespath, python-dateutil), when the runtime's
    botocore does not accept ``ours``; for the rest, ``incompatible``."""
    accepts = BOTOCORE_ACCEPTS.get(canonicalize_name(name))
    if accepts is None:
        return incompatible(name, ours, theirs)
    try:
        return not accepts.contains(Version(ours), prereleases=True)
    except InvalidVersion:
        return True


def shadow_warning(target: str, pin: str, where: str, policy: str) -> str | None:
    """A warning when ``pin`` (name==version) conflicts with the runtime's copy, else None.

    ``where`` names the layer or function for the message. With ``bundle`` the layer's copy
    shadows the runtime's (``breaks_runtime``); with ``exclude`` the function gets the
    runtime's copy instead of its pin (``incompatible``).
    """
    name, _, version = pin.partition("==")
    theirs = provided_version(target, name)
    conflict = breaks_runtime if policy == "bundle" else incompatible
    if theirs is None or not conflict(name, version, theirs):
        return None
    runtime = target.split("-")[0]
    if policy == "exclude":
        return (
            f"{where} pins {pin} but runtime-provided = exclude gives it the {runtime} "
            f"runtime's {name} {theirs}"
        )
    return f"{where} ships {pin}, shadowing the {runtime} runtime's {name} {theirs}"


# --- the policy applied to a fleet --------------------------------------------------------


def closures(fleet: Fleet, params: PlanParams) -> dict[str, tuple[str, ...]]:
    """Function -> the pins its layers must carry under the runtime-provided policy."""
    if params.runtime_provided not in POLICIES:
        raise ConfigError(
            f"runtime-provided = {params.runtime_provided!r} is not a policy",
            "use one of: " + ", ".join(POLICIES),
        )
    if params.runtime_provided == "bundle":
        return {name: f.pins for name, f in fleet.functions.items()}
    return {
        name: tuple(p for p in f.pins if not is_provided(fleet, params, p))
        for name, f in fleet.functions.items()
    }


def is_provided(fleet: Fleet, params: PlanParams, pin: str) -> bool:
    """Does the target's runtime ship a copy (any version) of this pin's package?"""
    return provided_version(params.target, fleet.packages[pin].name) is not None


def runtime_warnings(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> tuple[str, ...]:
    """Where the plan conflicts with the runtime's own copies."""
    found: list[str | None] = []
    if params.runtime_provided == "bundle":
        for lid, members in sorted(plan.layers.items()):
            found += [shadow_warning(params.target, p, f"layer {lid}", "bundle") for p in members]
    else:
        for name, function in sorted(fleet.functions.items()):
            found += [
                shadow_warning(params.target, p, f"function {name}", "exclude")
                for p in function.pins
            ]
    return tuple(w for w in found if w)

"""Small fleets shared by the planner tests, and a hypothesis strategy of random ones."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from pip_lambda_pack.planner import Fleet, FunctionNeed, Package

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "fleet-dev.json"
RUNTIME = {"boto3", "urllib3"}  # the runtime-provided packages fleets() may draw


def package(pid: str, size: int = 100, downloads: int = 0) -> Package:
    name = pid.split("==")[0]
    return Package(id=pid, name=name, size=size, unpacked_size=size * 2, downloads=downloads)


def small_fleet() -> Fleet:
    packages = {p.id: p for p in (package(f"p{i}==1", 100 * (i + 1), i) for i in range(8))}
    functions = {
        "a": FunctionNeed(pins=tuple(f"p{i}==1" for i in range(7)), weight=1.0),
        "b": FunctionNeed(pins=("p0==1", "p7==1"), weight=3.0),
    }
    return Fleet(packages=packages, functions=functions)


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    """Up to 12 wheels, some of them two versions of one package, some runtime-provided."""
    count = draw(st.integers(1, 12))
    pids = [f"p{i}==1" for i in range(count)]
    pids += draw(st.sets(st.sampled_from(["p0==2", "p1==2", "boto3==1.20.0", "urllib3==2.0.4"])))
    packages = {
        pid: package(pid, draw(st.integers(1, 10**6)), draw(st.integers(0, 99))) for pid in pids
    }
    functions = {}
    for f in range(draw(st.integers(1, 5))):
        members = draw(st.sets(st.sampled_from(sorted(packages)), min_size=1))
        chosen = {packages[p].name: p for p in sorted(members)}  # one version per package
        weight = draw(st.floats(0.01, 10))
        functions[f"f{f}"] = FunctionNeed(pins=tuple(sorted(chosen.values())), weight=weight)
    return Fleet(packages=packages, functions=functions)

"""Planner baselines and the constraints every plan keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pip_lambda_pack.errors import ConfigError, PlanError
from pip_lambda_pack.plan import (
    STRATEGIES,
    Fleet,
    FunctionNeed,
    Package,
    PlanParams,
    check_plan,
    layer_id,
    load_fleet,
    make_plan,
    plan_to_json,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fleet-dev.json"


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


def test_single_gives_each_function_one_layer_of_its_closure() -> None:
    plan = make_plan(small_fleet(), PlanParams(), "single")
    assert plan.functions["b"] == (layer_id(["p0==1", "p7==1"]),)
    assert plan.layers[plan.functions["b"][0]] == ("p0==1", "p7==1")


def test_popularity_topk_splits_the_most_used_pins_out() -> None:
    plan = make_plan(small_fleet(), PlanParams(max_layers=3), "popularity-topk")
    a_layers = [plan.layers[lid] for lid in plan.functions["a"]]
    # p0 is used by both functions; then PyPI downloads rank p6 above p5 ...
    assert a_layers == [
        ("p0==1",),
        ("p6==1",),
        ("p1==1", "p2==1", "p3==1", "p4==1", "p5==1"),
    ]
    assert plan.functions["b"][0] == plan.functions["a"][0]  # one shared canonical layer


def test_layer_ids_depend_only_on_the_pins() -> None:
    assert layer_id(["b==1", "a==1"]) == layer_id(["a==1", "b==1"])
    assert layer_id(["a==1"]) != layer_id(["a==2"])


def test_check_plan_catches_missing_pins_and_too_many_layers() -> None:
    fleet = small_fleet()
    plan = make_plan(fleet, PlanParams(), "single")
    broken = type(plan)(strategy="x", layers=plan.layers, functions={**plan.functions, "b": ()})
    with pytest.raises(PlanError, match="the x plan for function b misses p0==1, p7==1"):
        check_plan(fleet, broken, PlanParams())
    per_pin = make_plan(fleet, PlanParams(max_layers=10), "popularity-topk")
    with pytest.raises(PlanError, match="uses 7 layers, over the limit of 5"):
        check_plan(fleet, per_pin, PlanParams(max_layers=5))


def test_closure_over_the_size_limit_names_the_largest_wheels() -> None:
    with pytest.raises(PlanError) as info:
        make_plan(small_fleet(), PlanParams(size_limit=5000), "single")
    assert info.value.message == (
        "function a needs 5.6 kB unzipped, over the 5.0 kB limit; "
        "largest: p6==1 (1.4 kB), p5==1 (1.2 kB), p4==1 (1.0 kB)"
    )


def test_unknown_strategy() -> None:
    with pytest.raises(ConfigError, match="unknown planning strategy 'magic'"):
        make_plan(small_fleet(), PlanParams(), "magic")


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    count = draw(st.integers(1, 12))
    packages = {
        f"p{i}==1": package(f"p{i}==1", draw(st.integers(1, 10**6)), draw(st.integers(0, 99)))
        for i in range(count)
    }
    functions = {}
    for f in range(draw(st.integers(1, 5))):
        members = draw(st.sets(st.sampled_from(sorted(packages)), min_size=1))
        weight = draw(st.floats(0.01, 10))
        functions[f"f{f}"] = FunctionNeed(pins=tuple(sorted(members)), weight=weight)
    return Fleet(packages=packages, functions=functions)


@settings(max_examples=60, deadline=None)
@given(fleet=fleets(), max_layers=st.integers(1, 6), strategy=st.sampled_from(sorted(STRATEGIES)))
def test_every_strategy_covers_every_closure_within_max_layers(
    fleet: Fleet, max_layers: int, strategy: str
) -> None:
    params = PlanParams(max_layers=max_layers)
    plan = make_plan(fleet, params, strategy)
    for name, function in fleet.functions.items():
        provided = {p for lid in plan.functions[name] for p in plan.layers[lid]}
        assert provided == set(function.pins)
        assert strategy == "per-package" or len(plan.functions[name]) <= max_layers


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/fleet-dev.json")
def test_dev_fleet_plans_in_the_design_schema() -> None:
    fleet = load_fleet(SHARED)
    assert len(fleet.functions) == 299
    params = PlanParams()
    report = plan_to_json(make_plan(fleet, params, "popularity-topk"), fleet, params)
    json.dumps(report)
    assert set(report) >= {"layers", "functions", "layer_stats", "function_stats"}
    assert all(len(ids) <= 5 for ids in report["functions"].values())


def test_fleet_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="format is not lambda-pack-fleet/1"):
        load_fleet(bad)
    bad.write_text(
        json.dumps(
            {
                "format": "lambda-pack-fleet/1",
                "packages": {},
                "functions": {"f": {"requires": ["x==1"], "weight": 1}},
            }
        )
    )
    with pytest.raises(ConfigError, match="functions.f.requires names unknown x==1"):
        load_fleet(bad)

"""Planner baselines and the constraints every plan keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pip_lambda_pack import plan as plan_module
from pip_lambda_pack.errors import ConfigError, PlanError
from pip_lambda_pack.plan import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Fleet,
    FunctionNeed,
    Package,
    PlanParams,
    check_plan,
    layer_id,
    load_fleet,
    make_plan,
    plan_text,
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
        "function a needs 5.6 kB unzipped, 600 B over the 5.0 kB limit; "
        "largest: p6==1 (1.4 kB), p5==1 (1.2 kB), p4==1 (1.0 kB)"
    )


def test_unknown_strategy() -> None:
    with pytest.raises(ConfigError, match="unknown planning strategy 'magic'"):
        make_plan(small_fleet(), PlanParams(), "magic")


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


@settings(max_examples=150, deadline=None)
@given(
    fleet=fleets(),
    max_layers=st.integers(1, 6),
    strategy=st.sampled_from(sorted(STRATEGIES)),
    policy=st.sampled_from(["bundle", "exclude"]),
)
def test_every_strategy_keeps_every_constraint(
    fleet: Fleet, max_layers: int, strategy: str, policy: str
) -> None:
    params = PlanParams(max_layers=max_layers, runtime_provided=policy, cache_bytes=10**6)
    plan = make_plan(fleet, params, strategy)
    for name, function in fleet.functions.items():
        needed = {p for p in function.pins if policy == "bundle" or p.split("==")[0] not in RUNTIME}
        provided = [p for lid in plan.functions[name] for p in plan.layers[lid]]
        assert set(provided) >= needed
        assert strategy == "per-package" or len(plan.functions[name]) <= max_layers
        names = {fleet.packages[p].name for p in provided}
        assert len(names) == len(set(provided))  # one version per package
        extra = set(provided) - needed
        assert not {fleet.packages[p].name for p in extra} & RUNTIME  # never shadows the runtime
        assert sum(fleet.packages[p].unpacked_size for p in set(provided)) <= params.size_limit
    for lid, members in plan.layers.items():
        assert lid == layer_id(members)  # canonical: membership decides the id
    check_plan(fleet, plan, params)


RUNTIME = {"boto3", "urllib3"}


def test_strategies_and_the_default() -> None:
    assert sorted(STRATEGIES) == [
        "expected-time",
        "nixery",
        "per-package",
        "popularity-topk",
        "single",
    ]
    assert DEFAULT_STRATEGY == "expected-time"


def test_expected_time_keeps_canonical_layers_when_they_fit() -> None:
    plan = make_plan(small_fleet(), PlanParams(max_layers=5))
    b = [plan.layers[lid] for lid in plan.functions["b"]]
    assert sorted(b) == [("p0==1",), ("p7==1",)]  # p0 is used by both: its own layer
    assert len(plan.functions["a"]) <= 5


def test_canonical_layers_come_out_the_same_across_projects() -> None:
    numpy = package("numpy==1.26.0", 30_000_000, 99)
    one = Fleet(
        packages={p.id: p for p in (numpy, package("a==1"), package("b==1"))},
        functions={
            "x": FunctionNeed(pins=("a==1", "numpy==1.26.0")),
            "y": FunctionNeed(pins=("b==1", "numpy==1.26.0")),
        },
    )
    two = Fleet(
        packages={p.id: p for p in (numpy, package("c==1"))},
        functions={
            "z": FunctionNeed(pins=("c==1", "numpy==1.26.0")),
            "w": FunctionNeed(pins=("numpy==1.26.0",)),
        },
    )
    shared = layer_id(["numpy==1.26.0"])
    assert shared in make_plan(one, PlanParams()).layers
    assert shared in make_plan(two, PlanParams()).layers


def test_over_fetch_only_onto_a_hotter_layer_and_never_a_shadowing_one() -> None:
    packages = {p.id: p for p in (package(f"s{i}==1", 2_000_000) for i in range(4))}
    packages.update({p.id: p for p in (package(f"x{i}==1", 10_000) for i in range(4))})
    packages["s3==2"] = package("s3==2", 2_000_000)
    hot = FunctionNeed(pins=("s0==1", "s1==1", "s2==1", "s3==1", "x0==1"), weight=50.0)
    rare = FunctionNeed(pins=("s0==1", "s1==1", "s2==1", "x1==1", "x2==1", "x3==1"), weight=0.1)
    clash = FunctionNeed(pins=("s0==1", "s1==1", "s3==2", "x1==1", "x2==1", "x3==1"), weight=0.1)
    fleet = Fleet(packages=packages, functions={"hot": hot, "rare": rare, "clash": clash})
    plan = make_plan(fleet, PlanParams(max_layers=2, cache_bytes=5_000_000, horizon=50))
    for name, function in fleet.functions.items():
        provided = {p for lid in plan.functions[name] for p in plan.layers[lid]}
        names = [fleet.packages[p].name for p in provided]
        assert len(names) == len(set(names)), name
        assert provided >= set(function.pins)


def test_stability_keeps_every_layer_when_a_light_function_is_added() -> None:
    fleet = small_fleet()
    params = PlanParams(max_layers=3)
    old = make_plan(fleet, params)
    grown = Fleet(
        packages=fleet.packages,
        functions={**fleet.functions, "c": FunctionNeed(pins=("p1==1", "p7==1"), weight=0.01)},
    )
    new = make_plan(grown, params, previous=old)
    for name in fleet.functions:
        assert new.functions[name] == old.functions[name]
    assert set(old.layers) <= set(new.layers)


def test_runtime_provided_exclude_leaves_the_sdk_out_and_warns() -> None:
    packages = {
        p.id: p for p in (package("boto3==1.20.0"), package("urllib3==2.0.4"), package("a==1"))
    }
    fleet = Fleet(
        packages=packages,
        functions={"f": FunctionNeed(pins=("a==1", "boto3==1.20.0", "urllib3==2.0.4"))},
    )
    excluded = make_plan(fleet, PlanParams(runtime_provided="exclude"))
    assert [excluded.layers[lid] for lid in excluded.functions["f"]] == [("a==1",)]
    assert excluded.warnings == (
        "function f pins boto3==1.20.0 but runtime-provided = exclude gives it the "
        "python3.12 runtime's boto3 1.34.145",
        "function f pins urllib3==2.0.4 but runtime-provided = exclude gives it the "
        "python3.12 runtime's urllib3 1.26.19",
    )
    bundled = make_plan(fleet, PlanParams(runtime_provided="bundle"))
    assert len(bundled.warnings) == 2
    assert "shadowing the python3.12 runtime's urllib3 1.26.19" in bundled.warnings[1]
    with pytest.raises(ConfigError, match="runtime-provided = 'maybe' is not a policy"):
        make_plan(fleet, PlanParams(runtime_provided="maybe"))


def test_check_plan_lets_only_per_package_exceed_max_layers() -> None:
    fleet = small_fleet()
    floor = make_plan(fleet, PlanParams(max_layers=2), "per-package")
    assert len(floor.functions["a"]) == 7
    relabelled = type(floor)(strategy="x", layers=floor.layers, functions=floor.functions)
    with pytest.raises(PlanError, match="uses 7 layers, over the limit of 2"):
        check_plan(fleet, relabelled, PlanParams(max_layers=2))


def test_report_has_expected_figures_per_function_and_layer() -> None:
    fleet = small_fleet()
    params = PlanParams(max_layers=3)
    report = plan_to_json(make_plan(fleet, params), fleet, params)
    stats = report["function_stats"]["b"]
    assert set(stats) >= {"expected_ms", "expected_bytes", "cold_ms", "bytes", "layers"}
    assert all(0.0 <= s["q"] <= 1.0 for s in report["layer_stats"].values())
    text = "\n".join(plan_text(report))
    assert "strategy expected-time, at most 3 layers per function" in text
    assert "expected per cold start:" in text


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/fleet-dev.json")
def test_dev_fleet_plans_in_the_design_schema() -> None:
    fleet = load_fleet(SHARED)
    assert len(fleet.functions) == 299
    params = PlanParams()
    report = plan_to_json(make_plan(fleet, params), fleet, params)
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


def stack_fleet(clash: bool) -> Fleet:
    """Six functions share the small hot wheels h0, h1; three of them also need h2 (or,
    with ``clash``, one needs another version of h2); each has a big private wheel."""
    hot = [package(p, 1_000_000) for p in ("h0==1", "h1==1", "h2==1", "h2==2")]
    own = [package(f"p{i}==1", 30_000_000) for i in range(6)]
    functions = {}
    for i in range(6):
        pins = ["h0==1", "h1==1", f"p{i}==1"]
        if i < 3:
            pins.append("h2==1")
        if clash and i == 5:
            pins.append("h2==2")
        functions[f"f{i}"] = FunctionNeed(pins=tuple(sorted(pins)), weight=1.0 + i)
    return Fleet(packages={p.id: p for p in hot + own}, functions=functions)


def test_stacks_over_fetch_a_shared_layer_only_where_nothing_shadows() -> None:
    params = PlanParams(max_layers=2, cache_bytes=120_000_000, horizon=50)
    for clash in (False, True):
        fleet = stack_fleet(clash)
        view = plan_module.cache_view(fleet, params)
        atoms = plan_module._atom_groups(view.needs)
        book = plan_module._greedy(fleet, params, view, atoms, stacks=True)
        plan = plan_module._assemble("expected-time", book.groups)
        check_plan(fleet, plan, params)
        f4 = {p for lid in plan.functions["f4"] for p in plan.layers[lid]}
        # f4 needs h0, h1 only; it rides the shared stack with h2 unless f5's h2==2 forbids it
        assert ("h2==1" in f4) is (not clash)


@settings(max_examples=100, deadline=None)
@given(fleet=fleets(), max_layers=st.integers(1, 3), priced=st.booleans())
def test_step_search_kept_between_steps_equals_a_fresh_one(
    fleet: Fleet, max_layers: int, priced: bool
) -> None:
    params = PlanParams(max_layers=max_layers, cache_bytes=10**6 if priced else 10**9)
    view = plan_module.cache_view(fleet, params)
    book = plan_module._Book(fleet, params, view)
    for name, groups in sorted(plan_module._atom_groups(view.needs).items()):
        book.assign(name, groups)
    for name in sorted(fleet.functions, key=lambda n: (-view.share[n], n)):
        steps = plan_module._Steps(book, name)
        while len(book.groups[name]) > max_layers:
            step = steps.best()
            assert step == plan_module._Steps(book, name).best()
            steps.take(step[1], step[2])


@settings(max_examples=100, deadline=None)
@given(fleet=fleets(), size_limit=st.integers(10**6, 6 * 10**6))
def test_riders_check_equals_the_over_fetch_rule_for_each_function(
    fleet: Fleet, size_limit: int
) -> None:
    params = PlanParams(size_limit=size_limit)
    view = plan_module.cache_view(fleet, params)
    book = plan_module._Book(fleet, params, view)
    for name, groups in sorted(plan_module._atom_groups(view.needs).items()):
        book.assign(name, groups)
    stacks = plan_module._Stacks(book)
    for x in list(stacks.users):
        for y in list(stacks.users):
            riders = stacks.users[x] - stacks.users[y]
            assert stacks.riders.may_ride(riders, y) == all(
                over_fetch_rule(fleet, params, name, y) for name in riders
            )


def over_fetch_rule(fleet: Fleet, params: PlanParams, name: str, extra: frozenset[str]) -> bool:
    held = set(fleet.functions[name].pins)
    if {fleet.packages[p].name for p in extra} & (
        {"boto3", "urllib3"} | {fleet.packages[p].name for p in held}
    ):
        return False
    return sum(fleet.packages[p].unpacked_size for p in held | extra) <= params.size_limit


def test_a_previous_plan_with_overlapping_layers_is_replanned_within_the_limits() -> None:
    fleet = small_fleet()
    params = PlanParams(max_layers=2)
    groups = {
        "a": [[f"p{i}==1", f"p{i + 1}==1"] for i in range(6)],
        "b": [["p0==1"], ["p7==1"]],
    }
    previous = plan_module.plan_from_groups("expected-time", groups)
    check_plan(fleet, make_plan(fleet, params, previous=previous), params)

"""The default strategy: canonical layers, over-fetch, stacks, stability."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from planfixtures import fleets, package, small_fleet

from pip_lambda_pack.planner import (
    Fleet,
    FunctionNeed,
    PlanParams,
    check_plan,
    layer_id,
    make_plan,
    plan_from_groups,
)
from pip_lambda_pack.planner import expected_time as expected_time
from pip_lambda_pack.planner.cost import cache_view


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


def test_a_function_whose_dependencies_became_empty_drops_its_previous_layers() -> None:
    fleet = small_fleet()
    params = PlanParams(max_layers=3)
    old = make_plan(fleet, params)
    assert old.functions["b"]
    emptied = Fleet(
        packages=fleet.packages, functions={**fleet.functions, "b": FunctionNeed(pins=())}
    )
    new = make_plan(emptied, params, previous=old)
    assert new.functions["b"] == ()
    assert new.functions["a"] == old.functions["a"]


def test_a_function_that_dropped_one_layers_wheels_drops_that_layer() -> None:
    fleet = small_fleet()
    params = PlanParams(max_layers=3)
    old = make_plan(fleet, params)
    fewer = Fleet(
        packages=fleet.packages,
        functions={**fleet.functions, "b": FunctionNeed(pins=("p0==1",), weight=3.0)},
    )
    new = make_plan(fewer, params, previous=old)
    assert [new.layers[lid] for lid in new.functions["b"]] == [("p0==1",)]


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
        view = cache_view(fleet, params)
        atoms = expected_time._atom_groups(view.needs)
        state = expected_time._greedy(fleet, params, view, atoms, stacks=True)
        plan = plan_from_groups("expected-time", state.groups)
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
    view = cache_view(fleet, params)
    state = expected_time._PlanState(fleet, params, view)
    for name, groups in sorted(expected_time._atom_groups(view.needs).items()):
        state.assign(name, groups)
    for name in sorted(fleet.functions, key=lambda n: (-view.share[n], n)):
        steps = expected_time._FunctionSteps(state, name)
        while len(state.groups[name]) > max_layers:
            step = steps.best()
            assert step == expected_time._FunctionSteps(state, name).best()
            steps.take(step[1], step[2])


@settings(max_examples=100, deadline=None)
@given(fleet=fleets(), size_limit=st.integers(10**6, 6 * 10**6))
def test_stack_over_fetch_check_equals_the_over_fetch_rule_for_each_function(
    fleet: Fleet, size_limit: int
) -> None:
    params = PlanParams(size_limit=size_limit)
    view = cache_view(fleet, params)
    state = expected_time._PlanState(fleet, params, view)
    for name, groups in sorted(expected_time._atom_groups(view.needs).items()):
        state.assign(name, groups)
    stacks = expected_time._StackMerges(state)
    for x in list(stacks.users):
        for y in list(stacks.users):
            riders = stacks.users[x] - stacks.users[y]
            assert stacks.over_fetch.may_ride(riders, y) == all(
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
    previous = plan_from_groups("expected-time", groups)
    check_plan(fleet, make_plan(fleet, params, previous=previous), params)

"""The local search: global merges of two layers for all their users, within the rules."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planfixtures import fleets, package

from pip_lambda_pack.planner import Fleet, FunctionNeed, PlanParams, check_plan, make_plan
from pip_lambda_pack.planner.cost import cache_view, fleet_expected
from pip_lambda_pack.planner.local_search import merge_layers
from pip_lambda_pack.planning import load_fleet

MB = 1_000_000


def shared_fleet(clash: bool) -> Fleet:
    """Two equally hot functions that need the same two big wheels; the second also needs a
    small one (and with ``clash`` the first another version of it)."""
    packages = {p.id: p for p in (package("a==1", 20 * MB), package("b==1", 20 * MB))}
    packages.update({p.id: p for p in (package("c==1", 1000), package("c==2", 1000))})
    first = ("a==1", "b==1", "c==2") if clash else ("a==1", "b==1")
    functions = {
        "f1": FunctionNeed(pins=first),
        "f2": FunctionNeed(pins=("a==1", "b==1", "c==1")),
    }
    return Fleet(packages=packages, functions=functions)


def layers_of(fleet: Fleet, params: PlanParams) -> dict[str, tuple[tuple[str, ...], ...]]:
    plan = make_plan(fleet, params)
    check_plan(fleet, plan, params)
    return {name: tuple(plan.layers[lid] for lid in ids) for name, ids in plan.functions.items()}


def searched(fleet: Fleet, params: PlanParams, start: dict[str, list[set[str]]]) -> object:
    view = cache_view(fleet, params)
    groups = {name: [frozenset(g) for g in layers] for name, layers in start.items()}
    found = merge_layers(fleet, params, view, groups, effort=1.0)
    return {name: [sorted(g) for g in layers] for name, layers in found.items()}


def test_two_functions_share_one_layer_when_over_fetching_a_small_wheel_pays() -> None:
    params = PlanParams(max_layers=1, horizon=50, cache_bytes=300 * MB)
    start = {"f1": [{"a==1", "b==1"}], "f2": [{"a==1", "b==1", "c==1"}]}
    assert searched(shared_fleet(clash=False), params, start) == {
        "f1": [["a==1", "b==1", "c==1"]],
        "f2": [["a==1", "b==1", "c==1"]],
    }
    clash = {"f1": [{"a==1", "b==1", "c==2"}], "f2": [{"a==1", "b==1", "c==1"}]}
    assert searched(shared_fleet(clash=True), params, clash) == {
        "f1": [["a==1", "b==1", "c==2"]],  # never two versions of c
        "f2": [["a==1", "b==1", "c==1"]],
    }


def test_no_merged_layer_outgrows_its_share_of_the_cache() -> None:
    params = PlanParams(max_layers=1, horizon=50, cache_bytes=100 * MB)  # 15 MB at most
    start = {"f1": [{"a==1", "b==1"}], "f2": [{"a==1", "b==1", "c==1"}]}
    assert searched(shared_fleet(clash=False), params, start) == {
        "f1": [["a==1", "b==1"]],
        "f2": [["a==1", "b==1", "c==1"]],
    }


def test_a_merge_never_gives_a_function_two_versions_of_a_package() -> None:
    params = PlanParams(max_layers=1, horizon=50, cache_bytes=300 * MB)
    assert layers_of(shared_fleet(clash=True), params) == {
        "f1": (("a==1", "b==1", "c==2"),),
        "f2": (("a==1", "b==1", "c==1"),),
    }


def test_the_search_is_deterministic() -> None:
    fleet = shared_fleet(clash=False)
    params = PlanParams(max_layers=1, horizon=50, cache_bytes=300 * MB)
    assert make_plan(fleet, params) == make_plan(fleet, params)


@settings(max_examples=60, deadline=None)
@given(fleet=fleets(), max_layers=st.integers(1, 4))
def test_the_search_never_leaves_the_model_worse_than_the_greedy_plan(
    fleet: Fleet, max_layers: int
) -> None:
    params = PlanParams(max_layers=max_layers, cache_bytes=2 * 10**6)
    searched = fleet_expected(fleet, make_plan(fleet, params), params).seconds
    greedy_params = dataclasses.replace(params, plan_effort=0)
    greedy = fleet_expected(fleet, make_plan(fleet, greedy_params), params).seconds
    assert searched <= greedy * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(fleet=fleets(), max_layers=st.integers(1, 4), data=st.data())
def test_a_searched_replan_with_previous_keeps_every_constraint(
    fleet: Fleet, max_layers: int, data: st.DataObject
) -> None:
    params = PlanParams(max_layers=max_layers, cache_bytes=2 * 10**6)
    added = data.draw(st.sampled_from(sorted(fleet.functions)))
    rest = {n: f for n, f in fleet.functions.items() if n != added}
    if not rest:
        return
    old = make_plan(dataclasses.replace(fleet, functions=rest), params)
    new = make_plan(fleet, params, previous=old)  # make_plan checks every constraint
    assert set(new.functions) == set(fleet.functions)


def test_a_rare_function_lists_the_hot_layer_holding_its_big_wheel() -> None:
    """``rare`` had a private copy of ``a``; the merge cannot help (``hot`` holds another
    version of x), so ``rare`` lists the hot layer (over-fetching the small b) and keeps only
    x private: a worker no longer fetches a twice."""
    wheels = [package("a==1", 20 * MB), package("b==1", 2 * MB)]
    wheels += [package("x==1", 5 * MB), package("x==2", 5 * MB)]
    fleet = Fleet(
        packages={p.id: p for p in wheels},
        functions={
            "hot": FunctionNeed(pins=("a==1", "b==1", "x==2"), weight=50.0),
            "rare": FunctionNeed(pins=("a==1", "x==1"), weight=1.0),
        },
    )
    params = PlanParams(max_layers=2, horizon=50, cache_bytes=300 * MB)
    start = {"hot": [{"a==1", "b==1"}, {"x==2"}], "rare": [{"a==1", "x==1"}]}
    assert searched(fleet, params, start) == {
        "hot": [["a==1", "b==1"], ["x==2"]],
        "rare": [["a==1", "b==1"], ["x==1"]],
    }
    one = dataclasses.replace(params, max_layers=1)  # no slot for the hot layer beside x
    assert searched(fleet, one, {"hot": [{"a==1", "b==1", "x==2"}], "rare": [start["rare"][0]]})[
        "rare"
    ] == [["a==1", "x==1"]]


def test_a_wheel_every_user_gets_from_another_layer_too_is_taken_out() -> None:
    """f listed b in two layers; merging them is refused (g would get a second a), so b
    leaves the layer only f lists."""
    wheels = [package("a==1", MB), package("a==2", MB), package("b==1", 5 * MB)]
    fleet = Fleet(
        packages={p.id: p for p in [*wheels, package("c==1", MB)]},
        functions={
            "f": FunctionNeed(pins=("a==1", "b==1", "c==1")),
            "g": FunctionNeed(pins=("a==2", "b==1", "c==1")),
        },
    )
    params = PlanParams(max_layers=2, horizon=50, cache_bytes=300 * MB)
    start = {"f": [{"a==1", "b==1"}, {"b==1", "c==1"}], "g": [{"b==1", "c==1"}, {"a==2"}]}
    assert searched(fleet, params, start) == {
        "f": [["a==1"], ["b==1", "c==1"]],
        "g": [["b==1", "c==1"], ["a==2"]],  # untouched
    }


PLAN_DIGEST = """
import hashlib, json, sys
from pathlib import Path
from pip_lambda_pack.planning import load_fleet
from pip_lambda_pack.planner import PlanParams, make_plan
plan = make_plan(load_fleet(Path(sys.argv[1])), PlanParams(cache_bytes=200_000_000))
print(hashlib.sha256(json.dumps([plan.layers, plan.functions]).encode()).hexdigest())
"""


def test_the_searched_plan_does_not_depend_on_the_hash_seed() -> None:
    """Sets of pins and functions iterate in another order under another PYTHONHASHSEED;
    no plan may depend on it (rates are summed exactly, every choice breaks ties by pins)."""
    fleet = Path(__file__).resolve().parents[2] / "bench" / "fleets" / "gen-n200-s37-z2.0.json"
    digests = {
        subprocess.run(
            [sys.executable, "-c", PLAN_DIGEST, str(fleet)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


@pytest.mark.slow
def test_adding_the_hottest_function_keeps_the_deployed_layers() -> None:
    """gen-n400's fn00068 (12 % of cold starts, numpy and click) added to the rest: lighter
    functions may not leave the deployed numpy layer for its new one, so the kept plan stays
    within the stability gain of a fresh one and the deployed layers stay."""
    fleet = load_fleet(Path(__file__).resolve().parents[2] / "bench/fleets/gen-n400-s61-z1.3.json")
    rest = {n: f for n, f in fleet.functions.items() if n != "fn00068"}
    old = make_plan(dataclasses.replace(fleet, functions=rest), PlanParams())
    new = make_plan(fleet, PlanParams(), previous=old)
    assert set(old.layers) <= set(new.layers)

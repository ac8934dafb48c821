"""The baseline strategies."""

from __future__ import annotations

from planfixtures import small_fleet

from pip_lambda_pack.planner import (
    PlanParams,
    layer_id,
    make_plan,
)
from pip_lambda_pack.planner import expected_time as expected_time


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

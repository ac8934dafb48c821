"""The constraints every plan keeps, as check_fleet and check_plan enforce them."""

from __future__ import annotations

import pytest
from planfixtures import small_fleet

from pip_lambda_pack.errors import PlanError
from pip_lambda_pack.planner import (
    PlanParams,
    check_plan,
    make_plan,
)
from pip_lambda_pack.planner import expected_time as expected_time


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
        "function a needs 5.6 kB unzipped, 600 B over the 5.0 kB (5,000 bytes) limit; "
        "largest: p6==1 (1.4 kB), p5==1 (1.2 kB), p4==1 (1.0 kB)"
    )


def test_check_plan_lets_only_per_package_exceed_max_layers() -> None:
    fleet = small_fleet()
    floor = make_plan(fleet, PlanParams(max_layers=2), "per-package")
    assert len(floor.functions["a"]) == 7
    relabelled = type(floor)(strategy="x", layers=floor.layers, functions=floor.functions)
    with pytest.raises(PlanError, match="uses 7 layers, over the limit of 2"):
        check_plan(fleet, relabelled, PlanParams(max_layers=2))

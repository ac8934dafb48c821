"""Per-function limits: a shim-delivered function is planned within its /tmp, not Lambda's."""

from __future__ import annotations

import pytest
from planfixtures import small_fleet

from pip_lambda_pack.errors import PlanError
from pip_lambda_pack.planner import PlanParams, check_plan, make_plan

STRATEGIES = ("expected-time", "nixery", "popularity-topk", "single")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_function_with_its_own_limits_may_pass_the_projects(strategy: str) -> None:
    fleet = small_fleet()  # a needs 5.6 kB over 7 wheels, b 1.8 kB over 2
    with pytest.raises(PlanError, match="function a needs 5.6 kB unzipped, 600 B over the 5.0 kB"):
        make_plan(fleet, PlanParams(size_limit=5000, max_layers=2), strategy)
    params = PlanParams(size_limit=5000, max_layers=2, limits={"a": (10, 100_000)})
    plan = make_plan(fleet, params, strategy)
    check_plan(fleet, plan, params)
    assert len(plan.functions["b"]) <= 2
    assert len(plan.functions["a"]) <= 10
    if strategy == "popularity-topk":  # one layer per wheel while they fit in its own count
        assert len(plan.functions["a"]) == 7


def test_own_limits_are_checked_too() -> None:
    params = PlanParams(size_limit=10**9, limits={"a": (10, 5000)})
    with pytest.raises(PlanError) as info:
        make_plan(small_fleet(), params, "expected-time")
    assert info.value.message.startswith("function a needs 5.6 kB unzipped, 600 B over the 5.0 kB")
    assert 'delivery = "shim"' in info.value.tip
    per_pin = make_plan(small_fleet(), PlanParams(max_layers=10), "popularity-topk")
    with pytest.raises(PlanError, match="function a uses 7 layers, over the limit of 6"):
        check_plan(small_fleet(), per_pin, PlanParams(max_layers=10, limits={"a": (6, 10**9)}))

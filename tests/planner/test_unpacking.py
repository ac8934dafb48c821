"""What the model counts beyond the transfer: unpacking (``extract-mb-s``), a worker's life
(``worker-cold-starts``), and which rates fill a worker's cache in a finished plan's figures."""

from __future__ import annotations

import dataclasses

import pytest

from pip_lambda_pack.planner import Fleet, FunctionNeed, Package, PlanParams, make_plan
from pip_lambda_pack.planner.cost import fleet_expected, hit_rates, priced
from pip_lambda_pack.planner.report import function_figures

MB = 1_000_000


def wheel(pid: str, size: int, unpacked: int, downloads: int = 0) -> Package:
    return Package(
        id=pid, name=pid.split("==")[0], size=size, unpacked_size=unpacked, downloads=downloads
    )


def fleet() -> Fleet:
    """``x`` is small zipped but large unpacked (data files, say); ``a`` uses it and ``core``,
    ``b`` only ``core``, and ``a`` may have one layer."""
    packages = {
        "core==1": wheel("core==1", 10 * MB, 20 * MB),
        "x==1": wheel("x==1", 1 * MB, 60 * MB),
    }
    functions = {
        "a": FunctionNeed(pins=("core==1", "x==1"), weight=1.0),
        "b": FunctionNeed(pins=("core==1",), weight=1.0),
    }
    return Fleet(packages=packages, functions=functions)


def test_unpacking_left_out_changes_nothing() -> None:
    params = PlanParams()
    assert priced(fleet(), params) == (fleet(), params)


def test_an_empty_cache_cold_start_pays_the_transfer_and_the_unpacking() -> None:
    params = PlanParams(max_layers=1, latency_s=0.01, bandwidth_bps=100 * MB, extract_bps=40 * MB)
    plan = make_plan(fleet(), params)
    figures = function_figures(fleet(), plan, params, "a")
    # one layer of core and x: 11 MB at 100 MB/s, 80 MB unpacked at 40 MB/s, one latency
    assert figures["cold_ms"] == pytest.approx(10 + 110 + 2000, rel=1e-6)
    free = dataclasses.replace(params, extract_bps=0.0)
    assert function_figures(fleet(), plan, free, "a")["cold_ms"] == pytest.approx(120, rel=1e-6)


def test_a_cache_of_unpacked_bytes_is_scaled_into_priced_bytes() -> None:
    params = PlanParams(bandwidth_bps=100 * MB, extract_bps=50 * MB, cache_bytes=40 * MB)
    cost_fleet, cost_params = priced(fleet(), params)
    # each wheel costs size + 2 x unpacked bytes of transfer
    assert cost_fleet.packages["x==1"].size == 121 * MB
    assert cost_fleet.packages["core==1"].size == 50 * MB
    # the cache holds 40 MB unpacked of the 80 MB unpacked, so half of the 171 priced
    assert cost_params.cache_bytes == pytest.approx(171 * MB / 2, rel=1e-9)
    assert cost_params.extract_bps == 0.0


def test_unpacking_priced_keeps_a_wheel_that_unpacks_large_out_of_a_lighter_function() -> None:
    """With one layer each, ``b`` either rides a's layer (one copy of core cached, x
    fetched and unpacked for nothing) or gets core alone (a second copy of core). Zipped,
    x costs 1 MB and riding wins; unpacked it costs 60 MB, and b gets core alone."""
    base = PlanParams(max_layers=1, cache_bytes=20 * MB, horizon=50)
    free = make_plan(fleet(), base)
    assert free.functions["a"] == free.functions["b"]
    unpacking = make_plan(fleet(), dataclasses.replace(base, extract_bps=50 * MB))
    assert unpacking.functions["a"] != unpacking.functions["b"]
    assert unpacking.layers[unpacking.functions["b"][0]] == ("core==1",)
    # and the model's expected time, unpacking counted, agrees that this was the better plan
    priced_params = dataclasses.replace(base, extract_bps=50 * MB)
    assert (
        fleet_expected(fleet(), unpacking, priced_params).seconds
        < fleet_expected(fleet(), free, priced_params).seconds
    )


def test_a_finished_plans_figures_leave_other_tenants_out_of_the_cache() -> None:
    """The PyPI prior is the planner's tie-break, not traffic a worker sees: q of a plan
    does not depend on it, while a store's observed use (the fleet's own) still counts."""
    popular = dataclasses.replace(fleet(), top_downloads=10)
    packages = {
        pid: dataclasses.replace(pkg, downloads=10) for pid, pkg in popular.packages.items()
    }
    popular = dataclasses.replace(popular, packages=packages)
    params = PlanParams(max_layers=1, cache_bytes=15 * MB, horizon=100)
    plan = make_plan(popular, params)
    no_prior = dataclasses.replace(params, prior_weight=0.0)
    assert hit_rates(popular, plan, params) == hit_rates(popular, plan, no_prior)
    seen = dataclasses.replace(params, usage={"core==1": 5.0, "x==1": 5.0})
    lid = plan.functions["a"][0]
    assert hit_rates(popular, plan, seen)[lid] > hit_rates(popular, plan, params)[lid]


def test_a_shorter_worker_life_makes_each_first_fetch_count_for_more() -> None:
    params = PlanParams(max_layers=1)
    plan = make_plan(fleet(), params)
    long = fleet_expected(fleet(), plan, params).bytes
    short = fleet_expected(fleet(), plan, dataclasses.replace(params, horizon=20)).bytes
    assert short > long * 10


def test_the_new_settings_leave_older_locks_digests_alone_until_set() -> None:
    from pip_lambda_pack.config import planner_options

    unset = planner_options({}, "here").digest_form()
    assert "extract_mb_s" not in unset and "worker_cold_starts" not in unset
    assert "cache_mb" in unset  # the older ones are digested unset, as before
    assert planner_options({"extract-mb-s": 40}, "here").digest_form()["extract_mb_s"] == 40.0

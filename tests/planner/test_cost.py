"""The cost model: Che's characteristic time, hit probabilities and expected fetches."""

from __future__ import annotations

import math

import pytest

from pip_lambda_pack.planner.cost import (
    CostModel,
    cache_price,
    characteristic_time,
    empty_cache_fetch,
    expected_fetch,
    hit_probability,
    layer_miss_cost,
    miss_probability,
    occupancy,
)

MB = 1_000_000


def test_a_cache_that_holds_everything_lives_for_the_horizon() -> None:
    model = CostModel(cache_bytes=100 * MB, horizon=400)
    assert characteristic_time([0.5, 0.5], [10 * MB, 10 * MB], model) == 400


def test_che_time_fills_the_cache_exactly() -> None:
    model = CostModel(cache_bytes=30 * MB, horizon=10_000)
    rates, sizes = [0.5, 0.1, 0.01, 0.001], [10 * MB] * 4
    t = characteristic_time(rates, sizes, model)
    occupancy = sum(s * (1 - math.exp(-r * t)) for r, s in zip(rates, sizes, strict=True))
    assert occupancy == pytest.approx(30 * MB, rel=1e-6)


def test_hit_probability_grows_with_rate() -> None:
    assert hit_probability(0.0, 100) == 0.0
    assert hit_probability(0.01, 100) == pytest.approx(1 - math.exp(-1))
    assert hit_probability(1.0, 100) == pytest.approx(1.0)


def test_parallel_fetches_pay_one_latency_when_anything_misses() -> None:
    model = CostModel(latency_s=0.030, bandwidth_bps=100 * MB, parallel=True)
    fetch = expected_fetch([(10 * MB, 0.0), (5 * MB, 1.0)], model)
    assert fetch.bytes == 10 * MB
    assert fetch.ms == pytest.approx(30 + 100)
    assert expected_fetch([(10 * MB, 1.0)], model).ms == 0.0


def test_serial_fetches_pay_a_latency_per_missing_layer() -> None:
    model = CostModel(latency_s=0.030, bandwidth_bps=100 * MB, parallel=False)
    fetch = expected_fetch([(10 * MB, 0.5), (10 * MB, 0.5)], model)
    assert fetch.bytes == 10 * MB
    assert fetch.ms == pytest.approx(2 * 0.5 * 30 + 100)
    assert empty_cache_fetch([MB, MB], model).ms == pytest.approx(60 + 20)


def test_merging_a_popular_layer_with_a_rare_one_costs_more_than_keeping_them_apart() -> None:
    model = CostModel()
    t = 100.0
    apart = layer_miss_cost(0.5, 50 * MB, t, model) + layer_miss_cost(0.01, MB, t, model)
    # merged: the rare function now needs the popular bytes too, the popular layer's rate
    # is unchanged, but the merged layer is no longer the canonical one others warm
    merged = layer_miss_cost(0.5, 51 * MB, t, model) + layer_miss_cost(0.01, 51 * MB, t, model)
    assert apart < merged


def test_a_use_misses_when_nothing_used_it_within_the_last_min_t_t_starts() -> None:
    # r = 0.005, T = 100, a lifetime of 400: a use at time t misses with probability
    # exp(-r min(t, T)); the miss probability is its mean over the lifetime
    steps = 40_000
    mean = sum(math.exp(-0.005 * min((i + 0.5) * 400 / steps, 100)) for i in range(steps)) / steps
    assert miss_probability(0.005, 100, 400) == pytest.approx(mean, rel=1e-6)
    closed = ((1 - math.exp(-0.5)) + 0.005 * 300 * math.exp(-0.5)) / 2.0
    assert miss_probability(0.005, 100, 400) == pytest.approx(closed)
    assert miss_probability(0.005, 400, 400) == pytest.approx((1 - math.exp(-2.0)) / 2.0)
    assert miss_probability(0.005, 1e9, 400) == miss_probability(0.005, 400, 400)  # T <= H
    assert miss_probability(0.0, 100, 400) == 1.0
    assert miss_probability(10.0, 400, 400) == pytest.approx(1 / 4000, rel=1e-3)


def test_cache_space_is_free_until_the_cache_fills() -> None:
    model = CostModel(cache_bytes=30 * MB, horizon=400)
    rates, sizes = [0.5, 0.1, 0.01, 0.001], [10 * MB] * 4
    assert cache_price(rates, sizes, 400.0, model) == 0.0
    t = characteristic_time(rates, sizes, model)
    assert t < 400
    assert cache_price(rates, sizes, t, model) > 0.0
    assert occupancy(0.1, 10 * MB, t) == pytest.approx(10 * MB * (1 - math.exp(-0.1 * t)))

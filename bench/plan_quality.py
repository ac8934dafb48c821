"""Plan quality: replay a trace of cold starts through per-worker LRU layer caches.

For every fleet in bench/fleets/ and every strategy at K = 5 it prints bytes and
milliseconds per cold start, stored bytes, the ratio to the per-package floor and the
model's own prediction of bytes per cold start (to see where it mis-ranks); then the
stability of the default planner when one function is added, its gap to an exhaustive
search on small instances, and how planning time grows with fleet size.

    .venv/bin/python bench/plan_quality.py            # everything, a few minutes on 2 cores
    .venv/bin/python bench/plan_quality.py --quick    # fewer cold starts, no 5,000 fleet
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fleetgen import generate

from pip_lambda_pack.pipeline import load_fleet
from pip_lambda_pack.planner import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    UNBOUNDED,
    Fleet,
    FunctionNeed,
    LayerPlan,
    Package,
    PlanParams,
    make_plan,
    plan_from_groups,
)
from pip_lambda_pack.planner.cost import fleet_expected
from pip_lambda_pack.planner.fleet import fleet_from_data
from pip_lambda_pack.planner.model import layer_size
from pip_lambda_pack.popularity import pypi_downloads

FLEETS = Path(__file__).resolve().parent / "fleets"
MB = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """Replay settings (the issue's defaults)."""

    workers: int = 50
    cache_bytes: int = 500 * MB
    cold_starts: int = 20_000
    warmup: float = 0.2
    latency_s: float = 0.030
    bandwidth_bps: float = 100 * MB
    seed: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    bytes: float  # per measured cold start
    ms: float
    stored: int


def draws(fleet: Fleet, trace: Trace) -> list[tuple[str, int]]:
    """The trace: (function drawn by weight, random worker) per cold start."""
    rng = random.Random(trace.seed)
    names = sorted(fleet.functions)
    weights = [fleet.functions[n].weight for n in names]
    picked = rng.choices(names, weights=weights, k=trace.cold_starts)
    return [(name, rng.randrange(trace.workers)) for name in picked]


def replay(fleet: Fleet, plan: LayerPlan, trace: Trace, events: Sequence[tuple[str, int]]) -> Score:
    """Bytes and ms per cold start after warm-up; one latency per cold start that misses."""
    sizes = {lid: layer_size(fleet, plan, lid) for lid in plan.layers}
    caches: list[OrderedDict[str, int]] = [OrderedDict() for _ in range(trace.workers)]
    held = [0] * trace.workers
    start = int(len(events) * trace.warmup)
    total_bytes = total_s = 0.0
    for i, (name, worker) in enumerate(events):
        cache, missed = caches[worker], 0
        for lid in plan.functions[name]:
            if lid in cache:
                cache.move_to_end(lid)
            else:
                missed += sizes[lid]
                cache[lid] = sizes[lid]
                held[worker] += sizes[lid]
        while held[worker] > trace.cache_bytes and len(cache) > 1:
            held[worker] -= cache.popitem(last=False)[1]
        if i >= start:
            total_bytes += missed
            total_s += (trace.latency_s if missed else 0.0) + missed / trace.bandwidth_bps
    measured = len(events) - start
    return Score(
        bytes=total_bytes / measured, ms=total_s * 1000 / measured, stored=sum(sizes.values())
    )


def params_for(trace: Trace, k: int = 5) -> PlanParams:
    return PlanParams(
        max_layers=k,
        latency_s=trace.latency_s,
        bandwidth_bps=trace.bandwidth_bps,
        cache_bytes=trace.cache_bytes,
        horizon=trace.cold_starts / trace.workers,
    )


def fleet_table(name: str, fleet: Fleet, trace: Trace) -> list[str]:
    params = params_for(trace)
    events = draws(fleet, trace)
    scores: dict[str, Score] = {}
    seconds: dict[str, float] = {}
    model: dict[str, float] = {}
    for strategy in STRATEGIES:
        begin = time.perf_counter()
        plan = make_plan(fleet, params, strategy)
        seconds[strategy] = time.perf_counter() - begin
        scores[strategy] = replay(fleet, plan, trace, events)
        model[strategy] = fleet_expected(fleet, plan, params).bytes
    floor = scores["per-package"].bytes
    lines = [
        f"### {name}: {len(fleet.functions)} functions, {len(fleet.packages)} wheels",
        "",
        "| strategy | MB / cold start | ms / cold start | stored MB | × floor (bytes) "
        "| model MB | plan s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy, s in scores.items():
        ratio = s.bytes / floor if floor else float("nan")
        lines.append(
            f"| {strategy} | {s.bytes / MB:.3f} | {s.ms:.2f} | {s.stored / MB:.0f} | "
            f"{ratio:.2f} | {model[strategy] / MB:.3f} | {seconds[strategy]:.2f} |"
        )
    return [*lines, "", *verdict(scores, floor), ""]


def verdict(scores: Mapping[str, Score], floor: float) -> list[str]:
    ours = scores[DEFAULT_STRATEGY]
    topk = scores["popularity-topk"]
    bounded = {s: v for s, v in scores.items() if s not in UNBOUNDED}
    best_ms = min(bounded, key=lambda s: bounded[s].ms)
    return [
        f"- {DEFAULT_STRATEGY} / floor: {ours.bytes / floor:.2f} (goal ≤ 1.2) "
        + ("met" if ours.bytes <= 1.2 * floor else "NOT met"),
        f"- popularity-topk / {DEFAULT_STRATEGY}: {topk.bytes / ours.bytes:.2f} (goal ≥ 3.5) "
        + ("met" if topk.bytes >= 3.5 * ours.bytes else "NOT met"),
        f"- lowest ms among strategies within K: {best_ms} "
        + ("(met)" if best_ms == DEFAULT_STRATEGY else "(NOT met)"),
    ]


def stability(fleet: Fleet, trace: Trace, trials: int = 5) -> list[str]:
    """Share of the previous plan's layer bytes still layers after one function is added."""
    params = params_for(trace)
    rng = random.Random(1)
    kept_stable, kept_fresh = [], []
    for _ in range(trials):
        added = rng.choice(sorted(fleet.functions))
        before = dataclasses.replace(
            fleet, functions={n: f for n, f in fleet.functions.items() if n != added}
        )
        old = make_plan(before, params)
        kept_stable.append(_kept(fleet, old, make_plan(fleet, params, previous=old)))
        kept_fresh.append(_kept(fleet, old, make_plan(fleet, params)))
    return [
        f"- layer bytes kept when one function is added (mean of {trials}): "
        f"{_mean(kept_stable):.1%} with `previous`, {_mean(kept_fresh):.1%} planning afresh "
        "(goal ≥ 90%)",
    ]


def _kept(fleet: Fleet, old: LayerPlan, new: LayerPlan) -> float:
    total = sum(layer_size(fleet, old, lid) for lid in old.layers)
    kept = sum(layer_size(fleet, old, lid) for lid in old.layers if lid in new.layers)
    return kept / total if total else 1.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def small_instance(seed: int) -> Fleet:
    """Eight wheels, three functions of four to six wheels each."""
    rng = random.Random(seed)
    packages = {
        f"w{i}==1": Package(
            id=f"w{i}==1", name=f"w{i}", size=rng.randint(1, 40) * MB, unpacked_size=1
        )
        for i in range(8)
    }
    functions = {
        f"f{j}": FunctionNeed(
            pins=tuple(sorted(rng.sample(sorted(packages), rng.randint(4, 6)))),
            weight=rng.choice([1.0, 2.0, 5.0, 20.0]),
        )
        for j in range(3)
    }
    return Fleet(packages=packages, functions=functions)


def partitions(items: Sequence[str], most: int) -> Iterator[list[list[str]]]:
    """Every set partition of ``items`` into at most ``most`` blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in partitions(rest, most):
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]
        if len(part) < most:
            yield [[first], *part]


def optimality(instances: int = 6) -> list[str]:
    """The model's cost of the planner against the best of every per-function partition."""
    params = PlanParams(max_layers=2, cache_bytes=60 * MB, horizon=50.0, prior_weight=0.0)
    gaps = []
    for seed in range(instances):
        fleet = small_instance(seed)
        ours = fleet_expected(fleet, make_plan(fleet, params), params).seconds
        names = sorted(fleet.functions)
        options = [list(partitions(fleet.functions[n].pins, 2)) for n in names]
        best = min(
            fleet_expected(
                fleet, plan_from_groups("x", dict(zip(names, combo, strict=True))), params
            ).seconds
            for combo in itertools.product(*options)
        )
        gaps.append(ours / best - 1.0)
    return [
        f"- {instances} instances (8 wheels, 3 functions, K = 2, 60 MB cache): model-cost gap "
        f"to exhaustive search: mean {_mean(gaps):.1%}, worst {max(gaps):.1%}",
    ]


def speed(sizes: Sequence[int]) -> list[str]:
    """Planning time of the default strategy on generated fleets (seed 5, s = 1.5); ms per
    function stays flat when the growth is linear."""
    lines = [
        "| functions | wheels | plan s (expected-time) | ms / function |",
        "|---:|---:|---:|---:|",
    ]
    for count in sizes:
        fleet = fleet_from_data(
            generate(count, seed=5, zipf=1.5), f"generated {count}", pypi_downloads()
        )
        begin = time.perf_counter()
        make_plan(fleet, PlanParams())
        seconds = time.perf_counter() - begin
        lines.append(
            f"| {count} | {len(fleet.packages)} | {seconds:.2f} | {seconds * 1000 / count:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 cold starts, small fleets")
    args = parser.parse_args(argv)
    trace = Trace(cold_starts=5000) if args.quick else Trace()
    out = ["## Planner", "", f"Trace: {trace}", ""]
    for path in sorted(FLEETS.glob("*.json")):
        fleet = load_fleet(path)
        out += fleet_table(path.stem, fleet, trace)
        out += stability(fleet, trace, trials=3 if args.quick else 5)
        out.append("")
        print("\n".join(out))
        out = []
    out += ["### Optimality (model cost, exhaustive search)", "", *optimality(), ""]
    sizes = [299, 1000] if args.quick else [299, 1000, 2000, 5000]
    out += ["### Planning time", "", *speed(sizes)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

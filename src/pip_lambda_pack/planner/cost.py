"""The cost model: how likely a layer is cached and what a cold start costs in time and bytes.

Pure arithmetic on numbers, then the same model applied to a fleet and a plan
(``cache_view``, ``fleet_expected``): what the strategies price and the reports print. See
``docs/planner.md`` for the model, its assumptions and where the defaults come from.

A worker keeps an LRU cache of ``cache_bytes``. Each of its cold starts needs a layer L with
probability ``r_L`` (the layer's *rate*: the summed cold-start share of the functions whose plan
uses L, plus a prior for other tenants). Che's approximation of an LRU cache gives one
characteristic time ``T`` (in cold starts of one worker) such that an object requested at rate
``r`` is cached with probability ``q = 1 - exp(-r T)``, where ``T`` solves
``sum_i s_i (1 - exp(-r_i T)) = cache_bytes`` over the fleet's wheels. ``T`` is capped at
``horizon``, the number of cold starts a worker lives for (caches start empty).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .model import MB, Fleet, LayerPlan, PlanParams, layer_size, layer_users, shares
from .runtime_provided import closures, is_provided


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """Transfer and cache figures. Defaults: see docs/planner.md, "Parameters"."""

    latency_s: float = 0.030  # per fetch: one S3/registry GET round trip
    bandwidth_bps: float = 100 * MB  # bytes per second into one worker
    cache_bytes: int = 500 * MB  # a worker's layer cache (Lambda's default /tmp is 512 MB)
    horizon: float = 400.0  # cold starts a worker's cache lives for
    parallel: bool = True  # fetches of one cold start overlap: one latency if anything misses
    prior_weight: float = 0.001  # rate the most downloaded PyPI project adds (other tenants)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch:
    """Expected cost of one cold start: seconds and bytes transferred."""

    seconds: float
    bytes: float

    @property
    def ms(self) -> float:
        return self.seconds * 1000.0


def characteristic_time(rates: Sequence[float], sizes: Sequence[int], model: CostModel) -> float:
    """Che's T for an LRU cache of ``model.cache_bytes``, capped at ``model.horizon``.

    ``rates[i]`` is the share of a worker's cold starts that need object i of ``sizes[i]``
    bytes. Solved by bisection on the monotone occupancy function.
    """
    if sum(sizes) <= model.cache_bytes:
        return model.horizon
    low, high = 0.0, model.horizon
    if _occupancy(rates, sizes, high) <= model.cache_bytes:
        return high
    for _ in range(60):
        mid = (low + high) / 2
        if _occupancy(rates, sizes, mid) > model.cache_bytes:
            high = mid
        else:
            low = mid
    return low


def _occupancy(rates: Sequence[float], sizes: Sequence[int], horizon: float) -> float:
    return sum(s * -math.expm1(-r * horizon) for r, s in zip(rates, sizes, strict=True))


def cache_price(
    rates: Sequence[float], sizes: Sequence[int], horizon: float, model: CostModel
) -> float:
    """Seconds per cold start that one more byte held in a full cache costs (0 if it never fills).

    A layer holds ``size (1 - exp(-rate T))`` bytes of the cache on average. Holding more
    (a merged or over-fetched layer is held whenever any of its users ran lately) shortens
    Che's T for every other layer; this is the first-order price of that, the fleet's
    cost change per unit of T over the occupancy change per unit of T.
    """
    if horizon >= model.horizon:
        return 0.0
    dcost = docc = 0.0
    for rate, size in zip(rates, sizes, strict=True):
        evicted = size * rate * math.exp(-rate * horizon)
        cold = miss_probability(rate, math.inf, model.horizon)
        dcost += rate * (1.0 - cold) * evicted
        docc += evicted
    return dcost / (docc * model.bandwidth_bps) if docc > 0 else 0.0


def occupancy(rate: float, size: int, horizon: float) -> float:
    """Bytes of the cache a layer of ``size`` needed at ``rate`` holds on average."""
    return size * -math.expm1(-rate * horizon)


def miss_probability(rate: float, horizon: float, lifetime: float) -> float:
    """1 - q: the chance a cold start needing an object of ``rate`` must fetch it.

    A worker lives ``lifetime`` cold starts from an empty cache; Che's approximation keeps
    an object while it was used within the last ``horizon`` (T) cold starts. A use at time
    t misses when no use came in the ``min(t, T)`` before it (at t < T the cache has
    evicted nothing yet: only a first use misses), which has probability
    ``exp(-rate min(t, T))``. Over a life of H that is ``(1 - exp(-r T)) + r (H - T)
    exp(-r T)`` misses among ``r H`` uses (T capped at H): with T = H just the cold cache's
    first uses, ``(1 - exp(-r H)) / (r H)``. (The form before, ``c + (1 - c) exp(-r T)``,
    let an eviction happen from the first cold start on and overstated replayed bytes by
    13-22 % on the benchmark fleets.)
    """
    exposure = rate * lifetime
    if exposure <= 0.0:
        return 1.0
    kept = min(horizon, lifetime)
    survive = math.exp(-rate * kept)
    return (-math.expm1(-rate * kept) + rate * (lifetime - kept) * survive) / exposure


def hit_probability(rate: float, horizon: float, lifetime: float = math.inf) -> float:
    """q: the chance an object needed at ``rate`` is already in the cache."""
    if math.isinf(lifetime):
        return -math.expm1(-rate * horizon)
    return 1.0 - miss_probability(rate, horizon, lifetime)


def layer_miss_cost(rate: float, size: int, horizon: float, model: CostModel) -> float:
    """Expected seconds per cold start (of the whole fleet) spent fetching one layer.

    ``rate * (1 - q) * (latency + size / bandwidth)`` under serial fetches; under parallel
    fetches the latency is shared by a cold start's misses, so the transfer alone counts.
    """
    return layer_cost(rate, size, horizon, model)


def layer_cost(
    rate: float, size: int, horizon: float, model: CostModel, price: float = 0.0
) -> float:
    """``layer_miss_cost`` plus the cache space the layer holds, ``occupancy`` bytes at
    ``price`` seconds per byte (see ``cache_price``). One call: the planner prices layers
    millions of times."""
    transfer = (0.0 if model.parallel else model.latency_s) + size / model.bandwidth_bps
    missed = rate * miss_probability(rate, horizon, model.horizon) * transfer
    if not price:
        return missed
    return missed + size * -math.expm1(-rate * horizon) * price


def expected_fetch(layers: Iterable[tuple[int, float]], model: CostModel) -> Fetch:
    """Expected cost of one cold start that needs ``layers``: (compressed size, q) pairs."""
    missing = 0.0
    all_hit = 1.0
    serial_latency = 0.0
    for size, q in layers:
        missing += (1.0 - q) * size
        all_hit *= q
        serial_latency += (1.0 - q) * model.latency_s
    latency = model.latency_s * (1.0 - all_hit) if model.parallel else serial_latency
    return Fetch(seconds=latency + missing / model.bandwidth_bps, bytes=missing)


def empty_cache_fetch(sizes: Sequence[int], model: CostModel) -> Fetch:
    """Cost of a cold start on a worker whose cache is empty."""
    return expected_fetch(((s, 0.0) for s in sizes), model)


# --- the model applied to a fleet and a plan ----------------------------------------------


def priced(fleet: Fleet, params: PlanParams) -> tuple[Fleet, PlanParams]:
    """The fleet and parameters the model prices when a miss is unpacked too (the shim
    unpacks into its cache: ``params.extract_bps`` > 0); unchanged otherwise.

    A wheel's size becomes the bytes whose transfer takes as long as fetching and unpacking
    it, ``size + unpacked * bandwidth / extract``, so every price of the planner counts the
    unpacking; and the cache, which then holds unpacked trees, becomes ``cache_bytes`` of
    unpacked bytes in those units: scaled by the fleet's ratio of priced to unpacked bytes
    (exact when unpacking dominates, as it does from a local store). A plan is pins only,
    so it is the same plan for the real fleet."""
    if params.extract_bps <= 0:
        return fleet, params
    ratio = params.bandwidth_bps / params.extract_bps
    packages = {
        pid: replace(pkg, size=pkg.size + round(pkg.unpacked_size * ratio))
        for pid, pkg in fleet.packages.items()
    }
    unpacked = sum(pkg.unpacked_size for pkg in fleet.packages.values())
    scale = sum(pkg.size for pkg in packages.values()) / unpacked if unpacked else 1.0
    cache = round(params.cache_bytes * scale)
    return replace(fleet, packages=packages), replace(params, cache_bytes=cache, extract_bps=0.0)


def cost_model(params: PlanParams) -> CostModel:
    """The cost model the parameters describe."""
    return CostModel(
        latency_s=params.latency_s,
        bandwidth_bps=params.bandwidth_bps,
        cache_bytes=params.cache_bytes,
        horizon=params.horizon,
        parallel=params.parallel_fetch,
        prior_weight=params.prior_weight,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheView:
    """What the model needs to price a layer: each pin's size and rate beyond the fleet's
    own use (``extra``: the PyPI prior and a store's observed usage), each function's share
    of cold starts and Che's characteristic time ``horizon``."""

    needs: Mapping[str, tuple[str, ...]]
    share: Mapping[str, float]
    extra: Mapping[str, float]
    horizon: float
    model: CostModel
    runtime: frozenset[str]  # pins of packages the target runtime ships
    price: float = 0.0  # seconds per cold start per byte a layer holds in a full cache
    observed: Mapping[str, float] | None = None  # the part of ``extra`` a store saw (no prior)


def cache_view(fleet: Fleet, params: PlanParams) -> CacheView:
    """Rates and Che's T for the fleet under ``params``."""
    needs = closures(fleet, params)
    share = shares(fleet)
    fleet_rate: dict[str, float] = dict.fromkeys(fleet.packages, 0.0)
    for name, members in needs.items():
        for pin in members:
            fleet_rate[pin] += share[name]
    top = max([1, fleet.top_downloads, *(p.downloads for p in fleet.packages.values())])
    observed = params.usage or {}
    seen = {pid: max(0.0, observed.get(pid, 0.0) - fleet_rate[pid]) for pid in fleet.packages}
    extra = {
        pid: params.prior_weight * pkg.downloads / top + seen[pid]
        for pid, pkg in fleet.packages.items()
    }
    model = cost_model(params)
    ids = sorted(fleet_rate)
    rates = [fleet_rate[p] + extra[p] for p in ids]
    sizes = [fleet.packages[p].size for p in ids]
    horizon = characteristic_time(rates, sizes, model)
    return CacheView(
        needs=needs,
        share=share,
        extra=extra,
        horizon=horizon,
        model=model,
        runtime=frozenset(p for p in fleet.packages if is_provided(fleet, params, p)),
        price=cache_price(rates, sizes, horizon, model),
        observed=seen,
    )


def hit_rates(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> dict[str, float]:
    """Layer id -> q, the model's probability that a worker has it cached already.

    Che's T is solved over the plan's own layers here, not over the fleet's wheels as the
    planner's ``cache_view`` does before any layer exists: a plan that repeats a wheel in
    several layers, or hands functions wheels they do not need, fills the cache sooner and
    has its layers evicted sooner. (With T over the wheels the model priced the local
    search's over-fetching merges at 30 % below what the replay measured.)

    The rates are the fleet's own cold starts (and what a store observed), without the PyPI
    prior: a worker's cache holds what its own function runs, other tenants never fill it
    or warm it. With the prior's rate in T the model put `single` 26 % above the replay on
    gen-n200 (the prior added a quarter to the fleet's rate and halved T); without it every
    strategy is within 15 % on every bench fleet. The planner still prices the prior, as
    the tie-break towards canonical layers (``cache_view``)."""
    fleet, params = priced(fleet, params)
    view = cache_view(fleet, params)
    seen = view.observed or {}
    rates = {}
    for lid, names in layer_users(plan).items():
        rate = math.fsum(view.share[n] for n in names)
        rates[lid] = rate + min((seen.get(p, 0.0) for p in plan.layers[lid]), default=0.0)
    ids = sorted(rates)
    sizes = [layer_size(fleet, plan, lid) for lid in ids]
    horizon = characteristic_time([rates[lid] for lid in ids], sizes, view.model)
    return {lid: hit_probability(rates[lid], horizon, view.model.horizon) for lid in ids}


def expected_figures(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, q: Mapping[str, float]
) -> dict[str, Fetch]:
    """Function -> the model's expected cost of one of its cold starts: seconds counting
    the unpacking where ``params`` prices it (``priced``), bytes transferred."""
    model = cost_model(params)
    timed, _ = priced(fleet, params)
    figures = {}
    for name, ids in plan.functions.items():
        cost = expected_fetch(((layer_size(timed, plan, lid), q[lid]) for lid in ids), model)
        moved = math.fsum((1.0 - q[lid]) * layer_size(fleet, plan, lid) for lid in ids)
        figures[name] = Fetch(seconds=cost.seconds, bytes=moved)
    return figures


def fleet_expected(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> Fetch:
    """The model's expected cost of a cold start of the fleet (functions by weight)."""
    figures = expected_figures(fleet, plan, params, hit_rates(fleet, plan, params))
    share = shares(fleet)
    return Fetch(
        seconds=sum(share[n] * f.seconds for n, f in figures.items()),
        bytes=sum(share[n] * f.bytes for n, f in figures.items()),
    )

"""The layer planner: a fleet of functions in, layers and each function's layer list out.

Pure: nothing here reads a file, the network or the clock (``load_fleet`` is the one reader,
for the CLI). A strategy is a function ``(Fleet, PlanParams) -> LayerPlan``; ``make_plan``
runs one and checks that the plan keeps every constraint (closure covered, at most
``max_layers`` layers, one version per package, size limit). The default strategy,
``expected-time``, minimises the expected cold-start time of ``cost.py``'s model; the others
are the baselines it is measured against (see docs/planner.md).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import heapq
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cost import (
    CostModel,
    Fetch,
    cache_price,
    expected_fetch,
    hit_probability,
    layer_cost,
)
from .cost import characteristic_time as che_time
from .errors import ConfigError, PlanError
from .graph import Pin, pins
from .popularity import downloads, pypi_downloads
from .runtime import DEFAULT_POLICY, POLICIES, provided_version, shadow_warning
from .units import human_size

if TYPE_CHECKING:  # networkx is imported by the nixery baseline alone (it costs a lock ~60 ms)
    import networkx as nx

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # bytes, function code plus all its layers
MB = 1_000_000

Group = frozenset[str]  # the pins of one layer while planning


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """What the planner knows of one pinned wheel."""

    id: str  # name==version
    name: str
    size: int  # compressed bytes (what a cold start transfers)
    unpacked_size: int
    downloads: int = 0  # PyPI downloads in the snapshot: the global popularity prior
    requires: tuple[str, ...] = ()  # pins this wheel depends on (for the nixery baseline)


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionNeed:
    """One function: the pins of its whole closure and its share of cold starts."""

    pins: tuple[str, ...]
    weight: float = 1.0
    code_size: int = 0  # unzipped bytes of its own code


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    """Every package and every function the plan must serve."""

    packages: Mapping[str, Package]
    functions: Mapping[str, FunctionNeed]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPlan:
    """Layers by id (sorted pins each) and each function's layers in merge order.

    ``warnings`` are findings a user should read (a layer shadowing the runtime's boto3 with
    an incompatible version, say); the plan is valid regardless.
    """

    strategy: str
    layers: Mapping[str, tuple[str, ...]]
    functions: Mapping[str, tuple[str, ...]]
    extras: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanParams:
    """Constraints, transfer figures and cache model; defaults are Lambda's limits and the
    figures of docs/planner.md.

    ``usage`` is the hook for a store's own statistics: pin id -> observed share of cold
    starts that needed it; it replaces the fleet's estimate where it is higher.
    ``previous`` is the plan in use: the ``expected-time`` planner keeps its layers unless
    a fresh plan is cheaper by more than ``stability_gain`` (a fraction of expected time).
    """

    max_layers: int = 5
    size_limit: int = LAMBDA_UNZIPPED_LIMIT
    latency_s: float = 0.030  # per fetch
    bandwidth_bps: float = 100e6  # bytes per second
    cache_bytes: int = 500 * MB
    horizon: float = 400.0
    parallel_fetch: bool = True
    prior_weight: float = 0.01
    usage: Mapping[str, float] | None = None
    target: str = "python3.12-x86_64"
    runtime_provided: str = DEFAULT_POLICY
    previous: LayerPlan | None = None
    stability_gain: float = 0.05


Strategy = Callable[[Fleet, PlanParams], LayerPlan]


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


def layer_id(members: Iterable[str]) -> str:
    """A layer's plan id: a digest of its sorted pins, stable across runs and machines."""
    text = "\n".join(sorted(members))
    return "L" + hashlib.sha256(text.encode()).hexdigest()[:12]


# --- what each function needs -------------------------------------------------------------


def closures(fleet: Fleet, params: PlanParams) -> dict[str, tuple[str, ...]]:
    """Function -> the pins its layers must carry under the runtime-provided policy."""
    if params.runtime_provided not in POLICIES:
        raise ConfigError(
            f"runtime-provided = {params.runtime_provided!r} is not a policy",
            "use one of: " + ", ".join(POLICIES),
        )
    if params.runtime_provided == "bundle":
        return {name: f.pins for name, f in fleet.functions.items()}
    return {
        name: tuple(p for p in f.pins if not _runtime_provided(fleet, params, p))
        for name, f in fleet.functions.items()
    }


def _runtime_provided(fleet: Fleet, params: PlanParams, pin: str) -> bool:
    return provided_version(params.target, fleet.packages[pin].name) is not None


def runtime_warnings(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> tuple[str, ...]:
    """Where the plan conflicts with the runtime's own copies (see ``runtime.py``)."""
    found: list[str | None] = []
    if params.runtime_provided == "bundle":
        for lid, members in sorted(plan.layers.items()):
            found += [shadow_warning(params.target, p, f"layer {lid}", "bundle") for p in members]
    else:
        for name, function in sorted(fleet.functions.items()):
            found += [
                shadow_warning(params.target, p, f"function {name}", "exclude")
                for p in function.pins
            ]
    return tuple(w for w in found if w)


def shares(fleet: Fleet) -> dict[str, float]:
    """Function -> its share of the fleet's cold starts (weights normalised to sum 1)."""
    total = sum(f.weight for f in fleet.functions.values())
    count = len(fleet.functions)
    return {
        name: (f.weight / total if total > 0 else 1.0 / count)
        for name, f in fleet.functions.items()
    }


def usage(fleet: Fleet) -> dict[str, float]:
    """Pin id -> summed weight of the functions that need it."""
    totals: dict[str, float] = dict.fromkeys(fleet.packages, 0.0)
    for function in fleet.functions.values():
        for pin in function.pins:
            totals[pin] += function.weight
    return totals


# --- the baselines ------------------------------------------------------------------------


def _assemble(
    strategy: str,
    per_function: Mapping[str, Sequence[Iterable[str]]],
    warnings: tuple[str, ...] = (),
) -> LayerPlan:
    layers: dict[str, tuple[str, ...]] = {}
    functions: dict[str, tuple[str, ...]] = {}
    for name, groups in sorted(per_function.items()):
        ids = []
        for group in groups:
            members = tuple(sorted(group))
            if members:
                lid = layer_id(members)
                layers[lid] = members
                ids.append(lid)
        functions[name] = tuple(ids)
    return LayerPlan(
        strategy=strategy,
        layers=dict(sorted(layers.items())),
        functions=functions,
        warnings=warnings,
    )


def plan_from_groups(strategy: str, groups: Mapping[str, Sequence[Iterable[str]]]) -> LayerPlan:
    """A plan from each function's layers given as groups of pins (ids are computed)."""
    return _assemble(strategy, groups)


def plan_single(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """One layer per function holding its whole closure (what most tools do)."""
    return _assemble("single", {name: [pins] for name, pins in closures(fleet, params).items()})


def plan_per_package(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """Every wheel its own layer, ignoring max-layers: the floor, for benchmarks only."""
    groups = {name: [[p] for p in pins] for name, pins in closures(fleet, params).items()}
    return _assemble("per-package", groups)


def plan_popularity_topk(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """Nix's referencesByPopularity: each function's K-1 most popular pins get a layer
    each, the rest share one. Popularity is fleet usage, then PyPI downloads, then id."""
    used = usage(fleet)

    def rank(pin: str) -> tuple[float, int, str]:
        return (-used[pin], -fleet.packages[pin].downloads, pin)

    groups: dict[str, list[list[str]]] = {}
    for name, members in closures(fleet, params).items():
        ordered = sorted(members, key=rank)
        if len(ordered) <= params.max_layers:
            groups[name] = [[pin] for pin in ordered]
            continue
        top = ordered[: params.max_layers - 1]
        groups[name] = [[pin] for pin in top] + [ordered[params.max_layers - 1 :]]
    return _assemble("popularity-topk", groups)


def plan_nixery(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """Nixery's layering per function: popular or large wheels are cut loose from their
    parents, each child of the root of the dominator tree becomes a layer with everything it
    dominates, then the layers of lowest popularity x size are merged until K fit."""
    share = shares(fleet)
    used: dict[str, float] = defaultdict(float)
    for name, function in fleet.functions.items():
        for pin in function.pins:
            used[pin] += share[name]
    loose = {p for p, u in used.items() if u >= 0.02 or fleet.packages[p].size >= 10 * MB}
    groups = {
        name: _nixery_groups(fleet, members, loose, used, params.max_layers)
        for name, members in closures(fleet, params).items()
    }
    return _assemble("nixery", groups)


def _nixery_groups(
    fleet: Fleet, members: Sequence[str], loose: set[str], used: Mapping[str, float], k: int
) -> list[list[str]]:
    import networkx as nx

    root = "\0root"
    closure = set(members)
    graph = nx.DiGraph()
    graph.add_node(root)
    for pin in members:
        graph.add_node(pin)
        graph.add_edges_from((pin, d) for d in fleet.packages[pin].requires if d in closure)
    required = {d for _, d in graph.edges}
    graph.add_edges_from((root, p) for p in members if p not in required or p in loose)
    idom = nx.immediate_dominators(graph, root)
    groups: dict[str, list[str]] = defaultdict(list)
    for pin in sorted(members):
        top = pin
        while top in idom and idom[top] != root:
            top = idom[top]
        groups[top].append(pin)

    def merit(top: str) -> tuple[float, str]:
        return (used[top] * sum(fleet.packages[p].size for p in groups[top]), top)

    ordered = sorted(groups, key=merit, reverse=True)
    if len(ordered) <= k:
        return [groups[t] for t in ordered]
    rest = [p for t in ordered[k - 1 :] for p in groups[t]]
    return [*(groups[t] for t in ordered[: k - 1]), rest]


# --- the cost-model planner ---------------------------------------------------------------


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


def cache_view(fleet: Fleet, params: PlanParams) -> CacheView:
    """Rates and Che's T for the fleet under ``params`` (see cost.py)."""
    needs = closures(fleet, params)
    share = shares(fleet)
    fleet_rate: dict[str, float] = dict.fromkeys(fleet.packages, 0.0)
    for name, members in needs.items():
        for pin in members:
            fleet_rate[pin] += share[name]
    top = max([1, *pypi_downloads().values(), *(p.downloads for p in fleet.packages.values())])
    observed = params.usage or {}
    extra = {
        pid: params.prior_weight * pkg.downloads / top
        + max(0.0, observed.get(pid, 0.0) - fleet_rate[pid])
        for pid, pkg in fleet.packages.items()
    }
    model = cost_model(params)
    ids = sorted(fleet_rate)
    horizon = che_time(
        [fleet_rate[p] + extra[p] for p in ids], [fleet.packages[p].size for p in ids], model
    )
    runtime = frozenset(p for p in fleet.packages if _runtime_provided(fleet, params, p))
    price = cache_price(
        [fleet_rate[p] + extra[p] for p in ids],
        [fleet.packages[p].size for p in ids],
        horizon,
        model,
    )
    return CacheView(
        needs=needs,
        share=share,
        extra=extra,
        horizon=horizon,
        model=model,
        runtime=runtime,
        price=price,
    )


class _Book:
    """Working state of the greedy planner: each layer's rate and each function's groups.

    Prices are memoised per layer (its size, extra rate and sorted pins never change, and
    its cost at the current rate changes only when a function joins or leaves it), because
    the greedy passes price the same layers over and over."""

    def __init__(self, fleet: Fleet, params: PlanParams, view: CacheView) -> None:
        self.fleet, self.params, self.view = fleet, params, view
        self.rate: dict[Group, float] = defaultdict(float)
        self.groups: dict[str, list[Group]] = {}
        # over-fetch targets: the layers in use at least as hot as an average function (an
        # index over every private layer would make planning quadratic in the number of
        # functions, and one over layers no longer hot would grow with every merge)
        self.hot = 1.0 / max(1, len(fleet.functions))
        self.containing: dict[str, set[Group]] = defaultdict(set)
        self._load: dict[Group, tuple[int, float]] = {}
        self._keys: dict[Group, tuple[str, ...]] = {}
        self._now: dict[Group, tuple[float, float]] = {}  # layer -> (rate, cost at it)

    def load(self, group: Group) -> tuple[int, float]:
        """(compressed bytes, smallest extra rate of its pins)."""
        known = self._load.get(group)
        if known is None:
            packages, extra = self.fleet.packages, self.view.extra
            known = (sum(packages[p].size for p in group), min(extra[p] for p in group))
            self._load[group] = known
        return known

    def key(self, group: Group) -> tuple[str, ...]:
        """The layer's sorted pins: the order every tie is broken in."""
        known = self._keys.get(group)
        if known is None:
            known = self._keys[group] = tuple(sorted(group))
        return known

    def cost(self, group: Group, rate: float) -> float:
        """Expected seconds per fleet cold start spent fetching ``group`` at ``rate``."""
        size, extra = self.load(group)
        return self._priced(max(rate, 0.0) + extra, size)

    def _priced(self, rate: float, size: int) -> float:
        view = self.view
        return layer_cost(rate, size, view.horizon, view.model, view.price)

    def delta(self, group: Group, change: float) -> float:
        """Change in cost when users of ``change`` share join (or leave) ``group``."""
        rate = self.rate.get(group, 0.0)
        now = self._now.get(group)
        if now is None or now[0] != rate:
            now = (rate, self.cost(group, rate))
            self._now[group] = now
        return self.cost(group, rate + change) - now[1]

    def join_delta(self, x: Group, y: Group, union: Group, weight: float) -> float:
        """``delta(union, weight)`` for the union of two disjoint layers; priced from the
        parts, without a memo, when no function holds the union yet (the usual case: the
        greedy pass prices many more unions than it makes)."""
        if self.rate.get(union, 0.0) or len(union) != len(x) + len(y):
            return self.delta(union, weight)
        (size_x, extra_x), (size_y, extra_y) = self.load(x), self.load(y)
        size, extra = size_x + size_y, min(extra_x, extra_y)
        return self._priced(weight + extra, size) - self._priced(extra, size)

    def assign(self, name: str, groups: Iterable[Group]) -> None:
        self.groups[name] = sorted(groups, key=self.key)
        for group in self.groups[name]:
            self._add(group, self.view.share[name])

    def move(self, name: str, old: Sequence[Group], new: Group) -> None:
        weight = self.view.share[name]
        for group in old:
            self.groups[name].remove(group)
            self.rate[group] -= weight
            if self.rate[group] < self.hot:
                for pin in group:
                    self.containing[pin].discard(group)
        bisect.insort(self.groups[name], new, key=self.key)
        self._add(new, weight)

    def _add(self, group: Group, weight: float) -> None:
        was = self.rate.get(group, 0.0)
        self.rate[group] = was + weight
        if was < self.hot <= was + weight:
            for pin in group:
                self.containing[pin].add(group)


def _model_seconds(book: _Book) -> float:
    """The model's expected seconds per cold start of the fleet, as the reports give it."""
    plan = _assemble("expected-time", book.groups)
    return fleet_expected(book.fleet, plan, book.params).seconds


STABILITY_FLOOR_S = 0.001  # a fresh plan must also save 1 ms per cold start to replace layers


def plan_expected_time(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """The default planner: start from the finest canonical layers (wheels grouped by the
    exact set of functions that need them) and, for every function over ``max_layers``,
    heaviest first, take the step the model prices cheapest: merge two of its layers, or
    move onto an existing hotter layer that covers several of them (over-fetch that cannot
    shadow). Three such plans are built (see ``_candidates``) and the one the model prices
    lowest is kept. With ``params.previous``, keep the previous layers unless the fresh
    plan is cheaper by more than ``params.stability_gain``."""
    view = cache_view(fleet, params)
    book = min(_candidates(fleet, params, view), key=_model_seconds)
    if params.previous is not None:
        kept = _greedy(fleet, params, view, _seeded_groups(fleet, params.previous, view))
        old, new = _model_seconds(kept), _model_seconds(book)
        if old - new <= max(params.stability_gain * old, STABILITY_FLOOR_S):
            book = kept
    plan = _assemble("expected-time", book.groups)
    extras = {"horizon": round(view.horizon, 3)}
    return dataclasses.replace(plan, extras=extras, warnings=runtime_warnings(fleet, plan, params))


def _candidates(fleet: Fleet, params: PlanParams, view: CacheView) -> list[_Book]:
    """The greedy pass from the atoms, priced three ways: without the cache-space term,
    with it, and with it after shared stacks are formed. Each is a different first-order
    view of a full cache; which one the whole-plan model prefers depends on the fleet."""
    atoms = _atom_groups(view.needs)
    bare = dataclasses.replace(view, price=0.0)
    return [
        _greedy(fleet, params, bare, atoms),
        _greedy(fleet, params, view, atoms),
        _greedy(fleet, params, view, atoms, stacks=True),
    ]


def _atom_groups(needs: Mapping[str, Sequence[str]]) -> dict[str, list[Group]]:
    """Each function's pins grouped by the set of functions that need them: layers no
    function over-fetches and every user of one needs all of it."""
    users: dict[str, list[str]] = defaultdict(list)
    for name in sorted(needs):
        for pin in needs[name]:
            users[pin].append(name)
    atoms: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for pin, names in users.items():
        atoms[tuple(names)].add(pin)
    by_pin = {pin: frozenset(atoms[tuple(names)]) for pin, names in users.items()}
    return {name: sorted({by_pin[p] for p in pins}, key=sorted) for name, pins in needs.items()}


def _seeded_groups(fleet: Fleet, previous: LayerPlan, view: CacheView) -> dict[str, list[Group]]:
    """Start from the previous plan: a function whose closure is unchanged keeps its layers;
    another reuses every previous layer inside its closure and groups the rest as atoms."""
    atoms = _atom_groups(view.needs)
    layers = sorted(
        (frozenset(m) for m in previous.layers.values()), key=lambda g: (-len(g), sorted(g))
    )
    seeded: dict[str, list[Group]] = {}
    for name, members in view.needs.items():
        wanted = set(members)
        old = [frozenset(previous.layers[lid]) for lid in previous.functions.get(name, ())]
        if old and set(previous_needs(fleet, previous, name)) == wanted:
            seeded[name] = old
            continue
        reused = _reuse(layers, wanted)
        left = set(wanted).difference(*reused) if reused else wanted
        seeded[name] = reused + [a & left for a in atoms[name] if a & left]
    return seeded


def previous_needs(fleet: Fleet, previous: LayerPlan, name: str) -> set[str]:
    """The pins of ``name``'s previous layers that it still needs, or all of them if the
    previous layers no longer cover its closure (then they cannot be kept)."""
    held = {p for lid in previous.functions.get(name, ()) for p in previous.layers[lid]}
    wanted = set(fleet.functions[name].pins)
    return wanted if wanted <= held else held


def _reuse(layers: Sequence[Group], wanted: set[str]) -> list[Group]:
    chosen: list[Group] = []
    taken: set[str] = set()
    for layer in layers:
        if layer <= wanted and not layer & taken:
            chosen.append(layer)
            taken |= layer
    return chosen


def _greedy(
    fleet: Fleet,
    params: PlanParams,
    view: CacheView,
    start: Mapping[str, list[Group]],
    stacks: bool = False,
) -> _Book:
    book = _Book(fleet, params, view)
    for name in sorted(start):
        book.assign(name, start[name])
    if stacks:
        _stack(book)
    limit = params.max_layers
    for name in sorted(start, key=lambda n: (-view.share[n], n)):
        steps = _Steps(book, name)
        while len(book.groups[name]) > limit:
            _, old, new = steps.best()
            steps.take(old, new)
    return book


class _Stacks:
    """Shared "stack" layers: merge two layers for *every* function that uses either, so the
    layers stay a partition of the fleet's wheels (nothing duplicated) and the functions
    over ``max_layers`` that use both free a slot. A user of only one of them over-fetches
    the other, which is allowed only where it cannot shadow (see ``_Riders``).

    A layer's users, and so its rate, never change until it is merged away; a function's
    holdings only grow. So the model's cost change of a pair is priced once, a pair once
    refused stays refused, and a pair's gain holds until the next merge (``epoch``):
    re-pricing a pair is a dictionary look-up, not a pass over its users."""

    def __init__(self, book: _Book) -> None:
        self.book = book
        self.users: dict[Group, set[str]] = defaultdict(set)
        for name, groups in book.groups.items():
            for group in groups:
                self.users[group].add(name)
        limit = book.params.max_layers
        self.over = {n for n, g in book.groups.items() if len(g) > limit}
        # what freeing one slot is worth to a function: the model's price of its cheapest
        # local step, the one the greedy pass would otherwise take
        self.value = {n: max(0.0, _Steps(book, n).best()[0]) for n in sorted(self.over)}
        self.riders = _Riders(book, self.users)
        self.epoch = 0  # merges so far
        self._priced: dict[tuple[Group, Group], tuple[tuple[str, ...], float] | None] = {}
        self._gains: dict[tuple[Group, Group], tuple[int, float | None]] = {}

    def gain(self, x: Group, y: Group) -> float | None:
        """Model seconds saved by merging x and y for all their users (None: not allowed)."""
        pair = (x, y) if self.book.key(x) < self.book.key(y) else (y, x)
        known = self._gains.get(pair)
        if known is None or known[0] != self.epoch:
            known = (self.epoch, self._gain(pair))
            self._gains[pair] = known
        return known[1]

    def _gain(self, pair: tuple[Group, Group]) -> float | None:
        if pair not in self._priced:
            self._priced[pair] = self._price(*pair)
        priced = self._priced[pair]
        if priced is not None and not self._may_share(*pair):
            priced = self._priced[pair] = None  # holdings only grow: refused for good
        if priced is None:
            return None
        over, change = priced
        limit = self.book.params.max_layers
        saved = sum(self.value[n] for n in over if len(self.book.groups[n]) > limit)
        return SLOT_VALUE * saved - change

    def _price(self, x: Group, y: Group) -> tuple[tuple[str, ...], float] | None:
        """(co-users that were over the limit, model cost change) of merging x and y."""
        book = self.book
        rate_x, rate_y = book.rate[x], book.rate[y]
        if min(rate_x, rate_y) * book.view.horizon < STACK_EXPOSURE:
            return None
        both = sorted(self.users[x] & self.users[y])
        shared = sum(book.view.share[n] for n in both)
        change = book.cost(x | y, rate_x + rate_y - shared)
        change -= book.cost(x, rate_x) + book.cost(y, rate_y)
        return tuple(n for n in both if n in self.over), change

    def _may_share(self, x: Group, y: Group) -> bool:
        """Does every user of only one of x and y pass the over-fetch rule for the other?"""
        users_x, users_y = self.users[x], self.users[y]
        return self.riders.may_ride(users_x - users_y, y) and self.riders.may_ride(
            users_y - users_x, x
        )

    def merge(self, x: Group, y: Group) -> Group:
        union = x | y
        users_x, users_y = self.users.pop(x), self.users.pop(y)
        for name in sorted(users_x | users_y):
            old = [g for g, users in ((x, users_x), (y, users_y)) if name in users]
            self.book.move(name, old, union)
            self.users[union].add(name)
        self.riders.ride(users_x - users_y, y)
        self.riders.ride(users_y - users_x, x)
        self.riders.rehome(union)
        self.epoch += 1
        return union

    def candidates(self, name: str) -> list[Group]:
        groups = self.book.groups[name]
        return sorted(groups, key=lambda g: (-self.book.rate[g], self.book.key(g)))[
            :PAIR_CANDIDATES
        ]

    def partners(self, union: Group) -> list[Group]:
        """The layers to pair a new stack with: the candidates of its users still over."""
        limit = self.book.params.max_layers
        found = {
            z
            for name in self.users[union] & self.over
            if len(self.book.groups[name]) > limit
            for z in self.candidates(name)
            if z != union
        }
        return sorted(found, key=self.book.key)


class _Riders:
    """The over-fetch rule for stacks, checked for many functions at once: may every one of
    a set of functions take a layer it does not use? Not if the layer holds a
    runtime-provided wheel, another version of a package one of them holds, or puts one of
    them over the size limit. The stack layers partition the fleet's wheels, so a function
    holds another version of a layer's package exactly when it uses the layer that holds
    that version: a few set intersections instead of a pass over every function."""

    def __init__(self, book: _Book, users: Mapping[Group, set[str]]) -> None:
        self.book, self.users = book, users
        self.layer_of = {p: g for g in users for p in g}
        assert sum(map(len, users)) == len(self.layer_of), "stack layers must not overlap"
        packages = book.fleet.packages
        versions: dict[str, list[str]] = defaultdict(list)
        for pin in sorted(self.layer_of):
            versions[packages[pin].name].append(pin)
        self.versions = {name: pins for name, pins in versions.items() if len(pins) > 1}
        self.unpacked = {
            n: book.fleet.functions[n].code_size + sum(packages[p].unpacked_size for p in needs)
            for n, needs in book.view.needs.items()
        }
        self.most = max(self.unpacked.values(), default=0)
        self._facts: dict[Group, tuple[tuple[str, ...], int] | None] = {}

    def facts(self, layer: Group) -> tuple[tuple[str, ...], int] | None:
        """(the other versions of its packages, its unpacked bytes); None if the runtime
        ships one of its wheels."""
        if layer not in self._facts:
            packages = self.book.fleet.packages
            rivals = tuple(
                q
                for p in sorted(layer)
                for q in self.versions.get(packages[p].name, ())
                if q not in layer
            )
            size = sum(packages[p].unpacked_size for p in layer)
            self._facts[layer] = None if layer & self.book.view.runtime else (rivals, size)
        return self._facts[layer]

    def may_ride(self, riders: set[str], layer: Group) -> bool:
        """May every function of ``riders`` (none of which uses ``layer``) over-fetch it?"""
        if not riders:
            return True
        facts = self.facts(layer)
        if facts is None:
            return False
        rivals, size = facts
        room = self.book.params.size_limit - size
        if self.most > room and any(self.unpacked[n] > room for n in riders):
            return False
        return all(riders.isdisjoint(self.users[self.layer_of[q]]) for q in rivals)

    def ride(self, riders: Iterable[str], layer: Group) -> None:
        """``riders`` now over-fetch ``layer``."""
        facts = self.facts(layer)
        size = facts[1] if facts else 0
        for name in riders:
            self.unpacked[name] += size
            self.most = max(self.most, self.unpacked[name])

    def rehome(self, union: Group) -> None:
        for pin in union:
            self.layer_of[pin] = union


def _stack(book: _Book) -> None:
    """Merge layers into shared stacks while the model says it pays (lazy greedy: a popped
    pair is re-priced and pushed back if it is no longer the best)."""
    stacks = _Stacks(book)
    heap: list[tuple[float, tuple[str, ...], tuple[str, ...]]] = []
    pairs: set[tuple[Group, Group]] = set()
    for name in stacks.over:
        candidates = stacks.candidates(name)
        for i, x in enumerate(candidates):
            pairs |= {(x, y) if book.key(x) < book.key(y) else (y, x) for y in candidates[i + 1 :]}
    for x, y in sorted(pairs, key=lambda p: (book.key(p[0]), book.key(p[1]))):
        _push(stacks, heap, x, y)
    while heap:
        _, a, b = heapq.heappop(heap)
        x, y = frozenset(a), frozenset(b)
        if x not in stacks.users or y not in stacks.users:
            continue
        gain = stacks.gain(x, y)
        if gain is None or gain <= 0:
            continue
        if heap and gain < -heap[0][0] - 1e-15:
            heapq.heappush(heap, (-gain, a, b))
            continue
        union = stacks.merge(x, y)
        for z in stacks.partners(union):
            _push(stacks, heap, union, z)


def _push(
    stacks: _Stacks, heap: list[tuple[float, tuple[str, ...], tuple[str, ...]]], x: Group, y: Group
) -> None:
    gain = stacks.gain(x, y)
    if gain is not None and gain > 0:
        a, b = sorted((stacks.book.key(x), stacks.book.key(y)))
        heapq.heappush(heap, (-gain, a, b))


SLOT_VALUE = 0.5  # share of a function's cheapest local step that a freed slot is worth
STACK_EXPOSURE = 1.0  # stack only layers needed at least once per Che's T on average
PAIR_CANDIDATES = 12  # merges are sought among the layers a function leaves most cheaply

Step = tuple[float, list[Group], Group]  # (model cost change, layers out, layer in)


class _Steps:
    """The cheapest ways to take one layer off one function, kept up to date between its
    steps. A function's layers are disjoint, and a step changes the rates of the layers it
    takes out and puts in and of no other; so the prices of the function's other layers,
    of merging two of them, and the hot layers that contain them all hold for its next step.
    """

    def __init__(self, book: _Book, name: str) -> None:
        self.book, self.name = book, name
        self.weight = book.view.share[name]
        self._reset()

    def _reset(self) -> None:
        self.leave: dict[Group, tuple[float, tuple[str, ...]]] = {}  # price, then tie-break
        self.pairs: dict[tuple[Group, Group], tuple[float, Group]] = {}
        self.covers: dict[Group, list[Group]] = defaultdict(list)  # hot layer -> ours it covers
        self.indexed: dict[Group, list[Group]] = {}  # our layer -> hot layers that cover it
        self.multi: set[Group] = set()  # hot layers that cover two or more of ours
        self.refused: set[Group] = set()  # layers it may never over-fetch
        groups = self.book.groups[self.name]
        self.held = frozenset().union(*groups)
        self.disjoint = len(self.held) == sum(len(g) for g in groups)
        self.holding = _Holding(self.book, self.name, self.held)
        for group in groups:
            self._index(group)

    def best(self) -> Step:
        """The cheapest step: merge two of its layers, or move onto a layer covering some."""
        book, leave = self.book, self.leave
        groups = book.groups[self.name]
        for group in groups:
            if group not in leave:
                leave[group] = (book.delta(group, -self.weight), book.key(group))
        cheapest = sorted(groups, key=leave.__getitem__)[:PAIR_CANDIDATES]
        best: Step | None = None
        known = self.pairs.get
        for i, x in enumerate(cheapest):
            for y in cheapest[i + 1 :]:
                priced = known((x, y)) or self._merge_price(x, y)
                if best is None or priced[0] < best[0]:
                    best = (priced[0], [x, y], priced[1])
        for layer, covered in self._supersets():
            change = sum(leave[g][0] for g in covered) + book.delta(layer, self.weight)
            if best is None or change < best[0]:
                best = (change, covered, layer)
        assert best is not None  # a function over the limit has at least two layers
        return best

    def _merge_price(self, x: Group, y: Group) -> tuple[float, Group]:
        union = x | y
        join = self.book.join_delta(x, y, union, self.weight)
        priced = (self.leave[x][0] + self.leave[y][0] + join, union)
        self.pairs[(x, y)] = priced
        return priced

    def _supersets(self) -> list[tuple[Group, list[Group]]]:
        """Layers in use that cover two or more of the function's layers whole, and whose
        other wheels cannot shadow anything it holds or the runtime provides."""
        book, held = self.book, self.held
        found = []
        for layer in self.multi - self.refused:
            covered = self.covers[layer]
            if book.rate[layer] < book.hot or layer & held != frozenset().union(*covered):
                continue
            if self.holding.may_over_fetch(layer - held):
                found.append((layer, sorted(covered, key=book.key)))
            else:  # what it holds only grows: refused for good
                self.refused.add(layer)
        return sorted(found, key=lambda item: book.key(item[0]))

    def take(self, old: Sequence[Group], new: Group) -> None:
        """Take the step and forget the prices it changed."""
        self.book.move(self.name, old, new)
        if not self.disjoint:  # a kept plan's layers may overlap: start afresh
            self._reset()
            return
        for group in old:
            del self.leave[group]
            for layer in self.indexed.pop(group):
                self.covers[layer].remove(group)
                if len(self.covers[layer]) < 2:
                    self.multi.discard(layer)
        self._index(new)
        self.holding.add(new - self.held)
        self.held |= new

    def _index(self, group: Group) -> None:
        # a hot layer covering ``group`` holds its first pin; which ones do never changes
        # while ``group`` is ours (no step touches a layer that overlaps it)
        first = self.book.key(group)[0]
        layers = [z for z in self.book.containing[first] if group <= z]
        self.indexed[group] = layers
        for layer in layers:
            self.covers[layer].append(group)
            if len(self.covers[layer]) >= 2:
                self.multi.add(layer)


class _Holding:
    """What one function holds, for the over-fetch rule: its package names and the unpacked
    bytes of its code and wheels."""

    def __init__(self, book: _Book, name: str, held: Group) -> None:
        self.book = book
        self.names: set[str] = set()
        self.unpacked = book.fleet.functions[name].code_size
        self.add(held)

    def add(self, pins: Iterable[str]) -> None:
        packages = self.book.fleet.packages
        for pin in pins:
            self.names.add(packages[pin].name)
            self.unpacked += packages[pin].unpacked_size

    def may_over_fetch(self, extra: Group) -> bool:
        """No runtime-provided wheel, no second version of anything held, under the limit."""
        book = self.book
        if extra & book.view.runtime:
            return False
        packages = book.fleet.packages
        if any(packages[p].name in self.names for p in extra):
            return False
        unpacked = self.unpacked + sum(packages[p].unpacked_size for p in extra)
        return unpacked <= book.params.size_limit


STRATEGIES: dict[str, Strategy] = {
    "expected-time": plan_expected_time,
    "single": plan_single,
    "popularity-topk": plan_popularity_topk,
    "nixery": plan_nixery,
    "per-package": plan_per_package,
}
DEFAULT_STRATEGY = "expected-time"
UNBOUNDED = frozenset({"per-package"})  # strategies that ignore max-layers (benchmarks only)


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown planning strategy {name!r}", "use one of: " + ", ".join(STRATEGIES)
        ) from None


def make_plan(
    fleet: Fleet,
    params: PlanParams,
    strategy: str = DEFAULT_STRATEGY,
    *,
    previous: LayerPlan | None = None,
) -> LayerPlan:
    """Plan the fleet with ``strategy`` and check every constraint.

    ``previous`` (or ``params.previous``) is the plan in use, for stability.
    """
    if previous is not None:
        params = dataclasses.replace(params, previous=previous)
    check_fleet(fleet, params)
    plan = get_strategy(strategy)(fleet, params)
    check_plan(fleet, plan, params)
    return plan


def check_fleet(fleet: Fleet, params: PlanParams) -> None:
    """Reject a function whose closure alone is over the size limit, naming its big wheels."""
    problems = size_problems(fleet, closures(fleet, params), params)
    if problems:
        raise PlanError(
            next(iter(problems.values())),
            "drop or slim the largest dependencies, or split the function",
        )


def size_problems(
    fleet: Fleet, pins: Mapping[str, Iterable[str]], params: PlanParams
) -> dict[str, str]:
    """Function -> what is wrong, for each function whose code and ``pins`` unzip to more
    than the size limit: by how much, and its largest wheels. Sorted by function name."""
    problems = {}
    for name, members in sorted(pins.items()):
        unique = set(members)
        total = fleet.functions[name].code_size
        total += sum(fleet.packages[p].unpacked_size for p in unique)
        if total > params.size_limit:
            biggest = sorted(unique, key=lambda p: (-fleet.packages[p].unpacked_size, p))[:3]
            listed = ", ".join(
                f"{p} ({human_size(fleet.packages[p].unpacked_size)})" for p in biggest
            )
            problems[name] = (
                f"function {name} needs {human_size(total)} unzipped, "
                f"{human_size(total - params.size_limit)} over the "
                f"{human_size(params.size_limit)} limit; largest: {listed}"
            )
    return problems


def check_plan(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> None:
    """Raise PlanError if the plan misses a pin, breaks max layers or the size limit, mixes
    versions or over-fetches a runtime-provided package. ``per-package`` may exceed
    max layers (it is the benchmarks' floor, never deployed)."""
    needs = closures(fleet, params)
    for name in sorted(fleet.functions):
        problem = _plan_problem(fleet, plan, params, name, needs[name])
        if problem:
            raise PlanError(
                f"the {plan.strategy} plan for function {name} {problem}",
                "use another --strategy or raise --max-layers",
            )


def _plan_problem(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, name: str, needed: Sequence[str]
) -> str:
    ids = plan.functions.get(name, ())
    provided = [pin for lid in ids for pin in plan.layers[lid]]
    unique = set(provided)
    missing = set(needed) - unique
    unpacked = fleet.functions[name].code_size
    unpacked += sum(fleet.packages[p].unpacked_size for p in unique)
    if missing:
        return f"misses {', '.join(sorted(missing))}"
    if len(ids) > params.max_layers and plan.strategy not in UNBOUNDED:
        return f"uses {len(ids)} layers, over the limit of {params.max_layers}"
    if len({fleet.packages[p].name for p in unique}) != len(unique):
        return "has two versions of one package"
    if unpacked > params.size_limit:
        return f"needs {human_size(unpacked)} unzipped, over {human_size(params.size_limit)}"
    extra = sorted(p for p in unique - set(needed) if _runtime_provided(fleet, params, p))
    if extra:
        return f"receives {extra[0]}, which it does not need, over the runtime's copy"
    return ""


# --- fleets in ----------------------------------------------------------------------------


def fleet_from_graph(
    graph: nx.DiGraph,
    weights: Mapping[str, float] | None = None,
    code_sizes: Mapping[str, int] | None = None,
) -> Fleet:
    """The planner's view of a resolved dependency graph."""
    packages = {
        pid: _package(pin, tuple(sorted(graph.successors(pid)))) for pid, pin in pins(graph).items()
    }
    functions = {
        name: FunctionNeed(
            pins=tuple(members),
            weight=(weights or {}).get(name, 1.0),
            code_size=(code_sizes or {}).get(name, 0),
        )
        for name, members in sorted(graph.graph["functions"].items())
    }
    return Fleet(packages=packages, functions=functions)


def _package(pin: Pin, requires: tuple[str, ...]) -> Package:
    return Package(
        id=pin.id,
        name=pin.name,
        size=pin.size,
        unpacked_size=pin.unpacked_size,
        downloads=downloads(pin.name),
        requires=requires,
    )


def load_fleet(path: Path) -> Fleet:
    """Read a ``lambda-pack-fleet/1`` file (see DESIGN.md)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"fleet file not found: {path}", "check the --fleet path") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}", "pass a lambda-pack-fleet/1 file") from None
    if not isinstance(data, dict) or data.get("format") != "lambda-pack-fleet/1":
        raise ConfigError(
            f"{path}: format is not lambda-pack-fleet/1", "pass a lambda-pack-fleet/1 file"
        )
    return fleet_from_dict(data, str(path))


def fleet_from_dict(data: Mapping[str, Any], where: str) -> Fleet:
    """A fleet from the parsed ``lambda-pack-fleet/1`` document ``data`` (read from ``where``)."""
    try:
        packages = {
            pid: Package(
                id=pid,
                name=str(info["name"]),
                size=int(info["size"]),
                unpacked_size=int(info.get("unpacked_size", info["size"])),
                downloads=downloads(str(info["name"])),
                requires=tuple(sorted(info.get("requires", ()))),
            )
            for pid, info in sorted(data["packages"].items())
        }
        functions = {
            name: FunctionNeed(pins=tuple(sorted(info["requires"])), weight=float(info["weight"]))
            for name, info in sorted(data["functions"].items())
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad fleet entry: {exc!r}", "see DESIGN.md") from None
    for name, function in functions.items():
        unknown = [p for p in function.pins if p not in packages]
        if unknown:
            raise ConfigError(
                f"{where}: functions.{name}.requires names unknown {unknown[0]}",
                "list every pin of a closure under packages",
            )
    return Fleet(packages=packages, functions=functions)


# --- figures and reports ------------------------------------------------------------------


def layer_size(fleet: Fleet, plan: LayerPlan, lid: str) -> int:
    return sum(fleet.packages[p].size for p in plan.layers[lid])


def layer_users(plan: LayerPlan) -> dict[str, list[str]]:
    """Layer id -> the functions whose plan uses it, sorted."""
    users: dict[str, list[str]] = {lid: [] for lid in plan.layers}
    for name, ids in sorted(plan.functions.items()):
        for lid in ids:
            users[lid].append(name)
    return users


def hit_rates(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> dict[str, float]:
    """Layer id -> q, the model's probability that a worker has it cached already."""
    view = cache_view(fleet, params)
    q = {}
    for lid, names in layer_users(plan).items():
        rate = sum(view.share[n] for n in names)
        rate += min((view.extra[p] for p in plan.layers[lid]), default=0.0)
        q[lid] = hit_probability(rate, view.horizon, view.model.horizon)
    return q


def expected_figures(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, q: Mapping[str, float]
) -> dict[str, Fetch]:
    """Function -> the model's expected cost of one of its cold starts."""
    model = cost_model(params)
    return {
        name: expected_fetch(((layer_size(fleet, plan, lid), q[lid]) for lid in ids), model)
        for name, ids in plan.functions.items()
    }


def fleet_expected(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> Fetch:
    """The model's expected cost of a cold start of the fleet (functions by weight)."""
    figures = expected_figures(fleet, plan, params, hit_rates(fleet, plan, params))
    share = shares(fleet)
    return Fetch(
        seconds=sum(share[n] * f.seconds for n, f in figures.items()),
        bytes=sum(share[n] * f.bytes for n, f in figures.items()),
    )


def plan_to_json(plan: LayerPlan, fleet: Fleet, params: PlanParams) -> dict[str, Any]:
    """The plan in DESIGN.md's schema plus figures per layer and per function."""
    users = layer_users(plan)
    q = hit_rates(fleet, plan, params)
    expected = expected_figures(fleet, plan, params, q)
    return {
        "strategy": plan.strategy,
        "max_layers": params.max_layers,
        "layers": {lid: list(members) for lid, members in plan.layers.items()},
        "functions": {name: list(ids) for name, ids in plan.functions.items()},
        "layer_stats": {
            lid: {"size": layer_size(fleet, plan, lid), "users": users[lid], "q": round(q[lid], 4)}
            for lid in plan.layers
        },
        "function_stats": {
            name: {
                **function_figures(fleet, plan, params, name),
                "expected_ms": round(expected[name].ms, 3),
                "expected_bytes": round(expected[name].bytes),
            }
            for name in plan.functions
        },
        "model": _model_json(fleet, plan, params),
        "warnings": list(plan.warnings),
    }


def _model_json(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> dict[str, Any]:
    overall = fleet_expected(fleet, plan, params)
    return {
        "latency_ms": params.latency_s * 1000,
        "bandwidth_bps": params.bandwidth_bps,
        "cache_bytes": params.cache_bytes,
        "fetch": "parallel" if params.parallel_fetch else "serial",
        "runtime_provided": params.runtime_provided,
        "expected_ms_per_cold_start": round(overall.ms, 3),
        "expected_bytes_per_cold_start": round(overall.bytes),
    }


def function_figures(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, name: str
) -> dict[str, float]:
    """Bytes a cold start with an empty cache fetches, and the time that takes."""
    ids = plan.functions[name]
    sizes = [layer_size(fleet, plan, lid) for lid in ids]
    unpacked = sum(fleet.packages[p].unpacked_size for lid in ids for p in plan.layers[lid])
    cold = expected_fetch(((s, 0.0) for s in sizes), cost_model(params))
    return {
        "layers": len(ids),
        "bytes": sum(sizes),
        "unpacked_bytes": unpacked,
        "cold_ms": round(cold.ms, 3),
    }


def plan_text(report: Mapping[str, Any]) -> list[str]:
    """The plan report of ``plan_to_json`` as lines for a terminal."""
    lines = [f"strategy {report['strategy']}, at most {report['max_layers']} layers per function"]
    model = report.get("model")
    if model:
        lines.append(
            f"expected per cold start: {model['expected_ms_per_cold_start']:.1f} ms, "
            f"{human_size(model['expected_bytes_per_cold_start'])} "
            f"({model['latency_ms']:.0f} ms per fetch, "
            f"{human_size(model['bandwidth_bps'])}/s, {model['fetch']} fetches)"
        )
    lines += ["", "functions:"]
    for name, ids in report["functions"].items():
        lines += _function_lines(report, name, ids)
    lines += ["", "layers:"]
    for lid, members in report["layers"].items():
        stats = report["layer_stats"][lid]
        lines.append(
            f"  {lid} {human_size(stats['size'])}, q {stats.get('q', 0.0):.2f}, "
            f"used by {', '.join(stats['users'])}: " + ", ".join(members)
        )
    lines += [f"warning: {w}" for w in report.get("warnings", ())]
    return lines


def _function_lines(report: Mapping[str, Any], name: str, ids: Sequence[str]) -> list[str]:
    stats = report["function_stats"][name]
    expected = ""
    if "expected_ms" in stats:
        expected = f"expected {stats['expected_ms']:.0f} ms, "
    count = f"{len(ids)} layer" + ("" if len(ids) == 1 else "s")
    lines = [
        f"  {name}: {count}, {human_size(stats['bytes'])} to fetch "
        f"({human_size(stats['unpacked_bytes'])} unzipped), {expected}"
        f"{stats['cold_ms']:.0f} ms with an empty cache"
    ]
    lines += [f"    {lid} {human_size(report['layer_stats'][lid]['size'])}" for lid in ids]
    return lines

"""Local search after the greedy passes (docs/planner.md, "Local search"): global merges,
trims and covers, each taken where the cost model prices it as a gain.

The greedy passes decide one function at a time, so a wheel often ends up in several
layers (each function over ``max_layers`` merged its own), and a worker caches and fetches
it once per layer. The moves:

- merge: take layers X and Y and switch every function that lists either to X ∪ Y. A
  function that listed both frees a slot; one that listed one of them over-fetches the
  rest of the other, allowed only where that cannot shadow (no second version of a package
  it holds, no runtime-provided wheel it did not ask for) and keeps it under the size
  limit. A user's layer count never grows, so ``max_layers`` holds;
- trim: take out of a layer the wheels every one of its users gets from another layer;
- cover: one function lists the hot layers that hold its wheels (over-fetching within the
  same rule) and keeps only the rest in a private layer;

Deterministic: pairs are tried best first (lazy greedy on the model's cost change, ties
broken by the layers' sorted pins), functions in a fixed order, within a budget of priced
pairs, not of seconds.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from .cost import CacheView, cache_price, characteristic_time, layer_cost, occupancy
from .model import Fleet, Group, PlanParams

PAIRS_PER_FUNCTION = 400  # priced pairs per function at effort 1: the search's budget
ROUNDS = 2  # merge, trim and cover passes, each with T and the cache's price solved afresh
MAX_CACHE_SHARE = 0.15  # no merged layer over this share of a worker's cache
PARTNERS = 32  # a layer is paired with at most this many, most co-listed first
COVER_CANDIDATES = 12  # layers a function's new cover is chosen among
COVER_SCAN = 3  # of the layers holding most of its bytes, this many times that are checked
SHORTLIST = 48  # a cover looks only at the hottest layers holding each of its wheels
MIN_GAIN_S = 1e-12  # a merge must save at least this (model seconds per cold start)

Queued = tuple[float, tuple[str, ...], tuple[str, ...]]  # (-gain, X's pins, Y's pins)


class _Layers:
    """Each layer's users and rate, each function's layers and what they hold."""

    def __init__(
        self, fleet: Fleet, params: PlanParams, view: CacheView, frozen: frozenset[Group]
    ) -> None:
        self.fleet, self.params, self.view, self.frozen = fleet, params, view, frozen
        self.largest = MAX_CACHE_SHARE * params.cache_bytes
        self.hot = 1.0 / max(1, len(fleet.functions))  # as hot as an average function
        self.users: dict[Group, set[str]] = defaultdict(set)
        self.groups: dict[str, list[Group]] = {}
        self.held: dict[str, dict[str, str]] = {}  # function -> package name -> pin
        self.unpacked: dict[str, int] = {}
        self.by_pin: dict[str, set[Group]] = defaultdict(set)
        self.version: dict[Group, int] = defaultdict(int)  # bumped when its users change
        self._keys: dict[Group, tuple[str, ...]] = {}
        self._loads: dict[Group, tuple[int, float]] = {}
        self._rates: dict[Group, tuple[int, float]] = {}
        self._now: dict[Group, tuple[tuple[int, int], float]] = {}
        self._shortlists: dict[str, list[Group]] = {}

    def load(self, start: Mapping[str, Sequence[Group]]) -> None:
        packages = self.fleet.packages
        for name in sorted(start):
            self.groups[name] = list(start[name])
            pins = set().union(*self.groups[name]) if self.groups[name] else set()
            self.held[name] = {packages[p].name: p for p in sorted(pins)}
            size = self.fleet.functions[name].code_size
            self.unpacked[name] = size + sum(packages[p].unpacked_size for p in pins)
            for group in self.groups[name]:
                self._add_user(group, name)

    def _add_user(self, group: Group, name: str) -> None:
        if not self.users[group]:
            for pin in group:
                self.by_pin[pin].add(group)
        self.users[group].add(name)

    def key(self, group: Group) -> tuple[str, ...]:
        known = self._keys.get(group)
        if known is None:
            known = self._keys[group] = tuple(sorted(group))
        return known

    def rate(self, names: Iterable[str]) -> float:
        share = self.view.share
        return math.fsum(share[n] for n in names)  # exact: the same in any set order

    def rate_of(self, group: Group) -> float:
        """The summed share of the functions listing ``group`` (kept per version)."""
        known = self._rates.get(group)
        if known is None or known[0] != self.version[group]:
            known = (self.version[group], self.rate(self.users.get(group, ())))
            self._rates[group] = known
        return known[1]

    def shortlist(self, pin: str) -> list[Group]:
        """The ``SHORTLIST`` hottest layers holding ``pin`` when a cover pass began (see
        ``_cover_all``): a common wheel is in a private layer of almost every function."""
        known = self._shortlists.get(pin)
        if known is None:
            rate = self.rate_of
            known = sorted(self.by_pin[pin], key=lambda g: (-rate(g), self.key(g)))[:SHORTLIST]
            self._shortlists[pin] = known
        return known

    def cost_now(self, group: Group) -> float:
        """``cost`` at the layer's current rate (0 for a layer nobody lists), kept per
        version of its users and per view (``view`` is replaced between rounds)."""
        known = self._now.get(group)
        stamp = (self.version[group], id(self.view))
        if known is None or known[0] != stamp:
            cost = self.cost(group, self.rate_of(group)) if group in self.users else 0.0
            known = self._now[group] = (stamp, cost)
        return known[1]

    def size(self, group: Group) -> int:
        return self._load(group)[0]

    def extra(self, group: Group) -> float:
        """The smallest extra rate (prior, observed use) of its wheels."""
        return self._load(group)[1]

    def _load(self, group: Group) -> tuple[int, float]:
        known = self._loads.get(group)
        if known is None:
            packages, extra = self.fleet.packages, self.view.extra
            known = (sum(packages[p].size for p in group), min(extra[p] for p in group))
            self._loads[group] = known
        return known

    def cost(self, group: Group, rate: float) -> float:
        """The model's seconds per fleet cold start spent on ``group`` when the fleet's
        functions of summed share ``rate`` list it: their fetches of it (other tenants' use,
        the extra rate, keeps it cached but is not the fleet's cost) and the cache space it
        holds at the cache's price."""
        return self._priced(*self._load(group), rate)

    def _priced(self, size: int, extra_rate: float, rate: float) -> float:
        view = self.view
        held = rate + extra_rate
        fetch = layer_cost(held, size, view.horizon, view.model)
        own = fetch * rate / held if held > 0 else 0.0
        return own + view.price * occupancy(held, size, view.horizon)

    def gain(self, x: Group, y: Group) -> float:
        """Model seconds saved by switching every user of x or y to x | y (0 for a union
        too large to stay cached: the fixed characteristic time cannot price that). The
        union is priced from its parts, as most unions priced are never made."""
        if x in self.frozen or y in self.frozen:
            return 0.0
        (size_x, extra_x), (size_y, extra_y) = self._load(x), self._load(y)
        common = x & y
        packages = self.fleet.packages
        size = size_x + size_y - sum(packages[p].size for p in common)
        if size > self.largest:
            return 0.0
        users_x, users_y = self.users[x], self.users[y]
        rate_x, rate_y = self.rate_of(x), self.rate_of(y)
        before = self._priced(size_x, extra_x, rate_x) + self._priced(size_y, extra_y, rate_y)
        joined = rate_x + rate_y - self.rate(users_x & users_y)
        if common:  # only then can the union be a layer already, or one of the two
            union = x | y
            existing = self.users.get(union) if union not in (x, y) else None
            if existing:
                rate_u = self.rate_of(union)
                before += self.cost(union, rate_u)
                joined += rate_u - self.rate(existing & (users_x | users_y))
        return before - self._priced(size, min(extra_x, extra_y), joined)

    def allowed(self, x: Group, y: Group) -> bool:
        """May every user of x or y take x | y (no shadowing, size limit)?"""
        union = x | y
        return all(self._may_take(name, union) for name in sorted(self.users[x] | self.users[y]))

    def _may_take(self, name: str, union: Group) -> bool:
        packages, held = self.fleet.packages, self.held[name]
        extra = [p for p in union if held.get(packages[p].name) != p]
        if not extra:
            return True
        if any(packages[p].name in held for p in extra):
            return False  # another version of something it holds
        needs = set(self.view.needs[name])
        if any(p in self.view.runtime and p not in needs for p in extra):
            return False
        grown = self.unpacked[name] + sum(packages[p].unpacked_size for p in extra)
        return grown <= self.params.size_for(name)

    def merge(self, x: Group, y: Group) -> Group:
        union = x | y
        packages = self.fleet.packages
        for name in sorted(self.users[x] | self.users[y]):
            groups = [g for g in self.groups[name] if g not in (x, y)]
            if union not in groups:
                groups.append(union)
            self.groups[name] = sorted(groups, key=self.key)
            for pin in sorted(union):
                if self.held[name].get(packages[pin].name) != pin:
                    self.held[name][packages[pin].name] = pin
                    self.unpacked[name] += packages[pin].unpacked_size
        joined = self.users.pop(x) | self.users.pop(y, set())
        for group in (x, y):
            for pin in group:
                self.by_pin[pin].discard(group)
        for name in sorted(joined):
            self._add_user(union, name)
        self.version[union] += 1
        return union

    def redundant(self, group: Group) -> Group:
        """The wheels of ``group`` every user of it also gets from another of its layers."""
        left = set(group)
        for name in sorted(self.users[group]):
            others = [g for g in self.groups[name] if g != group and not g.isdisjoint(left)]
            left &= set().union(*others) if others else set()
            if not left:
                break
        return frozenset(left)

    def trim(self, group: Group, spare: Group) -> None:
        """Take ``spare`` (see ``redundant``) out of ``group`` for every user: each still
        gets those wheels from another layer, and no longer fetches them twice."""
        smaller = group - spare
        names = sorted(self.users.pop(group))
        for pin in group:
            self.by_pin[pin].discard(group)
        self.version[group] += 1
        for name in names:
            groups = [g for g in self.groups[name] if g != group]
            if smaller and smaller not in groups:
                groups.append(smaller)
            self.groups[name] = sorted(groups, key=self.key)
            if smaller:
                self._add_user(smaller, name)
        if smaller:
            self.version[smaller] += 1

    def relist(self, name: str, chosen: Sequence[Group]) -> None:
        """``name`` lists ``chosen`` instead of its layers (which cover the same closure)."""
        packages = self.fleet.packages
        for group in self.groups[name]:
            self.users[group].discard(name)
            self.version[group] += 1
            if not self.users[group]:
                del self.users[group]
                for pin in group:
                    self.by_pin[pin].discard(group)
        self.groups[name] = sorted(set(chosen), key=self.key)
        pins = set().union(*chosen)
        self.held[name] = {packages[p].name: p for p in sorted(pins)}
        code = self.fleet.functions[name].code_size
        self.unpacked[name] = code + sum(packages[p].unpacked_size for p in pins)
        for group in self.groups[name]:
            self._add_user(group, name)
            self.version[group] += 1

    def partners(self, group: Group) -> list[Group]:
        """Layers worth pairing with ``group``: those sharing a wheel or a user with it."""
        found: set[Group] = set()
        for pin in group:
            found |= self.by_pin[pin]
        together: dict[Group, int] = defaultdict(int)  # users listing both
        for name in self.users[group]:
            for other in self.groups[name]:
                together[other] += 1
        found.update(together)
        found.discard(group)
        if PARTNERS and len(found) > PARTNERS:
            ranked = sorted(found, key=lambda g: (-together.get(g, 0), self.key(g)))
            found = set(ranked[:PARTNERS])
        return sorted(found, key=self.key)


def merge_layers(
    fleet: Fleet,
    params: PlanParams,
    view: CacheView,
    start: Mapping[str, Sequence[Group]],
    effort: float,
    frozen: frozenset[Group] = frozenset(),
) -> dict[str, list[Group]]:
    """Each function's layers after the global merges the model prices as gains, tried
    best first within ``effort`` x ``PAIRS_PER_FUNCTION`` priced pairs per function.
    ``frozen`` layers (the deployed ones, for stability) are never merged or trimmed, and
    a cover never takes a function off one."""
    layers = _Layers(fleet, params, view, frozen)
    layers.load(start)
    budget = int(effort * PAIRS_PER_FUNCTION * max(1, len(fleet.functions)))
    for _ in range(ROUNDS):
        layers.view = _plan_view(layers)
        budget = _merge_all(layers, budget)
        _trim_all(layers)
        budget = _cover_all(layers, budget)
    return layers.groups


def _plan_view(layers: _Layers) -> CacheView:
    """The view with Che's T and the cache's price solved over the current layers (the
    greedy passes priced them over the wheels, before any layer existed)."""
    groups = sorted(layers.users, key=layers.key)
    rates = [layers.rate_of(g) + layers.extra(g) for g in groups]
    sizes = [layers.size(g) for g in groups]
    view = layers.view
    horizon = characteristic_time(rates, sizes, view.model)
    price = cache_price(rates, sizes, horizon, view.model)
    return dataclasses.replace(view, horizon=horizon, price=price)


def _merge_all(layers: _Layers, budget: int) -> int:
    """Global merges, best first, while the model prices them as gains; the budget left."""
    heap: list[Queued] = []
    seen: set[tuple[Group, int, Group, int]] = set()
    for group in sorted(layers.users, key=layers.key):
        budget -= _queue(layers, heap, seen, group, layers.partners(group))
    refused: set[tuple[Group, Group]] = set()
    while heap and budget > 0:
        _, a, b = heapq.heappop(heap)
        x, y = frozenset(a), frozenset(b)
        if x not in layers.users or y not in layers.users or (x, y) in refused:
            continue
        gain = layers.gain(x, y)
        budget -= 1
        if gain <= MIN_GAIN_S:
            continue
        if heap and gain < -heap[0][0] - 1e-15:
            heapq.heappush(heap, (-gain, a, b))  # another pair is better now
            continue
        if not layers.allowed(x, y):
            refused.add((x, y))  # users' holdings only grow: refused while both exist
            continue
        union = layers.merge(x, y)
        budget -= _queue(layers, heap, seen, union, layers.partners(union))
    return budget


class _Cover:
    """A new cover of one function's closure: layers in use it may list (each priced at what
    it adds to the fleet's cost), and one private layer of the rest.

    The greedy passes and the merges leave a wheel in a hot layer and in the private layers
    of rare functions beside it; a worker then fetches it once per layer. Here a function
    lists the hot layers that hold its wheels (a layer others keep cached costs it almost
    nothing), within the over-fetch rule, and keeps only what is left in a private layer."""

    def __init__(self, layers: _Layers, name: str) -> None:
        self.layers, self.name = layers, name
        self.share = layers.view.share[name]
        self.need = frozenset(layers.view.needs[name])
        self.mine = set(layers.groups[name])
        self._joining: dict[Group, float] = {}
        self.sizes = {p: layers.fleet.packages[p].size for p in self.need}
        packages = layers.fleet.packages
        self.names = {packages[p].name: p for p in self.need}
        self.unpacked = layers.fleet.functions[name].code_size + sum(
            packages[p].unpacked_size for p in self.need
        )

    def joining(self, group: Group) -> float:
        """What the fleet's cost grows by when this function lists ``group``."""
        known = self._joining.get(group)
        if known is None:
            known = self._joining[group] = self._join(group)
        return known

    def _join(self, group: Group) -> float:
        layers = self.layers
        if group not in self.mine:
            now = layers.cost_now(group)
            return layers.cost(group, layers.rate_of(group) + self.share) - now
        rate = layers.rate_of(group) - self.share
        before = layers.cost(group, rate) if rate > 1e-15 else 0.0
        return layers.cost(group, rate + self.share) - before

    def leaving(self) -> float:
        """What the fleet's cost falls by when this function lists none of its layers."""
        return sum(self.joining(g) for g in sorted(self.mine, key=self.layers.key))

    def candidates(self, per_byte: float) -> list[tuple[Group, Group]]:
        """(layer, the wheels of it the function needs) for layers it may list whose
        private bytes saved could outweigh what it adds, most of its bytes first. The
        layers holding its biggest wheels are counted first, until no layer not seen yet
        could hold more of its bytes than the ``COVER_CANDIDATES``-th best seen."""
        layers, sizes = self.layers, self.sizes
        worth: dict[Group, int] = dict.fromkeys(self.mine, 0)
        left = sum(sizes.values())
        for pin in sorted(self.need, key=lambda p: (-sizes[p], p)):
            left -= sizes[pin]
            for group in layers.shortlist(pin):
                if group in layers.users:
                    worth[group] = worth.get(group, 0) + sizes[pin]
            if len(worth) > COVER_CANDIDATES and (
                heapq.nlargest(COVER_CANDIDATES, worth.values())[-1] >= left
            ):
                break
        scan = COVER_SCAN * COVER_CANDIDATES
        least = heapq.nlargest(scan, worth.values())[-1] if len(worth) > scan else 0
        ranked = sorted(
            (g for g, w in worth.items() if w >= least), key=lambda g: (-worth[g], layers.key(g))
        )
        found: list[tuple[Group, Group]] = []
        for group in ranked:
            if len(found) == COVER_CANDIDATES:
                break
            if group in self.mine or group in layers.frozen or layers.size(group) <= layers.largest:
                inner = group & self.need
                if sum(sizes[p] for p in inner) * per_byte > self.joining(group):
                    found.append((group, inner))
        return found

    def may_take(self, group: Group, taken: dict[str, str], unpacked: int) -> int | None:
        """The unpacked bytes after taking ``group`` beside ``taken`` (name -> pin), or None
        where the over-fetch rule forbids it."""
        layers, packages = self.layers, self.layers.fleet.packages
        for pin in sorted(group - self.need):
            known = self.names.get(packages[pin].name) or taken.get(packages[pin].name)
            if known is not None and known != pin:
                return None
            if pin in layers.view.runtime:
                return None
            if known is None:
                unpacked += packages[pin].unpacked_size
        return unpacked if unpacked <= layers.params.size_for(self.name) else None

    def best(self) -> tuple[float, list[Group]]:
        """(model gain, new layers): greedy on the private bytes each layer saves."""
        layers, packages = self.layers, self.layers.fleet.packages
        most = layers.params.layers_for(self.name)
        per_byte = layers.cost(self.need, self.share) / max(1, layers.size(self.need))
        chosen: list[Group] = []
        covered: set[str] = set()
        taken: dict[str, str] = {}
        unpacked = self.unpacked
        pool = self.candidates(per_byte)
        while pool and len(chosen) < most - 1:
            scored = []
            for i, (group, inner) in enumerate(pool):
                new = inner - covered
                if not new:
                    continue  # nothing it lacks: listing it would only fetch wheels twice
                value = sum(packages[p].size for p in new) * per_byte - self.joining(group)
                if value > 0:
                    scored.append((-value, layers.key(group), i))
            if not scored:
                break
            group = pool.pop(min(scored)[2])[0]
            grown = self.may_take(group, taken, unpacked)
            if grown is None:
                continue
            chosen.append(group)
            covered |= group & self.need
            unpacked = grown
            taken.update({packages[p].name: p for p in group - self.need})
        rest = self.need - covered
        if rest:
            chosen.append(frozenset(rest))
        cost = sum(self.joining(g) for g in chosen)
        return self.leaving() - cost, chosen


def _cover_all(layers: _Layers, budget: int) -> int:
    """Per function, lightest first: list the hot layers holding its wheels and keep the rest
    private, where the model prices it as a gain (see ``_Cover``)."""
    share = layers.view.share
    layers._shortlists.clear()
    for name in sorted(layers.groups, key=lambda n: (share[n], n)):
        if budget <= 0:
            break
        if not layers.view.needs[name]:
            continue
        cover = _Cover(layers, name)
        budget -= COVER_CANDIDATES
        gain, chosen = cover.best()
        if gain > MIN_GAIN_S and set(chosen) != cover.mine and _keeps_frozen(layers, name, chosen):
            layers.relist(name, chosen)
    return budget


def _keeps_frozen(layers: _Layers, name: str, chosen: Sequence[Group]) -> bool:
    """Does ``chosen`` keep every deployed layer ``name`` lists? A cover may add deployed
    layers (that changes none of their bytes) but not leave one: functions leaving a
    deployed layer for a new one holding the same wheels had made the kept plan so much
    worse than a fresh one that the fresh one replaced the deployed layers."""
    return all(g in chosen for g in layers.groups[name] if g in layers.frozen)


def _trim_all(layers: _Layers) -> None:
    """Take out of every layer the wheels each of its users gets from another layer too:
    fewer bytes for every fetch, the same coverage, no more layers (a merge for every user
    may have put a wheel into a layer beside another of some users' layers holding it)."""
    for group in sorted(layers.users, key=layers.key):
        if group in layers.frozen or group not in layers.users:
            continue
        spare = layers.redundant(group)
        if spare:
            layers.trim(group, spare)


def _queue(
    layers: _Layers,
    heap: list[Queued],
    seen: set[tuple[Group, int, Group, int]],
    group: Group,
    partners: Sequence[Group],
) -> int:
    """Price ``group`` with each partner not priced yet; queue the gains. Returns the count."""
    priced = 0
    for other in partners:
        pair = (group, other) if layers.key(group) < layers.key(other) else (other, group)
        stamp = (pair[0], layers.version[pair[0]], pair[1], layers.version[pair[1]])
        if stamp in seen:
            continue
        seen.add(stamp)
        priced += 1
        gain = layers.gain(*pair)
        if gain > MIN_GAIN_S:
            heapq.heappush(heap, (-gain, layers.key(pair[0]), layers.key(pair[1])))
    return priced

"""The default strategy, ``expected-time``: the plan the cost model prices lowest.

Start from the finest canonical layers (atoms: wheels grouped by the exact set of functions
that need them); optionally merge shared "stack" layers for every user at once; then, for
every function over ``max_layers``, heaviest first, take the step the model prices cheapest
(merge two of its layers, or move onto a hotter layer that covers several of them).
docs/planner.md explains each step and the constants below; ``_PlanState`` is the working
state every step reads and changes.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from .cost import CacheView, cache_view, fleet_expected, layer_cost, priced
from .local_search import merge_layers
from .model import Fleet, Group, LayerPlan, PlanParams, plan_from_groups
from .runtime_provided import runtime_warnings

STABILITY_FLOOR_S = 0.001  # a fresh plan must also save 1 ms per cold start to replace layers
SLOT_VALUE = 0.5  # share of a function's cheapest local step that a freed slot is worth
STACK_EXPOSURE = 1.0  # stack only layers needed at least once per Che's T on average
PAIR_CANDIDATES = 12  # merges are sought among the layers a function leaves most cheaply
SEARCHED_CANDIDATES = 1  # the local search starts from the greedy plan the model prefers

Step = tuple[float, list[Group], Group]  # (model cost change, layers out, layer in)


class _PlanState:
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


def _model_seconds(
    fleet: Fleet, params: PlanParams, groups: Mapping[str, Sequence[Group]]
) -> float:
    """The model's expected seconds per cold start of the fleet, as the reports give it."""
    return fleet_expected(fleet, plan_from_groups("expected-time", groups), params).seconds


def plan_expected_time(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """The default planner: start from the finest canonical layers (wheels grouped by the
    exact set of functions that need them) and, for every function over ``max_layers``,
    heaviest first, take the step the model prices cheapest: merge two of its layers, or
    move onto an existing hotter layer that covers several of them (over-fetch that cannot
    shadow). Three such plans are built (see ``_candidates``) and the one the model prices
    lowest is kept. With ``params.previous``, keep the previous layers unless the fresh
    plan is cheaper by more than ``params.stability_gain``. Where unpacking is priced
    (``params.extract_bps``) every step prices the ``priced`` fleet."""
    real = fleet
    fleet, params = priced(fleet, params)
    view = cache_view(fleet, params)
    greedy = sorted(
        (c.groups for c in _candidates(fleet, params, view)),
        key=lambda g: _model_seconds(fleet, params, g),
    )
    searched = [_searched(fleet, params, view, g) for g in greedy[:SEARCHED_CANDIDATES]]
    groups = min([*searched, greedy[0]], key=lambda g: _model_seconds(fleet, params, g))
    if params.previous is not None:
        deployed = frozenset(frozenset(m) for m in params.previous.layers.values())
        seeded = _greedy(fleet, params, view, _seeded_groups(fleet, params.previous, view))
        kept = _searched(fleet, params, view, seeded.groups, deployed)
        old, new = _model_seconds(fleet, params, kept), _model_seconds(fleet, params, groups)
        if old - new <= max(params.stability_gain * old, STABILITY_FLOOR_S):
            groups = kept
    plan = plan_from_groups("expected-time", groups)
    extras = {"horizon": round(view.horizon, 3)}
    return dataclasses.replace(plan, extras=extras, warnings=runtime_warnings(real, plan, params))


def _searched(
    fleet: Fleet,
    params: PlanParams,
    view: CacheView,
    groups: Mapping[str, Sequence[Group]],
    deployed: frozenset[Group] = frozenset(),
) -> Mapping[str, Sequence[Group]]:
    """The greedy plan after the local search (none at effort 0); ``deployed`` layers stay."""
    if params.plan_effort <= 0:
        return groups
    return merge_layers(fleet, params, view, groups, params.plan_effort, deployed)


def _candidates(fleet: Fleet, params: PlanParams, view: CacheView) -> list[_PlanState]:
    """The greedy pass from the atoms, priced with the cache-space term, without and with
    shared stacks formed first: two first-order views of a full cache; which one the
    whole-plan model prefers depends on the fleet. (A third, without the cache-space term,
    was never the one kept once the local search could move functions onto hot layers.)"""
    atoms = _atom_groups(view.needs)
    return [
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
    another reuses every previous layer inside its closure and groups the rest as atoms.
    Old layers are kept only if each still holds something the function needs: a function
    whose dependencies became empty, or dropped all of one layer's, loses those layers."""
    atoms = _atom_groups(view.needs)
    layers = sorted(
        (frozenset(m) for m in previous.layers.values()), key=lambda g: (-len(g), sorted(g))
    )
    seeded: dict[str, list[Group]] = {}
    for name, members in view.needs.items():
        wanted = set(members)
        old = [frozenset(previous.layers[lid]) for lid in previous.functions.get(name, ())]
        still_used = all(layer & wanted for layer in old)
        if old and still_used and set(previous_needs(fleet, previous, name)) == wanted:
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
) -> _PlanState:
    state = _PlanState(fleet, params, view)
    for name in sorted(start):
        state.assign(name, start[name])
    if stacks:
        _stack(state)
    for name in sorted(start, key=lambda n: (-view.share[n], n)):
        steps = _FunctionSteps(state, name)
        while len(state.groups[name]) > params.layers_for(name):
            _, old, new = steps.best()
            steps.take(old, new)
    return state


class _StackMerges:
    """Shared "stack" layers: merge two layers for *every* function that uses either, so the
    layers stay a partition of the fleet's wheels (nothing duplicated) and the functions
    over ``max_layers`` that use both free a slot. A user of only one of them over-fetches
    the other, which is allowed only where it cannot shadow (see ``_StackOverFetch``).

    A layer's users, and so its rate, never change until it is merged away; a function's
    holdings only grow. So the model's cost change of a pair is priced once, a pair once
    refused stays refused, and a pair's gain holds until the next merge (``epoch``):
    re-pricing a pair is a dictionary look-up, not a pass over its users."""

    def __init__(self, state: _PlanState) -> None:
        self.state = state
        self.users: dict[Group, set[str]] = defaultdict(set)
        for name, groups in state.groups.items():
            for group in groups:
                self.users[group].add(name)
        self.over = {n for n, g in state.groups.items() if len(g) > state.params.layers_for(n)}
        # what freeing one slot is worth to a function: the model's price of its cheapest
        # local step, the one the greedy pass would otherwise take
        self.value = {n: max(0.0, _FunctionSteps(state, n).best()[0]) for n in sorted(self.over)}
        self.over_fetch = _StackOverFetch(state, self.users)
        self.epoch = 0  # merges so far
        self._priced: dict[tuple[Group, Group], tuple[tuple[str, ...], float] | None] = {}
        self._gains: dict[tuple[Group, Group], tuple[int, float | None]] = {}

    def gain(self, x: Group, y: Group) -> float | None:
        """Model seconds saved by merging x and y for all their users (None: not allowed)."""
        pair = (x, y) if self.state.key(x) < self.state.key(y) else (y, x)
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
        params = self.state.params
        saved = sum(self.value[n] for n in over if len(self.state.groups[n]) > params.layers_for(n))
        return SLOT_VALUE * saved - change

    def _price(self, x: Group, y: Group) -> tuple[tuple[str, ...], float] | None:
        """(co-users that were over the limit, model cost change) of merging x and y."""
        state = self.state
        rate_x, rate_y = state.rate[x], state.rate[y]
        if min(rate_x, rate_y) * state.view.horizon < STACK_EXPOSURE:
            return None
        both = sorted(self.users[x] & self.users[y])
        shared = sum(state.view.share[n] for n in both)
        change = state.cost(x | y, rate_x + rate_y - shared)
        change -= state.cost(x, rate_x) + state.cost(y, rate_y)
        return tuple(n for n in both if n in self.over), change

    def _may_share(self, x: Group, y: Group) -> bool:
        """Does every user of only one of x and y pass the over-fetch rule for the other?"""
        users_x, users_y = self.users[x], self.users[y]
        return self.over_fetch.may_ride(users_x - users_y, y) and self.over_fetch.may_ride(
            users_y - users_x, x
        )

    def merge(self, x: Group, y: Group) -> Group:
        union = x | y
        users_x, users_y = self.users.pop(x), self.users.pop(y)
        for name in sorted(users_x | users_y):
            old = [g for g, users in ((x, users_x), (y, users_y)) if name in users]
            self.state.move(name, old, union)
            self.users[union].add(name)
        self.over_fetch.ride(users_x - users_y, y)
        self.over_fetch.ride(users_y - users_x, x)
        self.over_fetch.rehome(union)
        self.epoch += 1
        return union

    def candidates(self, name: str) -> list[Group]:
        groups = self.state.groups[name]
        return sorted(groups, key=lambda g: (-self.state.rate[g], self.state.key(g)))[
            :PAIR_CANDIDATES
        ]

    def partners(self, union: Group) -> list[Group]:
        """The layers to pair a new stack with: the candidates of its users still over."""
        params = self.state.params
        found = {
            z
            for name in self.users[union] & self.over
            if len(self.state.groups[name]) > params.layers_for(name)
            for z in self.candidates(name)
            if z != union
        }
        return sorted(found, key=self.state.key)


class _StackOverFetch:
    """The over-fetch rule for stacks, checked for many functions at once: may every one of
    a set of functions take a layer it does not use? Not if the layer holds a
    runtime-provided wheel, another version of a package one of them holds, or puts one of
    them over the size limit. The stack layers partition the fleet's wheels, so a function
    holds another version of a layer's package exactly when it uses the layer that holds
    that version: a few set intersections instead of a pass over every function."""

    def __init__(self, state: _PlanState, users: Mapping[Group, set[str]]) -> None:
        self.state, self.users = state, users
        self.layer_of = {p: g for g in users for p in g}
        assert sum(map(len, users)) == len(self.layer_of), "stack layers must not overlap"
        packages = state.fleet.packages
        versions: dict[str, list[str]] = defaultdict(list)
        for pin in sorted(self.layer_of):
            versions[packages[pin].name].append(pin)
        self.versions = {name: pins for name, pins in versions.items() if len(pins) > 1}
        self.unpacked = {
            n: state.fleet.functions[n].code_size + sum(packages[p].unpacked_size for p in needs)
            for n, needs in state.view.needs.items()
        }
        self.most = max(self.unpacked.values(), default=0)
        self._facts: dict[Group, tuple[tuple[str, ...], int] | None] = {}

    def facts(self, layer: Group) -> tuple[tuple[str, ...], int] | None:
        """(the other versions of its packages, its unpacked bytes); None if the runtime
        ships one of its wheels."""
        if layer not in self._facts:
            packages = self.state.fleet.packages
            rivals = tuple(
                q
                for p in sorted(layer)
                for q in self.versions.get(packages[p].name, ())
                if q not in layer
            )
            size = sum(packages[p].unpacked_size for p in layer)
            self._facts[layer] = None if layer & self.state.view.runtime else (rivals, size)
        return self._facts[layer]

    def may_ride(self, riders: set[str], layer: Group) -> bool:
        """May every function of ``riders`` (none of which uses ``layer``) over-fetch it?"""
        if not riders:
            return True
        facts = self.facts(layer)
        if facts is None:
            return False
        rivals, size = facts
        params = self.state.params
        may_be_over = self.most > params.size_limit - size or params.limits
        if may_be_over and any(self.unpacked[n] > params.size_for(n) - size for n in riders):
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


def _stack(state: _PlanState) -> None:
    """Merge layers into shared stacks while the model says it pays (lazy greedy: a popped
    pair is re-priced and pushed back if it is no longer the best)."""
    stacks = _StackMerges(state)
    heap: list[tuple[float, tuple[str, ...], tuple[str, ...]]] = []
    pairs: set[tuple[Group, Group]] = set()
    for name in stacks.over:
        candidates = stacks.candidates(name)
        for i, x in enumerate(candidates):
            pairs |= {
                (x, y) if state.key(x) < state.key(y) else (y, x) for y in candidates[i + 1 :]
            }
    for x, y in sorted(pairs, key=lambda p: (state.key(p[0]), state.key(p[1]))):
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
    stacks: _StackMerges,
    heap: list[tuple[float, tuple[str, ...], tuple[str, ...]]],
    x: Group,
    y: Group,
) -> None:
    gain = stacks.gain(x, y)
    if gain is not None and gain > 0:
        a, b = sorted((stacks.state.key(x), stacks.state.key(y)))
        heapq.heappush(heap, (-gain, a, b))


class _FunctionSteps:
    """The cheapest ways to take one layer off one function, kept up to date between its
    steps. A function's layers are disjoint, and a step changes the rates of the layers it
    takes out and puts in and of no other; so the prices of the function's other layers,
    of merging two of them, and the hot layers that contain them all hold for its next step.
    """

    def __init__(self, state: _PlanState, name: str) -> None:
        self.state, self.name = state, name
        self.weight = state.view.share[name]
        self._reset()

    def _reset(self) -> None:
        self.leave: dict[Group, tuple[float, tuple[str, ...]]] = {}  # price, then tie-break
        self.pairs: dict[tuple[Group, Group], tuple[float, Group]] = {}
        self.covers: dict[Group, list[Group]] = defaultdict(list)  # hot layer -> ours it covers
        self.indexed: dict[Group, list[Group]] = {}  # our layer -> hot layers that cover it
        self.multi: set[Group] = set()  # hot layers that cover two or more of ours
        self.refused: set[Group] = set()  # layers it may never over-fetch
        groups = self.state.groups[self.name]
        self.held = frozenset().union(*groups)
        self.disjoint = len(self.held) == sum(len(g) for g in groups)
        self.holding = _HeldWheels(self.state, self.name, self.held)
        for group in groups:
            self._index(group)

    def best(self) -> Step:
        """The cheapest step: merge two of its layers, or move onto a layer covering some."""
        state, leave = self.state, self.leave
        groups = state.groups[self.name]
        for group in groups:
            if group not in leave:
                leave[group] = (state.delta(group, -self.weight), state.key(group))
        cheapest = sorted(groups, key=leave.__getitem__)[:PAIR_CANDIDATES]
        best: Step | None = None
        known = self.pairs.get
        for i, x in enumerate(cheapest):
            for y in cheapest[i + 1 :]:
                priced = known((x, y)) or self._merge_price(x, y)
                if best is None or priced[0] < best[0]:
                    best = (priced[0], [x, y], priced[1])
        for layer, covered in self._supersets():
            change = sum(leave[g][0] for g in covered) + state.delta(layer, self.weight)
            if best is None or change < best[0]:
                best = (change, covered, layer)
        assert best is not None  # a function over the limit has at least two layers
        return best

    def _merge_price(self, x: Group, y: Group) -> tuple[float, Group]:
        union = x | y
        join = self.state.join_delta(x, y, union, self.weight)
        priced = (self.leave[x][0] + self.leave[y][0] + join, union)
        self.pairs[(x, y)] = priced
        return priced

    def _supersets(self) -> list[tuple[Group, list[Group]]]:
        """Layers in use that cover two or more of the function's layers whole, and whose
        other wheels cannot shadow anything it holds or the runtime provides."""
        state, held = self.state, self.held
        found = []
        for layer in self.multi - self.refused:
            covered = self.covers[layer]
            if state.rate[layer] < state.hot or layer & held != frozenset().union(*covered):
                continue
            if self.holding.may_over_fetch(layer - held):
                found.append((layer, sorted(covered, key=state.key)))
            else:  # what it holds only grows: refused for good
                self.refused.add(layer)
        return sorted(found, key=lambda item: state.key(item[0]))

    def take(self, old: Sequence[Group], new: Group) -> None:
        """Take the step and forget the prices it changed."""
        self.state.move(self.name, old, new)
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
        first = self.state.key(group)[0]
        layers = [z for z in self.state.containing[first] if group <= z]
        self.indexed[group] = layers
        for layer in layers:
            self.covers[layer].append(group)
            if len(self.covers[layer]) >= 2:
                self.multi.add(layer)


class _HeldWheels:
    """What one function holds, for the over-fetch rule: its package names and the unpacked
    bytes of its code and wheels."""

    def __init__(self, state: _PlanState, name: str, held: Group) -> None:
        self.state = state
        self.names: set[str] = set()
        self.unpacked = state.fleet.functions[name].code_size
        self.limit = state.params.size_for(name)
        self.add(held)

    def add(self, pins: Iterable[str]) -> None:
        packages = self.state.fleet.packages
        for pin in pins:
            self.names.add(packages[pin].name)
            self.unpacked += packages[pin].unpacked_size

    def may_over_fetch(self, extra: Group) -> bool:
        """No runtime-provided wheel, no second version of anything held, under the limit."""
        state = self.state
        if extra & state.view.runtime:
            return False
        packages = state.fleet.packages
        if any(packages[p].name in self.names for p in extra):
            return False
        unpacked = self.unpacked + sum(packages[p].unpacked_size for p in extra)
        return unpacked <= self.limit

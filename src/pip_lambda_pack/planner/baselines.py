"""The baselines the default planner is measured against (docs/planner.md, "Strategies").

Each is a strategy ``(Fleet, PlanParams) -> LayerPlan``: ``single`` (what most tools do),
``per-package`` (the benchmarks' floor), ``popularity-topk`` (Nix's
referencesByPopularity) and ``nixery`` (Nixery's dominator-tree layering).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from .model import MB, Fleet, LayerPlan, PlanParams, plan_from_groups, shares, usage
from .runtime_provided import closures


def plan_single(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """One layer per function holding its whole closure (what most tools do)."""
    return plan_from_groups(
        "single", {name: [pins] for name, pins in closures(fleet, params).items()}
    )


def plan_per_package(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """Every wheel its own layer, ignoring max-layers: the floor, for benchmarks only."""
    groups = {name: [[p] for p in pins] for name, pins in closures(fleet, params).items()}
    return plan_from_groups("per-package", groups)


def plan_popularity_topk(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """Nix's referencesByPopularity: each function's K-1 most popular pins get a layer
    each, the rest share one. Popularity is fleet usage, then PyPI downloads, then id."""
    used = usage(fleet)

    def rank(pin: str) -> tuple[float, int, str]:
        return (-used[pin], -fleet.packages[pin].downloads, pin)

    groups: dict[str, list[list[str]]] = {}
    for name, members in closures(fleet, params).items():
        ordered = sorted(members, key=rank)
        k = params.layers_for(name)
        if len(ordered) <= k:
            groups[name] = [[pin] for pin in ordered]
            continue
        groups[name] = [[pin] for pin in ordered[: k - 1]] + [ordered[k - 1 :]]
    return plan_from_groups("popularity-topk", groups)


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
        name: _nixery_groups(fleet, members, loose, used, params.layers_for(name))
        for name, members in closures(fleet, params).items()
    }
    return plan_from_groups("nixery", groups)


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

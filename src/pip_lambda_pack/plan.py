"""The layer planner: a fleet of functions in, layers and each function's layer list out.

Pure: nothing here reads a file, the network or the clock. A strategy is a function
``(Fleet, PlanParams) -> LayerPlan``; ``make_plan`` runs one and checks that the plan
keeps every constraint (closure covered, at most ``max_layers`` layers, one version per
package, size limit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from .errors import ConfigError, PlanError
from .graph import Pin, pins
from .popularity import downloads
from .units import human_size

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # bytes, function code plus all its layers


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """What the planner knows of one pinned wheel."""

    id: str  # name==version
    name: str
    size: int  # compressed bytes (what a cold start transfers)
    unpacked_size: int
    downloads: int = 0  # PyPI downloads in the snapshot: the global popularity prior


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
class PlanParams:
    """Constraints and transfer figures; defaults are Lambda's limits."""

    max_layers: int = 5
    size_limit: int = LAMBDA_UNZIPPED_LIMIT
    latency_s: float = 0.030  # per fetch
    bandwidth_bps: float = 100e6  # bytes per second


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPlan:
    """Layers by id (sorted pins each) and each function's layers in merge order."""

    strategy: str
    layers: Mapping[str, tuple[str, ...]]
    functions: Mapping[str, tuple[str, ...]]
    extras: Mapping[str, Any] = field(default_factory=dict)


Strategy = Callable[[Fleet, PlanParams], LayerPlan]


def layer_id(members: Sequence[str]) -> str:
    """A layer's plan id: a digest of its sorted pins, stable across runs and machines."""
    text = "\n".join(sorted(members))
    return "L" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _assemble(strategy: str, per_function: Mapping[str, Sequence[Sequence[str]]]) -> LayerPlan:
    layers: dict[str, tuple[str, ...]] = {}
    functions: dict[str, tuple[str, ...]] = {}
    for name, groups in sorted(per_function.items()):
        ids = []
        for group in groups:
            if group:
                lid = layer_id(group)
                layers[lid] = tuple(sorted(group))
                ids.append(lid)
        functions[name] = tuple(ids)
    return LayerPlan(strategy=strategy, layers=dict(sorted(layers.items())), functions=functions)


def plan_single(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """One layer per function holding its whole closure (what most tools do)."""
    return _assemble("single", {name: [f.pins] for name, f in fleet.functions.items()})


def usage(fleet: Fleet) -> dict[str, float]:
    """Pin id -> summed weight of the functions that need it."""
    totals: dict[str, float] = dict.fromkeys(fleet.packages, 0.0)
    for function in fleet.functions.values():
        for pin in function.pins:
            totals[pin] += function.weight
    return totals


def plan_popularity_topk(fleet: Fleet, params: PlanParams) -> LayerPlan:
    """Nix's referencesByPopularity: each function's K-1 most popular pins get a layer
    each, the rest share one. Popularity is fleet usage, then PyPI downloads, then id."""
    used = usage(fleet)

    def rank(pin: str) -> tuple[float, int, str]:
        return (-used[pin], -fleet.packages[pin].downloads, pin)

    groups: dict[str, list[list[str]]] = {}
    for name, function in fleet.functions.items():
        ordered = sorted(function.pins, key=rank)
        if len(ordered) <= params.max_layers:
            groups[name] = [[pin] for pin in ordered]
            continue
        top = ordered[: params.max_layers - 1]
        groups[name] = [[pin] for pin in top] + [ordered[params.max_layers - 1 :]]
    return _assemble("popularity-topk", groups)


STRATEGIES: dict[str, Strategy] = {
    "single": plan_single,
    "popularity-topk": plan_popularity_topk,
}
DEFAULT_STRATEGY = "popularity-topk"


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown planning strategy {name!r}", "use one of: " + ", ".join(STRATEGIES)
        ) from None


def make_plan(fleet: Fleet, params: PlanParams, strategy: str = DEFAULT_STRATEGY) -> LayerPlan:
    """Plan the fleet with ``strategy`` and check every constraint."""
    check_fleet(fleet, params)
    plan = get_strategy(strategy)(fleet, params)
    check_plan(fleet, plan, params)
    return plan


def check_fleet(fleet: Fleet, params: PlanParams) -> None:
    """Reject a function whose closure alone is over the size limit, naming its big wheels."""
    for name, function in sorted(fleet.functions.items()):
        total = function.code_size + sum(fleet.packages[p].unpacked_size for p in function.pins)
        if total > params.size_limit:
            biggest = sorted(function.pins, key=lambda p: -fleet.packages[p].unpacked_size)[:3]
            listed = ", ".join(
                f"{p} ({human_size(fleet.packages[p].unpacked_size)})" for p in biggest
            )
            raise PlanError(
                f"function {name} needs {human_size(total)} unzipped, over the "
                f"{human_size(params.size_limit)} limit; largest: {listed}",
                "drop or slim the largest dependencies, or split the function",
            )


def check_plan(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> None:
    """Raise PlanError if the plan misses a pin, breaks max layers or mixes versions."""
    for name, function in sorted(fleet.functions.items()):
        ids = plan.functions.get(name, ())
        provided = [pin for lid in ids for pin in plan.layers[lid]]
        missing = set(function.pins) - set(provided)
        problem = ""
        if missing:
            problem = f"misses {', '.join(sorted(missing))}"
        elif len(ids) > params.max_layers:
            problem = f"uses {len(ids)} layers, over the limit of {params.max_layers}"
        elif len({fleet.packages[p].name for p in provided}) != len(set(provided)):
            problem = "has two versions of one package"
        if problem:
            raise PlanError(
                f"the {plan.strategy} plan for function {name} {problem}",
                "use another --strategy or raise --max-layers",
            )


def fleet_from_graph(
    graph: nx.DiGraph,
    weights: Mapping[str, float] | None = None,
    code_sizes: Mapping[str, int] | None = None,
) -> Fleet:
    """The planner's view of a resolved dependency graph."""
    packages = {pid: _package(pin) for pid, pin in pins(graph).items()}
    functions = {
        name: FunctionNeed(
            pins=tuple(members),
            weight=(weights or {}).get(name, 1.0),
            code_size=(code_sizes or {}).get(name, 0),
        )
        for name, members in sorted(graph.graph["functions"].items())
    }
    return Fleet(packages=packages, functions=functions)


def _package(pin: Pin) -> Package:
    return Package(
        id=pin.id,
        name=pin.name,
        size=pin.size,
        unpacked_size=pin.unpacked_size,
        downloads=downloads(pin.name),
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
    try:
        packages = {
            pid: Package(
                id=pid,
                name=str(info["name"]),
                size=int(info["size"]),
                unpacked_size=int(info.get("unpacked_size", info["size"])),
                downloads=downloads(str(info["name"])),
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


def plan_to_json(plan: LayerPlan, fleet: Fleet, params: PlanParams) -> dict[str, Any]:
    """The plan in DESIGN.md's schema plus figures per layer and per function."""
    users: dict[str, list[str]] = {lid: [] for lid in plan.layers}
    for name, ids in plan.functions.items():
        for lid in ids:
            users[lid].append(name)
    return {
        "strategy": plan.strategy,
        "max_layers": params.max_layers,
        "layers": {lid: list(members) for lid, members in plan.layers.items()},
        "functions": {name: list(ids) for name, ids in plan.functions.items()},
        "layer_stats": {
            lid: {"size": layer_size(fleet, plan, lid), "users": sorted(users[lid])}
            for lid in plan.layers
        },
        "function_stats": {
            name: function_figures(fleet, plan, params, name) for name in plan.functions
        },
    }


def layer_size(fleet: Fleet, plan: LayerPlan, lid: str) -> int:
    return sum(fleet.packages[p].size for p in plan.layers[lid])


def function_figures(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, name: str
) -> dict[str, float]:
    """Bytes a cold start with an empty cache fetches, and the serial time that takes."""
    ids = plan.functions[name]
    size = sum(layer_size(fleet, plan, lid) for lid in ids)
    unpacked = sum(fleet.packages[p].unpacked_size for lid in ids for p in plan.layers[lid])
    cold = len(ids) * params.latency_s + size / params.bandwidth_bps
    return {
        "layers": len(ids),
        "bytes": size,
        "unpacked_bytes": unpacked,
        "cold_ms": round(cold * 1000, 3),
    }


def plan_text(report: Mapping[str, Any]) -> list[str]:
    """The plan report of ``plan_to_json`` as lines for a terminal."""
    lines = [f"strategy {report['strategy']}, at most {report['max_layers']} layers per function"]
    lines.append("")
    lines.append("functions:")
    for name, ids in report["functions"].items():
        stats = report["function_stats"][name]
        lines.append(
            f"  {name}: {len(ids)} layers, {human_size(stats['bytes'])} to fetch "
            f"({human_size(stats['unpacked_bytes'])} unzipped), "
            f"{stats['cold_ms']:.0f} ms with an empty cache"
        )
        for lid in ids:
            lines.append(f"    {lid} {human_size(report['layer_stats'][lid]['size'])}")
    lines.append("")
    lines.append("layers:")
    for lid, members in report["layers"].items():
        stats = report["layer_stats"][lid]
        lines.append(
            f"  {lid} {human_size(stats['size'])}, used by {', '.join(stats['users'])}: "
            + ", ".join(members)
        )
    return lines

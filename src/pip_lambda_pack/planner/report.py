"""The plan as people read it: a JSON report in docs/design.md's schema with figures per layer
and per function (``plan_to_json``), the same as terminal lines (``plan_text``); the HTML page
made from it is ``page.render_html``.

Two figures per cold start, because the model's is a steady state: *once warm* weighs each
layer by q, the model's chance that a worker already holds it when the fleet has run a
while; *empty cache* is what the first cold start of a layer nobody has run yet costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..units import human_size
from .cost import (
    cost_model,
    expected_fetch,
    expected_figures,
    fleet_expected,
    hit_rates,
    priced,
)
from .model import Fleet, LayerPlan, PlanParams, layer_size, layer_users, shares

Q_NOTE = (
    "q: the model's chance that a worker already holds a layer when a cold start needs it, "
    "once the fleet has run a while (from the functions' weights and PyPI popularity); "
    '"once warm" figures use it. A layer nobody has run yet is in no cache: its first cold '
    'start takes the "empty cache" time.'
)

# --- the JSON and text report -------------------------------------------------------------


def plan_to_json(plan: LayerPlan, fleet: Fleet, params: PlanParams) -> dict[str, Any]:
    """The plan in docs/design.md's schema plus figures per layer and per function."""
    q = hit_rates(fleet, plan, params)
    expected = expected_figures(fleet, plan, params, q)
    function_stats = {
        name: {
            **function_figures(fleet, plan, params, name),
            "expected_ms": round(expected[name].ms, 3),
            "expected_bytes": round(expected[name].bytes),
        }
        for name in plan.functions
    }
    model = _model_json(fleet, plan, params)
    share = shares(fleet)
    cold = sum(share[n] * function_stats[n]["cold_ms"] for n in plan.functions)
    model["empty_cache_ms_per_cold_start"] = round(cold, 3)
    return {
        "strategy": plan.strategy,
        "max_layers": params.max_layers,
        "layers": {lid: list(members) for lid, members in plan.layers.items()},
        "functions": {name: list(ids) for name, ids in plan.functions.items()},
        "layer_stats": _layer_stats(fleet, plan, params, q),
        "function_stats": function_stats,
        "model": model,
        "warnings": list(plan.warnings),
    }


def _layer_stats(
    fleet: Fleet, plan: LayerPlan, params: PlanParams, q: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    users = layer_users(plan)
    observed = set(params.usage or ())
    stats = {}
    for lid, members in plan.layers.items():
        size = layer_size(fleet, plan, lid)
        stats[lid] = {
            "size": size,
            "unpacked_size": sum(fleet.packages[p].unpacked_size for p in members),
            "users": users[lid],
            "q": round(q[lid], 4),
            "top": top_level(fleet, members),
            "saved_bytes": size * max(0, len(users[lid]) - 1),  # not stored again per user
            "observed": any(p in observed for p in members),  # a store has seen it run
        }
    return stats


def top_level(fleet: Fleet, members: Sequence[str]) -> list[str]:
    """The packages of a layer a user asked for: those no package of the fleet requires
    (``requests``, not its ``certifi``), largest first; for a layer of dependencies alone,
    those no other member requires."""
    required = {dep for package in fleet.packages.values() for dep in package.requires}
    within = {dep for m in members for dep in fleet.packages[m].requires}
    roots = [m for m in members if m not in required] or [m for m in members if m not in within]
    roots = roots or list(members)
    roots.sort(key=lambda p: (-fleet.packages[p].unpacked_size, p))
    return [fleet.packages[p].name for p in roots]


def _model_json(fleet: Fleet, plan: LayerPlan, params: PlanParams) -> dict[str, Any]:
    overall = fleet_expected(fleet, plan, params)
    return {
        "latency_ms": params.latency_s * 1000,
        "bandwidth_bps": params.bandwidth_bps,
        "cache_bytes": params.cache_bytes,
        "extract_bps": params.extract_bps,
        "worker_cold_starts": params.horizon,
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
    timed, _ = priced(fleet, params)  # the unpacking counted where params price it
    cold = expected_fetch(((layer_size(timed, plan, lid), 0.0) for lid in ids), cost_model(params))
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
            f"expected per cold start once warm: {ms(model['expected_ms_per_cold_start'])}, "
            f"{human_size(model['expected_bytes_per_cold_start'])} "
            f"(model: {model['latency_ms']:.0f} ms per fetch, "
            f"{human_size(model['bandwidth_bps'])}/s, {model['fetch']} fetches)"
        )
    lines += ["", "functions:"]
    for name, ids in report["functions"].items():
        lines += _function_lines(report, name, ids)
    lines += ["", "layers:"]
    for lid, members in report["layers"].items():
        stats = report["layer_stats"][lid]
        lines.append(
            f"  {lid} {human_size(stats['size'])}, q {q_text(stats.get('q', 0.0))}, "
            f"used by {', '.join(stats['users'])}: " + ", ".join(members)
        )
    lines += ["", Q_NOTE]
    lines += [f"warning: {w}" for w in report.get("warnings", ())]
    return lines


def ms(value: float) -> str:
    """``0.2 ms``, ``<0.1 ms``, ``37 ms``: never a bare ``0 ms`` for a small figure."""
    if 0 < value < 0.05:
        return "<0.1 ms"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def q_text(q: float) -> str:
    """q to two places, but never ``1.00``: the model never knows a layer is cached."""
    return ">0.99" if q > 0.99 else f"{q:.2f}"


def _function_lines(report: Mapping[str, Any], name: str, ids: Sequence[str]) -> list[str]:
    stats = report["function_stats"][name]
    expected = ""
    if "expected_ms" in stats:
        expected = f", expected {ms(stats['expected_ms'])} once warm"
    count = f"{len(ids)} layer" + ("" if len(ids) == 1 else "s")
    lines = [
        f"  {name}: {count}, {human_size(stats['bytes'])} to fetch "
        f"({human_size(stats['unpacked_bytes'])} unzipped): "
        f"{ms(stats['cold_ms'])} with an empty cache{expected}"
    ]
    lines += [f"    {lid} {human_size(report['layer_stats'][lid]['size'])}" for lid in ids]
    return lines

"""The plan as people read it: a JSON report in DESIGN.md's schema with figures per layer and
per function (``plan_to_json``), the same as terminal lines (``plan_text``), and one
self-contained HTML page (``render_html``).

The page: functions are rows and layers columns; a cell holds the layer's size where the
function uses it, shared layers are marked, and each row ends with the function's expected
cold start and the share of its bytes likely cached already. No scripts, no external assets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..units import human_size
from .cost import cost_model, expected_fetch, expected_figures, fleet_expected, hit_rates
from .model import Fleet, LayerPlan, PlanParams, layer_size, layer_users

# --- the JSON and text report -------------------------------------------------------------


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


# --- the HTML page ------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232b; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.summary { color: #4a5563; margin: 0 0 16px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d4d9e0; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; }
th.function, td.function { text-align: left; }
td.used { background: #9cc3f5; }
td.used.shared { background: #3a7bd5; color: #fff; font-weight: 600; }
td.empty { background: #fafbfc; }
th.layer { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: 500; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 8px; }
ul.layers { columns: 2; font-size: 12px; color: #4a5563; }
"""


def render_html(report: Mapping[str, Any], title: str = "Layer plan") -> str:
    """The whole page as a string (UTF-8 HTML5)."""
    layers = list(report["layers"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _summary(report),
        _legend(),
        '<table id="matrix">',
        _header(report, layers),
        *(_row(report, name, layers) for name in report["functions"]),
        "</table>",
        _layer_list(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(report: Mapping[str, Any]) -> str:
    functions, layers = len(report["functions"]), len(report["layers"])
    shared = sum(1 for s in report["layer_stats"].values() if len(s["users"]) > 1)
    stored = sum(s["size"] for s in report["layer_stats"].values())
    return (
        f'<p class="summary">strategy <b>{escape(str(report["strategy"]))}</b>, '
        f"{functions} functions, {layers} layers ({shared} shared), "
        f"{human_size(stored)} stored, at most {report['max_layers']} layers per function</p>"
    )


def _legend() -> str:
    return (
        '<p class="legend"><span class="used" style="background:#9cc3f5">used</span>'
        '<span style="background:#3a7bd5;color:#fff">shared by several functions</span></p>'
    )


def _header(report: Mapping[str, Any], layers: list[str]) -> str:
    cells = []
    for lid in layers:
        members, size = report["layers"][lid], report["layer_stats"][lid]["size"]
        cells.append(
            f'<th class="layer" title="{escape(lid)}: {escape(", ".join(members))}">'
            f"{escape(_label(members))} · {human_size(size)}</th>"
        )
    return (
        '<tr><th class="function">function</th>'
        + "".join(cells)
        + "<th>layers</th><th>bytes</th><th>expected cold start</th><th>likely cached</th></tr>"
    )


def _label(members: list[str]) -> str:
    """A column's name: its first package, and how many more it holds."""
    first = members[0].split("==")[0] if members else "(empty)"
    return first if len(members) <= 1 else f"{first} +{len(members) - 1}"


def _row(report: Mapping[str, Any], name: str, layers: list[str]) -> str:
    used = set(report["functions"][name])
    stats = report["function_stats"][name]
    cells = []
    for lid in layers:
        layer = report["layer_stats"][lid]
        if lid in used:
            shared = " shared" if len(layer["users"]) > 1 else ""
            cells.append(f'<td class="used{shared}">{human_size(layer["size"])}</td>')
        else:
            cells.append('<td class="empty"></td>')
    cached = _cached_share(stats)
    expected = stats.get("expected_ms", stats.get("cold_ms", 0.0))
    return (
        f'<tr class="function-row"><td class="function">{escape(name)}</td>'
        + "".join(cells)
        + f"<td>{len(used)}</td><td>{human_size(stats['bytes'])}</td>"
        + f'<td class="expected">{expected:.1f} ms</td><td>{cached:.0%}</td></tr>'
    )


def _cached_share(stats: Mapping[str, Any]) -> float:
    """The share of the function's bytes the model expects to find cached already."""
    total = stats["bytes"]
    if not total:
        return 1.0
    return max(0.0, 1.0 - float(stats.get("expected_bytes", total)) / float(total))


def _layer_list(report: Mapping[str, Any]) -> str:
    items = []
    for lid, members in report["layers"].items():
        stats = report["layer_stats"][lid]
        users = ", ".join(stats["users"])
        items.append(
            f"<li><b>{escape(lid)}</b> ({human_size(stats['size'])}; used by {escape(users)}): "
            f"{escape(', '.join(members))}</li>"
        )
    return '<h2>Layers</h2><ul class="layers">' + "".join(items) + "</ul>"

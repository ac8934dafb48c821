"""The plan as one self-contained HTML page (``plan --report FILE``), from ``plan_to_json``.

First screen: the fleet in figures beside the baselines on the same fleet, the planner's
warnings, and a bar chart of each function's expected cold start, worst first (sortable,
filterable by name). Below: the layers, most shared first, named by the packages a user asked
for; then the functions x layers matrix, collapsed past ``MATRIX_COLUMNS`` layers. Inline
CSS and a few lines of inline script; no network, no external assets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..units import human_size, plural
from .report import Q_NOTE, ms, q_text

MATRIX_COLUMNS = 50  # past this many layers the matrix shows the most shared ones

_STYLE = """
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1d232b; background: #f6f7f9; }
main { max-width: 1360px; margin: 0 auto; padding: 18px 20px 40px; }
h1 { font-size: 22px; margin: 0; }
h2 { font-size: 16px; margin: 0 0 8px; }
.sub { color: #4a5563; margin: 2px 0 14px; }
.card { background: #fff; border: 1px solid #dde2e8; border-radius: 8px; padding: 12px 14px;
  margin-bottom: 14px; }
.top { display: grid; grid-template-columns: 545px 1fr; gap: 14px; align-items: start; }
table { border-collapse: collapse; }
th, td { padding: 4px 7px; text-align: right; white-space: nowrap; }
th { font-weight: 600; color: #323b46; }
td.name, th.name { text-align: left; }
table.compare td, table.compare th { border-bottom: 1px solid #e6e9ee; }
table.compare th.this { color: #2f6fce; }
td.best { color: #0b6b3a; }
.ratio { color: #6b7480; font-weight: 400; font-size: 12px; }
.warnings { border-color: #e8c65a; background: #fffbea; }
.warnings li { margin: 2px 0; }
.controls { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; flex-wrap: wrap; }
.controls input { font: inherit; padding: 4px 8px; width: 220px; border: 1px solid #c6ccd4;
  border-radius: 6px; }
.controls button { font: inherit; padding: 3px 10px; border: 1px solid #c6ccd4;
  background: #fff; border-radius: 6px; cursor: pointer; }
.controls button[aria-pressed="true"] { background: #2f6fce; color: #fff; border-color: #2f6fce; }
.controls .shown { color: #6b7480; margin-left: auto; }
#bars { max-height: 610px; overflow-y: auto; }
.bar { display: grid; grid-template-columns: 120px 1fr 140px; gap: 8px; align-items: center;
  height: 20px; font-size: 13px; }
.bar .fn { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.track { position: relative; height: 13px; background: #eef1f5; border-radius: 3px; }
.track span { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; }
.track .cold { background: #c9dcf7; }
.track .warm { background: #2f6fce; }
.bar .val { text-align: right; font-variant-numeric: tabular-nums; }
.bar .val small { color: #6b7480; }
.legend { font-size: 12px; color: #4a5563; }
.legend i { display: inline-block; width: 12px; height: 10px; border-radius: 2px;
  margin: 0 4px 0 10px; vertical-align: baseline; }
.scroll { max-height: 460px; overflow: auto; border: 1px solid #e6e9ee; }
.scroll thead th { position: sticky; top: 0; background: #eef1f5; z-index: 2; }
table.layers td, table.matrix td { border-bottom: 1px solid #eef1f5; }
td.id { font-family: ui-monospace, monospace; font-size: 12px; color: #4a5563; }
table.matrix th.layer { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: 500;
  font-size: 12px; max-height: 160px; text-align: left; }
table.matrix th.name, table.matrix td.name { position: sticky; left: 0; background: #fff;
  z-index: 1; }
table.matrix thead th.name { z-index: 3; background: #eef1f5; }
td.used { background: #9cc3f5; }
td.used.shared { background: #2f6fce; color: #fff; }
table.matrix td { font-size: 12px; border-right: 1px solid #f1f3f6; }
details > summary { cursor: pointer; font-weight: 600; font-size: 16px; margin-bottom: 8px; }
.notes { color: #4a5563; font-size: 13px; }
"""

_SCRIPT = """
(function () {
  var bars = document.getElementById("bars");
  var rows = Array.prototype.slice.call(bars.children);
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var buttons = document.querySelectorAll("button[data-sort]");
  var matrix = document.querySelectorAll("#matrix tbody tr");
  var key = "expected";
  function order(a, b) {
    if (key === "name") return a.dataset.name < b.dataset.name ? -1 : 1;
    var d = Number(b.dataset[key]) - Number(a.dataset[key]);
    return d !== 0 ? d : (a.dataset.name < b.dataset.name ? -1 : 1);
  }
  function apply() {
    var text = filter.value.trim().toLowerCase(), count = 0;
    rows.slice().sort(order).forEach(function (row) {
      var hit = !text || row.dataset.name.toLowerCase().indexOf(text) >= 0;
      row.hidden = !hit;
      if (hit) count += 1;
      bars.appendChild(row);
    });
    var noun = rows.length === 1 ? " function" : " functions";
    shown.textContent = count + " of " + rows.length + noun;
    Array.prototype.forEach.call(buttons, function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.sort === key));
    });
    Array.prototype.forEach.call(matrix, function (tr) {
      tr.hidden = Boolean(text) && tr.dataset.name.toLowerCase().indexOf(text) < 0;
    });
  }
  filter.addEventListener("input", apply);
  Array.prototype.forEach.call(buttons, function (b) {
    b.addEventListener("click", function () { key = b.dataset.sort; apply(); });
  });
  apply();
})();
"""


def render_html(
    report: Mapping[str, Any],
    baselines: Sequence[Mapping[str, Any]] = (),
    title: str = "Layer plan",
) -> str:
    """The whole page (UTF-8 HTML5). ``baselines`` are ``plan_to_json`` reports of other
    strategies on the same fleet, shown beside this plan's figures."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}: {escape(str(report['strategy']))}</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        _heading(report, title),
        '<div class="top">',
        f"<div>{_comparison(report, baselines)}{_warnings(report)}</div>",
        _chart(report),
        "</div>",
        _layers(report),
        _matrix(report),
        f'<p class="notes">{escape(Q_NOTE)}</p>',
        f"</main><script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _heading(report: Mapping[str, Any], title: str) -> str:
    model = report["model"]
    return (
        f"<h1>{escape(title)} · {escape(str(report['strategy']))}</h1>"
        f'<p class="sub">{plural(len(report["functions"]), "function")}, '
        f"{plural(len(report['layers']), 'layer')}, "
        f"at most {report['max_layers']} per function · model: "
        f"{model['latency_ms']:.0f} ms per fetch, {human_size(model['bandwidth_bps'])}/s, "
        f"{human_size(model['cache_bytes'])} worker cache, {escape(model['fetch'])} fetches</p>"
    )


def _summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """One strategy's figures for the fleet (per cold start: weighted by the functions)."""
    stats = report["layer_stats"].values()
    model = report["model"]
    return {
        "strategy": report["strategy"],
        "layers": len(report["layers"]),
        "stored": sum(s["size"] for s in stats),
        "bytes": model["expected_bytes_per_cold_start"],
        "ms": model["expected_ms_per_cold_start"],
        "cold": model.get("empty_cache_ms_per_cold_start", 0.0),
    }


_ROWS = (  # key, heading, how shown, lower is better
    ("layers", "layers stored", str, False),
    ("stored", "bytes stored", human_size, True),
    ("bytes", "bytes per cold start", human_size, True),
    ("ms", "expected per cold start", ms, True),
    ("cold", "with an empty cache", ms, True),
)


def _comparison(report: Mapping[str, Any], baselines: Sequence[Mapping[str, Any]]) -> str:
    """This plan's figures beside the baselines': one column per strategy."""
    columns = [_summary(report), *(_summary(b) for b in baselines)]
    head = "".join(
        f"<th{' class=this' if i == 0 else ''}>{escape(str(c['strategy']))}</th>"
        for i, c in enumerate(columns)
    )
    body = []
    for key, label, show, lower in _ROWS:
        best = min(c[key] for c in columns)
        cells = []
        for index, column in enumerate(columns):
            base = columns[0][key]
            ratio = "" if index == 0 or not base else f" {column[key] / base:.1f}×"
            mark = ' class="best"' if lower and column[key] == best and len(columns) > 1 else ""
            cells.append(f'<td{mark}>{show(column[key])}<span class="ratio">{ratio}</span></td>')
        body.append(f'<tr><td class="name">{label}</td>{"".join(cells)}</tr>')
    return (
        '<section class="card" id="summary"><h2>The fleet, per cold start once warm</h2>'
        f'<table class="compare"><thead><tr><th class="name"></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _warnings(report: Mapping[str, Any]) -> str:
    warnings = report.get("warnings") or []
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    return (
        f'<section class="card warnings" id="warnings"><h2>{len(warnings)} planner '
        f"warning{'' if len(warnings) == 1 else 's'}</h2><ul>{items}</ul></section>"
    )


def _chart(report: Mapping[str, Any]) -> str:
    stats = report["function_stats"]
    scale = max((s["cold_ms"] for s in stats.values()), default=0.0) or 1.0
    order = sorted(stats, key=lambda n: (-stats[n].get("expected_ms", 0.0), n))
    rows = "".join(_bar(name, stats[name], scale) for name in order)
    return (
        '<section class="card" id="chart"><h2>Expected cold start per function, worst first'
        '</h2><div class="controls"><input id="filter" type="search" '
        'placeholder="filter by name" aria-label="filter functions by name">'
        '<button data-sort="expected" aria-pressed="true">once warm</button>'
        '<button data-sort="cold">empty cache</button>'
        '<button data-sort="layers">layers</button><button data-sort="name">name</button>'
        f'<span class="shown" id="shown">{plural(len(order), "function")}</span></div>'
        '<p class="legend"><i style="background:#2f6fce"></i>expected once warm'
        '<i style="background:#c9dcf7"></i>with an empty cache</p>'
        f'<div id="bars">{rows}</div></section>'
    )


def _bar(name: str, stats: Mapping[str, Any], scale: float) -> str:
    warm, cold = stats.get("expected_ms", 0.0), stats["cold_ms"]
    return (
        f'<div class="bar" data-name="{escape(name)}" data-expected="{warm}" '
        f'data-cold="{cold}" data-layers="{stats["layers"]}">'
        f'<span class="fn" title="{escape(name)}">{escape(name)}</span>'
        f'<span class="track"><span class="cold" style="width:{100 * cold / scale:.1f}%"></span>'
        f'<span class="warm" style="width:{100 * warm / scale:.1f}%"></span></span>'
        f'<span class="val">{ms(warm)} <small>/ {ms(cold)}</small></span></div>'
    )


def layer_order(report: Mapping[str, Any]) -> list[str]:
    """Layers most shared first, then by bytes sharing saves, then by size, then id."""
    stats = report["layer_stats"]
    return sorted(
        stats,
        key=lambda lid: (
            -len(stats[lid]["users"]),
            -stats[lid]["saved_bytes"],
            -stats[lid]["size"],
            lid,
        ),
    )


def layer_label(stats: Mapping[str, Any], members: Sequence[str]) -> str:
    """``requests``, ``fastapi, uvicorn``, ``numpy +2``: the packages a user asked for."""
    top = list(stats.get("top") or [m.split("==")[0] for m in members])
    return ", ".join(top[:2]) + (f" +{len(top) - 2}" if len(top) > 2 else "")


def _layers(report: Mapping[str, Any]) -> str:
    rows = []
    for lid in layer_order(report):
        stats, members = report["layer_stats"][lid], report["layers"][lid]
        users = stats["users"]
        rows.append(
            f'<tr><td class="id">{escape(lid)}</td>'
            f'<td class="name" title="{escape(", ".join(members))}">'
            f"{escape(layer_label(stats, members))}</td><td>{len(members)}</td>"
            f'<td title="{escape(", ".join(users))}">{len(users)}</td>'
            f"<td>{human_size(stats['size'])}</td><td>{human_size(stats['unpacked_size'])}</td>"
            f"<td>{human_size(stats['saved_bytes'])}</td><td>{q_text(stats['q'])}</td></tr>"
        )
    return (
        '<section class="card" id="layers"><h2>Layers, most shared first</h2>'
        '<div class="scroll"><table class="layers"><thead><tr><th class="name">id</th>'
        '<th class="name">packages asked for</th><th>wheels</th><th>functions</th>'
        "<th>size</th><th>unzipped</th><th>saved by sharing</th><th>q once warm</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _matrix(report: Mapping[str, Any]) -> str:
    order = layer_order(report)
    shown, rest = order[:MATRIX_COLUMNS], order[MATRIX_COLUMNS:]
    stats = report["layer_stats"]
    head = "".join(
        f'<th class="layer" title="{escape(lid)}">'
        f"{escape(layer_label(stats[lid], report['layers'][lid]))}"
        f" · {human_size(stats[lid]['size'])}</th>"
        for lid in shown
    )
    if rest:
        head += f"<th>{len(rest)} more layers</th>"
    functions = report["function_stats"]
    names = sorted(functions, key=lambda n: (-functions[n].get("expected_ms", 0.0), n))
    body = "".join(_matrix_row(report, name, shown, rest) for name in names)
    summary = f"Functions × layers ({plural(len(order), 'layer')}"
    summary += f", the {MATRIX_COLUMNS} most shared shown)" if rest else ")"
    return (
        f'<section class="card"><details id="matrix-box"{"" if rest else " open"}>'
        f"<summary>{summary}</summary>"
        '<div class="scroll"><table class="matrix" id="matrix"><thead><tr>'
        f'<th class="name">function</th>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        "</details></section>"
    )


def _matrix_row(report: Mapping[str, Any], name: str, shown: list[str], rest: list[str]) -> str:
    used = set(report["functions"][name])
    cells = []
    for lid in shown:
        if lid in used:
            shared = " shared" if len(report["layer_stats"][lid]["users"]) > 1 else ""
            size = human_size(report["layer_stats"][lid]["size"])
            cells.append(f'<td class="used{shared}">{size}</td>')
        else:
            cells.append("<td></td>")
    if rest:
        others = [lid for lid in rest if lid in used]
        cells.append(f"<td>{len(others) or ''}</td>")
    return (
        f'<tr class="function-row" data-name="{escape(name)}"><td class="name">{escape(name)}</td>'
        + "".join(cells)
        + "</tr>"
    )

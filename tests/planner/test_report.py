"""The plan report: its JSON and text, and the HTML page as a person uses it in headless
Chromium (typing into the filter, clicking a sort button, a screenshot, the DOM after)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from planfixtures import small_fleet

from browser import Browser
from pip_lambda_pack.planner import Fleet, FunctionNeed, Package, PlanParams, make_plan
from pip_lambda_pack.planner.page import MATRIX_COLUMNS, render_html
from pip_lambda_pack.planner.report import plan_text, plan_to_json, top_level
from projects import fleet_file, run

DEV_FLEET = Path(__file__).resolve().parents[2] / "bench" / "fleets" / "fleet-dev.json"


def tiny_fleet() -> Fleet:
    return Fleet(
        packages={
            "a==1": Package(id="a==1", name="a", size=1000, unpacked_size=2000),
            "b==1": Package(id="b==1", name="b", size=5000, unpacked_size=9000),
        },
        functions={
            "f<1>": FunctionNeed(pins=("a==1",)),
            "g": FunctionNeed(pins=("a==1", "b==1")),
        },
    )


def test_report_has_the_matrix_and_figures() -> None:
    fleet, params = tiny_fleet(), PlanParams()
    report = plan_to_json(make_plan(fleet, params, "popularity-topk"), fleet, params)
    single = plan_to_json(make_plan(fleet, params, "single"), fleet, params)
    page = render_html(report, [single])
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<tr class="function-row"') == 2
    assert "f&lt;1&gt;" in page and "f<1>" not in page  # names are escaped
    assert 'class="used shared"' in page  # a==1 is used by both
    assert "http" not in page and "src=" not in page and "<link" not in page  # self-contained
    assert "<th>single</th>" in page  # the baseline beside the plan


def test_layers_are_named_by_what_was_asked_for() -> None:
    def package(pin: str, size: int, requires: tuple[str, ...] = ()) -> Package:
        name = pin.partition("==")[0]
        return Package(id=pin, name=name, size=size, unpacked_size=size, requires=requires)

    deps = ("certifi==1", "idna==1", "urllib3==1")
    packages = {
        p.id: p
        for p in (
            package("requests==2", 100, deps),
            package("certifi==1", 300),
            package("idna==1", 50),
            package("urllib3==1", 200),
        )
    }
    fleet = Fleet(packages=packages, functions={"f": FunctionNeed(pins=tuple(packages))})
    assert top_level(fleet, list(packages)) == ["requests"]  # not "certifi +3"
    assert top_level(fleet, ["certifi==1", "idna==1"]) == ["certifi", "idna"]  # deps alone


def test_text_explains_q_and_never_claims_a_layer_is_surely_cached() -> None:
    fleet, params = tiny_fleet(), PlanParams()
    report = plan_to_json(make_plan(fleet, params), fleet, params)
    report["layer_stats"][next(iter(report["layers"]))]["q"] = 0.9996
    text = "\n".join(plan_text(report))
    assert "q 1.00" not in text and "q >0.99" in text
    assert "q: the model's chance that a worker already holds a layer" in text
    assert "with an empty cache, expected " in text and " once warm" in text
    assert " 0 ms" not in text


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return width, height, zlib.decompress(b"".join(chunks))


def shoot(tmp_path: Path, page: Path, actions: str = "") -> tuple[Path, dict[str, object]]:
    """Open ``page`` at 1400x1000, filter by ``actions`` then sort by name; a screenshot and
    what the DOM says afterwards."""
    with Browser(tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        if actions:
            browser.type_into("#filter", actions)
            browser.click('button[data-sort="name"]')
        shot = browser.screenshot(tmp_path / "shot.png")
        dom = browser.evaluate(
            """(() => {
              const shown = e => e.getClientRects().length > 0;  // laid out, not just unhidden
              const visible = [...document.querySelectorAll("#bars .bar")].filter(shown);
              return {
                bars: visible.map(b => b.dataset.name),
                shown: document.getElementById("shown").textContent,
                pressed: document.querySelector("button[aria-pressed=true]").dataset.sort,
                rows: [...document.querySelectorAll("#matrix tbody tr")].filter(shown)
                  .map(r => r.dataset.name),
                columns: document.querySelectorAll("#matrix thead th.layer").length,
                summary: document.querySelector("#summary").innerText,
                warnings: document.querySelectorAll("#warnings li").length,
                chartTop: document.getElementById("chart").getBoundingClientRect().top,
              };
            })()"""
        )
    return shot, dom


def assert_not_blank(shot: Path) -> None:
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1400, 1000)
    assert len(set(pixels)) > 16, "the screenshot is blank"


def test_chromium_filters_and_sorts_the_chart(tmp_path: Path) -> None:
    page = tmp_path / "plan.html"
    result = run(tmp_path, "plan", "--fleet", str(fleet_file(tmp_path)), "--report", str(page))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"wrote {page}\n" and result.stdout == ""
    shot, before = shoot(tmp_path, page)
    assert_not_blank(shot)
    assert before["bars"][0] == "etl"  # worst first: it needs numpy
    assert set(before["bars"]) == {"api", "etl", "cron"} and before["pressed"] == "expected"
    shot, after = shoot(tmp_path, page, "cr")
    assert_not_blank(shot)
    assert after["bars"] == ["cron"] and after["rows"] == ["cron"]
    assert after["shown"] == "1 of 3 functions" and after["pressed"] == "name"


def test_chromium_opens_the_dev_fleet_on_its_chart(tmp_path: Path) -> None:
    page = tmp_path / "dev.html"
    result = run(tmp_path, "plan", "--fleet", str(DEV_FLEET), "--report", str(page), "-q")
    assert result.returncode == 0, result.stderr
    shot, dom = shoot(tmp_path, page, "fn01")
    assert_not_blank(shot)
    assert dom["bars"] == sorted(dom["bars"]) and len(dom["bars"]) == 100  # fn0100..fn0199
    assert all(name.startswith("fn01") for name in dom["bars"])
    assert dom["columns"] == MATRIX_COLUMNS  # 311 layers, collapsed
    summary = str(dom["summary"])
    assert "expected-time" in summary and "single" in summary and "nixery" in summary
    assert int(dom["warnings"]) >= 1  # the planner's warnings are on the page
    assert float(str(dom["chartTop"])) < 200  # the chart is on the first screen


def test_plan_of_a_fleet_takes_the_model_flags(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "plan",
        "--fleet",
        str(fleet_file(tmp_path)),
        "--format",
        "json",
        "--latency-ms",
        "50",
        "--bandwidth-mb-s",
        "20",
        "--fetch",
        "serial",
        "--max-layers",
        "2",
        "--strategy",
        "nixery",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["strategy"] == "nixery" and report["max_layers"] == 2
    assert report["model"]["latency_ms"] == 50.0
    assert report["model"]["bandwidth_bps"] == 20e6
    assert report["model"]["fetch"] == "serial"
    assert all(len(ids) <= 2 for ids in report["functions"].values())


def test_report_has_expected_figures_per_function_and_layer() -> None:
    fleet = small_fleet()
    params = PlanParams(max_layers=3)
    report = plan_to_json(make_plan(fleet, params), fleet, params)
    stats = report["function_stats"]["b"]
    assert set(stats) >= {"expected_ms", "expected_bytes", "cold_ms", "bytes", "layers"}
    assert all(0.0 <= s["q"] <= 1.0 for s in report["layer_stats"].values())
    text = "\n".join(plan_text(report))
    assert "strategy expected-time, at most 3 layers per function" in text
    assert "expected per cold start once warm:" in text

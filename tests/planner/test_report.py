"""The HTML plan report, rendered by headless Chromium."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from planfixtures import small_fleet

from pip_lambda_pack.planner import Fleet, FunctionNeed, Package, PlanParams, make_plan
from pip_lambda_pack.planner.report import plan_text, plan_to_json, render_html
from projects import fleet_file, run

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_report_has_the_matrix_and_figures(tmp_path: Path) -> None:
    fleet = Fleet(
        packages={
            "a==1": Package(id="a==1", name="a", size=1000, unpacked_size=2000),
            "b==1": Package(id="b==1", name="b", size=5000, unpacked_size=9000),
        },
        functions={
            "f<1>": FunctionNeed(pins=("a==1",)),
            "g": FunctionNeed(pins=("a==1", "b==1")),
        },
    )
    params = PlanParams()
    report = plan_to_json(make_plan(fleet, params, "popularity-topk"), fleet, params)
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<tr class="function-row">') == 2
    assert "f&lt;1&gt;" in page and "f<1>" not in page  # names are escaped
    assert 'class="used shared"' in page  # a==1 is used by both
    assert "<script" not in page and "http" not in page  # self-contained


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


def test_chromium_renders_the_report(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by scripts/test"
    page = tmp_path / "plan.html"
    result = run(
        tmp_path, "plan", "--fleet", str(fleet_file(tmp_path)), "--report", str(page), "-q"
    )
    assert result.returncode == 0, result.stderr
    shot = tmp_path / "shot.png"
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,700", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1200, 700)
    assert len(set(pixels)) > 16, "the screenshot is blank"
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'id="matrix"' in dom
    assert dom.count('class="function-row"') == 3
    for name in ("api", "etl", "cron", "expected cold start", "likely cached"):
        assert name in dom


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
        "--bandwidth-mbps",
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
    assert "expected per cold start:" in text

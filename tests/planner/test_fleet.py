"""Fleets from a fleet file's data and from a project's pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from planfixtures import SHARED

from pip_lambda_pack.errors import ConfigError
from pip_lambda_pack.graph import Pin, pin_graph
from pip_lambda_pack.planner import (
    Fleet,
    FunctionNeed,
    PlanParams,
    make_plan,
)
from pip_lambda_pack.planner import expected_time as expected_time
from pip_lambda_pack.planner.fleet import fleet_from_data, fleet_from_pins
from pip_lambda_pack.planner.report import plan_to_json

SNAPSHOT = {"numpy": 900, "six": 10}  # canonical name -> downloads, as popularity gives it


def read(path: Path) -> Fleet:
    return fleet_from_data(json.loads(path.read_text()), str(path), SNAPSHOT)


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/fleet-dev.json")
def test_dev_fleet_plans_in_the_design_schema() -> None:
    fleet = read(SHARED)
    assert len(fleet.functions) == 299
    params = PlanParams()
    report = plan_to_json(make_plan(fleet, params), fleet, params)
    json.dumps(report)
    assert set(report) >= {"layers", "functions", "layer_stats", "function_stats"}
    assert all(len(ids) <= 5 for ids in report["functions"].values())


def test_fleet_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="format is not lambda-pack-fleet/1"):
        read(bad)
    bad.write_text(
        json.dumps(
            {
                "format": "lambda-pack-fleet/1",
                "packages": {},
                "functions": {"f": {"requires": ["x==1"], "weight": 1}},
            }
        )
    )
    with pytest.raises(ConfigError, match="functions.f.requires names unknown x==1"):
        read(bad)


def test_a_fleet_file_takes_its_prior_from_the_snapshot_given() -> None:
    data = {
        "format": "lambda-pack-fleet/1",
        "packages": {"NumPy==2.0": {"name": "NumPy", "size": 10}, "a==1": {"name": "a", "size": 3}},
        "functions": {"f": {"requires": ["a==1", "NumPy==2.0"], "weight": 2}},
    }
    fleet = fleet_from_data(data, "fleet.json", SNAPSHOT)
    assert fleet.packages["NumPy==2.0"].downloads == 900  # matched by canonical name
    assert fleet.packages["a==1"].downloads == 0
    assert fleet.packages["a==1"].unpacked_size == 3  # the size when no unpacked size is given
    assert fleet.top_downloads == 900
    assert fleet.functions["f"] == FunctionNeed(pins=("NumPy==2.0", "a==1"), weight=2.0)


def pin(name: str, requires: tuple[str, ...] = ()) -> Pin:
    return Pin(
        name=name,
        version="1",
        filename=f"{name}-1-py3-none-any.whl",
        url=f"https://files.example/{name}-1-py3-none-any.whl",
        sha256="0" * 64,
        size=100,
        unpacked_size=250,
        requires=requires,
    )


def test_a_fleet_from_pins_has_their_sizes_edges_weights_code_and_prior() -> None:
    graph = pin_graph({"f": [pin("numpy", ("six",)), pin("six")], "g": [pin("six")]})
    fleet = fleet_from_pins(graph, SNAPSHOT, weights={"f": 3.0}, code_sizes={"g": 7})
    assert fleet.packages["numpy==1"].requires == ("six==1",)
    assert (fleet.packages["numpy==1"].size, fleet.packages["numpy==1"].unpacked_size) == (100, 250)
    assert fleet.packages["six==1"].downloads == 10
    assert fleet.functions["f"] == FunctionNeed(pins=("numpy==1", "six==1"), weight=3.0)
    assert fleet.functions["g"] == FunctionNeed(pins=("six==1",), weight=1.0, code_size=7)
    assert fleet.top_downloads == 900

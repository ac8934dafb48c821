"""plan, lock and build agree: what ``plan`` prints is what the lock holds and ``build``
builds, under one layer id; ad-hoc planner flags are a dry run; inputs are checked before any
work; ``graph`` and ``plan`` show a function over the size limit that ``lock`` refuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import make_wheel
from pip_lambda_pack.export import export
from pip_lambda_pack.lock import read_lock
from pip_lambda_pack.manifest import read_manifest
from pip_lambda_pack.planner import STRATEGIES
from projects import fill_wheelhouse, run, write_project


@pytest.fixture
def project(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return write_project(tmp_path / "project", wheelhouse)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def refused(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ERROR and TIP lines that end a run that exited 2 (no traceback)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()[-2:]
    assert lines[0].startswith("ERROR: ") and lines[1].startswith("TIP: "), lines
    assert "Traceback" not in result.stderr
    return lines


def set_config(project: Path, text: str) -> None:
    config = project / "lambda-pack.toml"
    config.write_text(text + config.read_text())


def plan_json(project: Path, *flags: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(ok(run(project, "plan", "--format", "json", *flags)).stdout)
    return report


def lock_members(project: Path) -> dict[str, list[list[str]]]:
    """Function -> the pins of each of its locked layers, in merge order."""
    lock = read_lock(project / "lambda-pack.lock")
    return {
        name: [list(lock.layers[lid]) for lid in function.layers]
        for name, function in lock.functions.items()
    }


def plan_members(report: dict[str, Any]) -> dict[str, list[list[str]]]:
    return {
        name: [report["layers"][lid] for lid in ids] for name, ids in report["functions"].items()
    }


def built_layers(project: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Function -> (id, wheels) of each layer in build/manifest.json, in merge order."""
    ok(run(project, "build", "--out", "build", "-q"))
    data = json.loads((project / "build" / "manifest.json").read_text())
    return {
        name: [(layer["id"], layer["wheels"]) for layer in function["layers"]]
        for name, function in data["functions"].items()
    }


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_plan_prints_what_the_lock_holds_and_build_builds(project: Path, strategy: str) -> None:
    set_config(project, f'strategy = "{strategy}"\n')
    report = plan_json(project)
    assert report["strategy"] == strategy
    assert plan_members(report) == lock_members(project)
    built = built_layers(project)
    assert {name: [lid for lid, _ in layers] for name, layers in built.items()} == (
        report["functions"]
    )
    assert {name: [wheels for _, wheels in layers] for name, layers in built.items()} == (
        plan_members(report)
    )
    assert plan_json(project) == report  # the lock is fresh now: the same plan again


def test_the_issue_sequence_leaves_lock_plan_and_build_in_agreement(project: Path) -> None:
    ok(run(project, "lock", "-q"))
    before = (project / "lambda-pack.lock").read_bytes()
    dry = plan_json(project, "--strategy", "nixery", "--max-layers", "4", "--latency-ms", "50")
    assert dry["strategy"] == "nixery" and dry["max_layers"] == 4
    assert dry["model"]["latency_ms"] == 50
    assert (project / "lambda-pack.lock").read_bytes() == before  # a dry run
    assert ok(run(project, "check")).stderr == "lambda-pack.lock is fresh\n"
    ok(run(project, "lock", "-q"))
    assert (project / "lambda-pack.lock").read_bytes() == before
    report = plan_json(project)
    assert report["strategy"] == "expected-time"
    assert plan_members(report) == lock_members(project)
    built = built_layers(project)
    assert {name: [lid for lid, _ in layers] for name, layers in built.items()} == (
        report["functions"]
    )
    # the same settings in the config: the lock is planned afresh, and is what the dry run said
    set_config(project, 'strategy = "nixery"\nmax-layers = 4\nlatency-ms = 50\n')
    stale = run(project, "check")
    assert stale.returncode == 1
    assert "max-layers changed; planner setting latency-ms changed; strategy changed" in (
        stale.stderr
    )
    assert plan_json(project) == dry
    assert plan_members(dry) == lock_members(project)


def test_a_planner_change_plans_the_locked_wheels_again_without_resolving(
    project: Path, wheelhouse: Path
) -> None:
    set_config(project, 'strategy = "per-package"\n')
    ok(run(project, "lock", "-q"))
    config = project / "lambda-pack.toml"
    config.write_text(config.read_text().replace('strategy = "per-package"', 'strategy = "single"'))
    for wheel in wheelhouse.iterdir():  # resolving again would find nothing now
        wheel.unlink()
    result = ok(run(project, "graph"))
    assert "planned with other planner settings; planning again" in result.stderr
    assert "resolving" not in result.stderr
    lock = read_lock(project / "lambda-pack.lock")
    assert lock.strategy == "single"
    assert [len(f.layers) for f in lock.functions.values()] == [1, 1]


def test_one_layer_id_in_plan_manifest_and_templates(project: Path, tmp_path: Path) -> None:
    report = plan_json(project)
    ids = set(report["layers"])
    assert all(len(lid) == 12 and int(lid, 16) >= 0 for lid in ids)
    ok(run(project, "build", "--out", "build", "-q"))
    manifest = read_manifest(project / "build")
    layers = {layer.id: layer for f in manifest.functions.values() for layer in f.layers}
    assert set(layers) == ids
    for lid, layer in layers.items():
        assert layer.sha256.startswith(lid)
        assert layer.path == f"layers/{layer.sha256}.zip"
    sam = export(manifest, project / "build", tmp_path, "sam")
    assert {key for key in sam["Resources"] if key.startswith("Layer")} == {
        f"Layer{lid}" for lid in ids
    }
    terraform = export(manifest, project / "build", tmp_path, "terraform")
    names = {
        body["layer_name"] for body in terraform["resource"]["aws_lambda_layer_version"].values()
    }
    assert names == {f"lambda-pack-{lid}" for lid in ids}
    html = project / "plan.html"
    ok(run(project, "plan", "--report", str(html), "-q"))
    assert all(lid in html.read_text() for lid in ids)


@pytest.mark.parametrize(
    "args",
    [
        ["lock", "--strategy", "bogus"],
        ["build", "--strategy", "bogus"],
        ["graph", "--strategy", "bogus"],
        ["plan", "--fleet", "missing.json"],
        ["lock", "--target", "python2.7-x86_64"],
    ],
)
def test_bad_inputs_fail_before_any_resolving_or_lock_work(project: Path, args: list[str]) -> None:
    ok(run(project, "lock", "-q"))
    (project / "requirements.txt").write_text("greet\n")  # the lock is stale now
    before = (project / "lambda-pack.lock").read_bytes()
    result = run(project, *args)
    refused(result)
    assert "resolving" not in result.stderr
    assert (project / "lambda-pack.lock").read_bytes() == before


def test_a_bad_strategy_in_the_config_fails_first(project: Path) -> None:
    set_config(project, 'strategy = "fastest"\n')
    result = run(project, "lock")
    assert refused(result)[0] == "ERROR: unknown planning strategy 'fastest'"
    assert not (project / "lambda-pack.lock").exists()


@pytest.mark.parametrize(
    ("flag", "value", "error"),
    [
        ("--max-layers", "0", "argument --max-layers: '0' is not a whole number from 1 to 1000"),
        ("--latency-ms", "-1", "command line: latency-ms must be a number >= 0"),
    ],
)
def test_bad_planner_numbers_are_refused(project: Path, flag: str, value: str, error: str) -> None:
    assert refused(run(project, "plan", flag, value))[0] == f"ERROR: {error}"
    assert not (project / "lambda-pack.lock").exists()


OVER = 263 * 1000 * 1000  # unzipped bytes of the big wheel: over Lambda's 250 MiB


@pytest.fixture
def big_project(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    make_wheel(wheelhouse, "big", "1.0", files={"big/__init__.py": "", "big/data.bin": bytes(OVER)})
    project = write_project(tmp_path / "project", wheelhouse)
    (project / "requirements.txt").write_text("greet\nbig\n")
    return project


@pytest.mark.slow  # a 263 MB (unzipped) wheel
def test_graph_and_plan_show_an_over_limit_function_that_lock_and_build_refuse(
    big_project: Path,
) -> None:
    warning = (
        "warning: function hello needs 263.0 MB unzipped, 857.6 kB over the "
        "250 MiB (262,144,000 bytes) limit; "
        "largest: big==1.0 ("
    )
    graph = ok(run(big_project, "graph"))
    assert "  big==1.0 (" in graph.stdout
    assert warning in graph.stderr
    assert "not writing lambda-pack.lock" in graph.stderr
    report = plan_json(big_project)
    assert any(w.startswith(warning[len("warning: ") :]) for w in report["warnings"])
    assert any("big==1.0" in layer for layer in plan_members(report)["hello"])
    assert not (big_project / "lambda-pack.lock").exists()
    text = ok(run(big_project, "plan"))
    assert warning in text.stdout
    for command in ("lock", "build"):
        lines = refused(run(big_project, command))
        assert lines[0].startswith("ERROR: function hello needs 263.0 MB unzipped, 857.6 kB over")
    assert not (big_project / "lambda-pack.lock").exists()

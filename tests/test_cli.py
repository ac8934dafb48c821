"""End to end through the command line, offline: lock, check, graph, plan, build, push, ls,
invoke, and every kind of bad input ending in two lines and exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import make_wheel
from indexserver import IndexServer
from projects import HANDLER, HOST_TARGET, fill_wheelhouse, run, write_project


@pytest.fixture
def project(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return write_project(tmp_path / "project", wheelhouse)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def test_lock_check_graph_plan(project: Path) -> None:
    ok(run(project, "lock"))
    lock = (project / "lambda-pack.lock").read_text()
    assert 'name = "colors"\nversion = "1.0"' in lock
    assert ok(run(project, "check")).stderr == "lambda-pack.lock is fresh\n"
    tree = ok(run(project, "graph")).stdout
    assert "  greet==1.0 (" in tree
    assert "    colors==1.0 (" in tree
    graph = json.loads(ok(run(project, "graph", "--format", "json")).stdout)
    assert graph["functions"]["hello"]["closure"] == ["colors==1.0", "greet==1.0", "tiny==0.1"]
    plan = json.loads(ok(run(project, "plan", "--format", "json", "--strategy", "single")).stdout)
    assert plan["strategy"] == "single"
    assert [len(ids) for ids in plan["functions"].values()] == [1, 1]
    (project / "requirements.txt").write_text("greet\ncolors<3\n")
    stale = run(project, "check")
    assert stale.returncode == 1
    assert stale.stderr.startswith("lambda-pack.lock is stale: requirements")


def test_build_is_byte_identical_from_shuffled_inputs_elsewhere(
    project: Path, tmp_path: Path, wheelhouse: Path
) -> None:
    ok(run(project, "build", "--out", "out"))
    moved = tmp_path / "moved-wheels"
    shutil.copytree(wheelhouse, moved)
    other = write_project(tmp_path / "elsewhere" / "project", moved, reverse=True)
    ok(run(other, "build", "--out", "dist"))
    first, second = project / "out", other / "dist"
    assert (first / "manifest.json").read_bytes() == (second / "manifest.json").read_bytes()
    files = sorted(p.relative_to(first) for p in first.rglob("*.zip"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.zip"))
    assert len(files) >= 3
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["format"] == "lambda-pack-manifest/1"
    assert manifest["functions"]["hello"]["handler"] == "app.handler"
    wheels = [w for layer in manifest["functions"]["hello"]["layers"] for w in layer["wheels"]]
    assert sorted(wheels) == ["colors==1.0", "greet==1.0", "tiny==0.1"]


def test_push_ls_and_invoke(project: Path) -> None:
    ok(run(project, "push"))
    assert ok(run(project, "ls")).stdout.split() == ["hello", "other"]
    result = ok(run(project, "invoke", "hello", "--event", "-", stdin='{"name": "lambda"}'))
    assert json.loads(result.stdout) == {
        "message": "[1.0] hello lambda",
        "greet": "1.0",
        "colors": "1.0",
        "function": "hello",
    }
    assert "missed" in result.stderr
    again = ok(run(project, "invoke", "other", "--event", "-", stdin='{"x": [1, 2]}'))
    assert json.loads(again.stdout) == {"x": [1, 2]}


def test_one_function_shortcut_without_config(tmp_path: Path, wheelhouse: Path) -> None:
    fill_wheelhouse(wheelhouse)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(HANDLER)
    (tmp_path / "requirements.txt").write_text("greet\n")
    args = ["-r", "requirements.txt", "--handler", "app.handler", "--code", "src"]
    args += ["--no-index", "--find-links", str(wheelhouse), "--target", HOST_TARGET]
    ok(run(tmp_path, "build", *args, "--out", "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert list(manifest["functions"]) == ["src"]


def test_the_index_is_used_over_http(tmp_path: Path, wheelhouse: Path) -> None:
    fill_wheelhouse(wheelhouse)
    root = write_project(tmp_path / "p", wheelhouse)
    config = (root / "lambda-pack.toml").read_text()
    with IndexServer(wheelhouse) as server:
        config = config.replace("no-index = true\n", f'index-url = "{server.url}"\n')
        config = config.replace(f'find-links = ["{wheelhouse}"]\n', "")
        (root / "lambda-pack.toml").write_text(config)
        ok(run(root, "lock"))
        assert server.file_requests(".whl")  # wheels fetched for their sizes
    assert server.url.split("/simple")[0] in (root / "lambda-pack.lock").read_text()


ErrorCase = Callable[[Path], list[str]]


def two_lines(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The run ended with exactly one ERROR line and one TIP line, exit code 2."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert [line[:5] for line in lines].count("ERROR") == 1, result.stderr
    assert lines[-2].startswith("ERROR: ") and lines[-1].startswith("TIP: "), result.stderr
    return lines[-2], lines[-1]


def test_unknown_target(project: Path) -> None:
    error, _ = two_lines(run(project, "lock", "--target", "python2.7-x86_64"))
    assert error == "ERROR: unknown target 'python2.7-x86_64'"


def test_missing_config_requirements_and_code(tmp_path: Path) -> None:
    error, _ = two_lines(run(tmp_path, "lock"))
    assert error.startswith("ERROR: no lambda-pack.toml or pyproject.toml")
    (tmp_path / "lambda-pack.toml").write_text(
        '[functions.f]\nhandler = "a.b"\ncode = "."\nrequirements = "nope.txt"\n'
    )
    error, _ = two_lines(run(tmp_path, "lock"))
    assert error.startswith("ERROR: requirements file not found")
    (tmp_path / "lambda-pack.toml").write_text('[functions.f]\nhandler = "a.b"\ncode = "src"\n')
    error, _ = two_lines(run(tmp_path, "lock"))
    assert "code directory not found" in error


def test_malformed_requirement_line(project: Path) -> None:
    (project / "requirements.txt").write_text("greet\nbad line here\n")
    error, _ = two_lines(run(project, "lock"))
    assert error.startswith("ERROR: ") and "requirements.txt:2: malformed requirement" in error


def test_unsatisfiable_and_no_wheel(project: Path) -> None:
    (project / "requirements.txt").write_text("greet\ncolors<1\n")
    error, _ = two_lines(run(project, "lock"))
    assert "colors" in error
    (project / "requirements.txt").write_text("nosuchpackage\n")
    error, _ = two_lines(run(project, "lock"))
    assert "nosuchpackage" in error
    assert not (project / "lambda-pack.lock").exists()


def test_hash_mismatch(project: Path) -> None:
    (project / "requirements.txt").write_text(f"tiny --hash=sha256:{'0' * 64}\n")
    error, _ = two_lines(run(project, "lock"))
    assert "tiny" in error


def test_bad_handler_and_bad_event(project: Path) -> None:
    (project / "other" / "app.py").write_text("import not_installed_anywhere\n")
    ok(run(project, "push"))
    error, _ = two_lines(run(project, "invoke", "other"))
    assert "not_installed_anywhere" in error or "app" in error
    error, _ = two_lines(run(project, "invoke", "hello", "--event", "-", stdin="{not json"))
    assert "event is not JSON" in error


def test_corrupt_store_blob(project: Path) -> None:
    ok(run(project, "push"))
    blobs = sorted((project / ".lambda-pack" / "store" / "blobs" / "sha256").iterdir())
    for blob in blobs:
        if blob.stat().st_size > 200:  # a zip, not a task manifest
            blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    error, _ = two_lines(run(project, "invoke", "hello"))
    assert "sha256" in error or "digest" in error


def test_no_wheel_for_the_target(project: Path, wheelhouse: Path) -> None:
    make_wheel(wheelhouse, "native", "1.0", tag="cp312-cp312-macosx_11_0_arm64", purelib=False)
    (project / "requirements.txt").write_text("native\n")
    error, tip = two_lines(run(project, "lock"))
    assert "native" in error and HOST_TARGET in error
    assert "--find-links" in tip or "target" in tip


def test_missing_find_links_directory_is_bad_input(project: Path, tmp_path: Path) -> None:
    error, _ = two_lines(run(project, "lock", "--find-links", str(tmp_path / "nowhere")))
    assert error == f"ERROR: find-links location {tmp_path / 'nowhere'} does not exist"


def test_json_output_of_every_reporting_command(project: Path) -> None:
    locked = json.loads(ok(run(project, "lock", "--json", "-q")).stdout)
    assert locked["target"] == HOST_TARGET
    assert "greet==1.0" in locked["wheels"]
    assert set(locked["functions"]) == {"hello", "other"}
    assert json.loads(ok(run(project, "check", "--json")).stdout) == {
        "lock": str(project.resolve() / "lambda-pack.lock"),
        "fresh": True,
        "reason": None,
    }
    built = json.loads(ok(run(project, "build", "--json", "-q")).stdout)
    assert built["format"] == "lambda-pack-manifest/1"
    pushed = json.loads(ok(run(project, "push", "--json", "-q")).stdout)
    assert pushed["functions"] == ["hello", "other"]
    assert pushed["uploaded"] > 0
    again = json.loads(ok(run(project, "push", "--json", "-q")).stdout)
    assert again["uploaded"] == 0 and again["skipped"] == pushed["uploaded"]
    listed = json.loads(ok(run(project, "ls", "--json")).stdout)
    assert listed["functions"] == ["hello", "other"]
    (project / "requirements.txt").write_text("greet\n")
    stale = run(project, "check", "--json")
    assert stale.returncode == 1
    assert json.loads(stale.stdout)["fresh"] is False


def test_relock_keeps_the_layers_of_unchanged_functions(project: Path) -> None:
    ok(run(project, "lock", "-q"))
    before = json.loads(ok(run(project, "lock", "--json", "-q")).stdout)["functions"]
    config = project / "lambda-pack.toml"
    config.write_text(
        config.read_text() + '\n[functions.third]\nhandler = "app.handler"\ncode = "other"\n'
        'dependencies = ["colors<2"]\n'
    )
    after = json.loads(ok(run(project, "lock", "--json", "-q")).stdout)["functions"]
    assert after["hello"] == before["hello"]
    assert after["other"] == before["other"]
    assert "third" in after


def test_relock_drops_the_layers_of_a_function_whose_dependencies_became_empty(
    project: Path,
) -> None:
    before = json.loads(ok(run(project, "lock", "--json", "-q")).stdout)["functions"]
    assert before["other"]
    config = project / "lambda-pack.toml"
    config.write_text(config.read_text().replace('dependencies = ["tiny"]', "dependencies = []"))
    after = json.loads(ok(run(project, "lock", "--json", "-q")).stdout)["functions"]
    assert after["other"] == []
    assert after["hello"] == before["hello"]


def test_cache_cap_from_the_config_bounds_the_runtime_cache(project: Path) -> None:
    config = project / "lambda-pack.toml"
    config.write_text("cache-max-bytes = 1\n" + config.read_text())
    ok(run(project, "push", "-q"))
    ok(run(project, "invoke", "hello", "--event", "-", stdin="{}"))
    ok(run(project, "invoke", "other", "--event", "-", stdin="{}"))
    info = json.loads(ok(run(project, "cache", "info", "--json")).stdout)
    other = json.loads((project / ".lambda-pack" / "build" / "manifest.json").read_text())
    wanted = {other["functions"]["other"]["code"]["sha256"]}
    wanted |= {layer["sha256"] for layer in other["functions"]["other"]["layers"]}
    assert {blob["sha256"] for blob in info["blobs"]} == wanted  # hello's were evicted

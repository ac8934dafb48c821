"""What a new user reads: --help of every command, --version, usage errors in the ERROR/TIP
form (and as JSON under --json), stale-lock reasons, counts and plurals, limits in one unit."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_wheel
from pip_lambda_pack import __version__
from pip_lambda_pack.cli import build_parser
from pip_lambda_pack.units import limit_size, plural
from projects import fill_wheelhouse, fleet_file, run, write_project


@pytest.fixture
def project(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return write_project(tmp_path / "project", wheelhouse)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_has_help_and_every_command_ends_with_an_example() -> None:
    commands = subcommands()
    assert {"lock", "graph", "plan", "build", "push", "invoke", "ls", "check"} <= set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = sub.format_help().rstrip().splitlines()
        assert "example:" in text[-3:], f"{name} --help ends without an example"
        assert text[-1].lstrip().startswith(("pip-lambda-pack ", "echo ")), text[-1]


def test_strategy_and_target_list_their_choices() -> None:
    text = subcommands()["plan"].format_help()
    for strategy in ("expected-time", "single", "popularity-topk", "nixery", "per-package"):
        assert strategy in text
    flat = " ".join(text.split())
    assert "python3.10-x86_64" in flat and "python3.14-arm64" in flat


def test_version(tmp_path: Path) -> None:
    result = ok(run(tmp_path, "--version"))
    assert result.stdout == f"pip-lambda-pack {__version__}\n"


def test_usage_errors_are_two_lines_and_exit_2(tmp_path: Path) -> None:
    result = run(tmp_path, "plan", "--format", "xml")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "ERROR: argument --format: invalid choice: 'xml' (choose from 'text', 'json')",
        "TIP: see: pip-lambda-pack plan --help",
    ]
    assert result.stdout == ""
    unknown = run(tmp_path, "lock", "--no-such-flag")
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[0] == "ERROR: unrecognized arguments: --no-such-flag"
    assert "usage:" not in unknown.stderr and "Traceback" not in unknown.stderr


def test_under_json_errors_are_also_a_json_object_on_stdout(tmp_path: Path) -> None:
    usage = run(tmp_path, "plan", "--strategy", "magic", "--json")
    assert usage.returncode == 2
    error = json.loads(usage.stdout)
    assert set(error) == {"error", "tip"}
    assert error["error"].startswith("argument --strategy: invalid choice: 'magic'")
    assert usage.stderr.splitlines()[0] == f"ERROR: {error['error']}"
    failed = run(tmp_path, "lock", "--json")  # no config here: an error of ours
    assert failed.returncode == 2
    assert json.loads(failed.stdout) == {
        "error": "no lambda-pack.toml or pyproject.toml with [tool.lambda-pack] here",
        "tip": "create one, pass --config PATH, or use -r REQS --handler MOD.FUNC --code DIR",
    }


def test_bandwidth_flag_is_mb_s_and_the_old_name_still_works(tmp_path: Path) -> None:
    fleet = str(fleet_file(tmp_path))
    new = ok(run(tmp_path, "plan", "--fleet", fleet, "--json", "--bandwidth-mb-s", "20", "-q"))
    old = ok(run(tmp_path, "plan", "--fleet", fleet, "--json", "--bandwidth-mbps", "20", "-q"))
    assert json.loads(new.stdout)["model"]["bandwidth_bps"] == 20e6
    assert new.stdout == old.stdout


def test_plan_json_and_format_json_are_one_thing(tmp_path: Path) -> None:
    fleet = str(fleet_file(tmp_path))
    one = ok(run(tmp_path, "plan", "--fleet", fleet, "--json", "-q"))
    two = ok(run(tmp_path, "plan", "--fleet", fleet, "--format", "json", "-q"))
    assert one.stdout == two.stdout and json.loads(one.stdout)["functions"]


def test_plan_report_says_where_it_wrote_and_does_not_dump_the_plan(tmp_path: Path) -> None:
    result = ok(run(tmp_path, "plan", "--fleet", str(fleet_file(tmp_path)), "--report", "p.html"))
    assert result.stdout == ""
    assert result.stderr == "wrote p.html\n"
    assert (tmp_path / "p.html").read_text().startswith("<!DOCTYPE html>")


def test_check_says_what_made_the_lock_stale(project: Path) -> None:
    ok(run(project, "lock"))
    assert ok(run(project, "check")).stderr == "lambda-pack.lock is fresh\n"
    config = project / "lambda-pack.toml"
    original = config.read_text()

    def reason() -> str:
        stale = run(project, "check")
        assert stale.returncode == 1, stale.stderr
        first, tip = stale.stderr.splitlines()
        assert tip == "TIP: run: pip-lambda-pack lock"
        return first.removeprefix("lambda-pack.lock is stale: ")

    (project / "requirements.txt").write_text("greet\ncolors<3\n")
    assert reason() == "requirements.txt changed"
    ok(run(project, "lock"))
    config.write_text(original.replace("no-index = true\n", "no-index = true\nlatency-ms = 99\n"))
    assert reason() == "planner setting latency-ms changed"
    config.write_text(original.replace("no-index = true\n", "no-index = true\npre = true\n"))
    assert reason() == "index options changed"
    config.write_text(original + "weight = 3.0\n")
    assert reason() == "weight of function other changed"
    config.write_text(
        original.replace('dependencies = ["tiny"]', 'dependencies = ["tiny", "greet"]')
    )
    assert reason() == "dependencies of function other changed"


def test_counts_and_plurals_agree_in_lock_build_and_push(tmp_path: Path, wheelhouse: Path) -> None:
    fill_wheelhouse(wheelhouse)
    root = tmp_path / "one"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "lambda-pack.toml").write_text(
        f'no-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\ndependencies = ["tiny"]\n'
    )
    env = {"CI": "1"}  # plain progress lines
    locked = ok(run(root, "lock", env=env)).stderr
    assert "wrote lambda-pack.lock: 1 wheel, 1 layer\n" in locked
    built = ok(run(root, "build", env=env)).stderr
    assert "built 1 function, 1 layer in " in built
    pushed = ok(run(root, "push", env=env)).stderr
    # one layer zip, one code zip and one task manifest, counted the same way twice
    assert "pushing 3 blobs: " in pushed
    assert "pushed 1 function to " in pushed and ": 3 blobs uploaded (" in pushed
    again = ok(run(root, "push", env=env)).stderr
    assert ": 0 blobs uploaded (0 B), 3 already there" in again


def test_limits_are_in_one_unit() -> None:
    assert limit_size(250 * 1024 * 1024) == "250 MiB (262,144,000 bytes)"
    assert plural(1, "layer") == "1 layer" and plural(2, "layer") == "2 layers"
    assert plural(0, "function") == "0 functions"


THREADED_LOG = """
from concurrent.futures import ThreadPoolExecutor
from pip_lambda_pack.commands import _line
lines = [f"fetching https://index.example/simple/package-{i}/" for i in range(4000)]
with ThreadPoolExecutor(max_workers=8) as pool:
    list(pool.map(_line, lines))
"""


def test_log_lines_from_many_threads_stay_whole() -> None:
    """-v output: the resolver's threads log at once into a real pipe; print() would write
    a line and its newline apart (``...arm64fetching https://...``)."""
    done = subprocess.run(
        [sys.executable, "-c", THREADED_LOG], capture_output=True, text=True, timeout=60
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 4000 and all(line.startswith("fetching https://") for line in lines)
    assert sorted(lines) == sorted(
        f"fetching https://index.example/simple/package-{i}/" for i in range(4000)
    )


def test_runtime_provided_exclude_downloads_no_excluded_wheel(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """boto3 is left to the runtime: pinned in the lock, never fetched (the index serves
    no ranges, so every wheel whose size is needed would be downloaded whole)."""
    from helpers import make_wheel
    from indexserver import IndexServer

    make_wheel(wheelhouse, "boto3", "1.34.145", files={"boto3/__init__.py": "X = 1\n"})
    make_wheel(wheelhouse, "greet", "1.0", requires=["boto3"], files={"greet.py": "Y = 2\n"})
    root = tmp_path / "p"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    with IndexServer(wheelhouse, ranges=False) as index:
        (root / "lambda-pack.toml").write_text(
            f'target = "python3.12-x86_64"\nindex-url = "{index.url}"\n'
            'runtime-provided = "exclude"\n\n'
            '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\ndependencies = ["greet"]\n'
        )
        ok(run(root, "lock", "-q"))
        fetched = index.file_requests(".whl")
    assert fetched and all("greet-1.0" in path for path in fetched), fetched
    lock = (root / "lambda-pack.lock").read_text()
    assert 'name = "boto3"\nversion = "1.34.145"' in lock
    ok(run(root, "build", "-q"))  # the layer needs greet alone


def test_a_runtime_shadowing_warning_is_given_once_per_command(
    tmp_path: Path, wheelhouse: Path
) -> None:
    from helpers import make_wheel

    make_wheel(wheelhouse, "boto3", "1.20.0", files={"boto3/__init__.py": "X = 1\n"})
    root = tmp_path / "p"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (root / "lambda-pack.toml").write_text(
        f'target = "python3.12-x86_64"\nno-index = true\nfind-links = ["{wheelhouse}"]\n\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\ndependencies = ["boto3"]\n'
    )
    warning = "shadowing the python3.12 runtime's boto3 1.34.145"
    first = ok(run(root, "plan"))  # no lock yet: lock and plan both find it
    assert (first.stdout + first.stderr).count(warning) == 1, first.stdout + first.stderr
    again = ok(run(root, "plan"))  # the lock is fresh: the plan gives it
    assert again.stdout.count(warning) == 1 and warning not in again.stderr
    locked = ok(run(root, "lock"))
    assert locked.stderr.count(warning) == 1


def test_progress_lines_count_in_the_singular_too(tmp_path: Path, wheelhouse: Path) -> None:
    make_wheel(wheelhouse, "tiny", "0.1")
    root = tmp_path / "one"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "lambda-pack.toml").write_text(
        f'no-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\ndependencies = ["tiny"]\n'
    )
    built = ok(run(root, "build", env={"CI": "1"})).stderr
    assert "building 1 layer: 1 done in " in built
    assert ok(run(root, "cache", "prune")).stdout.startswith("removed 0 blobs (0 B) from ")

"""The pipeline: the lock path's plain fleet; the build's layer cache and no-op rebuild."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fakes import FakeFinder
from indexserver import IndexServer
from pip_lambda_pack.config import load_project
from pip_lambda_pack.graph import pin_graph
from pip_lambda_pack.lock import read_lock
from pip_lambda_pack.pipeline import lock_project
from pip_lambda_pack.planning import fleet_of
from pip_lambda_pack.popularity import downloads, pypi_downloads
from pip_lambda_pack.requirements import IndexOptions
from pip_lambda_pack.settings import Settings
from projects import fill_wheelhouse, run, write_project


@pytest.fixture
def project(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return write_project(tmp_path / "project", wheelhouse)


def build(project: Path, out: str) -> Path:
    result = run(project, "build", "--out", out, "-v")
    assert result.returncode == 0, result.stderr
    return project / out


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".zip", ".json") and not p.name.startswith(".")
    }


def test_unchanged_rebuild_writes_nothing(project: Path) -> None:
    out = build(project, "out")
    before = snapshot(out)
    result = run(project, "build", "--out", "out", "-v")
    assert "up to date" in result.stderr
    assert snapshot(out) == before  # same bytes, not even rewritten


def test_code_change_rebuilds_only_what_it_must(project: Path) -> None:
    out = build(project, "out")
    before = snapshot(out)
    (project / "hello" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    after = snapshot(build(project, "out"))
    assert after["functions/hello.zip"][0] != before["functions/hello.zip"][0]
    layers = {name: data for name, data in after.items() if name.startswith("layers/")}
    assert layers == {name: data for name, data in before.items() if name.startswith("layers/")}


def test_a_deleted_output_is_rebuilt(project: Path) -> None:
    out = build(project, "out")
    before = snapshot(out)
    layer = next((out / "layers").glob("*.zip"))
    layer.unlink()
    build(project, "out")
    assert layer.read_bytes() == before[str(layer.relative_to(out))][0]


def test_layer_cache_serves_a_new_output_without_the_wheels(
    project: Path, wheelhouse: Path
) -> None:
    first = build(project, "one")
    shutil.rmtree(wheelhouse)  # nothing left to build layers from
    second = build(project, "two")
    one = {n: d for n, (d, _) in snapshot(first).items()}
    two = {n: d for n, (d, _) in snapshot(second).items()}
    assert one == two


def test_a_damaged_cache_entry_is_rebuilt_not_used(project: Path) -> None:
    first = build(project, "one")
    for blob in (project / ".cache" / "layers").glob("*.zip"):
        blob.unlink()
        blob.write_bytes(b"not a zip")
    second = build(project, "two")
    assert {n: d for n, (d, _) in snapshot(first).items()} == {
        n: d for n, (d, _) in snapshot(second).items()
    }


def test_fleet_of_a_lock_has_its_pins_and_the_snapshots_prior(project: Path) -> None:
    run(project, "lock")
    spec = load_project(project / "lambda-pack.toml")
    lock = read_lock(spec.lock_path)
    fleet = fleet_of(spec, pin_graph(lock.closures()))
    assert sorted(fleet.packages) == sorted(lock.wheels)
    assert {name: f.pins for name, f in fleet.functions.items()} == {
        name: f.pins for name, f in lock.functions.items()
    }
    for pid, package in fleet.packages.items():
        assert package.size == lock.wheels[pid].size
        assert package.downloads == downloads(lock.wheels[pid].name)
    assert fleet.top_downloads == max(pypi_downloads().values())


def test_lock_reads_remote_sizes_with_ranges_and_writes_the_same_lock(
    tmp_path: Path, wheelhouse: Path, index_server: Callable[..., IndexServer]
) -> None:
    fill_wheelhouse(wheelhouse)
    server = index_server()
    locks, whole = [], []
    for ranges in (True, False):  # PyPI's file host, then a server that ignores Range
        server.ranges = ranges
        server.requests.clear()
        server.ranges_asked.clear()
        root = write_project(tmp_path / f"ranges-{ranges}", wheelhouse)
        config = root / "lambda-pack.toml"
        offline = f'no-index = true\nfind-links = ["{wheelhouse}"]'
        config.write_text(config.read_text().replace(offline, f'index-url = "{server.url}"'))
        result = run(root, "lock")
        assert result.returncode == 0, result.stderr
        locks.append((root / "lambda-pack.lock").read_bytes())
        asked = {path for path, _ in server.ranges_asked}
        assert asked or not ranges
        whole.append(
            sorted({p for p in server.file_requests(".whl") if not ranges or p not in asked})
        )
    assert locks[0] == locks[1]
    assert whole[0] == []  # nothing downloaded: each wheel's size came from its last bytes
    assert whole[1] == sorted(set(server.file_requests(".whl")))  # each downloaded instead


class _Pool:
    """A FinderPool of one FakeFinder, whatever the index options."""

    def __init__(self, finder: FakeFinder) -> None:
        self.finder = finder
        self.asked: list[IndexOptions] = []

    def get(self, index: IndexOptions) -> FakeFinder:
        self.asked.append(index)
        return self.finder


def test_lock_project_needs_only_a_finder_pool(tmp_path: Path, wheelhouse: Path) -> None:
    root = write_project(tmp_path / "project", wheelhouse)
    finder = FakeFinder()
    finder.add("greet-1.0-py3-none-any.whl", requires=["colors>=1"])
    finder.add("colors-1.0-py3-none-any.whl")
    finder.add("colors-2.0-py3-none-any.whl")
    finder.add("tiny-0.1-py3-none-any.whl")
    project = load_project(root / "lambda-pack.toml")
    lock = lock_project(project, Settings(cache_dir=tmp_path / "cache"), _Pool(finder))
    assert sorted(lock.wheels) == ["colors==1.0", "greet==1.0", "tiny==0.1"]
    assert {pin.url for pin in lock.wheels.values()} == {
        "https://fake.invalid/files/colors-1.0-py3-none-any.whl",
        "https://fake.invalid/files/greet-1.0-py3-none-any.whl",
        "https://fake.invalid/files/tiny-0.1-py3-none-any.whl",
    }
    assert (lock.wheels["tiny==0.1"].size, lock.wheels["tiny==0.1"].unpacked_size) == (1000, 2000)
    assert finder.downloads == []  # sizes and metadata came from the finder, no file needed
    assert read_lock(root / "lambda-pack.lock") == lock

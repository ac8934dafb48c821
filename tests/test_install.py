"""Install as the README says: ``python -m build`` makes our wheel and sdist, the wheel goes
into a fresh venv, and the commands it installs run there (``--version``, a real plan)."""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pip_lambda_pack import __version__
from test_pip_plugin import DEPS, clean_env, sh

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of this checkout (no isolation: hatchling is in the test extra)."""
    out = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def test_build_makes_a_wheel_and_an_sdist_with_what_the_readme_points_at(dist: Path) -> None:
    wheel = dist / f"pip_lambda_pack-{__version__}-py3-none-any.whl"
    sdist = dist / f"pip_lambda_pack-{__version__}.tar.gz"
    assert sorted(p.name for p in dist.iterdir()) == [wheel.name, sdist.name]
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("pip_lambda_pack/cli.py", "pip_lambda_pack/shim.py", "_pip_lambda_pack_hook.pth"):
        assert name in names
    assert "pip_lambda_pack/data/pypi-downloads.csv.gz" in names
    with tarfile.open(sdist) as archive:
        files = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for path in (
        "README.md",
        "docs/design.md",
        "bench/fleets/fleet-dev.json",
        "examples/lambda-pack.toml",
    ):
        assert path in files, path


def test_the_wheel_installs_into_a_fresh_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    python, env = venv / "bin" / "python", clean_env(tmp_path / "home")
    site = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(site, "_test_deps.pth").write_text(DEPS + "\n")  # our dependencies, without an index
    wheel = next(dist.glob("*.whl"))
    sh(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, env=env)
    assert sh(venv / "bin" / "pip-lambda-pack", "--version", env=env) == (
        f"pip-lambda-pack {__version__}\n"
    )
    assert sh(python, "-m", "pip", "lambda-pack", "--version", env=env) == (
        f"pip lambda-pack {__version__}\n"
    )
    fleet = ROOT / "bench" / "fleets" / "fleet-dev.json"
    text = sh(python, "-m", "pip_lambda_pack", "plan", "--fleet", fleet, "-q", env=env)
    assert text.startswith("strategy expected-time, at most 5 layers per function")


@pytest.mark.network
def test_pip_install_of_the_wheel_brings_its_dependencies(dist: Path, tmp_path: Path) -> None:
    """What a user runs, dependencies from the index pip is configured with."""
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    sh(venv / "bin" / "pip", "install", "-q", next(dist.glob("*.whl")))
    assert sh(venv / "bin" / "pip-lambda-pack", "--version").startswith("pip-lambda-pack ")

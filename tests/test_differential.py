"""Differential: our fast layer path against ``pip install --target`` on the real corpus wheels.

For every wheel the bench corpus resolves to (``bench/corpus/*.txt``, downloaded for
python3.12-x86_64), the layer ``build_layer`` makes holds exactly the files ``pip install
--target --no-deps`` puts down, byte for byte, minus pip's own bookkeeping (INSTALLER,
REQUESTED, direct_url.json, the rewritten RECORD, __pycache__, bin/). And layers come out
byte-identical however often and in whatever order the wheels are given.

Set LAMBDA_PACK_CORPUS_WHEELS to a directory of those wheels (e.g. the wheelhouse
bench/speed.py fills) to skip the download.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pip_lambda_pack.layers import build_layer
from pip_lambda_pack.target import get_target, manylinux_platforms

pytestmark = [pytest.mark.network, pytest.mark.slow]

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "corpus"
PIP_BOOKKEEPING = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})


@pytest.fixture(scope="module")
def corpus_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    given = os.environ.get("LAMBDA_PACK_CORPUS_WHEELS")
    if given:
        folder = Path(given)
    else:
        folder = tmp_path_factory.mktemp("corpus-wheels")
        with ThreadPoolExecutor(max_workers=4) as pool:  # a folder each: no two write one file
            list(pool.map(lambda txt: _pip_download(txt, folder / txt.stem), CORPUS.glob("*.txt")))
    by_name = {wheel.name: wheel for wheel in sorted(folder.rglob("*.whl"))}
    wheels = [by_name[name] for name in sorted(by_name)]
    assert len(wheels) > 40, f"expected the corpus wheels in {folder}"
    return wheels


def _target_options() -> list[str]:
    target = get_target("python3.12-x86_64")
    options = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    options += ["--abi", "cp312"]
    for platform in manylinux_platforms(target.glibc, "x86_64"):
        options += ["--platform", platform]
    return options


def _pip(*args: str | Path) -> None:
    cmd = [sys.executable, "-m", "pip", *map(str, args)]
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def _pip_download(requirements: Path, folder: Path) -> None:
    _pip("download", "-q", "-d", folder, "-r", requirements, *_target_options())


def _pip_install(wheel: Path, root: Path) -> None:
    options = ["--no-deps", "--no-compile", "--no-index", *_target_options()]
    _pip("install", "-q", *options, "--target", root / wheel.stem, wheel)


def _layer_files(layer: Path) -> dict[str, bytes]:
    """Path under python/ -> bytes, for every file of the layer (bin/ left out)."""
    with zipfile.ZipFile(layer) as archive:
        files = {
            info.filename.removeprefix("python/"): archive.read(info)
            for info in archive.infolist()
            if info.filename.startswith("python/")
        }
    return {path: data for path, data in files.items() if not _bookkeeping(path)}


def _pip_files(root: Path) -> dict[str, bytes]:
    """Path -> bytes for every file pip installed under ``root`` (bin/ left out)."""
    files = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith("bin/") and not _bookkeeping(rel):
            files[rel] = path.read_bytes()
    return files


def _bookkeeping(path: str) -> bool:
    parts = path.split("/")
    if "__pycache__" in parts:
        return True
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in PIP_BOOKKEEPING


def test_layer_matches_pip_install_target(corpus_wheels: list[Path], tmp_path: Path) -> None:
    mismatched = []
    compared = 0
    with ThreadPoolExecutor(max_workers=4) as pool:  # each pip is a process of its own
        list(pool.map(lambda wheel: _pip_install(wheel, tmp_path / "pip"), corpus_wheels))
    for wheel in corpus_wheels:
        target = tmp_path / "pip" / wheel.stem
        ours = _layer_files(build_layer([wheel], tmp_path / "ours").path)
        theirs = _pip_files(target)
        compared += len(ours)
        if ours.keys() != theirs.keys():
            only_ours = sorted(ours.keys() - theirs.keys())[:3]
            only_pip = sorted(theirs.keys() - ours.keys())[:3]
            mismatched.append(f"{wheel.name}: only ours {only_ours}, only pip {only_pip}")
        else:
            differ = sorted(path for path in ours if ours[path] != theirs[path])[:3]
            if differ:
                mismatched.append(f"{wheel.name}: different bytes in {differ}")
    assert mismatched == []
    assert compared > 10 * len(corpus_wheels)  # the comparison saw real files


def test_layers_are_byte_identical_between_runs(corpus_wheels: list[Path], tmp_path: Path) -> None:
    first = build_layer(corpus_wheels, tmp_path / "one")
    again = build_layer(list(reversed(corpus_wheels)), tmp_path / "two")
    assert (again.sha256, again.path.read_bytes()) == (first.sha256, first.path.read_bytes())
    for wheel in corpus_wheels[:10]:
        assert (
            build_layer([wheel], tmp_path / "a").sha256
            == build_layer([wheel], tmp_path / "b").sha256
        )

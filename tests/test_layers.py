"""Layer and code zips: Lambda layout, wheel install rules, determinism, safety."""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import make_wheel
from pip_lambda_pack.errors import BuildError
from pip_lambda_pack.layers import build_code_zip, build_layer
from pip_lambda_pack.zipwrite import ZipEntry, zip_bytes


def _listing(path: Path) -> list[tuple[str, str, int]]:
    """(name, octal mode, create_system) of every entry, in archive order."""
    with zipfile.ZipFile(path) as archive:
        return [
            (i.filename, oct(stat.S_IMODE(i.external_attr >> 16)), i.create_system)
            for i in archive.infolist()
        ]


def _three_wheels(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        make_wheel(directory, "alpha", "1.0"),
        make_wheel(
            directory,
            "beta",
            "2.0",
            files={"beta/__init__.py": "", "beta/tool.sh": "#!/bin/sh\n"},
            executable=["beta/tool.sh"],
        ),
        make_wheel(directory, "gamma", "0.1", files={"gamma.py": "G = 1\n"}),
    ]


def test_layer_entries_modes_and_layout(tmp_path: Path) -> None:
    artifact = build_layer(_three_wheels(tmp_path / "w"), tmp_path / "out")
    assert _listing(artifact.path) == [
        ("python/alpha-1.0.dist-info/METADATA", "0o644", 3),
        ("python/alpha-1.0.dist-info/RECORD", "0o644", 3),
        ("python/alpha-1.0.dist-info/WHEEL", "0o644", 3),
        ("python/alpha/__init__.py", "0o644", 3),
        ("python/beta-2.0.dist-info/METADATA", "0o644", 3),
        ("python/beta-2.0.dist-info/RECORD", "0o644", 3),
        ("python/beta-2.0.dist-info/WHEEL", "0o644", 3),
        ("python/beta/__init__.py", "0o644", 3),
        ("python/beta/tool.sh", "0o755", 3),
        ("python/gamma-0.1.dist-info/METADATA", "0o644", 3),
        ("python/gamma-0.1.dist-info/RECORD", "0o644", 3),
        ("python/gamma-0.1.dist-info/WHEEL", "0o644", 3),
        ("python/gamma.py", "0o644", 3),
    ]
    data = artifact.path.read_bytes()
    assert artifact.path == tmp_path / "out" / "layers" / f"{artifact.sha256}.zip"
    assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert artifact.size == len(data)
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert artifact.unzipped_size == sum(i.file_size for i in infos)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.extra for i in infos} == {b""}
        assert archive.comment == b""
        assert archive.read("python/alpha/__init__.py") == b'VERSION = "1.0"\n'


def test_same_wheels_any_order_any_directory_same_bytes(tmp_path: Path) -> None:
    first = _three_wheels(tmp_path / "one")
    second_dir = tmp_path / "two" / "nested"
    second_dir.mkdir(parents=True)
    second = [Path(shutil.copy(w, second_dir)) for w in first]
    random.Random(7).shuffle(second)
    a = build_layer(first, tmp_path / "out-a")
    b = build_layer(list(reversed(second)), tmp_path / "out-b")
    assert a.sha256 == b.sha256
    assert a.path.read_bytes() == b.path.read_bytes()


def test_entries_are_copied_raw_from_the_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "alpha", "1.0", files={"alpha/big.txt": "abc" * 1000})
    artifact = build_layer([wheel], tmp_path / "out")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(artifact.path) as out:
        original = src.getinfo("alpha/big.txt")
        copied = out.getinfo("python/alpha/big.txt")
        assert copied.compress_type == zipfile.ZIP_DEFLATED
        assert (copied.CRC, copied.compress_size) == (original.CRC, original.compress_size)


def test_data_directory_mapping_and_script_shebang(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "tool",
        "1.0",
        files={
            "tool/__init__.py": "",
            "tool-1.0.data/purelib/tool_pure.py": "P = 1\n",
            "tool-1.0.data/platlib/tool_plat.py": "Q = 1\n",
            "tool-1.0.data/scripts/tool-run": "#!python\nimport tool\n",
            "tool-1.0.data/scripts/tool-sh": "#!/bin/sh\necho hi\n",
            "tool-1.0.data/headers/tool.h": "int x;\n",
            "tool-1.0.data/data/share/tool.txt": "data\n",
        },
    )
    artifact = build_layer([wheel], tmp_path / "out")
    names = [name for name, _, _ in _listing(artifact.path)]
    assert names == [
        "bin/tool-run",
        "bin/tool-sh",
        "python/tool-1.0.dist-info/METADATA",
        "python/tool-1.0.dist-info/RECORD",
        "python/tool-1.0.dist-info/WHEEL",
        "python/tool/__init__.py",
        "python/tool_plat.py",
        "python/tool_pure.py",
    ]
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.read("bin/tool-run") == b"#!/usr/bin/env python3\nimport tool\n"
        assert archive.read("bin/tool-sh") == b"#!/bin/sh\necho hi\n"
        assert stat.S_IMODE(archive.getinfo("bin/tool-run").external_attr >> 16) == 0o755


@pytest.mark.parametrize("entry", ["../evil.py", "/etc/passwd", "a/../../b.py", "a//b.py"])
def test_unsafe_entry_path_is_refused(tmp_path: Path, entry: str) -> None:
    wheel = make_wheel(tmp_path, "bad", "1.0", files={entry: "x"})
    with pytest.raises(BuildError) as info:
        build_layer([wheel], tmp_path / "out")
    assert info.value.message == f"bad-1.0-py3-none-any.whl: unsafe path {entry!r} in the archive"


def test_conflicting_files_name_both_wheels(tmp_path: Path) -> None:
    one = make_wheel(tmp_path, "one", "1.0", files={"shared/__init__.py": "A = 1\n"})
    two = make_wheel(tmp_path, "two", "1.0", files={"shared/__init__.py": "A = 2\n"})
    with pytest.raises(BuildError) as info:
        build_layer([two, one], tmp_path / "out")
    assert info.value.message == (
        "one-1.0-py3-none-any.whl and two-1.0-py3-none-any.whl both provide "
        "python/shared/__init__.py with different contents"
    )


def test_identical_files_from_two_wheels_are_kept_once(tmp_path: Path) -> None:
    one = make_wheel(tmp_path, "one", "1.0", files={"ns/__init__.py": ""})
    two = make_wheel(tmp_path, "two", "1.0", files={"ns/__init__.py": ""})
    artifact = build_layer([one, two], tmp_path / "out")
    names = [name for name, _, _ in _listing(artifact.path)]
    assert names.count("python/ns/__init__.py") == 1
    assert build_layer([two, one], tmp_path / "again").sha256 == artifact.sha256


def test_not_a_wheel_is_a_build_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus-1.0-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(BuildError, match="bogus-1.0-py3-none-any.whl: not a readable wheel"):
        build_layer([bogus], tmp_path / "out")


def _code_dir(root: Path) -> Path:
    code = root / "code"
    (code / "pkg" / "__pycache__").mkdir(parents=True)
    (code / ".git").mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return event\n")
    (code / "pkg" / "__init__.py").write_text("")
    (code / "pkg" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\0")
    (code / "pkg" / "stale.pyc").write_bytes(b"\0")
    (code / ".git" / "HEAD").write_text("ref: main\n")
    (code / "run.sh").write_text("#!/bin/sh\n")
    (code / "run.sh").chmod(0o700)
    return code


def test_code_zip_skips_caches_and_is_deterministic(tmp_path: Path) -> None:
    code = _code_dir(tmp_path)
    artifact = build_code_zip(code, code / "build", "api")
    assert artifact.path == code / "build" / "functions" / "api.zip"
    assert _listing(artifact.path) == [
        ("app.py", "0o644", 3),
        ("pkg/__init__.py", "0o644", 3),
        ("run.sh", "0o755", 3),
    ]
    shutil.rmtree(code / "build")
    again = build_code_zip(code, tmp_path / "elsewhere", "api")
    assert again.sha256 == artifact.sha256
    assert again.unzipped_size == len(b"def handler(event, context):\n    return event\n") + 10


def test_code_zip_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="function api: code directory not found"):
        build_code_zip(tmp_path / "nope", tmp_path / "out", "api")


@pytest.mark.slow
def test_zip64_end_records_past_65535_entries() -> None:
    entries = [
        ZipEntry(path=f"f{i:06d}", mode=0o644, method=0, crc=0, size=0, payload=b"", origin="t")
        for i in range(70_000)
    ]
    with zipfile.ZipFile(io.BytesIO(zip_bytes(entries))) as archive:
        names = archive.namelist()
    assert len(names) == 70_000
    assert names[-1] == "f069999"


@pytest.fixture(scope="module")
def five_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("five")
    wheels = _three_wheels(directory)
    wheels.append(make_wheel(directory, "ns-one", "1.0", files={"ns/one.py": "", "ns/x.py": ""}))
    wheels.append(make_wheel(directory, "ns-two", "1.0", files={"ns/two.py": "", "ns/x.py": ""}))
    return wheels


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(5)))
def test_layer_bytes_do_not_depend_on_wheel_order(
    five_wheels: list[Path], tmp_path_factory: pytest.TempPathFactory, order: list[int]
) -> None:
    out = tmp_path_factory.mktemp("out")
    canonical = build_layer(five_wheels, out / "a")
    shuffled = build_layer([five_wheels[i] for i in order], out / "b")
    assert shuffled.path.read_bytes() == canonical.path.read_bytes()


def test_unknown_data_scheme_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "odd", "1.0", files={"odd-1.0.data/weird/x.py": ""})
    with pytest.raises(BuildError) as info:
        build_layer([wheel], tmp_path / "out")
    assert info.value.message == (
        "odd-1.0-py3-none-any.whl: 'odd-1.0.data/weird/x.py' is in no known .data scheme"
    )


CLI_MODULE = """\
def main():
    print("hi from main")


class App:
    @staticmethod
    def run():
        print("hi from App.run")
"""
ENTRY_POINTS = """\
[console_scripts]
hello = pkg.cli:main
hello-app = pkg.cli:App.run [extra]

[gui_scripts]
hello-gui = pkg.cli:main

[other.group]
ignored = pkg.cli:main
"""


def test_console_scripts_are_written_as_pip_install_target_writes_them(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    wheels = tmp_path / "w"
    wheels.mkdir()
    files = {
        "pkg/__init__.py": "",
        "pkg/cli.py": CLI_MODULE,
        "pkg-1.0.dist-info/entry_points.txt": ENTRY_POINTS,
    }
    wheel = make_wheel(wheels, "pkg", "1.0", files=files)
    pip_target = tmp_path / "pip"
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile"]
    subprocess.run(
        [*pip, "--target", str(pip_target), str(wheel)],
        check=True,
        env=env,
    )
    theirs = {p.name: p.read_bytes() for p in (pip_target / "bin").iterdir()}
    layer = build_layer([wheel], tmp_path / "out")
    with zipfile.ZipFile(layer.path) as archive:
        ours = {
            i.filename.removeprefix("bin/"): (archive.read(i), stat.S_IMODE(i.external_attr >> 16))
            for i in archive.infolist()
            if i.filename.startswith("bin/")
        }
    assert sorted(ours) == sorted(theirs) == ["hello", "hello-app", "hello-gui"]
    for name, (data, mode) in ours.items():
        assert mode == 0o755
        first, _, rest = data.partition(b"\n")
        assert first == b"#!/usr/bin/env python3"
        assert rest == theirs[name].partition(b"\n")[2], name
    root = tmp_path / "opt"
    with zipfile.ZipFile(layer.path) as archive:
        archive.extractall(root)
    run_env = {"PYTHONPATH": str(root / "python"), "PATH": os.defpath}
    for name, said in (("hello", "hi from main"), ("hello-app", "hi from App.run")):
        done = subprocess.run(
            [sys.executable, str(root / "bin" / name)], env=run_env, capture_output=True, text=True
        )
        assert done.stdout == said + "\n"
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m\n"
            "for f in m.files('pkg'): print(f, f.locate().exists())",
        ],
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in ("hello", "hello-app", "hello-gui"):
        assert f"../bin/{name} True" in listed


def test_bad_entry_point_is_a_build_error(tmp_path: Path) -> None:
    wheels = tmp_path / "w"
    wheels.mkdir()
    files = {
        "pkg/__init__.py": "",
        "pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\nx = pkg\n",
    }
    wheel = make_wheel(wheels, "pkg", "1.0", files=files)
    with pytest.raises(BuildError) as caught:
        build_layer([wheel], tmp_path / "out")
    assert caught.value.message == (
        "pkg-1.0-py3-none-any.whl: entry_points.txt: x = pkg is not NAME = module:function"
    )

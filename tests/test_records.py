"""Wheel RECORD: verified as pypa/installer verifies it, and parsed and written exactly."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from helpers import make_wheel
from pip_lambda_pack.errors import BuildError, HashMismatchError
from pip_lambda_pack.layers import build_layer
from pip_lambda_pack.records import RecordRow, file_hash, parse_record, record_bytes
from projects import run

INFO = "pkg-1.0.dist-info"
METADATA = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\n"
WHEEL = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"


def row(path: str, data: bytes) -> str:
    return f"{path},{file_hash(data)},{len(data)}"


def raw_wheel(folder: Path, files: dict[str, bytes], record: str | None) -> Path:
    """A wheel with exactly these files and this RECORD text (None: no RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {f"{INFO}/METADATA": METADATA, f"{INFO}/WHEEL": WHEEL, **files}.items():
            archive.writestr(name, data)
        if record is not None:
            archive.writestr(f"{INFO}/RECORD", record)
    return path


def good_rows(files: dict[str, bytes]) -> list[str]:
    rows = [row(f"{INFO}/METADATA", METADATA), row(f"{INFO}/WHEEL", WHEEL)]
    return rows + [row(name, data) for name, data in files.items()]


MODULE = {"pkg/__init__.py": b"X = 1\n"}


def build(tmp_path: Path, files: dict[str, bytes], record: str | None) -> None:
    build_layer([raw_wheel(tmp_path / "w", files, record)], tmp_path / "out")


def test_a_consistent_wheel_builds(tmp_path: Path) -> None:
    files = {**MODULE, f"{INFO}/RECORD.jws": b"{}", "pkg/__pycache__/x.cpython-312.pyc": b"pyc"}
    rows = [*good_rows(MODULE), "pkg/__pycache__/x.cpython-312.pyc,,", f"{INFO}/RECORD,,"]
    rows.append("pkg/listed_but_absent.py,sha256=abc,3")  # ignored, as installer ignores it
    build(tmp_path, files, "\n".join(rows) + "\n")


def test_a_changed_file_is_a_hash_mismatch(tmp_path: Path) -> None:
    rows = [*good_rows({"pkg/__init__.py": b"X = 2\n"}), f"{INFO}/RECORD,,"]
    with pytest.raises(HashMismatchError) as caught:
        build(tmp_path, MODULE, "\n".join(rows))
    assert caught.value.exit_code == 2
    assert caught.value.message == (
        "pkg-1.0-py3-none-any.whl: pkg/__init__.py does not match its RECORD entry"
        " (sha256 or size differs: 6 bytes, RECORD says 6)"
    )
    assert caught.value.tip == (
        "the wheel was altered after it was built; use another build or version of the package"
    )


@pytest.mark.parametrize(
    ("rows", "files", "said"),
    [
        (None, MODULE, f"no {INFO}/RECORD"),
        ([*good_rows({}), f"{INFO}/RECORD,,"], MODULE, "RECORD does not list pkg/__init__.py"),
        (good_rows(MODULE), MODULE, f"RECORD does not list {INFO}/RECORD"),
        (
            [*good_rows(MODULE), f"{INFO}/RECORD,sha256=x,10"],
            MODULE,
            "RECORD gives RECORD itself a hash or size",
        ),
        (
            [*good_rows(MODULE), f"{INFO}/RECORD,,", f"{INFO}/RECORD.p7s,,"],
            {**MODULE, f"{INFO}/RECORD.p7s": b"sig"},
            f"RECORD lists its signature file {INFO}/RECORD.p7s",
        ),
        (
            [*good_rows({}), "pkg/__init__.py,,", f"{INFO}/RECORD,,"],
            MODULE,
            "RECORD gives pkg/__init__.py no hash or size",
        ),
        (
            [*good_rows({}), "pkg/__init__.py,md5=abc,6", f"{INFO}/RECORD,,"],
            MODULE,
            "RECORD hashes pkg/__init__.py with md5, not sha256",
        ),
        (
            [*good_rows({}), "pkg/__init__.py,sha256,x,6", f"{INFO}/RECORD,,"],
            MODULE,
            "RECORD is malformed (line 3 has 4 fields, not path,hash,size)",
        ),
    ],
)
def test_record_problems_are_build_errors(
    tmp_path: Path, rows: list[str] | None, files: dict[str, bytes], said: str
) -> None:
    record = None if rows is None else "\n".join(rows) + "\n"
    with pytest.raises(BuildError) as caught:
        build(tmp_path, files, record)
    assert not isinstance(caught.value, HashMismatchError)
    message = caught.value.message
    assert message.startswith("pkg-1.0-py3-none-any.whl: ")
    assert (
        message.removeprefix("pkg-1.0-py3-none-any.whl: ").removeprefix(f"{INFO}: ").endswith(said)
    ), message
    assert caught.value.exit_code == 2


def test_a_pyc_with_a_wrong_hash_is_refused(tmp_path: Path) -> None:
    files = {**MODULE, "pkg/__pycache__/x.cpython-312.pyc": b"pyc"}
    rows = [*good_rows(MODULE), row("pkg/__pycache__/x.cpython-312.pyc", b"other")]
    with pytest.raises(HashMismatchError):
        build(tmp_path, files, "\n".join([*rows, f"{INFO}/RECORD,,"]))


def test_record_round_trip_quotes_commas() -> None:
    rows = [
        RecordRow(path="a,b.py", hash="sha256=x", size="1"),
        RecordRow(path="r/RECORD", hash="", size=""),
    ]
    data = record_bytes(rows)
    assert data == b'"a,b.py",sha256=x,1\nr/RECORD,,\n'
    assert parse_record(data, "here") == rows


def test_cli_refuses_a_tampered_wheel_with_error_and_tip(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    good = make_wheel(wheels, "pkg", "1.0")
    with zipfile.ZipFile(good) as archive:
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    contents["pkg/__init__.py"] = b"import os; os.system('evil')\n"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (project / "lambda-pack.toml").write_text(
        f'no-index = true\nfind-links = ["{wheels}"]\n'
        '[functions.f]\nhandler = "app.handler"\ncode = "app"\ndependencies = ["pkg"]\n'
    )
    done = run(project, "build", "--bytecode", "none")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2] == (
        "ERROR: pkg-1.0-py3-none-any.whl: pkg/__init__.py does not match its RECORD entry"
        " (sha256 or size differs: 29 bytes, RECORD says 16)"
    )
    assert lines[-1].startswith("TIP: the wheel was altered after it was built")
    assert "Traceback" not in done.stderr
    assert not list((project / ".lambda-pack").rglob("layers/*.zip"))

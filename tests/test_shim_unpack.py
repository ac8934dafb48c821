"""The shim unpacks a larger layer in several threads: the same files, the same errors."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from pip_lambda_pack import shim


def _layer(tmp_path: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A zip over ``SERIAL_BYTES``: one big deflated file, many small ones, stored .pyc."""
    buffer = io.BytesIO()
    files = {"python/big.so": os.urandom(3 << 20) + b"\0" * (2 << 20)}
    files |= {f"python/pkg{i % 7}/m{i}.py": b"x = %d\n" % i * (i + 1) for i in range(300)}
    files |= {f"python/pkg1/__pycache__/m{i}.cpython-312.pyc": b"%d" % i * 50 for i in range(50)}
    files |= extra or {}
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            stored = name.endswith(".pyc")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    path = tmp_path / "layer.zip"
    path.write_bytes(buffer.getvalue())
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_larger_layer_unpacks_in_threads_to_exactly_its_entries(tmp_path: Path) -> None:
    layer = _layer(tmp_path)
    with zipfile.ZipFile(layer) as archive:
        expected = {info.filename: archive.read(info) for info in archive.infolist()}
    assert sum(len(data) for data in expected.values()) > shim.SERIAL_BYTES
    threaded = tmp_path / "threaded"
    threaded.mkdir()
    written = shim.extract(layer, threaded, "d" * 64)
    assert _tree(threaded) == expected and written == sum(map(len, expected.values()))
    modes = {p.stat().st_mode & 0o777 for p in threaded.rglob("*") if p.is_file()}
    assert modes == {0o644}


def test_threads_raise_the_first_bad_entry_as_one_thread_would(tmp_path: Path) -> None:
    layer = _layer(tmp_path, {"python/../../evil.py": b"boom"})
    into = tmp_path / "out"
    into.mkdir()
    with pytest.raises(shim.ShimError, match="unsafe path 'python/../../evil.py'"):
        shim.extract(layer, into, "d" * 64)
    assert not (tmp_path / "evil.py").exists()


def test_a_corrupt_entry_in_a_threaded_unpack_is_an_unreadable_blob(tmp_path: Path) -> None:
    layer = _layer(tmp_path)
    data = bytearray(layer.read_bytes())
    with zipfile.ZipFile(layer) as archive:
        info = archive.getinfo("python/pkg1/__pycache__/m7.cpython-312.pyc")
    data[info.header_offset + 30 + len(info.filename) + 3] ^= 0xFF  # a stored byte: CRC fails
    layer.write_bytes(bytes(data))
    into = tmp_path / "out"
    into.mkdir()
    with pytest.raises(shim.ShimError, match="not a readable zip: bad CRC"):
        shim.extract(layer, into, "d" * 64)

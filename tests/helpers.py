"""Tiny real wheels and sdists, built in a temp dir, for the tests."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def metadata_text(
    name: str,
    version: str,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    extras: Sequence[str] = (),
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n\n"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    extras: Sequence[str] = (),
    tag: str = "py3-none-any",
    files: Mapping[str, bytes | str] | None = None,
    executable: Sequence[str] = (),
    purelib: bool = True,
) -> Path:
    """Write ``name-version-tag.whl`` into ``directory`` and return its path.

    ``files`` maps archive paths to contents (default: ``<module>/__init__.py`` that sets
    ``VERSION``); ``executable`` lists archive paths stored with mode 0755.
    """
    dist = canonicalize_name(name).replace("-", "_")
    module = dist
    if files is None:
        files = {f"{module}/__init__.py": f'VERSION = "{version}"\n'}
    info = f"{dist}-{version}.dist-info"
    wheel_meta = (
        "Wheel-Version: 1.0\nGenerator: tests\n"
        f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n\n"
    )
    entries: dict[str, bytes] = {
        path: content.encode() if isinstance(content, str) else content
        for path, content in files.items()
    }
    entries[f"{info}/METADATA"] = metadata_text(
        name, version, requires, requires_python, extras
    ).encode()
    entries[f"{info}/WHEEL"] = wheel_meta.encode()
    record = [_record_line(path, data) for path, data in entries.items()]
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = Path(directory) / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in entries.items():
            zinfo = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            mode = 0o755 if arcname in executable else 0o644
            zinfo.external_attr = (0o100000 | mode) << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(zinfo, data)
    return path


# A PEP 517 backend kept inside the sdist, so building it needs nothing from an index.
_IN_TREE_BACKEND = """
import base64, hashlib, os, platform, sys, zipfile

NAME, VERSION, REQUIRES, PURE = {name!r}, {version!r}, {requires!r}, {pure!r}
REQUIRES_PYTHON, SHARED_OBJECT = {requires_python!r}, {shared_object!r}
{build_time}
DIST = NAME.replace("-", "_")
PY = "cp%d%d" % sys.version_info[:2]  # the interpreter that builds it decides the tag
TAG = "py3-none-any" if PURE else "%s-%s-linux_%s" % (PY, PY, platform.machine())


def get_requires_for_build_wheel(config_settings=None):
    return []


def _metadata():
    lines = ["Metadata-Version: 2.1", "Name: " + NAME, "Version: " + VERSION]
    if REQUIRES_PYTHON:
        lines.append("Requires-Python: " + REQUIRES_PYTHON)
    lines += ["Requires-Dist: " + r for r in REQUIRES]
    return "\\n".join(lines) + "\\n\\n"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = DIST + "-" + VERSION + ".dist-info"
    files = {{DIST + "/__init__.py": "BUILT = True\\n", info + "/METADATA": _metadata(),
             info + "/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: %s\\nTag: %s\\n" % (
                 "true" if PURE else "false", TAG)}}
    if not PURE:
        files[DIST + "/_speedups.so"] = base64.b64decode(SHARED_OBJECT or "bm90IGVsZg==")
    record = []
    for path, text in files.items():
        data = text if isinstance(text, bytes) else text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append(info + "/RECORD,,")
    files[info + "/RECORD"] = "\\n".join(record) + "\\n"
    filename = "%s-%s-%s.whl" % (DIST, VERSION, TAG)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return filename
"""


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    pure: bool = True,
    requires_python: str | None = None,
    build_time: str = "",
    shared_object: bytes = b"",
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``name-version.tar.gz`` whose in-tree backend builds a pure (or not) wheel.

    ``build_time`` is code the backend runs when it is imported, as a ``setup.py`` would
    (``if sys.version_info < (3, 11): REQUIRES = REQUIRES + ["tomli"]``); the wheel's
    tag names the interpreter that built it; ``shared_object`` is the ``.so`` a non-pure
    build ships (default: bytes that are no ELF file); ``files`` are more sdist members.
    """
    dist = canonicalize_name(name).replace("-", "_")
    root = f"{dist}-{version}"
    members = {
        f"{root}/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        f"{root}/backend.py": _IN_TREE_BACKEND.format(
            name=name,
            version=version,
            requires=list(requires),
            pure=pure,
            requires_python=requires_python,
            shared_object=base64.b64encode(shared_object).decode(),
            build_time=build_time,
        ),
        f"{root}/PKG-INFO": metadata_text(name, version, requires, requires_python),
        **{f"{root}/{path}": text for path, text in (files or {}).items()},
    }
    path = Path(directory) / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for arcname, text in members.items():
            data = text.encode()
            member = tarfile.TarInfo(arcname)
            member.size = len(data)
            member.mtime = 1577836800
            archive.addfile(member, io.BytesIO(data))
    return path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

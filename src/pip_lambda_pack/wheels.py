"""One wheel's files as layer entries, by the wheel install rules: purelib/platlib under
``python/``, scripts under ``bin/`` with their shebangs fixed, console-script launchers,
RECORD checked and every entry path refused when unsafe.
"""

from __future__ import annotations

import configparser
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from .errors import BuildError
from .records import RecordCheck
from .zipwrite import ZipEntry, stored_entry

SHEBANG = b"#!/usr/bin/env python3"


def wheel_entries(wheel: Path, *, sources: bool = False) -> list[ZipEntry]:
    """The layer entries of one wheel, with their paths mapped by the wheel install rules;
    with ``sources``, each ``.py`` keeps its inflated bytes (``data``) for the compiler."""
    try:
        with zipfile.ZipFile(wheel) as archive, open(wheel, "rb") as raw:
            dist_info = _dist_info(wheel, archive)
            data_dir = dist_info.removesuffix(".dist-info") + ".data"
            record = RecordCheck(
                wheel.name, dist_info, _read_optional(archive, dist_info, "RECORD")
            )
            scripts = console_scripts(wheel.name, _entry_points(archive, dist_info))
            entries = list(scripts.values())
            for info in archive.infolist():
                entry = _wheel_entry(wheel, (archive, raw), info, data_dir, record, sources)
                if entry is not None and entry.path not in scripts:  # as pip: entry points win
                    entries.append(entry)
            return entries
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error) as exc:
        raise BuildError(
            f"{wheel.name}: not a readable wheel: {exc}", "delete it from the cache and build again"
        ) from exc


# pip 26's launcher (recent pips dropped distlib's `import re` to start faster), byte for
# byte after the shebang line; fixed here so a layer does not depend on the builder's pip
_LAUNCHER = """import sys
from {module} import {name}
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit({call}())
"""
_ENTRY_NAME = re.compile(r"^[\w.+-]+$")
_ENTRY_VALUE = re.compile(
    r"^(?P<module>\w+(?:\.\w+)*)\s*:\s*(?P<attr>\w+(?:\.\w+)*)\s*(?:\[.*\])?$"
)


def _entry_points(archive: zipfile.ZipFile, dist_info: str) -> str:
    data = _read_optional(archive, dist_info, "entry_points.txt")
    return "" if data is None else data.decode("utf-8", errors="replace")


def _read_optional(archive: zipfile.ZipFile, dist_info: str, name: str) -> bytes | None:
    try:
        return archive.read(f"{dist_info}/{name}")
    except KeyError:
        return None


def console_scripts(origin: str, text: str) -> dict[str, ZipEntry]:
    """``bin/NAME`` launchers of the ``console_scripts`` and ``gui_scripts`` entry points,
    as pip writes them (its launcher text, mode 0755), with the target's shebang
    ``#!/usr/bin/env python3``: Lambda puts its runtime's ``/var/lang/bin`` first on PATH,
    so this finds the runtime's Python there, and the one of a local run elsewhere."""
    if not text:
        return {}
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise _bad_entry_points(origin, str(exc).splitlines()[0]) from None
    scripts = {}
    for group in ("console_scripts", "gui_scripts"):
        if parser.has_section(group):
            for name, value in sorted(parser.items(group)):
                entry = _launcher(origin, name, value)
                scripts[entry.path] = entry
    return scripts


def _launcher(origin: str, name: str, value: str) -> ZipEntry:
    match = _ENTRY_VALUE.match(value.strip())
    if not _ENTRY_NAME.match(name) or match is None or name in (".", ".."):
        raise _bad_entry_points(origin, f"{name} = {value} is not NAME = module:function")
    call = match["attr"]
    text = _LAUNCHER.format(module=match["module"], name=call.split(".")[0], call=call)
    return stored_entry("bin/" + name, 0o755, SHEBANG + b"\n" + text.encode(), origin)


def _bad_entry_points(origin: str, detail: str) -> BuildError:
    return BuildError(
        f"{origin}: entry_points.txt: {detail}",
        "the wheel is malformed; use another build of the package",
    )


def _dist_info(wheel: Path, archive: zipfile.ZipFile) -> str:
    tops = {name.split("/", 1)[0] for name in archive.namelist() if name.endswith("/METADATA")}
    infos = sorted(top for top in tops if top.endswith(".dist-info"))
    if len(infos) != 1:
        raise BuildError(
            f"{wheel.name}: expected one *.dist-info/METADATA, found {len(infos)}",
            "the wheel is malformed; use another build of the package",
        )
    return infos[0]


def _wheel_entry(
    wheel: Path,
    files: tuple[zipfile.ZipFile, BinaryIO],
    info: zipfile.ZipInfo,
    data_dir: str,
    record: RecordCheck,
    sources: bool,
) -> ZipEntry | None:
    """The layer entry of one wheel file (None: not installed), checked against RECORD."""
    archive, raw = files
    if info.is_dir():
        return None
    check_entry_path(wheel.name, info.filename)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BuildError(
            f"{wheel.name}: entry {info.filename!r} is a symlink",
            "wheels cannot hold symlinks; use another build of the package",
        )
    path, is_script = _layer_path(wheel, info.filename, data_dir)
    if path is None:
        record.check(info.filename, archive.read(info))
        return None
    mode = 0o755 if mode & 0o111 else 0o644
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        data = archive.read(info)  # zipfile checks the CRC
        record.check(info.filename, data)
        return stored_entry(
            path, 0o755 if is_script else mode, _script(data, is_script), wheel.name
        )
    payload = _raw_payload(raw, info)
    data = _checked(payload, info)  # the CRC holds, so the raw copy is a valid copy
    record.check(info.filename, data)
    if is_script:
        return stored_entry(path, 0o755, _fix_shebang(data), wheel.name)
    return ZipEntry(
        path=path,
        mode=mode,
        method=info.compress_type,
        crc=info.CRC,
        size=info.file_size,
        payload=payload,
        origin=wheel.name,
        data=data if sources and path.endswith(".py") else None,  # inflated once
    )


def _script(data: bytes, is_script: bool) -> bytes:
    return _fix_shebang(data) if is_script else data


def _checked(payload: bytes, info: zipfile.ZipInfo) -> bytes:
    """The entry's bytes, inflated straight from its raw payload; BadZipFile unless
    their size and CRC-32 are the ones the archive records."""
    if info.compress_type == zipfile.ZIP_DEFLATED:
        data = zlib.decompress(payload, -15, max(info.file_size, 1))  # releases the GIL
    else:
        data = payload
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    return data


def check_entry_path(origin: str, name: str) -> None:
    """Refuse absolute paths, drive letters, backslashes, and ``..``, ``.`` or empty parts."""
    parts = name.split("/")
    unsafe = (
        name.startswith("/")
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or any(part in ("", ".", "..") for part in parts)
    )
    if unsafe:
        raise BuildError(
            f"{origin}: unsafe path {name!r} in the archive",
            "the archive is malformed or malicious; do not use it",
        )


def _layer_path(wheel: Path, name: str, data_dir: str) -> tuple[str | None, bool]:
    """Where a wheel entry goes in the layer, and whether it is a script."""
    top, _, rest = name.partition("/")
    if top != data_dir:
        return "python/" + name, False
    scheme, _, inner = rest.partition("/")
    if inner and scheme in ("purelib", "platlib"):
        return "python/" + inner, False
    if inner and scheme == "scripts":
        return "bin/" + inner, True
    if inner and scheme in ("headers", "data"):
        return None, False
    raise BuildError(
        f"{wheel.name}: {name!r} is in no known .data scheme",
        "the wheel is malformed; use another build of the package",
    )


def _fix_shebang(data: bytes) -> bytes:
    """``#!python`` (or ``#!pythonw``) becomes ``#!/usr/bin/env python3``, as installers do."""
    for prefix in (b"#!pythonw", b"#!python"):
        if data.startswith(prefix):
            return SHEBANG + data[len(prefix) :]
    return data


def _raw_payload(raw: BinaryIO, info: zipfile.ZipInfo) -> bytes:
    """The entry's compressed bytes, read past its local header."""
    raw.seek(info.header_offset)
    header = raw.read(30)
    signature, *_, name_len, extra_len = struct.unpack("<IHHHHHIIIHH", header)
    if signature != 0x04034B50:
        raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
    raw.seek(info.header_offset + 30 + name_len + extra_len)
    payload = raw.read(info.compress_size)
    if len(payload) != info.compress_size:
        raise zipfile.BadZipFile(f"truncated entry {info.filename!r}")
    return payload

"""Deterministic layer and code zips: wheels laid out the way Lambda unpacks a layer in /opt.

A layer's bytes depend only on the wheels' bytes: entries sorted by path, one fixed
timestamp, modes normalised to 0644/0755, no directory entries, no extra fields. Entries
the wheel deflated or stored are copied raw (deflate output differs between zlib builds,
so recompressing would make the same layer two blobs on two machines); the few entries we
must rewrite (scripts' shebangs, other compression methods) are stored uncompressed.
The same wheels in any order, on any machine and any day, give one sha256.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import os
import re
import stat
import struct
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from .atomic import atomic_writer, write_bytes
from .bytecode import Compiler, Source, compile_sources, pyc_path
from .errors import BuildError
from .records import RecordCheck, RecordRow, parse_record, record_bytes, row_of

DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01: a constant, never SOURCE_DATE_EPOCH
DOS_TIME = 0
MADE_BY = (3 << 8) | 20  # unix, zip spec 2.0
NEEDED = 20
NEEDED_ZIP64 = 45
UTF8_FLAG = 0x800
SHEBANG = b"#!/usr/bin/env python3"
CODE_SKIP_DIRS = frozenset({"__pycache__", ".git", ".lambda-pack"})
LAYER_ROOT = "/opt/"  # where Lambda unpacks a layer: the file names code objects keep
CODE_ROOT = "/var/task/"  # where Lambda unpacks the function's code
# __pycache__/NAME.TAG.pyc or NAME.TAG.opt-N.pyc (PEP 3147 / PEP 488)
_CACHED_PYC = re.compile(r"(?:^|/)__pycache__/[^/.]+\.(?P<tag>[^./]+)(?:\.opt-\d+)?\.pyc$")
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Artifact:
    """A zip written by a build: where it is, its sha256 and its sizes."""

    path: Path
    sha256: str
    size: int
    unzipped_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerOptions:
    """What a build does to the wheels' files beyond laying them out."""

    cache_tag: str  # the target's sys.implementation.cache_tag: cpython-312
    compiler: Compiler | None = None  # None: no bytecode (mode none, or no interpreter)
    exclude: tuple[str, ...] = ()  # globs of paths (under python/ in a layer) left out

    @property
    def key(self) -> list[object]:
        """What the output's bytes depend on besides the inputs, for cache keys."""
        return [self.cache_tag, self.compiler.key if self.compiler else None, list(self.exclude)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZipEntry:
    """One file of an output zip, already compressed (``payload``) as ``method`` says."""

    path: str
    mode: int  # 0o644 or 0o755
    method: int  # zipfile.ZIP_STORED or zipfile.ZIP_DEFLATED
    crc: int
    size: int  # uncompressed
    payload: bytes
    origin: str  # the wheel (or directory) it came from, for error messages


def build_layer(
    wheels: Sequence[Path], out_dir: Path, options: LayerOptions | None = None
) -> Artifact:
    """Lay ``wheels`` out under ``python/`` (scripts under ``bin/``) into one layer zip.

    With ``options``, ``.pyc`` files the wheels ship for other Pythons are dropped and,
    with a compiler, every module gets its ``.pyc`` for the target. The zip is written
    atomically to ``out_dir/layers/<sha256>.zip``. Raises BuildError for an unreadable
    wheel, an unsafe entry path, or two wheels that put different bytes at one path.
    """
    entries = merge_entries(entry for wheel in wheels for entry in wheel_entries(wheel))
    if options is not None:
        entries = finish_entries(entries, options, prefix="python/", root=LAYER_ROOT)
    else:
        entries = rewrite_records(entries, {})
    # Streamed to a staging file while hashed (a layer can be hundreds of MB), then named.
    staging = out_dir / "layers" / f".building-{uuid.uuid4().hex}.zip"
    with atomic_writer(staging) as handle:
        writer = _HashingWriter(handle)
        write_zip(entries, writer)
    digest = writer.digest.hexdigest()
    path = out_dir / "layers" / f"{digest}.zip"
    os.replace(staging, path)
    return Artifact(path=path, sha256=digest, size=writer.size, unzipped_size=_unzipped(entries))


class _HashingWriter:
    """A binary sink that hashes and counts what passes through to ``handle``."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.handle.write(data)


def finish_entries(
    entries: Sequence[ZipEntry], options: LayerOptions, *, prefix: str, root: str
) -> list[ZipEntry]:
    """``entries`` without foreign ``.pyc`` files and excluded paths, with the target's
    ``.pyc`` compiled in and each distribution's RECORD rewritten to list what is left.

    Only ``.py`` files under ``prefix`` are modules (a layer's ``bin/`` is not); each
    code object keeps the file name it will have at run time, ``root`` + its path.
    """
    match = exclude_matcher(options.exclude)
    kept = [
        entry
        for entry in entries
        if _keeps_pyc(entry.path, options) and not _excluded(entry.path, prefix, match)
    ]
    if options.compiler is None:
        return rewrite_records(kept, {}) if prefix else kept
    sources = [
        Source(path=entry.path, dfile=root + entry.path, data=_inflate(entry))
        for entry in kept
        if entry.path.endswith(".py") and entry.path.startswith(prefix)
    ]
    origins = {entry.path: entry.origin for entry in kept}
    compiled = compile_sources(options.compiler, sources)
    tag = options.compiler.interpreter.cache_tag
    pycs = [
        _stored(pyc_path(path, tag), 0o644, pyc, origins[path]) for path, pyc in compiled.items()
    ]
    merged = merge_entries([*kept, *pycs])
    return rewrite_records(merged, {p: pyc_path(p, tag) for p in compiled}) if prefix else merged


_PROTECTED = frozenset({"METADATA", "RECORD", "WHEEL"})  # what importlib.metadata and pip need


def exclude_matcher(globs: Sequence[str]) -> re.Pattern[str] | None:
    """One pattern for ``globs``: ``**`` any number of folders, ``*`` and ``?`` within one."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{_glob_regex(glob)})" for glob in globs))


def _glob_regex(glob: str) -> str:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("(?:/.*)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(glob[i], re.escape(glob[i])))
            i += 1
    return "".join(out)


def _excluded(path: str, prefix: str, match: re.Pattern[str] | None) -> bool:
    """Whether an exclude glob matches ``path`` (below ``prefix``); dist-info's METADATA,
    RECORD and WHEEL always stay."""
    if match is None or not path.startswith(prefix):
        return False
    rel = path[len(prefix) :]
    folder, _, name = rel.rpartition("/")
    if folder.endswith(".dist-info") and "/" not in folder and name in _PROTECTED:
        return False
    return match.fullmatch(rel) is not None


def rewrite_records(entries: list[ZipEntry], pycs: Mapping[str, str]) -> list[ZipEntry]:
    """Each ``python/*.dist-info/RECORD`` made to list exactly its files in the layer:
    rows of files that were left out dropped, the ``.pyc`` compiled for its ``.py`` files
    (``pycs``: source path -> pyc path) added with their hashes, scripts re-hashed (their
    shebang was rewritten). A RECORD that needs no change keeps its bytes."""
    by_path = {entry.path: entry for entry in entries}
    return [
        _rewritten(entry, by_path, pycs) if _is_record(entry.path) else entry for entry in entries
    ]


def _is_record(path: str) -> bool:
    parts = path.split("/")
    return (
        len(parts) == 3
        and parts[0] == "python"
        and parts[1].endswith(".dist-info")
        and (parts[2] == "RECORD")
    )


def _rewritten(
    record: ZipEntry, by_path: Mapping[str, ZipEntry], pycs: Mapping[str, str]
) -> ZipEntry:
    info = record.path.split("/")[1]
    rows = parse_record(_inflate(record), f"{record.origin}: {info}")
    data_dir = info.removesuffix(".dist-info") + ".data"
    kept: list[RecordRow] = []
    added: list[RecordRow] = []
    for row in rows:
        layer = _installed(row.path, data_dir)
        if layer is None or layer == record.path or layer not in by_path:
            continue
        if layer.startswith("bin/"):
            kept.append(row_of(_record_path(layer), _inflate(by_path[layer])))
        else:
            kept.append(RecordRow(path=_record_path(layer), hash=row.hash, size=row.size))
        if layer in pycs and pycs[layer] in by_path:
            added.append(row_of(_record_path(pycs[layer]), _inflate(by_path[pycs[layer]])))
    listed = {row.path for row in kept}
    for path in _launchers(by_path, info, record.origin):
        if _record_path(path) not in listed:
            added.append(row_of(_record_path(path), _inflate(by_path[path])))
    new = [
        *kept,
        *sorted(added, key=lambda r: r.path),
        RecordRow(path=f"{info}/RECORD", hash="", size=""),
    ]
    if new == [r for r in rows if _installed(r.path, data_dir) != record.path] + new[-1:]:
        return record
    return _stored(record.path, record.mode, record_bytes(new), record.origin)


def _launchers(by_path: Mapping[str, ZipEntry], info: str, origin: str) -> list[str]:
    """The ``bin/`` launchers written for the entry points of distribution ``info``."""
    entry_points = by_path.get(f"python/{info}/entry_points.txt")
    if entry_points is None:
        return []
    text = _inflate(entry_points).decode("utf-8", errors="replace")
    return [path for path in console_scripts(origin, text) if path in by_path]


def _installed(row_path: str, data_dir: str) -> str | None:
    """Where a RECORD row's file lies in the layer (None: not installed, e.g. headers)."""
    top, _, rest = row_path.partition("/")
    if top != data_dir:
        return "python/" + row_path
    scheme, _, inner = rest.partition("/")
    if scheme in ("purelib", "platlib"):
        return "python/" + inner
    if scheme == "scripts":
        return "bin/" + inner
    return None


def _record_path(layer_path: str) -> str:
    """A layer path as RECORD writes it: relative to ``python/`` (scripts in ``../bin``)."""
    return (
        layer_path.removeprefix("python/")
        if layer_path.startswith("python/")
        else "../" + layer_path
    )


def _keeps_pyc(path: str, options: LayerOptions) -> bool:
    """False for a cached ``.pyc`` of another Python, or of the target when we compile."""
    match = _CACHED_PYC.search(path)
    if match is None:
        return True
    return options.compiler is None and match["tag"] == options.cache_tag


def build_code_zip(
    code_dir: Path, out_dir: Path, name: str, options: LayerOptions | None = None
) -> Artifact:
    """Zip a function's code directory at the zip's root (as Lambda has it in /var/task).

    Skips ``__pycache__``, ``*.pyc``, ``.git``, ``.lambda-pack`` and ``out_dir`` itself when
    it lies inside ``code_dir``. Written atomically to ``out_dir/functions/<name>.zip``.
    """
    if not code_dir.is_dir():
        raise BuildError(
            f"function {name}: code directory not found: {code_dir}",
            "check the function's code = ... in the config",
        )
    entries = merge_entries(_code_entries(code_dir, out_dir))
    if options is not None:
        entries = _deflate_new(finish_entries(entries, options, prefix="", root=CODE_ROOT))
    data = zip_bytes(entries)
    path = out_dir / "functions" / f"{name}.zip"
    write_bytes(path, data)
    return Artifact(
        path=path, sha256=_sha256(data), size=len(data), unzipped_size=_unzipped(entries)
    )


def wheel_entries(wheel: Path) -> list[ZipEntry]:
    """The layer entries of one wheel, with their paths mapped by the wheel install rules."""
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
                entry = _wheel_entry(wheel, (archive, raw), info, data_dir, record)
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
    return _stored("bin/" + name, 0o755, SHEBANG + b"\n" + text.encode(), origin)


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
        return _stored(path, 0o755 if is_script else mode, _script(data, is_script), wheel.name)
    payload = _raw_payload(raw, info)
    data = _checked(payload, info)  # the CRC holds, so the raw copy is a valid copy
    record.check(info.filename, data)
    if is_script:
        return _stored(path, 0o755, _fix_shebang(data), wheel.name)
    return ZipEntry(
        path=path,
        mode=mode,
        method=info.compress_type,
        crc=info.CRC,
        size=info.file_size,
        payload=payload,
        origin=wheel.name,
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


def _stored(path: str, mode: int, data: bytes, origin: str) -> ZipEntry:
    return ZipEntry(
        path=path,
        mode=mode,
        method=zipfile.ZIP_STORED,
        crc=zlib.crc32(data),
        size=len(data),
        payload=data,
        origin=origin,
    )


def _deflated(path: str, mode: int, data: bytes, origin: str) -> ZipEntry:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    return replace(_stored(path, mode, data, origin), method=zipfile.ZIP_DEFLATED, payload=payload)


def _deflate_new(entries: Sequence[ZipEntry]) -> list[ZipEntry]:
    """Every entry deflated, as a code zip has them (its new ``.pyc`` come stored)."""
    return [
        _deflated(e.path, e.mode, e.payload, e.origin) if e.method == zipfile.ZIP_STORED else e
        for e in entries
    ]


def _code_entries(code_dir: Path, out_dir: Path) -> Iterable[ZipEntry]:
    for path, rel in _code_files(code_dir, out_dir):
        try:
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            data = path.read_bytes()
        except (PermissionError, IsADirectoryError) as exc:
            raise BuildError(
                f"{code_dir}: cannot read {rel}: {exc.strerror}", "fix its mode"
            ) from None
        yield _deflated(rel, mode, data, str(code_dir))


def _code_files(code_dir: Path, out_dir: Path) -> Iterator[tuple[Path, str]]:
    """The files a code zip holds, with their paths inside it, in walk order."""
    skip = out_dir.resolve()
    for folder, dirs, files in os.walk(code_dir):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d not in CODE_SKIP_DIRS and (here / d).resolve() != skip]
        for filename in files:
            if filename.endswith(".pyc"):
                continue
            path = here / filename
            rel = path.relative_to(code_dir).as_posix()
            check_entry_path(code_dir.name, rel)
            if path.is_symlink() and not path.exists():
                raise BuildError(
                    f"{code_dir}: {rel} is a symlink to {os.readlink(path)}, which does not exist",
                    "remove the link or make it point at a file",
                )
            yield path, rel


def code_fingerprint(code_dir: Path, out_dir: Path) -> str:
    """A digest of the code zip's inputs as the file system reports them (path, size,
    mtime, mode) without reading the files: it changes whenever the zip could."""
    digest = hashlib.sha256(str(code_dir.resolve()).encode())
    if code_dir.is_dir():
        for path, rel in sorted(_code_files(code_dir, out_dir), key=lambda item: item[1]):
            info = path.stat()
            digest.update(f"\0{rel}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_mode}".encode())
    return digest.hexdigest()


def merge_entries(entries: Iterable[ZipEntry]) -> list[ZipEntry]:
    """Entries sorted by path, one per path; BuildError when one path has two contents.

    When several entries hold the same bytes, the choice among them does not depend on
    their order: the smallest payload encoding wins and the mode is 0755 if any has it.
    """
    by_path: dict[str, ZipEntry] = {}
    for entry in entries:
        kept = by_path.get(entry.path)
        by_path[entry.path] = entry if kept is None else _one_of(kept, entry)
    return [by_path[path] for path in sorted(by_path)]


def _one_of(a: ZipEntry, b: ZipEntry) -> ZipEntry:
    if not _same_bytes(a, b):
        first, second = sorted((a.origin, b.origin))
        raise BuildError(
            f"{first} and {second} both provide {a.path} with different contents",
            "they cannot be installed together; pin versions that agree or drop one",
        )
    keep = min(a, b, key=lambda e: (e.method, len(e.payload), e.payload))
    return replace(keep, mode=max(a.mode, b.mode), origin=min(a.origin, b.origin))


def _same_bytes(a: ZipEntry, b: ZipEntry) -> bool:
    if (a.crc, a.size) != (b.crc, b.size):
        return False
    if (a.method, a.payload) == (b.method, b.payload):
        return True
    return _inflate(a) == _inflate(b)


def _inflate(entry: ZipEntry) -> bytes:
    if entry.method == zipfile.ZIP_STORED:
        return entry.payload
    return zlib.decompress(entry.payload, -15)


def files_zip(files: Mapping[str, bytes]) -> bytes:
    """A deterministic zip of ``files`` (archive path -> bytes): sorted, deflated, mode 0644."""
    return zip_bytes([_deflated(path, 0o644, files[path], path) for path in sorted(files)])


def zip_bytes(entries: Sequence[ZipEntry]) -> bytes:
    """The zip archive of ``entries`` in the given order (zip64 end records past 65535)."""
    out = io.BytesIO()
    write_zip(entries, out)
    return out.getvalue()


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def write_zip(entries: Sequence[ZipEntry], out: _Sink) -> None:
    """Write the zip archive of ``entries`` (the bytes ``zip_bytes`` returns) to ``out``."""
    offset = 0
    central = []
    for entry in entries:
        name = entry.path.encode("utf-8")
        header = _header(entry, name, offset, central=False)
        out.write(header)
        out.write(entry.payload)
        central.append(_header(entry, name, offset, central=True))
        offset += len(header) + len(entry.payload)
    if offset > _U32:
        raise BuildError(
            f"archive of {len(entries)} files is over 4 GiB", "split it across more layers"
        )
    directory = b"".join(central)
    out.write(directory)
    out.write(_end_records(len(entries), len(directory), offset))


def _header(entry: ZipEntry, name: bytes, offset: int, *, central: bool) -> bytes:
    flags = 0 if name.isascii() else UTF8_FLAG
    common = (NEEDED, flags, entry.method, DOS_TIME, DOS_DATE, entry.crc)
    sizes = (len(entry.payload), entry.size, len(name), 0)
    if not central:
        return struct.pack("<IHHHHHIIIHH", 0x04034B50, *common, *sizes) + name
    attrs = (0, 0, 0, (stat.S_IFREG | entry.mode) << 16, offset)
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, MADE_BY, *common, *sizes, *attrs) + name


def _end_records(count: int, size: int, offset: int) -> bytes:
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, min(count, _U16), min(count, _U16), size, offset, 0
    )
    if count < _U16:
        return end
    zip64 = struct.pack(
        "<IQHHIIQQQQ",
        0x06064B50,
        44,
        (3 << 8) | NEEDED_ZIP64,
        NEEDED_ZIP64,
        0,
        0,
        count,
        count,
        size,
        offset,
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, offset + size, 1)
    return zip64 + locator + end


def _unzipped(entries: Iterable[ZipEntry]) -> int:
    return sum(entry.size for entry in entries)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

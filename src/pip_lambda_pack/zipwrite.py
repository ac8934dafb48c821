"""Deterministic zip archives: prepared entries written with one fixed timestamp, normalised
modes, no extra fields, in the order given (zip64 end records past 65535 entries).
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Protocol

from .errors import BuildError

DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01: a constant, never SOURCE_DATE_EPOCH
DOS_TIME = 0
MADE_BY = (3 << 8) | 20  # unix, zip spec 2.0
NEEDED = 20
NEEDED_ZIP64 = 45
UTF8_FLAG = 0x800
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


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
    # the uncompressed bytes, kept where a build reads them again (a module's source)
    data: bytes | None = field(default=None, compare=False, repr=False)


class HashingWriter:
    """A binary sink that hashes and counts what passes through to ``handle``."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.handle.write(data)


def stored_entry(path: str, mode: int, data: bytes, origin: str) -> ZipEntry:
    return ZipEntry(
        path=path,
        mode=mode,
        method=zipfile.ZIP_STORED,
        crc=zlib.crc32(data),
        size=len(data),
        payload=data,
        origin=origin,
    )


def deflated_entry(path: str, mode: int, data: bytes, origin: str) -> ZipEntry:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    return replace(
        stored_entry(path, mode, data, origin), method=zipfile.ZIP_DEFLATED, payload=payload
    )


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
    return inflate(a) == inflate(b)


def inflate(entry: ZipEntry) -> bytes:
    if entry.data is not None:
        return entry.data
    if entry.method == zipfile.ZIP_STORED:
        return entry.payload
    return zlib.decompress(entry.payload, -15)


def files_zip(files: Mapping[str, bytes]) -> bytes:
    """A deterministic zip of ``files`` (archive path -> bytes): sorted, deflated, mode 0644."""
    return zip_bytes([deflated_entry(path, 0o644, files[path], path) for path in sorted(files)])


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


def unzipped_bytes(entries: Iterable[ZipEntry]) -> int:
    return sum(entry.size for entry in entries)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

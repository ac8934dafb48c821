"""Zip central directories read directly: a local wheel's METADATA and unpacked size in one
scan, and a remote wheel's by HTTP range requests (its last bytes, then one member).

What a range read returns is checked against the central directory (CRC-32, sizes); sizes
are kept in the cache under the wheel's published sha256. Anything unusual (zip64, data
before the archive, a server that ignores ``Range``) gives None: download the wheel instead.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from packaging.utils import canonicalize_name

from .atomic import write_bytes
from .errors import BadWheelError, IndexFetchError
from .links import FETCH_TIP, FileLink, project_of
from .retry import ServerError
from .wire import redact

if TYPE_CHECKING:
    from .httpfetch import IndexHttp

SIZE_TAIL = 1 << 16  # a remote wheel's last bytes asked for first: most central directories
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
BAD_WHEEL_TIP = "remove it from the find-links directory or the index, or rebuild it"
Members = list[tuple[str, tuple[int, ...]]]


def read_wheel_metadata(path: Path) -> bytes:
    """The ``*.dist-info/METADATA`` bytes of the wheel at ``path``."""
    return read_wheel_facts(path)[0]


def read_wheel_facts(path: Path) -> tuple[bytes, int]:
    """(``*.dist-info/METADATA`` bytes, unpacked size) of the wheel at ``path``, one read."""
    name = project_of(path.name)
    try:
        quick = _quick_wheel_facts(path, name)
    except (OSError, struct.error, zlib.error):
        quick = None
    if quick is not None:
        return quick
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            found = [i.filename for i in infos if _is_metadata_member(i.filename)]
            found.sort(key=lambda n: canonicalize_name(n.split("-", 1)[0]) != name)
            if not found:
                raise BadWheelError(f"{path.name} has no .dist-info/METADATA", BAD_WHEEL_TIP)
            return archive.read(found[0]), sum(info.file_size for info in infos)
    except zipfile.BadZipFile as exc:
        raise BadWheelError(f"{path.name} is not a readable wheel: {exc}", BAD_WHEEL_TIP) from None
    except OSError as exc:
        raise IndexFetchError(f"{path.name} is not a readable wheel: {exc}", FETCH_TIP) from exc


def _quick_wheel_facts(path: Path, name: str | None) -> tuple[bytes, int] | None:
    """``read_wheel_facts`` by a direct scan of the central directory (zipfile builds an
    object per entry: ~10x slower on a wheel of thousands of files), or None for anything
    but a plain, single-part, non-zip64 archive whose METADATA checks out."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, end - TAIL_MAX))
        where = _directory_span(handle.read(), end)
        if where is None:
            return None
        count, size, offset = where
        handle.seek(offset)
        members = _directory_members(handle.read(size), count)
        if members is None:
            return None
        found = _metadata_member(members, name)
        total = sum(fields[9] for _, fields in members)
        return None if found is None else (_member_bytes(handle, found), total)


TAIL_MAX = 22 + 0xFFFF  # the end-of-central-directory record and the longest zip comment


def _directory_span(tail: bytes, end: int) -> tuple[int, int, int] | None:
    """(entries, size, offset) of the central directory from the last bytes of a zip of
    ``end`` bytes; None for zip64, data before the archive or a damaged record."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    _, _, _, count, _, size, offset, _ = struct.unpack_from("<IHHHHIIH", tail, at)
    if 0xFFFF in (count,) or 0xFFFFFFFF in (size, offset):
        return None  # zip64: leave it to zipfile
    if offset + size != end - (len(tail) - at):
        return None  # data before the archive or a damaged directory
    return count, size, offset


def _directory_members(directory: bytes, count: int) -> Members | None:
    """(name, central directory fields) of each entry; None unless all ``count`` read plainly
    (a zip64 size among them is left to zipfile)."""
    members, pos = [], 0
    for _ in range(count):
        fields = struct.unpack_from("<IHHHHHHIIIHHHHHII", directory, pos)
        if fields[0] != 0x02014B50 or 0xFFFFFFFF in (fields[8], fields[9], fields[16]):
            return None
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        members.append(
            (directory[pos + 46 : pos + 46 + name_len].decode("utf-8", "replace"), fields)
        )
        pos += 46 + name_len + extra_len + comment_len
    return members


def _member_bytes(handle: BinaryIO, fields: tuple[int, ...]) -> bytes:
    """One member's bytes from its central directory fields; zlib.error unless they check out."""
    handle.seek(fields[16])
    skip = _local_header_size(handle.read(30), fields)
    handle.seek(fields[16] + skip)
    return _inflated(handle.read(fields[8]), fields)


def _local_header_size(header: bytes, fields: tuple[int, ...]) -> int:
    """Bytes of a member's local header (from its first 30); zlib.error if it is not one."""
    plain = fields[4] in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
    if len(header) < 30 or header[:4] != b"PK\x03\x04" or not plain:
        raise zlib.error("unexpected local header")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return 30 + int(name_len) + int(extra_len)


def _inflated(payload: bytes, fields: tuple[int, ...]) -> bytes:
    """A member's bytes from its stored payload, checked against its size and CRC-32."""
    method, crc, size = fields[4], fields[7], fields[9]
    data = zlib.decompress(payload, -15) if method == zipfile.ZIP_DEFLATED else payload
    if len(data) != size or zlib.crc32(data) != crc:
        raise zlib.error("bad CRC-32 for METADATA")
    return data


def _metadata_member(members: Members, name: str | None) -> tuple[int, ...] | None:
    """The fields of the ``.dist-info/METADATA`` entry, the project's own first."""
    found = [(member, fields) for member, fields in members if _is_metadata_member(member)]
    found.sort(key=lambda item: canonicalize_name(item[0].split("-", 1)[0]) != name)
    return found[0][1] if found else None


def _is_metadata_member(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"


def sizable(link: FileLink) -> bool:
    """Whether a remote wheel's zip may be read by ranges: one whose sha256 is known."""
    return link.is_wheel and link.sha256 is not None and not link.url.startswith("file:")


class RangeReader:
    """A remote wheel's sizes and METADATA from its central directory, by range requests.

    Sizes are remembered under ``cache_dir/sizes`` by the wheel's sha256; ``offline`` reads
    only those. Every method returns None where the wheel must be downloaded instead.
    """

    def __init__(
        self, http: IndexHttp, cache_dir: Path, *, offline: bool, log: Callable[[str], None]
    ) -> None:
        self._http = http
        self._cache_dir = cache_dir
        self._offline = offline
        self._log = log

    def size(self, link: FileLink) -> tuple[int, int] | None:
        """``(bytes, unpacked bytes)`` of a ``sizable`` wheel: remembered, or read by ranges."""
        assert link.sha256 is not None
        try:
            size, unpacked = json.loads(self._record(link.sha256).read_bytes())
            return int(size), int(unpacked)
        except (OSError, ValueError, TypeError):
            pass
        if self._offline:
            return None
        found = self._directory(link)
        return None if found is None else self._remember_sizes(link, found[0], found[1])

    def _record(self, sha256: str) -> Path:
        return self._cache_dir / "sizes" / sha256[:2] / f"{sha256}.json"

    def _remember_sizes(self, link: FileLink, total: int, members: Members) -> tuple[int, int]:
        assert link.sha256 is not None
        sizes = total, sum(fields[9] for _, fields in members)
        write_bytes(self._record(link.sha256), json.dumps(list(sizes)).encode())
        return sizes

    def metadata(self, link: FileLink) -> bytes | None:
        """METADATA of a remote wheel read with range requests (its central directory, then
        the member), checked against the CRC-32 and size the directory gives; None when the
        server or the archive does not allow it."""
        found = self._directory(link)
        if found is None:
            return None
        total, members, data, start = found
        self._remember_sizes(link, total, members)
        fields = _metadata_member(members, project_of(link.filename))
        if fields is None:
            return None
        # the local header's extra field may be longer than the central one: ask for slack
        last = min(total - 1, fields[16] + 30 + fields[10] + fields[11] + fields[8] + 1023)
        if fields[16] < start:  # not among the bytes already fetched (a small wheel's are all)
            got = self._get_range(link.url, fields[16], last)
            if got is None:
                return None
            data, start = got[0], fields[16]
        chunk = data[fields[16] - start :]
        try:
            skip = _local_header_size(chunk[:30], fields)
            payload = chunk[skip : skip + fields[8]]
            return _inflated(payload, fields) if len(payload) == fields[8] else None
        except zlib.error:
            return None

    def _directory(self, link: FileLink) -> tuple[int, Members, bytes, int] | None:
        """(file size, central directory entries, the bytes fetched, their offset) of a
        remote zip, by range requests: its last bytes, then the directory's start if needed."""
        got = self._get_range(link.url, -SIZE_TAIL)
        if got is None or (link.size is not None and got[1] != link.size):
            return None
        tail, total = got
        where = _directory_span(tail, total)
        if where is None:
            return None
        count, size, offset = where
        start = total - len(tail)
        if offset < start:  # the directory begins before the tail: ask for the rest of it
            more = self._get_range(link.url, offset, start - 1)
            if more is None or more[1] != total:
                return None
            tail, start = more[0] + tail, offset
        members = _directory_members(tail[offset - start : offset - start + size], count)
        return None if members is None else (total, members, tail, start)

    def _get_range(self, url: str, first: int, last: int | None = None) -> tuple[bytes, int] | None:
        """(the bytes, the whole file's size) of ``url`` from ``first`` to ``last``
        (a negative ``first``: that many last bytes); None when the answer is not a 206."""
        spec = f"bytes={first}" if first < 0 else f"bytes={first}-{last}"
        self._log(f"fetching {spec} of {redact(url)}")
        return self._http.with_retries(url, lambda: self._range_once(url, spec, first, last))

    def _range_once(
        self, url: str, spec: str, first: int, last: int | None
    ) -> tuple[bytes, int] | None:
        headers = {"Range": spec, "Accept-Encoding": "identity"}
        with self._http.open(url, headers) as response:
            if response.status_code >= 500:
                raise ServerError(response.status_code)
            if response.status_code != 206:
                return None  # a server without Range support: its body is never read
            found = CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if found is None:
                return None
            start, end, total = map(int, found.groups())
            data = response.read()
        wanted = (total + first if first < 0 else first, total - 1 if last is None else last)
        if len(data) != end - start + 1 or (start, end) != (max(0, wanted[0]), wanted[1]):
            return None
        return data, total

"""Wheel ``RECORD`` files (the binary distribution format spec): parse, hash, write.

A RECORD is CSV: ``path,hash,size`` per file, the hash ``sha256=`` plus the urlsafe
base64 digest without padding; RECORD itself (and signatures) carry no hash.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import BuildError


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRow:
    """One line of a RECORD: the path as written, ``sha256=...`` (or ""), the size (or "")."""

    path: str
    hash: str
    size: str


def parse_record(data: bytes, where: str) -> list[RecordRow]:
    """The rows of a RECORD; BuildError naming ``where`` when it is not one."""
    try:
        text = data.decode("utf-8")
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _bad(where, str(exc)) from None
    parsed = []
    for number, row in enumerate(rows, 1):
        if len(row) != 3 or not row[0]:
            raise _bad(where, f"line {number} has {len(row)} fields, not path,hash,size")
        parsed.append(RecordRow(path=row[0], hash=row[1], size=row[2]))
    return parsed


def file_hash(data: bytes) -> str:
    """``sha256=<urlsafe base64, no padding>`` of ``data``, as RECORD writes it."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def row_of(path: str, data: bytes) -> RecordRow:
    """The RECORD row of a file with these bytes."""
    return RecordRow(path=path, hash=file_hash(data), size=str(len(data)))


def record_bytes(rows: Iterable[RecordRow]) -> bytes:
    """The RECORD text of ``rows``, in their order, ``\\n`` line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([row.path, row.hash, row.size])
    return out.getvalue().encode("utf-8")


def _bad(where: str, detail: str) -> BuildError:
    return BuildError(
        f"{where}: RECORD is malformed ({detail})",
        "the wheel is broken; use another build of the package",
    )

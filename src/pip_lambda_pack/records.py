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

from .errors import BuildError, HashMismatchError

ALGORITHMS = frozenset({"sha256", "sha384", "sha512"})  # sha256 or stronger, as the spec says
SIGNATURES = ("RECORD.jws", "RECORD.p7s")  # never listed in RECORD


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


class RecordCheck:
    """A wheel's files checked against its RECORD as pypa/installer checks them.

    Every file must be listed with a hash and size that match, except RECORD itself
    (listed, with neither) and its signatures ``RECORD.jws``/``RECORD.p7s`` (not listed);
    a ``.pyc`` may be listed without a hash (the spec lets installers leave theirs
    unhashed). The first problem is raised: HashMismatchError for bytes that do not
    match, BuildError for the rest. Rows naming files the wheel lacks are ignored.
    """

    def __init__(self, origin: str, dist_info: str, record: bytes | None) -> None:
        if record is None:
            raise BuildError(
                f"{origin}: no {dist_info}/RECORD",
                "the wheel is malformed (every wheel lists its files in RECORD); "
                "use another build of the package",
            )
        self.origin = origin
        self.dist_info = dist_info
        self.rows = {row.path: row for row in parse_record(record, f"{origin}: {dist_info}")}

    def check(self, name: str, data: bytes) -> None:
        """Raise unless ``data``, the file ``name`` of the wheel, is what RECORD says."""
        row = self.rows.get(name)
        folder, _, base = name.rpartition("/")
        if folder == self.dist_info and base in SIGNATURES:
            if row is not None:
                raise self._error(f"lists its signature file {name}")
            return
        if row is None:
            raise self._error(f"does not list {name}")
        if name == f"{self.dist_info}/RECORD":
            if row.hash or row.size:
                raise self._error("gives RECORD itself a hash or size")
            return
        if not row.hash and name.endswith(".pyc"):
            return
        self._check_row(row, data)

    def _check_row(self, row: RecordRow, data: bytes) -> None:
        algorithm, _, expected = row.hash.partition("=")
        if not row.hash or not row.size:
            raise self._error(f"gives {row.path} no hash or size")
        if algorithm not in ALGORITHMS:
            raise self._error(f"hashes {row.path} with {algorithm or 'nothing'}, not sha256")
        digest = hashlib.new(algorithm, data).digest()
        actual = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        if actual != expected or row.size != str(len(data)):
            raise HashMismatchError(
                f"{self.origin}: {row.path} does not match its RECORD entry "
                f"({algorithm} or size differs: {len(data)} bytes, RECORD says {row.size})",
                "the wheel was altered after it was built; use another build or version "
                "of the package",
            )

    def _error(self, what: str) -> BuildError:
        return BuildError(
            f"{self.origin}: {self.dist_info}/RECORD {what}",
            "the wheel is malformed; use another build or version of the package",
        )


def _bad(where: str, detail: str) -> BuildError:
    return BuildError(
        f"{where}: RECORD is malformed ({detail})",
        "the wheel is broken; use another build of the package",
    )

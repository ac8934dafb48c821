"""Deterministic layer and code zips: wheels laid out the way Lambda unpacks a layer in /opt.

A layer's bytes depend only on the wheels' bytes: entries sorted by path, one fixed
timestamp, modes normalised to 0644/0755, no directory entries, no extra fields. Entries
the wheel deflated or stored are copied raw (deflate output differs between zlib builds,
so recompressing would make the same layer two blobs on two machines); the few entries we
must rewrite (scripts' shebangs, other compression methods) are stored uncompressed.
The same wheels in any order, on any machine and any day, give one sha256.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_writer, write_bytes
from .bytecode import Compiler, Source, compile_sources, importable, pyc_path
from .errors import BuildError
from .records import RecordRow, parse_record, record_bytes, row_of
from .wheels import check_entry_path, console_scripts, wheel_entries
from .zipwrite import (
    HashingWriter,
    ZipEntry,
    deflated_entry,
    inflate,
    merge_entries,
    sha256_hex,
    stored_entry,
    unzipped_bytes,
    write_zip,
    zip_bytes,
)

CODE_SKIP_DIRS = frozenset({"__pycache__", ".git", ".lambda-pack"})
LAYER_ROOT = "/opt/"  # where Lambda unpacks a layer: the file names code objects keep
CODE_ROOT = "/var/task/"  # where Lambda unpacks the function's code
# __pycache__/NAME.TAG.pyc or NAME.TAG.opt-N.pyc (PEP 3147 / PEP 488)
_CACHED_PYC = re.compile(r"(?:^|/)__pycache__/[^/.]+\.(?P<tag>[^./]+)(?:\.opt-\d+)?\.pyc$")


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


def build_layer(
    wheels: Sequence[Path],
    out_dir: Path,
    options: LayerOptions | None = None,
    read: Callable[[Path], list[ZipEntry]] = wheel_entries,
) -> Artifact:
    """Lay ``wheels`` out under ``python/`` (scripts under ``bin/``) into one layer zip.

    With ``options``, ``.pyc`` files the wheels ship for other Pythons are dropped and,
    with a compiler, every module gets its ``.pyc`` for the target. The zip is written
    atomically to ``out_dir/layers/<sha256>.zip``. Raises BuildError for an unreadable
    wheel, an unsafe entry path, or two wheels that put different bytes at one path.
    ``read`` gives a wheel's entries (``wheel_entries``, or a memo of it).
    """
    entries = merge_entries(entry for wheel in wheels for entry in read(wheel))
    if options is not None:
        entries = finish_entries(entries, options, prefix="python/", root=LAYER_ROOT)
    else:
        entries = rewrite_records(entries, {})
    # Streamed to a staging file while hashed (a layer can be hundreds of MB), then named.
    staging = out_dir / "layers" / f".building-{uuid.uuid4().hex}.zip"
    with atomic_writer(staging) as handle:
        writer = HashingWriter(handle)
        write_zip(entries, writer)
    digest = writer.digest.hexdigest()
    path = out_dir / "layers" / f"{digest}.zip"
    os.replace(staging, path)
    return Artifact(
        path=path, sha256=digest, size=writer.size, unzipped_size=unzipped_bytes(entries)
    )


def finish_entries(
    entries: Sequence[ZipEntry], options: LayerOptions, *, prefix: str, root: str
) -> list[ZipEntry]:
    """``entries`` without foreign ``.pyc`` files and excluded paths, with the target's
    ``.pyc`` compiled in and each distribution's RECORD rewritten to list what is left.

    Only ``.py`` files under ``prefix`` are modules (a layer's ``bin/`` is not); each
    code object keeps the file name it will have at run time, ``root`` + its path.
    """
    kept = kept_entries(entries, options, prefix)
    if options.compiler is None:
        return rewrite_records(kept, {}) if prefix else kept
    sources = module_sources(kept, prefix=prefix, root=root)
    origins = {entry.path: entry.origin for entry in kept}
    compiled = compile_sources(options.compiler, sources)
    tag = options.compiler.interpreter.cache_tag
    pycs = [
        stored_entry(pyc_path(path, tag), 0o644, pyc, origins[path])
        for path, pyc in compiled.items()
    ]
    merged = merge_entries([*kept, *pycs])
    return rewrite_records(merged, {p: pyc_path(p, tag) for p in compiled}) if prefix else merged


def kept_entries(entries: Sequence[ZipEntry], options: LayerOptions, prefix: str) -> list[ZipEntry]:
    """``entries`` without foreign ``.pyc`` files and excluded paths."""
    match = exclude_matcher(options.exclude)
    return [
        entry
        for entry in entries
        if _keeps_pyc(entry.path, options) and not _excluded(entry.path, prefix, match)
    ]


def module_sources(entries: Sequence[ZipEntry], *, prefix: str, root: str) -> list[Source]:
    """The modules among ``entries`` that get a ``.pyc``: ``.py`` files under ``prefix``
    that a module name can reach (``bytecode.importable``), each with its run-time name."""
    return [
        Source(path=entry.path, dfile=root + entry.path, data=inflate(entry), group=entry.origin)
        for entry in entries
        if entry.path.endswith(".py")
        and entry.path.startswith(prefix)
        and importable(entry.path[len(prefix) :])
    ]


def wheel_sources(entries: Sequence[ZipEntry], options: LayerOptions) -> list[Source]:
    """The sources ``build_layer`` compiles of one wheel's ``entries`` (as ``wheel_entries``
    reads them) in a layer built with ``options``: its batches, so they can be compiled as
    soon as the wheel lands."""
    kept = kept_entries(merge_entries(entries), options, "python/")
    return module_sources(kept, prefix="python/", root=LAYER_ROOT)


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
    rows = parse_record(inflate(record), f"{record.origin}: {info}")
    data_dir = info.removesuffix(".dist-info") + ".data"
    kept: list[RecordRow] = []
    added: list[RecordRow] = []
    for row in rows:
        layer = _installed(row.path, data_dir)
        if layer is None or layer == record.path or layer not in by_path:
            continue
        if layer.startswith("bin/"):
            kept.append(row_of(_record_path(layer), inflate(by_path[layer])))
        else:
            kept.append(RecordRow(path=_record_path(layer), hash=row.hash, size=row.size))
        if layer in pycs and pycs[layer] in by_path:
            added.append(row_of(_record_path(pycs[layer]), inflate(by_path[pycs[layer]])))
    listed = {row.path for row in kept}
    for path in _launchers(by_path, info, record.origin):
        if _record_path(path) not in listed:
            added.append(row_of(_record_path(path), inflate(by_path[path])))
    new = [
        *kept,
        *sorted(added, key=lambda r: r.path),
        RecordRow(path=f"{info}/RECORD", hash="", size=""),
    ]
    if new == [r for r in rows if _installed(r.path, data_dir) != record.path] + new[-1:]:
        return record
    return stored_entry(record.path, record.mode, record_bytes(new), record.origin)


def _launchers(by_path: Mapping[str, ZipEntry], info: str, origin: str) -> list[str]:
    """The ``bin/`` launchers written for the entry points of distribution ``info``."""
    entry_points = by_path.get(f"python/{info}/entry_points.txt")
    if entry_points is None:
        return []
    text = inflate(entry_points).decode("utf-8", errors="replace")
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
        path=path, sha256=sha256_hex(data), size=len(data), unzipped_size=unzipped_bytes(entries)
    )


def _deflate_new(entries: Sequence[ZipEntry]) -> list[ZipEntry]:
    """Every entry deflated, as a code zip has them (its new ``.pyc`` come stored)."""
    return [
        deflated_entry(e.path, e.mode, e.payload, e.origin) if e.method == zipfile.ZIP_STORED else e
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
        yield deflated_entry(rel, mode, data, str(code_dir))


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

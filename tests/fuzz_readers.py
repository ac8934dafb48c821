"""A bounded atheris (libFuzzer) run over the two readers the shim points at hostile bytes:
the task-manifest parser and the zip extractor.

    python tests/fuzz_readers.py manifest -max_total_time=20
    python tests/fuzz_readers.py zip -max_total_time=20

Each input either parses (unpacks) or raises the reader's own error (WireError,
ShimError); anything else, or a file written outside the destination, is a crash that
libFuzzer reports with the input that caused it. test_hostile_fuzz.py runs both briefly.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pip_lambda_pack import shim, wire

WORK = Path(tempfile.mkdtemp(prefix="lp-fuzz-"))
DIGEST = "0" * 64


def manifest(data: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        wire.TaskManifest.from_bytes(data, "blob")


def unzip(data: bytes) -> None:
    archive, dest = WORK / "blob.zip", WORK / "out"
    archive.write_bytes(data)
    dest.mkdir()
    try:
        shim.extract(archive, dest, DIGEST, shim.Limit(1 << 20, "the fuzzer's bound"))
    except shim.ShimError:
        pass
    finally:
        shutil.rmtree(dest)
    outside = sorted(p.name for p in WORK.iterdir())
    if outside != ["blob.zip"]:
        raise AssertionError(f"extract wrote outside its destination: {outside}")


def seed(folder: Path) -> None:
    """A valid zip and a valid manifest to start from."""
    folder.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("python/a.py", "A = 1\n" * 20)
        out.writestr("python/pkg/", "")
    (folder / "zip").write_bytes(buffer.getvalue())
    task = wire.TaskManifest(
        name="f",
        target="python3.12-x86_64",
        handler="app.handler",
        code=wire.BlobRef(sha256=wire.as_digest("a" * 64), size=1),
        layers=(),
    )
    (folder / "manifest").write_bytes(task.to_bytes())


def main() -> None:
    target = sys.argv.pop(1)
    corpus = Path(tempfile.mkdtemp(prefix=f"lp-fuzz-corpus-{target}-"))
    seed(corpus)
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], unzip if target == "zip" else manifest)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

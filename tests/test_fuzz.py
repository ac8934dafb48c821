"""A short, bounded atheris run over the task-manifest and zip readers (tests/fuzz_readers.py).

atheris is the ``fuzz`` extra (``pip install -e '.[fuzz]'``; wheels for CPython 3.11 and
others on Linux); without it these skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
HARNESS = Path(__file__).with_name("fuzz_readers.py")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["manifest", "zip"])
def test_fuzz_readers_briefly(target: str) -> None:
    done = subprocess.run(
        [sys.executable, str(HARNESS), target, "-max_total_time=3", "-rss_limit_mb=1024"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done " in done.stderr and "runs in" in done.stderr

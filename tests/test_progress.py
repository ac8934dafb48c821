"""Progress: bars on a terminal, one plain line per step in CI and pipes, nothing with -q."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pip_lambda_pack.progress import BarProgress, LineProgress, QuietProgress, make_progress
from projects import fill_wheelhouse, run, write_project


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_kind_follows_stream_and_environment() -> None:
    assert isinstance(make_progress(quiet=True, stream=FakeTerminal()), QuietProgress)
    assert isinstance(make_progress(quiet=False, stream=io.StringIO(), environ={}), LineProgress)
    assert isinstance(make_progress(quiet=False, stream=FakeTerminal(), environ={}), BarProgress)
    ci = make_progress(quiet=False, stream=FakeTerminal(), environ={"CI": "true"})
    assert isinstance(ci, LineProgress)
    dumb = make_progress(quiet=False, stream=FakeTerminal(), environ={"TERM": "dumb"})
    assert isinstance(dumb, LineProgress)


def test_plain_lines_say_what_was_done() -> None:
    stream = io.StringIO()
    task = LineProgress(stream).task("downloading 2 wheels", 3000, "B")
    task.advance(1000)
    task.advance(2000)
    task.finish()
    counted = LineProgress(stream).task("building layers", 4)
    for _ in range(4):
        counted.advance()
    counted.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("downloading 2 wheels: 3.0 kB done in ")
    assert lines[1].startswith("building layers: 4 done in ")


def test_bars_draw_on_a_real_terminal() -> None:
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        progress = make_progress(quiet=False, stream=terminal, environ={"TERM": "xterm"})
        assert isinstance(progress, BarProgress)
        task = progress.task("uploading", 10, "B")
        task.advance(10)
        task.finish()
    drawn = os.read(leader, 65536).decode(errors="replace")
    os.close(leader)
    assert "uploading" in drawn
    assert "━" in drawn  # rich's bar


def read_all(leader: int) -> bytes:
    """Everything written to the pty (its follower is closed), then close it."""
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the follower is closed and all was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return drawn


def test_a_finished_bar_is_not_drawn_again_by_the_next_one() -> None:
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        progress = make_progress(quiet=False, stream=terminal, environ={"TERM": "xterm"})
        for label in ("fetching 3 wheels", "building 2 layers"):
            task = progress.task(label, 4)
            task.advance(4)
            task.finish()
    drawn = read_all(leader).decode(errors="replace")
    first, _, after = drawn.partition("building 2 layers")
    assert "fetching 3 wheels" in first and after
    assert "fetching 3 wheels" not in after  # printed once, when it finished


def test_cli_progress_lines_in_a_pipe_and_bars_on_a_terminal(
    tmp_path: Path, wheelhouse: Path
) -> None:
    fill_wheelhouse(wheelhouse)
    project = write_project(tmp_path / "project", wheelhouse)
    piped = run(project, "build", "--out", "one")
    assert piped.returncode == 0, piped.stderr
    assert re.search(r"^building \d+ layers: \d+ done in \d+\.\d s$", piped.stderr, re.M)
    quiet = run(project, "build", "--out", "two", "-q")
    assert quiet.stderr == ""
    leader, follower = pty.openpty()
    env = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(tmp_path / "fresh"), "TERM": "xterm"}
    env.pop("CI", None)
    process = subprocess.run(
        [sys.executable, "-m", "pip_lambda_pack", "build", "--out", "three"],
        cwd=project,
        env=env,
        stderr=follower,
        stdout=subprocess.PIPE,
        timeout=120,
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert process.returncode == 0
    assert "building" in drawn.decode(errors="replace") and "━" in drawn.decode(errors="replace")


def draw(environ: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        task = make_progress(quiet=False, stream=terminal, environ=environ).task("up", 4)
        task.advance(4)
        task.finish()
    drawn = os.read(leader, 65536).decode(errors="replace")
    os.close(leader)
    return drawn


def test_no_color_keeps_the_bars_but_drops_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    colour = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])(?:;\d+)*m")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour.search(draw({"TERM": "xterm-256color"}))
    monkeypatch.setenv("NO_COLOR", "1")  # rich reads it from the process environment
    plain = draw({"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert "━" in plain and not colour.search(plain)

"""pip's --only-binary / --no-binary / --prefer-binary / --trusted-host in requirements files,
end to end through the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import make_sdist, make_wheel
from projects import HOST_TARGET, run


def _project(root: Path, wheelhouse: Path, requirements: str) -> Path:
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "requirements.txt").write_text(requirements)
    (root / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\nno-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'requirements = "requirements.txt"\n'
    )
    return root


def test_only_binary_all_refuses_an_sdist_build(tmp_path: Path, wheelhouse: Path) -> None:
    make_sdist(wheelhouse, "purepkg", "1.0")
    root = _project(tmp_path / "p", wheelhouse, "--only-binary :all:\npurepkg\n")
    result = run(root, "lock")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-2:] == [
        f"ERROR: no file of purepkg fits {HOST_TARGET} (newest: purepkg-1.0.tar.gz, an sdist, "
        "and --only-binary forbids building purepkg)",
        "TIP: take purepkg out of --only-binary to build it from its sdist, "
        f"or put a wheel built for {HOST_TARGET} in --find-links",
    ]
    assert not (root / "lambda-pack.lock").exists()


def test_a_passed_over_sdist_release_is_a_warning(tmp_path: Path, wheelhouse: Path) -> None:
    make_wheel(wheelhouse, "lib", "1.0")
    make_sdist(wheelhouse, "lib", "2.0")
    root = _project(tmp_path / "p", wheelhouse, "lib\n")
    warning = (
        f"warning: pinned lib 1.0, not 2.0: lib 2.0 has no wheel for {HOST_TARGET}, only an "
        "sdist; to build it, require lib==2.0 or add --no-binary lib to the requirements "
        "(--prefer-binary: keep 1.0 without this warning)"
    )
    for flags in ((), ("-v",)):
        result = run(root, "lock", *flags)
        assert result.returncode == 0, result.stderr
        assert (result.stdout + result.stderr).count(warning) == 1, result.stderr
    (root / "requirements.txt").write_text("--prefer-binary\nlib\n")
    quiet = run(root, "lock")
    assert quiet.returncode == 0 and "warning" not in quiet.stdout + quiet.stderr
    assert 'version = "1.0"' in (root / "lambda-pack.lock").read_text()


def test_pips_only_binary_applies_under_pip_lambda_pack(tmp_path: Path, wheelhouse: Path) -> None:
    make_sdist(wheelhouse, "purepkg", "1.0")
    root = _project(tmp_path / "p", wheelhouse, "purepkg\n")
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_ONLY_BINARY": ":all:",
        "LAMBDA_PACK_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = [sys.executable, "-m", "pip", "lambda-pack", "lock"]
    refused = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=180
    )
    assert refused.returncode == 2, refused.stderr
    assert "--only-binary forbids building purepkg" in refused.stderr
    (root / "requirements.txt").write_text("--no-binary purepkg\npurepkg\n")  # the file wins
    built = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr

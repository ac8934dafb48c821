"""Our pre-commit hooks, run by pre-commit itself (``pre-commit try-repo``) on a sample git repo.

pre-commit installs this checkout (tracked files as they are in the working tree, committed
once into a scratch repository so every call reuses one hook environment) with pip, which
fetches our dependencies: the test is marked ``network``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from projects import HOST_TARGET, fill_wheelhouse

pytestmark = [pytest.mark.network, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
    )


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's tracked files, as in the working tree, committed in a scratch repo."""
    repo = tmp_path_factory.mktemp("hooks-repo")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not name.startswith(("bench/", "docs/", "examples/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    shutil.copy2(ROOT / ".pre-commit-hooks.yaml", repo / ".pre-commit-hooks.yaml")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hooks")
    return repo


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A git repo with one function, a local wheelhouse and a fresh lambda-pack.lock."""
    repo = tmp_path / "sample"
    (repo / "wheels").mkdir(parents=True)
    fill_wheelhouse(repo / "wheels")
    (repo / "fn").mkdir()
    (repo / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (repo / "requirements.txt").write_text("greet\ncolors<2\n")
    (repo / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\nno-index = true\nfind-links = ["wheels"]\n\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'requirements = "requirements.txt"\n'
    )
    subprocess.run(
        [sys.executable, "-m", "pip_lambda_pack", "lock", "-q"],
        cwd=repo,
        check=True,
        env={**os.environ, "LAMBDA_PACK_CACHE_DIR": str(tmp_path / "cache")},
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sample")
    return repo


def try_repo(
    sample: Path, hooks_repo: Path, hook: str, pre_commit_home: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **GIT_ENV,
        "PRE_COMMIT_HOME": str(pre_commit_home),
        "LAMBDA_PACK_CACHE_DIR": str(sample.parent / "cache"),
    }
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hooks_repo), hook, "--all-files"],
        cwd=sample,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def test_check_passes_on_a_fresh_lock_and_fails_after_requirements_change(
    sample: Path, hooks_repo: Path, pre_commit_home: Path
) -> None:
    fresh = try_repo(sample, hooks_repo, "lambda-pack-check", pre_commit_home)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "lambda-pack lock is fresh" in fresh.stdout
    assert "Passed" in fresh.stdout

    (sample / "requirements.txt").write_text("greet\ncolors<3\n")
    git(sample, "add", "requirements.txt")  # pre-commit stashes what is not staged
    stale = try_repo(sample, hooks_repo, "lambda-pack-check", pre_commit_home)
    assert stale.returncode == 1
    assert "Failed" in stale.stdout
    assert "lambda-pack.lock is stale: requirements.txt changed\n" in stale.stdout
    assert "TIP: run: pip-lambda-pack lock" in stale.stdout


def test_lock_hook_rewrites_a_stale_lock(
    sample: Path, hooks_repo: Path, pre_commit_home: Path
) -> None:
    (sample / "requirements.txt").write_text("greet\ncolors<3\n")
    git(sample, "add", "requirements.txt")  # pre-commit stashes what is not staged
    relock = try_repo(sample, hooks_repo, "lambda-pack-lock", pre_commit_home)
    assert relock.returncode == 1  # pre-commit fails a hook that changed files
    assert "files were modified by this hook" in relock.stdout
    assert 'version = "2.0"' in (sample / "lambda-pack.lock").read_text()
    again = try_repo(sample, hooks_repo, "lambda-pack-check", pre_commit_home)
    assert again.returncode == 0, again.stdout

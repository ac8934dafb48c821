"""The hostile-input matrix, tool side: bad config, inputs that are not UTF-8, broken wheels,
hostile names and URLs, a full disk in build, the layer cache and push, tampered locks and
manifests, killed and concurrent pushes, and the top-level guard. Each row runs the real
CLI and checks the exit code, the one ERROR/TIP pair, that no secret comes out and that
nothing outside the directories the command may write changed. The shim's rows are in
test_hostile_shim.py; docs/reliability.md has the table."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from hostile import SECRET, can_mount, changed, failed, no_secret, small_disk, snapshot
from pip_lambda_pack import cli
from pip_lambda_pack.errors import BuildError
from pip_lambda_pack.store import LocalStore, push
from projects import HOST_TARGET, fill_wheelhouse, run, write_project

WRITES = (".cache", ".lambda-pack", "lambda-pack.lock")  # what commands may write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "wheelhouse").mkdir()
    fill_wheelhouse(tmp_path / "wheelhouse")
    return write_project(tmp_path / "p", tmp_path / "wheelhouse")


def _set(project: Path, line: str) -> None:
    """Put a top-level ``key = value`` line in the project's config, in place of any other."""
    key = line.split("=")[0].strip()
    config = project / "lambda-pack.toml"
    kept = [x for x in config.read_text().splitlines() if x.split("=")[0].strip() != key]
    config.write_text(line + "\n" + "\n".join(kept) + "\n")


def _refused(project: Path, code: int, args: list[str], *parts: str) -> str:
    """Run, expect one ERROR/TIP with ``parts`` and ``code``; nothing else changed."""
    before = snapshot(project)
    done = run(project, *args)
    error = failed(done, code, *parts)
    assert changed(before, snapshot(project), WRITES) == []
    return error


# -- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error", "tip"),
    [
        ("max-layerz = 1", "unknown key max-layerz", "did you mean max-layers?"),
        ("stor = 'x'", "unknown key stor", "did you mean store?"),
        ("find-links = 'wheels'", "find-links must be a list of strings, not a string", ""),
        ("extra-index-urls = 'https://x/simple'", "must be a list of strings, not a", ""),
        ("no-index = 'yes'", "no-index must be true or false", ""),
        ("strategy = 3", "strategy must be a string", ""),
    ],
)
def test_config_typos_and_wrong_types(project: Path, text: str, error: str, tip: str) -> None:
    _set(project, text)
    done = run(project, "lock")
    failed(done, 2, error)
    assert tip in done.stderr.splitlines()[-1]
    assert not (project / "lambda-pack.lock").exists()


def test_function_key_typo_is_refused_not_built_empty(project: Path) -> None:
    config = project / "lambda-pack.toml"
    config.write_text(config.read_text().replace("requirements = ", "requirments = "))
    done = run(project, "build")
    failed(done, 2, "unknown key functions.hello.requirments")
    assert "did you mean functions.hello.requirements?" in done.stderr
    assert not (project / ".lambda-pack" / "build").exists()


def test_requirements_list_in_the_file_key(project: Path) -> None:
    config = project / "lambda-pack.toml"
    config.write_text(config.read_text().replace('"requirements.txt"', '["greet"]'))
    failed(run(project, "lock"), 2, "functions.hello.requirements must be a string")


# -- text that is not UTF-8 ------------------------------------------------------------


def test_non_utf8_config(project: Path) -> None:
    (project / "lambda-pack.toml").write_bytes(b'target = "caf\xe9"\n')
    _refused(project, 2, ["lock"], "lambda-pack.toml is not UTF-8 text (byte 13 is 0xe9)")


def test_non_utf8_requirements(project: Path) -> None:
    (project / "requirements.txt").write_bytes(b"greet\n# \xff\xfe\n")
    _refused(project, 2, ["lock"], "requirements.txt is not UTF-8 text")


def test_nul_byte_in_a_requirements_path(project: Path) -> None:
    (project / "requirements.txt").write_text("greet\n-r other\x00.txt\n")
    _refused(project, 2, ["lock"], "requirements.txt:2: the line holds a NUL byte")


def test_non_utf8_lock(project: Path) -> None:
    assert run(project, "lock").returncode == 0
    lock = project / "lambda-pack.lock"
    lock.write_bytes(lock.read_bytes() + b"# \xff\n")
    _refused(project, 2, ["check"], "lambda-pack.lock is not UTF-8 text")


# -- files and arguments ---------------------------------------------------------------


def test_dangling_symlink_in_the_code_directory(project: Path) -> None:
    (project / "hello" / "gone.py").symlink_to(project / "nowhere.py")
    _refused(project, 2, ["build"], "gone.py is a symlink to", "which does not exist")
    assert not (project / ".lambda-pack" / "build" / "manifest.json").exists()


def test_event_that_is_a_directory(project: Path) -> None:
    assert run(project, "push").returncode == 0
    (project / "events").mkdir()
    _refused(project, 2, ["invoke", "hello", "--event", "events"], "event events is a directory")


def test_ls_of_a_store_that_is_a_file(project: Path) -> None:
    (project / "store.txt").write_text("not a store\n")
    _refused(project, 2, ["ls", "--store", "store.txt"], "store.txt is not a directory")


def test_invoke_of_a_path_for_a_name(project: Path) -> None:
    _refused(project, 2, ["invoke", "../../etc/passwd"], "function name '../../etc/passwd'")


def test_ls_skips_entries_that_are_not_function_names(project: Path) -> None:
    assert run(project, "push").returncode == 0
    functions = project / ".lambda-pack" / "store" / "functions"
    (functions / "..%2F..%2Fetc").write_text("sha256:" + "0" * 64 + "\n")
    done = run(project, "ls")
    assert done.returncode == 0 and done.stdout.split() == ["hello", "other"]


def test_function_table_with_a_path_for_a_name(project: Path) -> None:
    config = project / "lambda-pack.toml"
    config.write_text(config.read_text().replace("[functions.other]", '[functions."../x"]'))
    _refused(project, 2, ["lock"], "function name '../x' is not valid")


# -- wheels ----------------------------------------------------------------------------


def _only(project: Path, name: str) -> None:
    (project / "requirements.txt").write_text(f"{name}\n")
    config = project / "lambda-pack.toml"
    text = config.read_text()
    config.write_text(text[: text.index("[functions.other]")])


def test_a_wheel_that_is_not_a_zip(project: Path, tmp_path: Path) -> None:
    (tmp_path / "wheelhouse" / "bogus-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    _only(project, "bogus")
    _refused(project, 2, ["lock"], "bogus-1.0-py3-none-any.whl is not a readable wheel")


def test_a_wheel_without_metadata(project: Path, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("nometa/__init__.py", "")
    (tmp_path / "wheelhouse" / "nometa-1.0-py3-none-any.whl").write_bytes(buffer.getvalue())
    _only(project, "nometa")
    _refused(project, 2, ["lock"], "nometa-1.0-py3-none-any.whl has no .dist-info/METADATA")


def test_a_tampered_lock_hash(project: Path) -> None:
    assert run(project, "lock").returncode == 0
    lock = project / "lambda-pack.lock"
    text = lock.read_text()
    start = text.index('sha256 = "') + len('sha256 = "')
    lock.write_text(text[:start] + "0" * 64 + text[start + 64 :])
    done = run(project, "build")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "ERROR: " in done.stderr
    assert not (project / ".lambda-pack" / "build" / "manifest.json").exists()


def test_a_tampered_build_manifest(project: Path, tmp_path: Path) -> None:
    assert run(project, "build").returncode == 0
    manifest = project / ".lambda-pack" / "build" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"functions/hello.zip"', '"../../etc/passwd"'))
    with pytest.raises(BuildError, match=r"functions.hello.code.path must be a relative path"):
        push(manifest.parent, LocalStore(tmp_path / "store"))
    assert not (tmp_path / "store").exists()


# -- URLs and secrets ------------------------------------------------------------------


def test_an_unencoded_slash_in_a_store_password(project: Path) -> None:
    url = f"http://user:{SECRET[:4]}/{SECRET[4:]}@127.0.0.1:9/store"
    done = run(project, "ls", "--store", url)
    failed(done, 2, "has a '/', '?' or '#' in its user name or password")
    no_secret(SECRET[:4], done.stdout, done.stderr)
    no_secret(SECRET[4:], done.stdout, done.stderr)


def test_an_unencoded_slash_in_an_index_password(project: Path) -> None:
    url = f"http://user:{SECRET[:4]}/{SECRET[4:]}@127.0.0.1:9/simple"
    _set(project, "no-index = false")
    done = run(project, "lock", "--index-url", url)
    failed(done, 2, "index URL http://***@127.0.0.1:9/simple", "in its user name or password")
    no_secret(SECRET[:4], done.stdout, done.stderr, dirs=[project])


def test_ls_json_never_prints_the_store_password(project: Path) -> None:
    from servers import servers, unique

    live = servers()
    url = live["http_basic"].replace("http://", f"http://{live['username']}:{live['password']}@")
    url += f"/{unique('ls')}"
    assert run(project, "push", "--store", url).returncode == 0
    done = run(project, "ls", "--json", "--store", url)
    assert done.returncode == 0, done.stderr
    assert '"functions": [\n    "hello",\n    "other"\n  ]' in done.stdout
    assert f"{live['username']}:***@" in done.stdout
    no_secret(live["password"], done.stdout, done.stderr, dirs=[project])


# -- a full disk -----------------------------------------------------------------------

needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root to mount a small tmpfs")


def _big_function(project: Path, tmp_path: Path) -> None:
    from helpers import make_wheel

    make_wheel(tmp_path / "wheelhouse", "noise", "1.0", files={"noise.bin": os.urandom(400_000)})
    (project / "requirements.txt").write_text("greet\nnoise\n")


@needs_mount
def test_a_full_disk_in_build(project: Path, tmp_path: Path) -> None:
    _big_function(project, tmp_path)
    assert run(project, "lock").returncode == 0
    with small_disk(tmp_path / "disk", "200k") as disk:
        done = run(project, "build", "--out", str(disk / "out"))
        failed(done, 1, "no space left on the device")
        assert not (disk / "out" / "manifest.json").exists()
        assert [p for p in disk.rglob(".tmp-*")] == []


@needs_mount
def test_a_full_disk_in_the_layer_cache(project: Path, tmp_path: Path) -> None:
    _big_function(project, tmp_path)
    with small_disk(tmp_path / "disk", "300k") as disk:
        done = run(project, "build", env={"LAMBDA_PACK_CACHE_DIR": str(disk)})
        failed(done, 1, "no space left on the device")
        assert [p for p in disk.rglob(".tmp-*")] == []


@needs_mount
def test_a_full_disk_in_push(project: Path, tmp_path: Path) -> None:
    _big_function(project, tmp_path)
    assert run(project, "build").returncode == 0
    with small_disk(tmp_path / "disk", "200k") as disk:
        done = run(project, "push", "--store", str(disk / "store"))
        failed(done, 1, "no space left on the device")
        blobs = disk / "store" / "blobs" / "sha256"
        for blob in blobs.iterdir() if blobs.is_dir() else ():
            assert not blob.name.startswith(".tmp-")
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


# -- killed and concurrent pushes ------------------------------------------------------


def test_stale_temp_files_are_removed_on_the_next_push(project: Path) -> None:
    assert run(project, "push").returncode == 0
    blobs = project / ".lambda-pack" / "store" / "blobs" / "sha256"
    dead, fresh, held = blobs / ".tmp-dead", blobs / ".tmp-fresh", blobs / ".tmp-held"
    for path in (dead, fresh, held):
        path.write_bytes(b"half a blob")
    old = time.time() - 7200
    os.utime(dead, (old, old))
    os.utime(held, (old, old))
    with open(held, "rb") as writer:  # another process still writing it (it holds the lock)
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl,time; fcntl.flock(0, fcntl.LOCK_EX); "
                "print('held', flush=True); time.sleep(60)",
            ],
            stdin=writer,
            stdout=subprocess.PIPE,
            text=True,
        )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = run(project, "push", "-v")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert not dead.exists() and fresh.exists() and held.exists()
    assert "removed temp files a killed push left" in done.stderr


def test_concurrent_pushes_into_one_store(project: Path) -> None:
    assert run(project, "build").returncode == 0
    store = project / "shared-store"
    env = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(project / ".cache")}
    command = [sys.executable, "-m", "pip_lambda_pack", "push", "--store", str(store)]
    procs = [
        subprocess.Popen(command, cwd=project, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    assert [p.wait(timeout=180) for p in procs] == [0] * 6, [p.communicate() for p in procs]
    blobs = list((store / "blobs" / "sha256").iterdir())
    assert blobs and all(hashlib.sha256(b.read_bytes()).hexdigest() == b.name for b in blobs)
    assert sorted(p.name for p in (store / "functions").iterdir()) == ["hello", "other"]
    done = run(project, "invoke", "hello", "--store", str(store))
    assert done.returncode == 0, done.stderr


def test_atomic_writes_hold_a_lock_while_writing(tmp_path: Path) -> None:
    """atomic_writer holds an exclusive lock on its temp file while writing."""
    from pip_lambda_pack.atomic import atomic_writer

    with atomic_writer(tmp_path / "x") as out:
        out.write(b"data")
        (temp,) = tmp_path.glob(".tmp-*")
        with open(temp, "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert (tmp_path / "x").read_bytes() == b"data"


# -- the top-level guard ---------------------------------------------------------------


class _Broken:
    """pip's options as ``pip lambda-pack`` passes them, broken: a bug's stand-in."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name} at https://user:{SECRET}@pypi.example/simple")


def test_an_unexpected_exception_is_one_error_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    code = cli.main(["lock", "--target", HOST_TARGET], pip_options=_Broken())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        "ERROR: unexpected RuntimeError: no index at https://user:***@pypi.example/simple",
        "TIP: rerun with -v to see the traceback; if it is not your input, please report it",
    ]
    code = cli.main(["lock", "-v"], pip_options=_Broken())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-2].startswith("ERROR: unexpected RuntimeError")
    shutil.rmtree(project / ".cache", ignore_errors=True)

"""The hostile-input matrix, shim side: forged zips and task manifests in a store, a cache
someone else planted, secrets in the environment, a full disk, kill -9 mid-extract and
concurrent invokes under a small cap. Each row runs the real shim in a fresh interpreter
and checks the exit code, the one ERROR/TIP pair, that no secret comes out and that
nothing outside the cache (and the handler's own output) changed. docs/reliability.md
has the table."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from hostile import (
    APP,
    SECRET,
    SHIM,
    can_mount,
    changed,
    code_zip,
    failed,
    no_secret,
    patch_headers,
    publish,
    run_shim,
    small_disk,
    snapshot,
    unpacked,
    zip_of,
)
from pip_lambda_pack.shim import VERIFIED


def _refused(
    tmp_path: Path,
    code: bytes,
    *parts: str,
    layers: Iterable[tuple[bytes, int]] = (),
    env: dict[str, str] | None = None,
) -> str:
    """Publish, run, expect exit 2 with ``parts``; nothing outside the cache was written
    and the cache holds no partial or unverified entry."""
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code, layers)
    before = snapshot(tmp_path)
    done = run_shim(store, cache, env=env)
    error = failed(done, 2, *parts)
    assert done.stdout == ""
    assert changed(before, snapshot(tmp_path), ["cache"]) == []
    refused = [task.code, *task.layers][-1].sha256  # the last blob is the hostile one
    assert [n for n in unpacked(cache) if n.startswith((".tmp-", refused))] == []
    return error


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("../evil.py", "unsafe path '../evil.py'"),  # zip-slip
        ("/tmp/lp-evil.py", "unsafe path '/tmp/lp-evil.py'"),  # absolute
        ("a/../../evil.py", "unsafe path"),
        ("..\\evil.py", "unsafe path '..\\\\evil.py'"),  # backslash
        ("./app2.py", "unsafe path './app2.py'"),
    ],
)
def test_unsafe_paths_are_refused(tmp_path: Path, name: str, what: str) -> None:
    _refused(tmp_path, code_zip([(name, b"print('pwned')\n")]), what)
    assert not Path("/tmp/lp-evil.py").exists()


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("python/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    _refused(tmp_path, code_zip([(link, b"/etc/passwd")]), "has a symlink 'python/link'")


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = code_zip([("app.py", b"def handler(e, c):\n    return 'second'\n")])
    _refused(tmp_path, data, "is not a readable zip", "File exists")


def test_nul_in_a_name_ends_it(tmp_path: Path) -> None:
    """zipfile cuts a name at NUL: 'lib.pyXX/../../x' forged to 'lib.py\\0/../../x' is lib.py."""
    data = code_zip([("lib.pyXX/../../evil", b"X = 1\n")])
    forged = data.replace(b"lib.pyXX/../../evil", b"lib.py\x00/../../evil")
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, forged)
    before = snapshot(tmp_path)
    done = run_shim(store, cache)
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert changed(before, snapshot(tmp_path), ["cache"]) == []
    if done.returncode == 0:
        assert sorted(p.name for p in (cache / task.code.sha256).iterdir()) == [
            VERIFIED,
            "app.py",
            "lib.py",
        ]


def test_setuid_and_odd_modes_are_normalised(tmp_path: Path) -> None:
    tool = zipfile.ZipInfo("tool.sh")
    tool.external_attr = 0o106777 << 16  # setuid, world-writable
    plain = zipfile.ZipInfo("data.txt")
    plain.external_attr = 0o102666 << 16  # setgid
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip([(tool, b"#!/bin/sh\n"), (plain, b"x")]))
    done = run_shim(store, cache)
    assert done.returncode == 0, done.stderr
    root = cache / task.code.sha256
    assert stat.S_IMODE((root / "tool.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "data.txt").stat().st_mode) == 0o644


def test_corrupt_blob_is_refused(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip())
    blob = store / "blobs" / "sha256" / task.code.sha256
    blob.write_bytes(blob.read_bytes()[:-3] + b"!!!")
    failed(run_shim(store, cache), 2, f"blob sha256:{task.code.sha256}", "is corrupt")
    assert [n for n in unpacked(cache) if n.startswith(task.code.sha256)] == []


@pytest.mark.parametrize(
    ("forge", "cause"),
    [
        (lambda d: patch_headers(d, 8, 10, b"\x63\x00"), "compression method"),  # method 99
        (lambda d: patch_headers(d, 6, 8, b"\x01\x00"), "encrypted"),  # flag bit 0
        (lambda d: d[:40] + b"\xff" * 200 + d[240:], ""),  # broken deflate stream
    ],
    ids=["unknown-compression", "encrypted", "broken-deflate"],
)
def test_undecodable_zips_are_one_error(
    tmp_path: Path, forge: Callable[[bytes], bytes], cause: str
) -> None:
    data = zip_of([("app.py", "".join(f"X{i} = {i * i}\n" for i in range(2000)).encode())])
    assert len(data) > 240
    _refused(tmp_path, forge(data), "is not a readable zip", cause)


def test_declared_unpacked_size_bounds_a_layer(tmp_path: Path) -> None:
    bomb = zip_of([("python/zeros.bin", bytes(4 << 20))])  # 4 MB of zeros, a few kB zipped
    assert len(bomb) < 64 << 10
    _refused(
        tmp_path,
        code_zip(),
        f"unpacks to {4 << 20} bytes, more than 1, the unzipped_size its task manifest",
        layers=[(bomb, 1)],
    )


def test_what_a_code_zip_unpacks_to_counts_against_the_cap(tmp_path: Path) -> None:
    """A code zip declares no unpacked size; it runs, its size is recorded as written and
    the cap evicts it once nobody uses it."""
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip([("zeros.bin", bytes(1 << 20))]))
    done = run_shim(store, cache, "--cache-max-bytes", "100000")
    assert done.returncode == 0, done.stderr
    used = cache / f"{task.code.sha256}.used"
    assert int(used.read_text()) == (1 << 20) + len(APP)
    other = publish(store, code_zip([("b.txt", b"b")]), name="other")
    assert run_shim(store, cache, "--cache-max-bytes", "100000", name="other").returncode == 0
    assert not (cache / task.code.sha256).exists()  # evicted: over the cap, not in use
    assert (cache / other.code.sha256 / VERIFIED).exists()


def test_a_lying_central_directory_stops_at_the_declared_size(tmp_path: Path) -> None:
    data = zip_of([("python/big.bin", bytes(1 << 20))])
    forged = patch_headers(data, 22, 24, (10).to_bytes(4, "little"))  # uncompressed size 10
    _refused(tmp_path, code_zip(), "is not a readable zip", layers=[(forged, 10)])


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"handler": "nodot"}, "handler must be module.function"),
        ({"code": {"sha256": "../../etc/passwd", "size": 1}}, "code.sha256 must be 64"),
        ({"layers": "all"}, "layers must be a list"),
        ({"format": "lambda-pack-task/9"}, "format must be 'lambda-pack-task/1'"),
    ],
)
def test_tampered_task_manifests_are_refused(
    tmp_path: Path, document: dict[str, object], field: str
) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip())
    forged = json.dumps({**task.to_dict(), **document}).encode()
    digest = _put(store, forged)
    (store / "functions" / "fn").write_text(f"sha256:{digest}\n")
    failed(run_shim(store, cache), 2, "task manifest of 'fn'", "is malformed", field)
    assert unpacked(cache) == []


def _put(store: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (store / "blobs" / "sha256" / digest).write_bytes(data)
    return digest


@pytest.mark.parametrize("name", ["../../etc/passwd", "fn\n", "a" * 65, ""])
def test_hostile_function_names(tmp_path: Path, name: str) -> None:
    store = tmp_path / "store"
    publish(store, code_zip())
    before = snapshot(tmp_path)
    failed(run_shim(store, tmp_path / "cache", name=name), 2, "no function")
    assert changed(before, snapshot(tmp_path), ["cache"]) == []


def test_functions_entry_that_is_not_a_digest(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(store, code_zip())
    (store / "functions" / "fn").write_text("sha256:../../../../etc/passwd\n")
    failed(run_shim(store, tmp_path / "cache"), 2, "functions/fn does not hold a sha256")


# -- a cache someone else filled -----------------------------------------------------------

PLANTED = """\
import pathlib

def handler(event, context):
    pathlib.Path({out!r}).write_text("pwned")
    return "planted"
"""


def _plant(tmp_path: Path, *, marker: bool, mode: int, owner: int | None = None) -> Path:
    """A store with a real function, and a cache entry under its code blob's name that
    runs something else (with or without a marker, with ``mode``, owned by ``owner``)."""
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip())
    cache.mkdir(mode=0o700)
    entry = cache / task.code.sha256
    entry.mkdir()
    (entry / "app.py").write_text(PLANTED.format(out=str(tmp_path / "pwned")))
    if marker:
        (entry / VERIFIED).write_text(task.code.sha256)
    entry.chmod(mode)
    if owner is not None:
        for path in (entry, *entry.iterdir()):
            os.chown(path, owner, owner)
    return store


@pytest.mark.parametrize(
    ("marker", "mode", "owner"),
    [
        (False, 0o755, None),  # no marker: nobody verified it
        (True, 0o777, None),  # a marker, but anyone could have changed it since
        (True, 0o755, 65534),  # a marker, owned by another user (nobody)
    ],
    ids=["no-marker", "world-writable", "other-owner"],
)
def test_a_planted_cache_entry_never_runs(
    tmp_path: Path, marker: bool, mode: int, owner: int | None
) -> None:
    if owner is not None and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    store = _plant(tmp_path, marker=marker, mode=mode, owner=owner)
    done = run_shim(store, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True  # the store's code ran, fetched again
    assert not (tmp_path / "pwned").exists()
    assert "0 hit, 1 missed" in done.stderr


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_planted_link_or_file_under_a_blob_name_is_replaced(tmp_path: Path, kind: str) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.py").write_text(PLANTED.format(out=str(tmp_path / "pwned")))
    cache.mkdir(mode=0o700)
    entry = cache / task.code.sha256
    if kind == "symlink":
        entry.symlink_to(elsewhere)
    else:
        entry.write_text("not a directory")
    done = run_shim(store, cache)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert not (tmp_path / "pwned").exists()
    assert entry.is_dir() and not entry.is_symlink()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["app.py"]  # left alone


@pytest.mark.parametrize("how", ["world-writable", "other-owner"])
def test_a_cache_root_others_can_write_is_refused(tmp_path: Path, how: str) -> None:
    store, cache = tmp_path / "store", tmp_path / "shared"
    publish(store, code_zip())
    cache.mkdir()
    if how == "world-writable":
        cache.chmod(0o1777)
    elif os.geteuid() == 0:
        os.chown(cache, 65534, 65534)
    else:
        pytest.skip("chown to another user needs root")
    failed(run_shim(store, cache), 2, f"cache {cache} is not safe")
    assert list(cache.iterdir()) == []


def test_the_cache_root_is_created_0700(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "deep" / "cache"
    publish(store, code_zip())
    assert run_shim(store, cache).returncode == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


# -- secrets ---------------------------------------------------------------------------

LEAKY = """\
import os, subprocess, sys

def handler(event, context):
    child = subprocess.run([sys.executable, "-c", "import os; print(dict(os.environ))"],
                           capture_output=True, text=True).stdout
    return {"env": dict(os.environ), "child": child}
"""


def test_store_credentials_never_reach_the_handler(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    publish(store, zip_of([("app.py", LEAKY.encode())]))
    env = {
        "LAMBDA_PACK_REGISTRY_USERNAME": "user",
        "LAMBDA_PACK_REGISTRY_PASSWORD": SECRET,
        "LAMBDA_PACK_REGISTRY_TOKEN": SECRET,
        "LAMBDA_PACK_HTTP_TOKEN": SECRET,
    }
    done = run_shim(store, cache, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert not {k for k in result["env"] if k.startswith("LAMBDA_PACK_REGISTRY")}
    no_secret(SECRET, done.stdout, done.stderr, dirs=[cache])


def test_a_store_url_with_a_login_is_gone_before_the_handler(tmp_path: Path) -> None:
    from servers import servers, unique

    live = servers()
    url = live["http_basic"].replace("http://", f"http://{live['username']}:{live['password']}@")
    url += f"/{unique('hostile')}"
    from pip_lambda_pack.store import open_store

    store_root = tmp_path / "local"
    publish(store_root, zip_of([("app.py", LEAKY.encode())]))
    _copy_store(store_root, open_store(url, tmp_path))
    done = run_shim(url, tmp_path / "cache", env={"LAMBDA_PACK_STORE": url})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "LAMBDA_PACK_STORE" not in result["env"]
    no_secret(live["password"], json.dumps(result["env"]), result["child"], done.stderr)


def _copy_store(root: Path, store: object) -> None:
    for blob in (root / "blobs" / "sha256").iterdir():
        store.put_bytes(blob.read_bytes())  # type: ignore[attr-defined]
    for name in (root / "functions").iterdir():
        store.set_name(name.name, name.read_text().strip().removeprefix("sha256:"))  # type: ignore[attr-defined]


# -- faults ----------------------------------------------------------------------------


@pytest.mark.skipif(not can_mount(), reason="needs root to mount a small tmpfs")
def test_a_full_disk_in_the_shim_says_so_and_is_not_retried(tmp_path: Path) -> None:
    store = tmp_path / "store"
    noise = os.urandom(600 << 10)  # does not compress
    publish(store, code_zip(), [(zip_of([("python/noise.bin", noise)]), len(noise))])
    with small_disk(tmp_path / "disk", "256k") as disk:
        start = time.monotonic()
        done = run_shim(store, disk / "cache")
        elapsed = time.monotonic() - start
        failed(done, 1, "no space left on the device")
        assert "tried" not in done.stderr
        assert [n for n in unpacked(disk / "cache") if n.startswith(".tmp-")] == []
    assert elapsed < 30  # not four rounds of backoff on a disk that stays full


def test_kill_9_mid_extract_then_run_again(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    many = zip_of([(f"python/m{i}.py", b"X = 1\n" * 50) for i in range(6000)])
    task = publish(store, code_zip(), [(many, 6000 * 300)])
    layer = task.layers[0].sha256
    command = [sys.executable, str(SHIM), "--store", str(store)]
    command += ["--name", "fn", "--cache", str(cache)]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partial = [p for p in cache.glob(f".tmp-{layer}-*") if p.is_dir()]
        if partial and any(partial[0].rglob("m1*.py")):
            break
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (cache / layer).exists()  # nothing half-unpacked under the blob's name
    done = run_shim(store, cache)
    assert done.returncode == 0, done.stderr
    assert [n for n in unpacked(cache) if n.startswith(".tmp-")] == []
    assert (cache / layer / VERIFIED).read_text() == layer


def test_concurrent_invokes_under_a_small_cap(tmp_path: Path) -> None:
    store, cache = tmp_path / "store", tmp_path / "cache"
    sizes = []
    for name in ("one", "two"):
        noise = os.urandom(200 << 10)
        layer = zip_of([(f"python/{name}.bin", noise)])
        publish(store, code_zip([(f"{name}.txt", name.encode())]), [(layer, len(noise))], name=name)
        sizes.append(len(noise))
    cap = str(max(sizes) + 50_000)  # smaller than the two functions together
    command = [sys.executable, str(SHIM), "--store", str(store), "--cache", str(cache)]
    procs = [
        subprocess.Popen(
            [*command, "--cache-max-bytes", cap, "--name", n],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in ["one", "two"] * 8
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert all(code == 0 for code, _ in results), [err for _, (_, err) in results]
    assert all(json.loads(out)["ok"] for _, (out, _) in results)
    assert [n for n in unpacked(cache) if n.startswith(".tmp-")] == []


def test_cache_prune_removes_stale_temp_files_nobody_holds(tmp_path: Path) -> None:
    from projects import run

    store, cache = tmp_path / "store", tmp_path / "cache"
    task = publish(store, code_zip())
    assert run_shim(store, cache).returncode == 0
    digest, other = task.code.sha256, "e" * 64
    stale = cache / f".tmp-{digest}-dead"
    stale.mkdir()
    (stale / "half.py").write_text("x")
    (cache / f".tmp-{digest}-dead.zip").write_bytes(b"PK")
    fresh = cache / f".tmp-{other}-fresh"
    fresh.mkdir()
    held = cache / f".tmp-{other}-held"
    held.mkdir()
    old = time.time() - 7200
    for path in (stale, cache / f".tmp-{digest}-dead.zip", held):
        os.utime(path, (old, old))
    holder = subprocess.Popen(  # a live fetch of ``other``: holds its lock
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'a+b'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(cache / f"{other}.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = run(tmp_path, "cache", "prune", "--cache", str(cache), "--max-bytes", "999999999")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert "and 2 stale temp files" in done.stdout
    assert not stale.exists() and fresh.exists() and held.exists()
    assert (cache / digest / VERIFIED).exists()
    shutil.rmtree(fresh)

"""Bytecode for the target: hash-based .pyc in layers and code zips, used as shipped."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from helpers import make_wheel
from pip_lambda_pack.bytecode import Compiler, Source, compile_sources, pyc_path
from pip_lambda_pack.config import load_project
from pip_lambda_pack.errors import BuildError, ConfigError
from pip_lambda_pack.interpreters import Interpreter, find_interpreter
from pip_lambda_pack.layers import LayerOptions, build_code_zip, build_layer
from pip_lambda_pack.target import get_target
from projects import fill_wheelhouse, run, write_project

MODULES = {
    "pkg/__init__.py": "from . import mod\n",
    "pkg/mod.py": "VALUE = {'a', 'b', 'c'}\n\ndef f():\n    return sorted(VALUE)\n",
    "pkg/legacy.py": 'print "python 2 only"\n',  # no .pyc: it does not compile for py3
}


def interpreter(minor: int) -> Interpreter:
    try:
        return find_interpreter(get_target(f"python3.{minor}-x86_64"), any_machine=True)
    except Exception:  # whatever the reason, this machine lacks it
        pytest.skip(f"needs a Python 3.{minor} interpreter (pyenv install 3.{minor})")


def wheel_in(tmp_path: Path, name: str, version: str, files: dict[str, str | bytes]) -> Path:
    (tmp_path / "w").mkdir(exist_ok=True)
    return make_wheel(tmp_path / "w", name, version, files=files)


def options(minor: int, mode: str = "checked-hash") -> LayerOptions:
    compiler = Compiler(mode=mode, interpreter=interpreter(minor))
    return LayerOptions(cache_tag=f"cpython-3{minor}", compiler=compiler)


def extract_read_only(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(into)
    for folder, _, files in os.walk(into):
        for name in files:
            os.chmod(Path(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return into


def verbose_import(python: Path, path: Path, module: str) -> str:
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(path), "PATH": os.defpath}
    done = subprocess.run(
        [str(python), "-v", "-c", f"import {module}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr


@pytest.mark.parametrize(("minor", "mode"), [(12, "checked-hash"), (10, "unchecked-hash")])
def test_layer_pyc_are_used_as_shipped_from_a_read_only_layer(
    tmp_path: Path, minor: int, mode: str
) -> None:
    wheel = wheel_in(tmp_path, "pkg", "1.0", MODULES)
    layer = build_layer([wheel], tmp_path / "out", options(minor, mode))
    with zipfile.ZipFile(layer.path) as archive:
        names = set(archive.namelist())
        pyc = archive.read(f"python/pkg/__pycache__/mod.cpython-3{minor}.pyc")
    assert f"python/pkg/__pycache__/__init__.cpython-3{minor}.pyc" in names
    assert not any("legacy.cpython" in name for name in names)
    flags = int.from_bytes(pyc[4:8], "little")  # PEP 552: bit 0 hash-based, bit 1 checked
    assert flags == (0b11 if mode == "checked-hash" else 0b01)
    site = extract_read_only(layer.path, tmp_path / "opt") / "python"
    log = verbose_import(interpreter(minor).path, site, "pkg")
    for module in ("__init__", "mod"):
        cached = site / "pkg" / "__pycache__" / f"{module}.cpython-3{minor}.pyc"
        assert f"code object from '{cached}'" in log


def test_code_object_keeps_the_run_time_file_name(tmp_path: Path) -> None:
    wheel = wheel_in(tmp_path, "pkg", "1.0", MODULES)
    layer = build_layer([wheel], tmp_path / "out", options(12))
    site = extract_read_only(layer.path, tmp_path / "opt") / "python"
    python = str(interpreter(12).path)
    script = (
        "import marshal, sys; data = open(sys.argv[1], 'rb').read()[16:];"
        " print(marshal.loads(data).co_filename)"
    )
    pyc = site / "pkg" / "__pycache__" / "mod.cpython-312.pyc"
    done = subprocess.run([python, "-c", script, str(pyc)], capture_output=True, text=True)
    assert done.stdout.strip() == "/opt/python/pkg/mod.py"


def test_layer_built_twice_is_byte_identical_across_compile_batches(tmp_path: Path) -> None:
    files = {f"many/m{i:03d}.py": f"X{i} = {{'k{i}', 'v', {i}}}\n" for i in range(450)}
    files["many/__init__.py"] = ""
    wheel = wheel_in(tmp_path, "many", "1.0", files)
    first = build_layer([wheel], tmp_path / "a", options(12))
    again = build_layer([wheel], tmp_path / "b", options(12))
    assert first.sha256 == again.sha256
    assert first.path.read_bytes() == again.path.read_bytes()
    with zipfile.ZipFile(first.path) as archive:
        assert sum(name.endswith(".cpython-312.pyc") for name in archive.namelist()) == 451


def test_pyc_of_other_pythons_are_dropped_and_the_targets_replaced(tmp_path: Path) -> None:
    files = {
        **MODULES,
        "pkg/__pycache__/mod.cpython-39.pyc": b"stale 3.9 bytecode",
        "pkg/__pycache__/mod.cpython-312.opt-1.pyc": b"stale optimised",
        "pkg/__pycache__/mod.cpython-312.pyc": b"shipped by the wheel",
        "pkg/sourceless.pyc": b"a legacy sourceless module stays",
    }
    wheel = wheel_in(tmp_path, "pkg", "1.0", files)
    plain = build_layer([wheel], tmp_path / "plain", LayerOptions(cache_tag="cpython-312"))
    with zipfile.ZipFile(plain.path) as archive:
        pycs = sorted(n for n in archive.namelist() if n.endswith(".pyc"))
        assert archive.read("python/pkg/__pycache__/mod.cpython-312.pyc") == (
            b"shipped by the wheel"
        )
    assert pycs == [
        "python/pkg/__pycache__/mod.cpython-312.opt-1.pyc",
        "python/pkg/__pycache__/mod.cpython-312.pyc",
        "python/pkg/sourceless.pyc",
    ]
    compiled = build_layer([wheel], tmp_path / "compiled", options(12))
    with zipfile.ZipFile(compiled.path) as archive:
        pycs = sorted(n for n in archive.namelist() if n.endswith(".pyc"))
        ours = archive.read("python/pkg/__pycache__/mod.cpython-312.pyc")
    assert pycs == [
        "python/pkg/__pycache__/__init__.cpython-312.pyc",
        "python/pkg/__pycache__/mod.cpython-312.pyc",
        "python/pkg/sourceless.pyc",
    ]
    fresh = compile_sources(
        options(12).compiler,  # type: ignore[arg-type]
        [Source(path="m.py", dfile="/opt/python/pkg/mod.py", data=MODULES["pkg/mod.py"].encode())],
    )
    assert ours == fresh["m.py"]


def test_code_zip_gets_bytecode_and_no_interpreter_means_none(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "lib").mkdir(parents=True)
    (code / "app.py").write_text("def handler(event, context):\n    return event\n")
    (code / "lib" / "util.py").write_text("X = 1\n")
    artifact = build_code_zip(code, tmp_path / "out", "api", options(12))
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
    assert names == [
        "__pycache__/app.cpython-312.pyc",
        "app.py",
        "lib/__pycache__/util.cpython-312.pyc",
        "lib/util.py",
    ]
    site = extract_read_only(artifact.path, tmp_path / "task")
    log = verbose_import(interpreter(12).path, site, "app")
    assert f"code object from '{site / '__pycache__' / 'app.cpython-312.pyc'}'" in log
    bare = build_code_zip(code, tmp_path / "bare", "api", LayerOptions(cache_tag="cpython-312"))
    with zipfile.ZipFile(bare.path) as archive:
        assert archive.namelist() == ["app.py", "lib/util.py"]


def test_pyc_path() -> None:
    assert pyc_path("python/a/b.py", "cpython-312") == "python/a/__pycache__/b.cpython-312.pyc"
    assert pyc_path("app.py", "cpython-311") == "__pycache__/app.cpython-311.pyc"


def test_bytecode_config_per_project_and_function(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    config = tmp_path / "lambda-pack.toml"
    config.write_text(
        'bytecode = "unchecked-hash"\nexclude = ["**/tests/**"]\n'
        '[functions.f]\nhandler = "app.handler"\ncode = "a"\ndependencies = []\n'
        'bytecode = "none"\n'
        '[functions.g]\nhandler = "app.handler"\ncode = "a"\ndependencies = []\n'
    )
    project = load_project(config)
    assert (project.bytecode, project.exclude) == ("unchecked-hash", ("**/tests/**",))
    modes = {spec.name: (spec.bytecode, spec.exclude) for spec in project.functions}
    assert modes == {"f": ("none", None), "g": (None, None)}
    config.write_text(
        'bytecode = "timestamp"\n[functions.f]\nhandler = "app.handler"\ncode = "a"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_project(config)
    assert caught.value.message == (
        f"{config}: bytecode must be one of checked-hash, unchecked-hash, none, not 'timestamp'"
    )


@pytest.fixture
def project(tmp_path: Path, wheelhouse: Path) -> Path:
    fill_wheelhouse(wheelhouse)
    return write_project(tmp_path / "project", wheelhouse)


def _pycs(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return sorted(name for name in archive.namelist() if name.endswith(".pyc"))


def test_lock_records_mode_and_compiler_and_the_cache_key_has_them(project: Path) -> None:
    built = run(project, "build", "--out", "out")
    assert built.returncode == 0, built.stderr
    lock = (project / "lambda-pack.lock").read_text()
    found = re.search(r'\[bytecode\]\nmode = "checked-hash"\npython = "(3\.\d+\.\d+)"', lock)
    assert found, lock
    layers = sorted((project / "out" / "layers").glob("*.zip"))
    assert all(_pycs(layer) for layer in layers)
    none = run(project, "build", "--out", "bare", "--bytecode", "none")
    assert none.returncode == 0, none.stderr
    said = none.stdout + none.stderr
    assert "lambda-pack.lock: bytecode or exclude changed; updated, nothing resolved" in said
    assert "resolving again" not in said and "fetching" not in said
    assert 'mode = "none"' in (project / "lambda-pack.lock").read_text()
    bare = sorted((project / "bare" / "layers").glob("*.zip"))
    assert {p.name for p in bare}.isdisjoint(p.name for p in layers)
    assert not any(_pycs(layer) for layer in bare)
    again = run(project, "build", "--out", "again")  # back to the default: nothing resolved
    assert again.returncode == 0, again.stderr
    said = again.stdout + again.stderr
    assert "lambda-pack.lock: bytecode or exclude changed; updated, nothing resolved" in said
    assert "resolving again" not in said and "fetching" not in said
    rebuilt = sorted((project / "again" / "layers").glob("*.zip"))
    assert [p.read_bytes() for p in rebuilt] == [p.read_bytes() for p in layers]


def test_target_without_interpreter_warns_once_and_builds_without_bytecode(
    project: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    env = {"PATH": str(empty), "PYENV_ROOT": str(empty), "HOME": str(empty)}
    done = run(project, "build", "--out", "out", "--target", "python3.14-x86_64", env=env)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    warning = (
        "warning: no Python 3.14 interpreter found, so python3.14-x86_64 layers and code ship"
        " without bytecode (install Python 3.14, or pass --target-python PATH)"
    )
    assert output.count(warning) == 1, output
    zips = sorted((project / "out").rglob("*.zip"))
    assert len(zips) >= 3
    assert not any(_pycs(path) for path in zips)
    assert 'python = ""' in (project / "lambda-pack.lock").read_text()


def test_read_only_layer_modes_are_normal(tmp_path: Path) -> None:
    wheel = wheel_in(tmp_path, "pkg", "1.0", MODULES)
    layer = build_layer([wheel], tmp_path / "out", options(12))
    with zipfile.ZipFile(layer.path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".pyc"):
                assert stat.S_IMODE(info.external_attr >> 16) == 0o644
                assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_exclude_keeps_record_consistent_for_importlib_metadata(tmp_path: Path) -> None:
    files = {
        **MODULES,
        "pkg/tests/__init__.py": "",
        "pkg/tests/test_mod.py": "def test(): pass\n",
        "pkg/mod.pyi": "VALUE: set[str]\n",
        "pkg/data.txt": "kept\n",
        "pkg/__pycache__/mod.cpython-39.pyc": b"stale",
        "pkg-1.0.data/scripts/tool": "#!python\nprint('tool')\n",
        "pkg-1.0.data/purelib/extra.py": "E = 1\n",
    }
    wheel = wheel_in(tmp_path, "pkg", "1.0", files)
    opts = dataclasses.replace(options(12), exclude=("**/tests/**", "**/*.pyi"))
    layer = build_layer([wheel], tmp_path / "out", opts)
    with zipfile.ZipFile(layer.path) as archive:
        names = set(archive.namelist())
    assert not any("/tests/" in name or name.endswith(".pyi") for name in names)
    assert {"python/pkg/data.txt", "python/extra.py", "bin/tool"} <= names
    root = extract_read_only(layer.path, tmp_path / "opt")
    site = root / "python"
    script = (
        "import hashlib, base64, sys, importlib.metadata as m\n"
        "dist = m.distribution('pkg')\n"
        "for f in dist.files:\n"
        "    data = f.locate().read_bytes() if f.hash else b''\n"
        "    ok = not f.hash or f.hash.value == base64.urlsafe_b64encode("
        "hashlib.sha256(data).digest()).rstrip(b'=').decode()\n"
        "    print(f, f.locate().exists(), ok, f.size == (len(data) if f.hash else None))\n"
    )
    python = str(interpreter(12).path)
    env = {"PYTHONPATH": str(site), "PATH": os.defpath, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [python, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    listed = {}
    for line in done.stdout.splitlines():
        path, exists, ok, size_ok = line.rsplit(" ", 3)
        listed[path] = (exists, ok, size_ok)
    on_disk = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()} | {
        "../" + p.relative_to(root).as_posix() for p in (root / "bin").rglob("*")
    }
    assert set(listed) == on_disk
    assert all(value == ("True", "True", "True") for path, value in listed.items()), listed
    assert "pkg/__pycache__/mod.cpython-312.pyc" in listed
    assert "pkg/tests/test_mod.py" not in listed


def test_exclude_globs() -> None:
    from pip_lambda_pack.layers import exclude_matcher

    match = exclude_matcher(["**/tests/**", "**/*.pyi", "pkg/docs/*.md", "top?.txt"])
    assert match is not None
    hits = ["tests/a.py", "pkg/tests/a.py", "a/b/tests/c/d.py", "x.pyi", "pkg/sub/y.pyi"]
    hits += ["pkg/docs/a.md", "top1.txt"]
    misses = ["pkg/testsuite.py", "pkg/docs/sub/a.md", "other/pkg/docs/a.md", "top12.txt"]
    assert all(match.fullmatch(path) for path in hits)
    assert not any(match.fullmatch(path) for path in misses)


def test_shim_can_keep_a_pure_layer_zipped_and_unpacks_by_default(project: Path) -> None:
    assert run(project, "push").returncode == 0
    event = '{"name": "zip"}'
    zipped = run(project, "invoke", "other", "--event", "-", stdin=event, env=ZIP)
    assert zipped.returncode == 0, zipped.stdout + zipped.stderr
    assert zipped.stdout.strip() == event
    runtime = project / ".cache" / "runtime"
    assert list(runtime.glob("*/layer.zip"))  # kept as a zip
    assert not list(runtime.glob("*/python"))  # nothing of the pure layer unpacked
    # importlib.metadata finds no distribution in a folder of a zip (layer.zip/python):
    # one more reason unpacking is the default (docs/benchmarks.md, Cold start)
    broken = run(project, "invoke", "hello", "--event", "-", stdin=event, env=ZIP)
    assert "No package metadata was found for greet" in broken.stdout
    shutil.rmtree(runtime)
    plain = run(project, "invoke", "hello", "--event", "-", stdin=event)
    assert plain.returncode == 0, plain.stderr
    assert "[1.0] hello zip" in plain.stdout
    assert not list(runtime.glob("*/layer.zip"))
    assert list(runtime.glob("*/python"))


ZIP = {"LAMBDA_PACK_LAYERS": "zip"}


# CPython 3.12 shares a frozenset constant between the functions of a module only when its
# strings were not interned before in the same process: compiled after `first`, `second`
# gets other bytes. Compiling per package keeps a package's bytes the same in every layer.
FIRST = {"aaa/__init__.py": "NAMES = ('alpha_k', 'beta_k')\n"}
SECOND = {
    "zzz/__init__.py": (
        "class C:\n"
        "    def f(self, x):\n"
        "        if x not in {'alpha_k', 'beta_k'}:\n"
        "            raise ValueError(f\"{x=} not in {{'alpha_k', 'beta_k'}}\")\n"
        "        return x in {'alpha_k', 'beta_k'}\n\n"
        "    def g(self, x):\n"
        "        return x in {'alpha_k', 'beta_k'}\n"
    )
}


def layer_pycs(layer: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(layer) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n.endswith(".pyc")}


def test_a_package_compiles_to_the_same_bytes_in_every_layer_that_holds_it(
    tmp_path: Path,
) -> None:
    first = wheel_in(tmp_path, "aaa", "1.0", FIRST)
    second = wheel_in(tmp_path, "zzz", "1.0", SECOND)
    alone = layer_pycs(build_layer([second], tmp_path / "alone", options(12)).path)
    shared = layer_pycs(build_layer([first, second], tmp_path / "shared", options(12)).path)
    name = "python/zzz/__pycache__/__init__.cpython-312.pyc"
    assert shared[name] == alone[name]
    # the two modules in one batch (one process) give other bytes: what batches avoid
    compiler = options(12).compiler
    assert compiler is not None
    batch = [
        Source(path=f"one/{p[0]}.py", dfile=f"/opt/python/{p}", data=text.encode())
        for p, text in {**FIRST, **SECOND}.items()
    ]
    assert compile_sources(compiler, batch)["one/z.py"] != alone[name]


def test_bytecode_cache_gives_the_same_layer_without_compiling(tmp_path: Path) -> None:
    wheel = wheel_in(tmp_path, "pkg", "1.0", {**MODULES, **SECOND})
    plain = options(12)
    assert plain.compiler is not None
    cached = dataclasses.replace(
        plain, compiler=dataclasses.replace(plain.compiler, cache_dir=tmp_path / "bytecode")
    )
    fresh = build_layer([wheel], tmp_path / "fresh", plain)
    filled = build_layer([wheel], tmp_path / "filled", cached)
    stored = sorted((tmp_path / "bytecode").rglob("*.pycs"))
    assert [fresh.sha256] == [filled.sha256] and len(stored) == 2  # pkg and zzz
    broken = dataclasses.replace(
        cached.compiler,
        interpreter=dataclasses.replace(  # type: ignore[arg-type]
            plain.compiler.interpreter, path=tmp_path / "no-such-python"
        ),
    )
    warm = build_layer([wheel], tmp_path / "warm", dataclasses.replace(cached, compiler=broken))
    assert warm.sha256 == fresh.sha256  # nothing compiled: that interpreter does not exist
    damaged = bytearray(stored[0].read_bytes())
    damaged[-1] ^= 1
    stored[0].write_bytes(bytes(damaged))
    with pytest.raises(BuildError, match="no-such-python"):  # not trusted: compiled again
        build_layer([wheel], tmp_path / "damaged", dataclasses.replace(cached, compiler=broken))
    again = build_layer([wheel], tmp_path / "again", cached)
    assert again.sha256 == fresh.sha256 and stored[0].read_bytes() != bytes(damaged)


def test_prune_evicts_least_recently_used_batches_and_a_rebuild_is_identical(
    tmp_path: Path,
) -> None:
    from pip_lambda_pack.bytecode import prune_cache

    wheel = wheel_in(tmp_path, "pkg", "1.0", {**MODULES, **SECOND})
    plain = options(12)
    assert plain.compiler is not None
    folder = tmp_path / "bytecode"
    cached = dataclasses.replace(
        plain, compiler=dataclasses.replace(plain.compiler, cache_dir=folder)
    )
    first = build_layer([wheel], tmp_path / "first", cached)
    stored = sorted(folder.rglob("*.pycs"), key=lambda path: path.stat().st_size)
    assert len(stored) == 2
    old, recent = stored
    os.utime(old, (1_000_000, 1_000_000))
    (old.parent / ".tmp-dead.pycs").write_bytes(b"half")
    os.utime(old.parent / ".tmp-dead.pycs", (1_000_000, 1_000_000))
    old_size = old.stat().st_size
    assert prune_cache(folder, recent.stat().st_size) == (1, old_size)
    assert sorted(folder.rglob("*.pycs")) == [recent]
    assert not (old.parent / ".tmp-dead.pycs").exists()
    again = build_layer([wheel], tmp_path / "again", cached)  # recompiles the pruned batch
    assert again.path.read_bytes() == first.path.read_bytes() and old.is_file()
    os.utime(recent, (1_000_000, 1_000_000))
    build_layer([wheel], tmp_path / "used", cached)  # a cache hit counts as a use
    assert recent.stat().st_mtime > 1_000_000
    assert prune_cache(folder, 0)[0] == 2 and not list(folder.rglob("*.pycs"))


def test_cache_prune_clears_the_bytecode_cache_and_the_next_build_recompiles(
    project: Path,
) -> None:
    built = run(project, "build", "--out", "out")
    assert built.returncode == 0, built.stderr
    folder = project / ".cache" / "bytecode"
    assert list(folder.rglob("*.pycs"))
    pruned = run(project, "cache", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert re.search(
        rf"^removed [1-9]\d* bytecode batch(es)? \(.+\) from {folder}$", pruned.stdout, re.M
    )
    assert not list(folder.rglob("*.pycs"))
    shutil.rmtree(project / ".cache" / "layers")  # else the layers come from their own cache
    rebuilt = run(project, "build", "--out", "again")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert list(folder.rglob("*.pycs"))  # compiled again
    layers = sorted((project / "out" / "layers").glob("*.zip"))
    again = sorted((project / "again" / "layers").glob("*.zip"))
    assert layers and [p.read_bytes() for p in again] == [p.read_bytes() for p in layers]


def test_cache_info_shows_the_bytecode_cache_beside_the_runtime_cache(project: Path) -> None:
    built = run(project, "build", "--out", "out")
    assert built.returncode == 0, built.stderr
    folder = project / ".cache" / "bytecode"
    batches = list(folder.rglob("*.pycs"))
    size = sum(path.stat().st_size for path in batches)
    assert batches
    info = run(project, "cache", "info")
    assert info.returncode == 0, info.stderr
    line = info.stdout.splitlines()[-1]
    count = len(batches)
    assert re.fullmatch(rf"{folder}: {count} bytecode batch(es)?, .+", line), info.stdout
    as_json = run(project, "cache", "info", "--json")
    assert json.loads(as_json.stdout)["bytecode"] == {
        "cache": str(folder),
        "entries": count,
        "total": size,
    }
    worker = run(project, "cache", "info", "--cache", str(project / "worker"))
    assert "bytecode" not in worker.stdout  # a worker's cache holds no bytecode
    run(project, "cache", "prune")
    emptied = json.loads(run(project, "cache", "info", "--json").stdout)["bytecode"]
    assert emptied == {"cache": str(folder), "entries": 0, "total": 0}

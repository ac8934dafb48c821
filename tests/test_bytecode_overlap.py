"""Bytecode compiled while the other wheels download, and the modules never compiled."""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from fakes import one_by_one
from helpers import make_wheel
from pip_lambda_pack.building import build_project, find_compiler, layer_options
from pip_lambda_pack.bytecode import Compiler, importable, pyc_path
from pip_lambda_pack.config import load_project
from pip_lambda_pack.index import FileLink, Finder, FollowUp
from pip_lambda_pack.interpreters import find_interpreter
from pip_lambda_pack.layers import LayerOptions, build_layer
from pip_lambda_pack.lock import read_lock
from pip_lambda_pack.progress import Task
from pip_lambda_pack.requirements import IndexOptions
from pip_lambda_pack.settings import Finders, Settings
from pip_lambda_pack.target import get_target
from projects import HOST_TARGET, run

MODULE = "def f(x):\n    return {'a': x, 'b': [x, x]}\n"


class GatedFinder:
    """The real finder, except that the download of ``last`` waits (up to a minute) until
    the bytecode cache holds a batch: a build that compiles only after every download
    would make ``saw_a_batch`` False."""

    def __init__(self, finder: Finder, last: str, bytecode: Path) -> None:
        self._finder, self._last, self._bytecode = finder, last, bytecode
        self.index_urls, self.find_links, self.offline = (
            finder.index_urls,
            finder.find_links,
            finder.offline,
        )
        self.saw_a_batch: bool | None = None

    def download(self, link: FileLink) -> Path:
        if link.filename.startswith(self._last):
            found = threading.Event()
            for _ in range(600):
                if list(self._bytecode.rglob("*.pycs")):
                    found.set()
                    break
                found.wait(0.1)
            self.saw_a_batch = found.is_set()
        return self._finder.download(link)

    def download_many(
        self,
        links: Sequence[FileLink],
        progress: Task | None = None,
        ready: Callable[[FileLink, Path], None] | None = None,
    ) -> dict[str, Path]:
        return one_by_one(self.download, links, ready)

    def links(self, name: str) -> Sequence[FileLink]:
        return self._finder.links(name)

    def prefetch(self, names: Iterable[str], then: FollowUp | None = None) -> None:
        self._finder.prefetch(names, then)

    def metadata(self, link: FileLink) -> bytes:
        return self._finder.metadata(link)

    def sizes(self, links: Sequence[FileLink]) -> dict[str, tuple[int, int]]:
        return self._finder.sizes(links)


class _Pool:
    def __init__(self, finder: GatedFinder) -> None:
        self._finder = finder

    def get(self, index: IndexOptions) -> GatedFinder:
        return self._finder


def _project(tmp_path: Path) -> Path:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    big = {f"alpha/m{i:03}.py": MODULE * (i + 1) for i in range(40)}
    make_wheel(wheelhouse, "alpha", "1.0", files={"alpha/__init__.py": "", **big})
    make_wheel(wheelhouse, "beta", "1.0", files={"beta/__init__.py": MODULE})
    root = tmp_path / "project"
    (root / "fn").mkdir(parents=True)
    (root / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (root / "lambda-pack.toml").write_text(
        f'target = "{HOST_TARGET}"\nno-index = true\nfind-links = ["{wheelhouse}"]\n'
        '[functions.fn]\nhandler = "app.handler"\ncode = "fn"\n'
        'dependencies = ["alpha", "beta"]\n'
    )
    locked = run(root, "lock")
    assert locked.returncode == 0, locked.stderr
    return root


def test_compiling_starts_while_wheels_download_and_gives_the_serial_bytes(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path)
    project = load_project(root / "lambda-pack.toml")
    lock = read_lock(project.lock_path)
    settings = Settings(cache_dir=tmp_path / "cache")
    finder = GatedFinder(
        Finders(settings).get(project.index), "beta-", settings.cache_dir / "bytecode"
    )
    manifest = build_project(project, lock, tmp_path / "out", settings, _Pool(finder))
    assert finder.saw_a_batch  # alpha's bytecode was compiled before beta was fetched
    compiler = find_compiler(project, print)
    assert compiler is not None
    wheels = {path.name: path for path in (tmp_path / "wheelhouse").glob("*.whl")}
    for entry in manifest.functions["fn"].layers:
        lid = next(lid for lid, pins in lock.layers.items() if pins == entry.wheels)
        serial = layer_options(project, lock, lid, compiler)  # no bytecode cache: one pass
        members = [wheels[lock.wheels[pin].filename] for pin in entry.wheels]
        alone = build_layer(members, tmp_path / "serial", serial)
        assert alone.sha256 == entry.sha256
        with zipfile.ZipFile(tmp_path / "out" / entry.path) as archive:
            assert any(name.endswith(".pyc") for name in archive.namelist())


def test_modules_no_name_can_reach_get_no_pyc_and_the_others_do(tmp_path: Path) -> None:
    assert importable("pkg/mod.py")
    assert importable("foo-bar/x.py")  # importlib.import_module("foo-bar.x") finds it
    assert not importable("pkg-1.0.dist-info/x.py")
    assert not importable("pkg.libs/x.py")
    assert not importable("pkg/setup.cfg.py")
    (tmp_path / "w").mkdir()
    wheel = make_wheel(
        tmp_path / "w",
        "odd",
        "1.0",
        files={
            "odd/__init__.py": "",
            "odd/mod.py": MODULE,
            "odd/foo-bar/x.py": MODULE,
            "odd/data.v2/y.py": MODULE,
            "odd/two.dots.py": MODULE,
            "odd-1.0.dist-info/hook.py": MODULE,
        },
    )
    interpreter = find_interpreter(get_target(HOST_TARGET), any_machine=True)
    options = LayerOptions(
        cache_tag=interpreter.cache_tag,
        compiler=Compiler(mode="checked-hash", interpreter=interpreter),
    )
    layer = build_layer([wheel], tmp_path / "out", options)
    with zipfile.ZipFile(layer.path) as archive:
        names = set(archive.namelist())
        record = archive.read("python/odd-1.0.dist-info/RECORD").decode()
    tag = interpreter.cache_tag
    for compiled in ("odd/__init__.py", "odd/mod.py", "odd/foo-bar/x.py"):
        assert pyc_path(f"python/{compiled}", tag) in names
        assert pyc_path(compiled, tag) in record
    for skipped in ("odd/data.v2/y.py", "odd/two.dots.py", "odd-1.0.dist-info/hook.py"):
        assert f"python/{skipped}" in names  # shipped as it is, without bytecode
        assert pyc_path(f"python/{skipped}", tag) not in names
        assert pyc_path(skipped, tag) not in record

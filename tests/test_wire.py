"""The wire module: one definition of the task manifest, the name and digest rules and URL
redaction, used by the stores and the shim; and the shim as it is shipped (two files side
by side, or one file with wire.py inlined) running on CPython 3.10 to 3.13 by itself."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_wheel
from lambda_runtime import build_function
from pip_lambda_pack import invoke, shim, wire
from pip_lambda_pack.store import LocalStore, push

VERSIONS = ("3.10", "3.11", "3.12", "3.13")


@pytest.mark.parametrize("name", ["api", "A-b_9", "x" * 64])
def test_function_name_rule_accepts(name: str) -> None:
    assert wire.as_function_name(name) == name
    assert wire.is_function_name(name)


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "../x", "api\n", "ä", "a.b", None, 3])
def test_function_name_rule_refuses(name: object) -> None:
    assert not wire.is_function_name(name)
    if isinstance(name, str):
        with pytest.raises(wire.WireError, match="is not valid") as info:
            wire.as_function_name(name)
        assert info.value.tip == wire.NAME_TIP


def test_digest_rule() -> None:
    assert wire.as_digest("a" * 64) == "a" * 64
    for bad in ("A" * 64, "a" * 63, "a" * 64 + "\n", "g" * 64, ""):
        assert not wire.is_digest(bad)
        with pytest.raises(wire.WireError, match="is not a sha256 hex digest"):
            wire.as_digest(bad)


def test_function_entry_round_trip_and_refusals() -> None:
    digest = wire.as_digest("c" * 64)
    assert wire.name_digest(wire.format_ref(digest), "S", "api") == digest
    for bad in ("c" * 64, "sha256:" + "C" * 64, "md5:" + "c" * 32, ""):
        with pytest.raises(wire.WireError) as info:
            wire.name_digest(bad, "S", "api")
        assert info.value.message == "store S: functions/api does not hold a sha256:<hex> digest"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:pw@h/x", "https://u:***@h/x"),
        ("https://tok@h/x", "https://***@h/x"),
        ("oci://u:p%2Fw@h:5000/r", "oci://u:***@h:5000/r"),
        ("s3://b/p?region=eu&X-Amz-Signature=abc", "s3://b/p?region=eu&X-Amz-Signature=***"),
        ("https://h/s?token=abc&page=2", "https://h/s?token=***&page=2"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert wire.redact(url) == shown


def test_task_manifest_is_refused_field_by_field() -> None:
    good = {
        "format": wire.TASK_FORMAT,
        "name": "api",
        "target": "python3.12-x86_64",
        "handler": "app.handler",
        "code": {"sha256": "a" * 64, "size": 1},
        "layers": [],
    }
    assert wire.TaskManifest.from_bytes(json.dumps(good).encode(), "t").handler == "app.handler"
    for key, value, field in [
        ("handler", "nodot", "handler must be module.function"),
        ("code", {"sha256": "a" * 64, "size": -1}, "code.size must be a non-negative"),
        ("layers", [{"sha256": "x"}], "layers[0].sha256 must be 64 lowercase hex digits"),
        ("format", "lambda-pack-task/2", "format must be 'lambda-pack-task/1'"),
    ]:
        with pytest.raises(wire.WireError) as info:
            wire.TaskManifest.from_bytes(json.dumps({**good, key: value}).encode(), "t")
        assert info.value.message.startswith(f"t: {field}")


def test_stores_and_the_tool_do_not_import_the_shim() -> None:
    """Only the cache commands use the shim's Cache (the worker's cache, seen from the tool)."""
    src = Path(wire.__file__).parent
    importers = sorted(
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if any(
            isinstance(node, ast.ImportFrom) and (node.module or "").endswith("shim")
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert importers == ["cache.py"]


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines at its top level (imports aside)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_wire_is_stdlib_only_and_inlines_without_clashing() -> None:
    """wire.py imports only the standard library (botocore lazily, for s3:// alone), and
    none of its top-level names means something else in the shim, which runs with
    wire.py's names in its own globals."""
    tree = ast.parse(Path(wire.__file__).read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    top = {m.split(".")[0] for m in modules}
    assert top <= set(sys.stdlib_module_names) | {"__future__", "botocore"}
    shim_names = _top_level_names(Path(shim.__file__))
    assert shim_names & _top_level_names(Path(wire.__file__)) == set()


def _python(version: str) -> str:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob(f"{version}.*/bin/python"))
    if found:
        return str(found[-1])
    if sys.version_info[:2] == tuple(int(x) for x in version.split(".")):
        return sys.executable
    pytest.skip(f"no Python {version} under {root}")


HANDLER = """\
import sys
import wire  # the function's own wire.py, never the shim's

def handler(event, context):
    return {"v": list(sys.version_info[:2]), "wire": wire.WHO, "dep": __import__("dep").X,
            "ours": sorted(m for m in sys.modules if "lambda_pack" in m)}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("published")
    (root / "wheels").mkdir()
    wheel = make_wheel(root / "wheels", "dep", "1.0", files={"dep.py": "X = 7\n"})
    code = root / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    (code / "wire.py").write_text("WHO = 'handler'\n")
    build_function(root / "build", "api", "app.handler", code, [[wheel]])
    push(root / "build", LocalStore(root / "store"))
    return root / "store"


def _shipped(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    if kind == "one file":
        (folder / "shim.py").write_text(invoke.shim_source())
    else:
        for path in invoke.SHIPPED:
            (folder / path.name).write_bytes(path.read_bytes())
    return folder / "shim.py"


@pytest.mark.parametrize("kind", ["one file", "two files"])
@pytest.mark.parametrize("version", VERSIONS)
def test_shipped_shim_runs_alone(store: Path, tmp_path: Path, version: str, kind: str) -> None:
    """Isolated mode (-I): no site-packages, so nothing of this package is importable."""
    shipped = _shipped(kind, tmp_path / "layer")
    command = [_python(version), "-I", str(shipped), "--store", str(store), "--name", "api"]
    command += ["--cache", str(tmp_path / "cache"), "--event", "-"]
    done = subprocess.run(command, input="{}", capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "v": [int(x) for x in version.split(".")],
        "wire": "handler",
        "dep": 7,
        "ours": [],
    }
    assert done.stderr.startswith("lambda-pack: provisioned api: 2 blobs, 0 hit, 2 missed")


def test_one_file_shim_refuses_bad_input_like_the_package(store: Path, tmp_path: Path) -> None:
    shipped = _shipped("one file", tmp_path / "layer")
    command = [sys.executable, "-I", str(shipped), "--store", "oci://u:pw@h", "--name", "api"]
    done = subprocess.run(command, input="{}", capture_output=True, text=True)
    assert done.returncode == 2
    assert (
        done.stderr
        == f"ERROR: store URL oci://u:***@h has no host or repository\nTIP: {wire.OCI_TIP}\n"
    )

"""Property tests for every parser of outside input: whatever the bytes, each either returns
or raises the one error of its kind (rendered as ERROR/TIP); what it writes it reads back.

Requirements lines, project config, lock files, task manifests, simple-API pages (PEP 503
HTML and PEP 691 JSON), wheel filenames and METADATA. docs/reliability.md lists them."""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import string
import tempfile
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pip_lambda_pack.config import load_project
from pip_lambda_pack.errors import ConfigError, IndexFetchError, LockError
from pip_lambda_pack.links import parse_html_page, parse_json_page, project_of
from pip_lambda_pack.lock import read_lock
from pip_lambda_pack.provider import parse_metadata, requires_dist
from pip_lambda_pack.requirements import read_requirements
from pip_lambda_pack.target import get_target
from pip_lambda_pack.wire import (
    BlobRef,
    TaskLayer,
    TaskManifest,
    WireError,
    as_digest,
    is_digest,
    is_function_name,
    name_digest,
    redact,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TARGET = get_target("python3.12-x86_64")

# TOML-able values, nested a little: what a hostile config or lock can hold
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "target",
    "store",
    "max-layers",
    "functions",
    "find-links",
    "handler",
    "code",
    "requirements",
    "dependencies",
    "weight",
    "version",
    "wheels",
    "layers",
    "python",
]
tables = st.dictionaries(
    st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), toml_values, max_size=6
)


_ROOT = Path(tempfile.mkdtemp(prefix="lp-properties-"))
atexit.register(shutil.rmtree, _ROOT, True)


def _write(name: str, data: bytes) -> Path:
    """``data`` as ``name`` in a fresh directory (each example reads its own file)."""
    folder = Path(tempfile.mkdtemp(dir=_ROOT))
    path = folder / name
    path.write_bytes(data)
    return path


@SETTINGS
@given(st.lists(st.text(alphabet=string.printable + "é\x00", max_size=40), max_size=6))
@example(["-r", "--hash=sha256:", "a ; python_version >", "${HOME", "-e ./nowhere", "\\"])
@example(["-r a\x00b", "-e ./a\x00"])  # a NUL in a path: ValueError from the OS before
def test_requirements_lines(lines: list[str]) -> None:
    path = _write("requirements.txt", "\n".join(lines).encode())
    try:
        result = read_requirements(path)
    except ConfigError:
        return
    assert all(isinstance(line, str) for line in result.requirements)


@SETTINGS
@given(st.binary(max_size=200))
def test_requirements_bytes(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        read_requirements(_write("requirements.txt", data))


@SETTINGS
@given(tables, st.dictionaries(st.text(min_size=1, max_size=8), tables, max_size=3))
@example({"max-layerz": 1}, {"f": {"handler": "app.handler"}})
@example({"find-links": "wheels"}, {"f": {"handler": "app.handler"}})
def test_config(top: dict[str, object], functions: dict[str, object]) -> None:
    document = {**top, "functions": functions} if functions else top
    path = _write("lambda-pack.toml", tomli_w.dumps(document).encode())
    (path.parent / "app").mkdir()
    with contextlib.suppress(ConfigError):
        load_project(path)


@SETTINGS
@given(st.binary(max_size=300))
@example(b'target = "caf\xe9"')
def test_config_bytes(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        load_project(_write("lambda-pack.toml", data))


@SETTINGS
@given(tables)
@example({"version": 1, "wheels": {"a==1": {"url": 3}}})
@example({"version": 1, "layers": {"x": ["a==1"]}, "functions": {"f": {"layers": ["y"]}}})
def test_lock(document: dict[str, object]) -> None:
    if "version" not in document:
        document = {"version": 1, **document}
    path = _write("lambda-pack.lock", tomli_w.dumps(document).encode())
    with contextlib.suppress(LockError):
        read_lock(path)


@SETTINGS
@given(st.binary(max_size=300))
def test_lock_bytes(data: bytes) -> None:
    with contextlib.suppress(LockError):
        read_lock(_write("lambda-pack.lock", data))


digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
task_manifests = st.builds(
    TaskManifest,
    name=st.text(min_size=1, max_size=20),
    target=st.text(min_size=1, max_size=20),
    handler=st.from_regex(r"[a-z_]{1,8}\.[a-z_]{1,8}", fullmatch=True),
    code=st.builds(BlobRef, sha256=digests.map(as_digest), size=st.integers(0, 2**40)),
    layers=st.lists(
        st.builds(
            TaskLayer,
            sha256=digests.map(as_digest),
            size=st.integers(0, 2**40),
            unzipped_size=st.integers(0, 2**40),
            wheels=st.lists(st.text(max_size=12), max_size=3).map(tuple),
        ),
        max_size=4,
    ).map(tuple),
)


@SETTINGS
@given(task_manifests)
def test_task_manifest_round_trip(task: TaskManifest) -> None:
    assert TaskManifest.from_bytes(task.to_bytes(), "blob") == task


@SETTINGS
@given(st.one_of(st.binary(max_size=200), toml_values.map(lambda v: json.dumps(v).encode())))
@example(b"[" * 100_000)
@example(b'{"format": "lambda-pack-task/1", "layers": [{"sha256": 1}]}')
def test_task_manifest_bytes(data: bytes) -> None:
    try:
        TaskManifest.from_bytes(data, "blob")
    except WireError as exc:
        assert exc.message.startswith("blob: ") and exc.tip


@SETTINGS
@given(
    task_manifests, st.sampled_from(["name", "handler", "code", "layers", "format"]), toml_values
)
def test_task_manifest_with_one_field_replaced(task: TaskManifest, key: str, value: object) -> None:
    document = {**task.to_dict(), key: value}
    try:
        parsed = TaskManifest.from_bytes(json.dumps(document).encode(), "blob")
    except WireError:
        return
    assert parsed.to_dict()[key] == value


@SETTINGS
@given(st.text(max_size=300))
@example('<a href="x.whl#sha256=" data-yanked data-core-metadata="true">')
@example('<base href="http://[::1"><a href="y">')
def test_simple_html_page(text: str) -> None:
    try:
        links = parse_html_page(text, "https://pypi.example/simple/x/", "index")
    except ValueError:  # urljoin on a malformed base, e.g. an unclosed IPv6 bracket
        return
    assert all(isinstance(link.filename, str) for link in links)


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=200),
        toml_values.map(json.dumps),
        st.lists(
            st.dictionaries(
                st.sampled_from(["filename", "url", "hashes", "size", "yanked", "core-metadata"]),
                toml_values,
            ),
            max_size=3,
        ).map(lambda f: json.dumps({"files": f})),
    )
)
@example('{"files": [{"filename": "a.whl", "url": "a.whl", "hashes": [1]}]}')
def test_simple_json_page(text: str) -> None:
    with contextlib.suppress(IndexFetchError):
        parse_json_page(text, "https://pypi.example/simple/x/", "index")


@SETTINGS
@given(st.text(max_size=60))
@example("foo-1.0-py3-none-any.whl")
@example("-.whl")
def test_wheel_filenames(filename: str) -> None:
    name = project_of(filename)
    assert name is None or (isinstance(name, str) and name == name.lower())


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Name", "Version", "Requires-Dist", "Requires-Python", "X"]),
            st.text(alphabet=string.printable, max_size=40),
        ),
        max_size=6,
    ),
    st.binary(max_size=60),
)
@example([("Requires-Dist", "a ; extra == 'x' and python_version > '3.1.x'")], b"")
def test_metadata(headers: list[tuple[str, str]], tail: bytes) -> None:
    data = "".join(f"{k}: {v}\n" for k, v in headers).encode() + b"\n" + tail
    message = parse_metadata(data)
    found, invalid = requires_dist(message, TARGET, ["x"])
    assert all(isinstance(line, str) for line in invalid)
    assert len(found) + len(invalid) <= len(message.get_all("Requires-Dist") or [])


@SETTINGS
@given(st.text(max_size=80))
def test_wire_rules_and_redaction_never_raise(text: str) -> None:
    assert is_function_name(text) in (True, False)
    assert is_digest(text) in (True, False)
    with contextlib.suppress(WireError):
        assert is_digest(name_digest(text, "S", "f"))
    if set(text) & set("/?#@"):  # unencoded, these end the login (check_login refuses it)
        return
    shown = redact(f"https://user:{text}@host/x")
    # a password may be a piece of the redacted URL itself ("/*" of "https://***")
    redacted_forms = ("https://user:***@host/x", "https://***@host/x")
    assert text not in shown or any(text in form for form in redacted_forms)

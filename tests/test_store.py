"""Local blob store and push: verified blobs, names, corrupted blobs, skipping what is there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers import make_wheel
from pip_lambda_pack.errors import BlobNotFoundError, ConfigError, HashMismatchError
from pip_lambda_pack.layers import build_code_zip, build_layer
from pip_lambda_pack.manifest import (
    BuildManifest,
    CodeEntry,
    FunctionEntry,
    LayerEntry,
    write_manifest,
)
from pip_lambda_pack.store import LocalStore, open_store, push
from pip_lambda_pack.wire import TaskManifest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_fetch_and_names(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "blob.bin"
    source.write_bytes(b"hello")
    digest = _sha(b"hello")
    assert not store.has(digest)
    store.put_file(source, digest)
    assert store.has(digest)
    assert (tmp_path / "store" / "blobs" / "sha256" / digest).read_bytes() == b"hello"
    store.fetch(digest, tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == b"hello"
    assert store.read_bytes(digest) == b"hello"
    store.set_name("beta", digest)
    store.set_name("alpha", digest)
    assert (tmp_path / "store" / "functions" / "alpha").read_text() == f"sha256:{digest}\n"
    assert store.get_name("alpha") == digest
    assert store.names() == ["alpha", "beta"]


def test_put_refuses_bytes_that_do_not_match(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "blob.bin"
    source.write_bytes(b"hello")
    wrong = _sha(b"other")
    with pytest.raises(HashMismatchError) as info:
        store.put_file(source, wrong)
    assert info.value.message == (
        f"{source} (for blob {wrong}): bytes hash to sha256:{_sha(b'hello')}"
    )
    assert not store.has(wrong)
    assert list((tmp_path / "store" / "blobs" / "sha256").iterdir()) == []


def test_corrupted_blob_is_refused_on_read_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    digest = store.put_bytes(b"layer bytes")
    (root / "blobs" / "sha256" / digest).write_bytes(b"layer bytez")
    with pytest.raises(HashMismatchError) as info:
        store.fetch(digest, tmp_path / "copy")
    assert info.value.message == (
        f"store {root}: blob sha256:{digest} is corrupt "
        f"(its bytes hash to sha256:{_sha(b'layer bytez')})"
    )
    assert info.value.tip == "the store removed it; push again to restore it: pip-lambda-pack push"
    assert not (tmp_path / "copy").exists()
    assert not store.has(digest)


def test_missing_blob_and_name(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(BlobNotFoundError, match="blob sha256:0{64} is not in store"):
        store.read_bytes("0" * 64)
    with pytest.raises(BlobNotFoundError) as info:
        store.get_name("api")
    assert info.value.message == f"no function 'api' in store {tmp_path / 'store'}"
    assert store.names() == []
    with pytest.raises(ConfigError, match="function name '../x' is not valid"):
        store.set_name("../x", "0" * 64)


def test_open_store_paths_and_urls(tmp_path: Path) -> None:
    assert open_store("rel/store", tmp_path).location == str(tmp_path / "rel" / "store")
    assert open_store(str(tmp_path / "abs"), Path("/elsewhere")).location == str(tmp_path / "abs")
    assert open_store(f"file://{tmp_path}/s", Path("/x")).location == str(tmp_path / "s")
    with pytest.raises(ConfigError) as info:
        open_store("ftp://host/store", tmp_path)
    assert info.value.message == "store URL scheme 'ftp' is not supported"
    store = open_store("https://ci:s3cret@blobs.example/team?sig=abc&x=1", tmp_path)
    assert store.location == "https://ci:***@blobs.example/team?sig=***&x=1"
    assert open_store("oci://127.0.0.1:5000/team/fns", tmp_path).location == (
        "oci://127.0.0.1:5000/team/fns"
    )


def _build(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    out = tmp_path / "build"
    layer = build_layer([make_wheel(wheels, "six", "1.16.0")], out)
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "app.py").write_text("def handler(event, context):\n    return 1\n")
    functions = {}
    for name in ("api", "worker"):
        code = build_code_zip(code_dir, out, name)
        functions[name] = FunctionEntry(
            handler="app.handler",
            code=CodeEntry(path=f"functions/{name}.zip", sha256=code.sha256, size=code.size),
            layers=(
                LayerEntry(
                    path=f"layers/{layer.sha256}.zip",
                    sha256=layer.sha256,
                    size=layer.size,
                    unzipped_size=layer.unzipped_size,
                    wheels=("six==1.16.0",),
                ),
            ),
        )
    write_manifest(BuildManifest(target="python3.12-x86_64", functions=functions), out)
    return out


def test_push_uploads_then_skips(tmp_path: Path) -> None:
    out = _build(tmp_path)
    store = LocalStore(tmp_path / "store")
    first = push(out, store)
    # one layer + one code zip (both functions have the same code) + two task manifests
    assert (first.uploaded, first.skipped, first.functions) == (4, 0, ("api", "worker"))
    assert first.summary().startswith(f"pushed 2 functions to {tmp_path / 'store'}: 4 blobs")
    second = push(out, store)
    assert (second.uploaded, second.skipped) == (0, 4)
    assert second.skipped_bytes == first.uploaded_bytes
    task = TaskManifest.from_bytes(store.read_bytes(store.get_name("api")), "api")
    assert task.name == "api"
    assert task.handler == "app.handler"
    assert task.layers[0].wheels == ("six==1.16.0",)
    manifest = json.loads((out / "manifest.json").read_text())
    assert task.code.sha256 == manifest["functions"]["api"]["code"]["sha256"]
    assert store.names() == ["api", "worker"]

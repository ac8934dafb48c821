"""The example project from PyPI, built for this machine's runtime, run under AWS's own
runtime client (awslambdaric) with Lambda's /opt and task-root layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_runtime import run_on_runtime_client, unpack_like_lambda
from pip_lambda_pack.manifest import read_manifest

pytestmark = [pytest.mark.network, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HOST_TARGET = "python%d.%d-x86_64" % sys.version_info[:2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("out", ".lambda-pack", "*.lock"))
    env = {**os.environ, "LAMBDA_PACK_CACHE_DIR": str(root.parent / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "pip_lambda_pack", "build", "--target", HOST_TARGET, "--out", "out"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the layers are built for x86_64")
@pytest.mark.parametrize(
    ("function", "event", "expected_keys"),
    [
        ("fetch", {"url": "https://example.com/a", "params": {"q": "x"}}, {"requests", "urllib3"}),
        ("validate", {"item": "book", "quantity": 2}, {"pydantic", "pydantic_core", "order"}),
    ],
)
def test_example_layers_load_under_awslambdaric(
    built: Path, tmp_path: Path, function: str, event: dict[str, object], expected_keys: set[str]
) -> None:
    manifest = read_manifest(built / "out")
    entry = manifest.functions[function]
    task, opt = unpack_like_lambda(built / "out", entry, tmp_path)
    answer = run_on_runtime_client(task, opt, entry.handler, event, function)
    assert answer.status == "response", answer.body
    result = json.loads(answer.body)
    assert expected_keys <= set(result)
    locked = {w.split("==")[0]: w.split("==")[1] for layer in entry.layers for w in layer.wheels}
    for key in expected_keys - {"order"}:
        assert result[key] == locked[key.replace("_", "-")]
    if function == "fetch":
        assert result["url"] == "https://example.com/a?q=x"
    else:
        assert result["order"] == {"item": "book", "quantity": 2}

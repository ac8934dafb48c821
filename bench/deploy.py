"""What a deploy of the bench corpus sends to Lambda, with our layers beside one zip per function.

    .venv/bin/python bench/deploy.py [--work DIR]

Locks the bench corpus (10 functions, from PyPI) twice: with the default planner and with
``--strategy single``, the layout of serverless-python-requirements, Chalice and SAM (every
function's dependencies in its own zip). Each is deployed into a fresh moto_server (Lambda,
S3, IAM on loopback) by ``pip-lambda-pack deploy``, then the same project again unchanged,
then again after one function gains a dependency. For each step: the write calls made, the
zip bytes sent (to Lambda, to S3 for zips over 50 MB, and to the store for shim delivery)
and the wall time. ``etl`` (pandas + pyarrow, ~291 MB) is over Lambda's 250 MB in both
layouts, so it is shim-delivered in both. moto is in memory and on loopback: the times are
the tool's own work and the calls' round trips, not AWS's upload times; bytes and calls are
what they would be against AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
BIN = Path(sys.executable).parent
ROLE = "arn:aws:iam::123456789012:role/lambda-exec"
HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start")


def write_project(root: Path, store: str, strategy: str) -> None:
    lines = ['target = "python3.12-x86_64"', f'store = "{store}"', f'strategy = "{strategy}"', ""]
    for req in sorted(CORPUS.glob("*.txt")):
        (root / "functions" / req.stem).mkdir(parents=True, exist_ok=True)
        (root / "functions" / req.stem / "app.py").write_text(HANDLER)
        shutil.copyfile(req, root / f"{req.stem}.txt")
        lines += [f"[functions.{req.stem}]", 'handler = "app.handler"']
        lines += [f'code = "functions/{req.stem}"', f'requirements = "{req.stem}.txt"']
        if req.stem == "etl":
            lines += ['delivery = "shim"', "ephemeral-storage-mb = 1024"]
        lines.append("")
    (root / "lambda-pack.toml").write_text("\n".join(lines))


def deploy(root: Path, env: dict[str, str], cache: Path) -> dict[str, Any]:
    """One ``deploy --json``: its result, the seconds it took (build included)."""
    cmd = [str(BIN / "pip-lambda-pack"), "deploy", "--json", "-q", "--prefix", "bench"]
    cmd += ["--role", ROLE, "--s3-bucket", "bench-zips", "--cache-dir", str(cache)]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    result["seconds"] = seconds
    return result


def sent_bytes(result: dict[str, Any]) -> int:
    """Zip bytes the deploy's write calls carried (layers, code, store blobs)."""
    return sum(int(call["bytes"]) for call in result["calls"])


def scenario(work: Path, strategy: str, cache: Path) -> list[tuple[str, int, int, float]]:
    process, endpoint = start_moto()
    try:
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
        env.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        setup = (
            "import boto3; boto3.client('iam').create_role(RoleName='lambda-exec', "
            "AssumeRolePolicyDocument='{}'); boto3.client('s3').create_bucket(Bucket='bench-zips')"
        )
        subprocess.run([sys.executable, "-c", setup], env=env, check=True)
        root = work / strategy
        shutil.rmtree(root, ignore_errors=True)
        write_project(root, f"s3://bench-zips/store?endpoint_url={endpoint}", strategy)
        rows = []
        for step in ("first deploy", "unchanged redeploy", "one function gains a package"):
            if step.startswith("one function"):
                (root / "http.txt").write_text("requests\nidna\ncharset-normalizer\nsix\n")
            result = deploy(root, env, cache)
            rows.append((step, result["writes"], sent_bytes(result), result["seconds"]))
        return rows
    finally:
        process.terminate()
        process.wait(timeout=10)


def table(results: dict[str, list[tuple[str, int, int, float]]]) -> str:
    lines = [
        "| step | layout | write calls | MB sent | s |",
        "|---|---|---:|---:|---:|",
    ]
    steps = [row[0] for row in next(iter(results.values()))]
    for index, step in enumerate(steps):
        for layout, rows in results.items():
            _, writes, sent, seconds = rows[index]
            lines.append(f"| {step} | {layout} | {writes} | {sent / 1e6:.1f} | {seconds:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="lambda-pack-deploy-bench-"))
    cache = work / "cache"  # shared: both layouts download the wheels once
    results = {
        "ours (expected-time layers)": scenario(work, "expected-time", cache),
        "one zip per function (single)": scenario(work, "single", cache),
    }
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Load, cold starts and memory of ``serve`` beside today's ``invoke`` (a process per call).

    .venv/bin/python bench/serve_load.py [--work DIR] [--skip-warm] [--skip-cold]

Everything runs on loopback, bounded in count and time. In one run:

1. warm latency (p50/p99) and throughput at concurrency 1, 8 and 32 for an echo function and
   the two examples (``fetch``: requests, ``validate``: pydantic), through ``serve`` (a
   kept-alive HTTP/1.1 client posting Invoke requests) and through ``pip-lambda-pack
   invoke`` (a process per call, warm cache), side by side, and a bare aiohttp app with the
   same client;
2. a cold start of ``validate`` split into fetch, extract and init; with a warm cache, forked
   from the zygote and (``--no-fork-server``) started as a new interpreter, beside a fresh
   interpreter that only runs the handler's import lines from the same unpacked layers;
3. the service's resident memory with ten functions warm, and each environment's.

The Zipf mix over the bench corpus by planner strategy is bench/serve_zipf.py.

The corpus wheels come from PyPI once (``pip download`` for python3.12-x86_64, as
bench/speed.py does); every step after that is offline. Environments run the target's
Python (pyenv's 3.12 here).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import speed  # noqa: E402  (bench/speed.py: the corpus download options)

TARGET = "python3.12-x86_64"
ECHO = "def handler(event, context):\n    return event\n"
MAX_SECONDS = 20.0  # per load step
REPORT = re.compile(r"(\w+(?: \w+)?): ([\d.]+)")
EVENTS = {
    "echo": {"hello": "world"},
    "fetch": json.loads((ROOT / "examples" / "events" / "fetch.json").read_text()),
    "validate": json.loads((ROOT / "examples" / "events" / "validate.json").read_text()),
}


def cli(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    command = [sys.executable, "-m", "pip_lambda_pack", *map(str, args)]
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return done.stdout


def fill_wheelhouse(wheelhouse: Path) -> None:
    if (wheelhouse / ".complete").is_file():
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    options = speed.pip_target_options()
    reqs = [p for p in sorted((HERE / "corpus").glob("*.txt")) if p.stem != "etl"]
    reqs.append(ROOT / "examples" / "requirements" / "fetch.txt")
    for req in reqs:
        print(f"downloading wheels for {req.stem}", file=sys.stderr)
        command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheelhouse)]
        subprocess.run([*command, "-r", str(req), *options], check=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheelhouse)]
    subprocess.run([*command, "pydantic>=2.7,<3", *options], check=True)
    (wheelhouse / ".complete").write_text("")


def write_project(root: Path, functions: dict[str, tuple[str, list[str]]], strategy: str) -> Path:
    """A lambda-pack.toml with one function per entry: (handler source, requirement lines)."""
    lines = [f'target = "{TARGET}"', f'strategy = "{strategy}"', ""]
    for name, (source, reqs) in sorted(functions.items()):
        code = root / "functions" / name
        code.mkdir(parents=True, exist_ok=True)
        (code / "app.py").write_text(source)
        (root / "requirements").mkdir(parents=True, exist_ok=True)
        (root / "requirements" / f"{name}.txt").write_text("".join(f"{r}\n" for r in reqs))
        lines += [f"[functions.{name}]", 'handler = "app.handler"', f'code = "functions/{name}"']
        lines += [f'requirements = "requirements/{name}.txt"', ""]
    root.mkdir(parents=True, exist_ok=True)
    (root / "lambda-pack.toml").write_text("\n".join(lines))
    return root


def corpus_requirements(name: str) -> list[str]:
    text = (HERE / "corpus" / f"{name}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


# -- a service ------------------------------------------------------------------------------


@dataclass
class Service:
    process: subprocess.Popen[str]
    port: int
    lines: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return [int(x.split("(pid ")[1].rstrip(")")) for x in self.lines if "(pid " in x]


@contextmanager
def serve(project: Path, *args: str) -> Iterator[Service]:
    command = [sys.executable, "-m", "pip_lambda_pack", "serve", "--port", "0", "-v", *args]
    process = subprocess.Popen(
        command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not line.startswith("["):  # environments' own output is not kept
                lines.append(line.rstrip("\n"))
            if "Lambda API on" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(60)
    found = [re.search(r":(\d+) \(store", x) for x in lines]
    port = next((int(m.group(1)) for m in found if m), 0)
    if not port:
        process.kill()
        sys.exit("serve did not start:\n" + "\n".join(lines))
    try:
        yield Service(process, port, lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Latencies of one load step (seconds) and what it took overall."""

    latencies: tuple[float, ...]
    seconds: float
    failures: int

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


class Connection:
    """One kept-alive HTTP/1.1 connection that posts Invoke requests (TCP_NODELAY).

    A few lines over asyncio streams rather than aiohttp's client, so the client costs a
    fraction of the CPU of what it measures (the two share these 2 cores); the bare aiohttp
    peer is measured with the same client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes, bytes]:
        """(status, head, body) of one request."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise ConnectionError(f"no Content-Length in {head[:200]!r}")
        body = await self.reader.readexactly(int(length.group(1)))
        return int(head[9:12]), head, body

    def close(self) -> None:
        self.writer.close()


async def _load(url: str, name: str, event: object, concurrency: int, calls: int) -> Load:
    body = json.dumps(event).encode()
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = f"{head}\r\n".encode() + body
    tailed = f"{head}X-Amz-Log-Type: Tail\r\n\r\n".encode() + body
    connections = [await Connection.open(host, int(port)) for _ in range(concurrency)]
    try:
        await _warm_up(connections, tailed)
        return await _timed(connections, request, calls, name, event)
    finally:
        for connection in connections:
            connection.close()


async def _warm_up(connections: list[Connection], tailed: bytes) -> None:
    """Call until every environment the load needs has started (not timed): until
    4 x concurrency calls in a row came back without an Init Duration in their log."""
    streak = [0]
    deadline = time.monotonic() + MAX_SECONDS

    async def worker(connection: Connection) -> None:
        while streak[0] < 4 * len(connections) and time.monotonic() < deadline:
            _, head, _ = await connection.post(tailed)
            found = re.search(rb"(?i)\r\nx-amz-log-result: *([A-Za-z0-9+/=]+)", head)
            cold = found is not None and b"Init Duration" in base64.b64decode(found.group(1))
            streak[0] = 0 if cold else streak[0] + 1

    await asyncio.gather(*(worker(c) for c in connections))


async def _timed(
    connections: list[Connection], request: bytes, calls: int, name: str, event: object
) -> Load:
    latencies: list[float] = []
    failures = 0
    left = [calls]
    deadline = time.monotonic() + MAX_SECONDS

    async def worker(connection: Connection) -> None:
        nonlocal failures
        while left[0] > 0 and time.monotonic() < deadline:
            left[0] -= 1
            start = time.perf_counter()
            status, head, answer = await connection.post(request)
            latencies.append(time.perf_counter() - start)
            failures += (
                status != 200
                or b"x-amz-function-error" in head.lower()
                or (name == "echo" and json.loads(answer) != event)
            )

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    return Load(tuple(latencies), time.perf_counter() - start, failures)


def load(url: str, name: str, concurrency: int, calls: int) -> Load:
    return run_loop(_load(url, name, EVENTS[name], concurrency, calls))


def run_loop(main: Coroutine[Any, Any, Load]) -> Load:
    """The client on uvloop when it is installed (as the service is), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def invoke_load(project: Path, name: str, python: str, concurrency: int, calls: int) -> Load:
    """``pip-lambda-pack invoke`` per call, ``concurrency`` at a time (warm cache)."""
    event = json.dumps(EVENTS[name])
    command = [sys.executable, "-m", "pip_lambda_pack", "invoke", name, "--event", "-"]
    command += ["--python", python]

    def one(_: int) -> tuple[float, bool]:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=project, input=event, capture_output=True, text=True)
        return time.perf_counter() - start, done.returncode != 0

    one(0)  # the cache warm, as serve's warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(calls)))
    seconds = time.perf_counter() - start
    return Load(tuple(r[0] for r in results), seconds, sum(r[1] for r in results))


BARE = """\
import sys
from aiohttp import web

async def echo(request):
    return web.Response(body=await request.read(), content_type="application/json")

try:  # the loop the service runs on
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    import asyncio
    loop = asyncio.new_event_loop()
app = web.Application()
app.add_routes([web.post("/2015-03-31/functions/{name}/invocations", echo)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=loop)
"""


def bare_rows() -> list[str]:
    """The HTTP stack alone: an aiohttp app that answers the Invoke path with the body."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", BARE, str(port)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe, contextlib.suppress(OSError):
                probe.connect(("127.0.0.1", port))
                break
            time.sleep(0.1)
        rows = []
        for concurrency in (1, 8, 32):
            found = load(f"http://127.0.0.1:{port}", "echo", concurrency, 2000)
            rows.append(
                f"| bare aiohttp (no environment) | {concurrency} | {found.p(0.5):.2f} | "
                f"{found.p(0.99):.2f} | {found.rate:.0f} | | | | | {found.failures} |"
            )
        return rows
    finally:
        server.terminate()
        server.wait(10)


def warm_table(project: Path, service: Service, python: str) -> list[str]:
    rows = [
        "| function | concurrency | serve p50 ms | serve p99 ms | serve calls/s | "
        "invoke p50 ms | invoke p99 ms | invoke calls/s | throughput ratio | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("echo", "fetch", "validate"):
        for concurrency in (1, 8, 32):
            ours = load(service.url, name, concurrency, 500 if concurrency == 1 else 2000)
            theirs = invoke_load(
                project, name, python, min(concurrency, 8), 8 * min(concurrency, 2)
            )
            ratio = ours.rate / theirs.rate if theirs.rate else 0
            rows.append(
                f"| {name} | {concurrency} | {ours.p(0.5):.2f} | {ours.p(0.99):.2f} | "
                f"{ours.rate:.0f} | {theirs.p(0.5):.0f} | {theirs.p(0.99):.0f} | "
                f"{theirs.rate:.1f} | {ratio:.0f}x | {ours.failures + theirs.failures} |"
            )
            print(rows[-1], file=sys.stderr)
    return [*rows, *bare_rows()]


# -- cold starts ----------------------------------------------------------------------------


def tail_invoke(url: str, name: str, event: object) -> dict[str, float]:
    """One RequestResponse call with Tail: the REPORT line's figures."""
    import urllib.request

    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/{name}/invocations",
        data=json.dumps(event).encode(),
        headers={"X-Amz-Log-Type": "Tail"},
        method="POST",
    )
    # longer than serve's own 120 s init timeout, so serve answers a stuck cold start first
    with urllib.request.urlopen(request, timeout=300) as response:
        log = base64.b64decode(response.headers["X-Amz-Log-Result"]).decode()
        failed = "X-Amz-Function-Error" in response.headers
        response.read()
    report = next(line for line in log.splitlines() if line.startswith("REPORT"))
    return {**{k: float(v) for k, v in REPORT.findall(report)}, "failed": float(failed)}


def cold_split(project: Path, work: Path, python: str, rounds: int = 7) -> list[str]:
    """validate's cold start: empty cache vs warm cache (forked from the zygote, and started
    as a new interpreter with ``--no-fork-server``) vs a fresh interpreter that only imports
    its dependencies (the handler's own import lines, and ``import pydantic``), interleaved."""
    store = project / ".lambda-pack" / "store"
    handler_imports = import_lines(ROOT / "examples" / "functions" / "validate" / "app.py")
    empty, warm, execed, imports, bare, module, fetches = [], [], [], [], [], [], []
    for round_ in range(rounds):
        cache = work / f"cold-cache-{round_}"
        shutil.rmtree(cache, ignore_errors=True)
        with serve(project, "--cache", str(cache), "--idle-s", "1") as service:
            empty.append(tail_invoke(service.url, "validate", EVENTS["validate"]))
        with serve(project, "--cache", str(cache)) as service:
            warm.append(tail_invoke(service.url, "validate", EVENTS["validate"]))
        with serve(project, "--cache", str(cache), "--no-fork-server") as service:
            execed.append(tail_invoke(service.url, "validate", EVENTS["validate"]))
        fetches.append(fetch_seconds(store, work / "fetch-copy"))
        paths = [str(p / "python") for p in sorted(cache.iterdir()) if (p / "python").is_dir()]
        imports.append(import_ms(python, paths, handler_imports))
        bare.append(import_ms(python, paths, "import pydantic"))
        code = [str(p) for p in sorted(cache.iterdir()) if (p / "app.py").is_file()]
        module.append(import_ms(python, code + paths, "import app"))
        ratio = warm[-1]["Init Duration"] / imports[-1]
        print(f"cold round {round_}: forked {warm[-1]['Init Duration']:.0f} ms, exec "
              f"{execed[-1]['Init Duration']:.0f} ms, imports {imports[-1]:.0f} ms "
              f"({ratio:.2f}x)", file=sys.stderr)  # fmt: skip
    med = statistics.median
    init_empty = med(r["Init Duration"] for r in empty)
    init_warm = med(r["Init Duration"] for r in warm)
    init_exec = med(r["Init Duration"] for r in execed)
    fetched = med(r.get("Bytes Fetched", 0) for r in empty)
    fetch_ms = med(fetches) * 1000
    provision = med(r["Provision Duration"] for r in empty)
    shown = "; ".join(handler_imports.splitlines())
    ratios = sorted(w["Init Duration"] / i for w, i in zip(warm, imports, strict=True))
    return [
        f"| validate (pydantic), median of {rounds} | ms |",
        "|---|---|",
        f"| cold start, empty cache: Init Duration | {init_empty:.0f} |",
        f"| of which fetch (reading the {fetched / 1e6:.1f} MB of blobs from the store) | "
        f"{fetch_ms:.0f} |",
        f"| of which extract (provisioning less fetch) | {max(0.0, provision - fetch_ms):.0f} |",
        f"| of which init (fork, bootstrap, imports) | {init_empty - provision:.0f} |",
        f"| cold start, warm cache: Init Duration (forked from the zygote) | {init_warm:.0f} |",
        f"| cold start, warm cache: Init Duration (`--no-fork-server`: a new interpreter) | "
        f"{init_exec:.0f} |",
        f"| a fresh interpreter running the handler's imports (`{shown}`) | {med(imports):.0f} |",
        f"| **ratio warm-cache cold start / the handler's imports** | "
        f"**{init_warm / med(imports):.2f}** |",
        f"| the same ratio per round, lowest to highest | "
        f"{', '.join(f'{r:.2f}' for r in ratios)} |",
        f"| ratio with `--no-fork-server` / the handler's imports | "
        f"{init_exec / med(imports):.2f} |",
        f"| a fresh interpreter running `import pydantic` (pydantic 2 imports lazily) | "
        f"{med(bare):.0f} |",
        f"| ratio warm-cache cold start / `import pydantic` | {init_warm / med(bare):.2f} |",
        f"| a fresh interpreter importing the handler's module (its imports and its model "
        f"class) | {med(module):.0f} |",
        f"| ratio warm-cache cold start / the handler's module | {init_warm / med(module):.2f} |",
        f"| first call's Duration after init | {med(r['Duration'] for r in empty):.1f} |",
    ]


def import_lines(source: Path) -> str:
    """The module-level import statements of a handler: its dependencies' imports."""
    import ast

    tree = ast.parse(source.read_text())
    kinds = (ast.Import, ast.ImportFrom)
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, kinds))


def import_ms(python: str, paths: list[str], code: str) -> float:
    """From starting a fresh interpreter to the end of ``code`` (as Init Duration runs from
    starting an environment to its first request), with the layers on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = ":".join(paths)
    script = f"{code}\nimport sys\nsys.stdout.write('imported')\nsys.stdout.flush()\n"
    start = time.perf_counter()
    with subprocess.Popen([python, "-c", script], env=env, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        if process.stdout.read(8) != b"imported":
            sys.exit(f"the import failed: {code}")
        elapsed = (time.perf_counter() - start) * 1000
    return elapsed


def fetch_seconds(store: Path, dest: Path) -> float:
    """Reading validate's blobs from the store alone (what a fetch costs without unzip)."""
    ref = (store / "functions" / "validate").read_text().strip().removeprefix("sha256:")
    task = json.loads((store / "blobs" / "sha256" / ref).read_bytes())
    digests = [task["code"]["sha256"], *(layer["sha256"] for layer in task["layers"])]
    start = time.perf_counter()
    dest.mkdir(parents=True, exist_ok=True)
    for digest in digests:
        shutil.copyfile(store / "blobs" / "sha256" / digest, dest / digest)
    return time.perf_counter() - start


def memory_rows(project: Path) -> list[str]:
    names = [f"echo{i}" for i in range(10)]
    with serve(project, "--max-concurrency", "1") as service:
        for name in names:
            tail_invoke(service.url, name, {})
        time.sleep(0.5)
        service_mb = rss_mb(service.process.pid)
        envs = [rss_mb(pid) for pid in service.pids()]
    return [
        "| ten echo functions warm | MB |",
        "|---|---|",
        f"| the service (resident) | {service_mb:.1f} |",
        f"| each environment (resident), median | {statistics.median(envs):.1f} |",
        f"| environments alive | {len(envs)} |",
    ]


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "serve-bench")
    parser.add_argument("--skip-warm", action="store_true")
    parser.add_argument("--skip-cold", action="store_true", help="no cold-start, memory steps")
    args = parser.parse_args()
    work: Path = args.work.resolve()
    wheelhouse = work / "wheelhouse"
    fill_wheelhouse(wheelhouse)
    sys.path.insert(0, str(ROOT / "src"))
    from pip_lambda_pack.interpreters import find_interpreter
    from pip_lambda_pack.target import get_target

    python = str(find_interpreter(get_target(TARGET)).path)
    functions = {
        "echo": (ECHO, []),
        "fetch": ((ROOT / "examples/functions/fetch/app.py").read_text(), ["requests>=2.31,<3"]),
        "validate": (
            (ROOT / "examples/functions/validate/app.py").read_text(),
            ["pydantic>=2.7,<3"],
        ),
        **{f"echo{i}": (ECHO, []) for i in range(10)},
    }
    project = work / "load"
    shutil.rmtree(project, ignore_errors=True)
    write_project(project, functions, "expected-time")
    cli("push", "--no-index", "--find-links", str(wheelhouse), cwd=project)
    load1 = os.getloadavg()[0]
    out = [
        f"machine: {os.cpu_count()} cores, load average {load1:.1f} at the start; "
        f"environments on {python}",
        "",
    ]
    if not args.skip_warm:
        with serve(project, "--max-concurrency", "32") as service:
            out += ["### Warm invocations", "", *warm_table(project, service, python), ""]
    if not args.skip_cold:
        out += ["### Cold start", "", *cold_split(project, work, python), ""]
        out += ["### Memory", "", *memory_rows(project), ""]
    out.append(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

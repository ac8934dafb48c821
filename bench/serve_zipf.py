"""The Zipf mix: planner strategies compared by measured cold starts through ``serve``.

    .venv/bin/python bench/serve_zipf.py [--work DIR] [--calls 100] [--lock /tmp/bench.lock]

The real-system counterpart of bench/plan_quality.py. 21 functions of the bench corpus (8
single corpus requirement files and 13 pairs of them, each an echo handler), one Zipf
order of calls (s = 1.1, seed 7). Every strategy's plan is built and pushed to its own
local store, and gets its own ``serve`` with its own worker cache, capped at the same
share of the distinct wheels' unpacked bytes, and at most 2 environments (so most calls
are cold starts).

The strategies run **interleaved**: the trace is cut into blocks of ``--block`` calls, and
each block is played on every strategy's service in turn (the order rotating from block
to block), so a change of the machine's load falls on all of them alike. Every call's
``REPORT`` line gives its breakdown: Init Duration (the whole cold start), Fetch Duration
(download and sha256 of the blobs it missed), Extract Duration (unpacking them), and the
rest (the environment's interpreter and bootstrap starting, the handler's import), with
the layers it missed and the bytes it fetched.

Every function carries its Zipf weight in its project (the mix, not the trace), so every
strategy that uses weights is told the same. Before the calls the machine is measured:
every layer of ``single``'s store fetched and unpacked once into an empty cache by the
shim (fetch and unpack throughput, a blob's fixed cost, how much bytecode adds), and
expected-time is planned with those figures (``extract-mb-s``, ``bandwidth-mb-s``,
``latency-ms``, serial fetches, the cache cap in wheels' unpacked bytes, the calls as the
worker's life); ``expected-time/default`` and ``expected-time/transfer`` rows plan with
the defaults, or without the unpacking term, for comparison.

With ``--lock FILE`` the script takes FILE itself: shared while it builds and pushes, and
exclusively for the timed calls, in ``--holds`` parts (released between them, so the other
engineers' tests run in between; the services and caches stay as they are, idle).

The wheels come from PyPI once (bench/serve_load.py's wheelhouse); every step after that
is offline.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))
import serve_load  # noqa: E402  (the corpus, the wheelhouse, a service, one tailed call)

PAIRS = [
    ("auth", "db"), ("http", "templ"), ("llm", "web-api"), ("image", "http"),
    ("powertools", "http"), ("db", "web-api"), ("templ", "llm"), ("auth", "image"),
    ("db", "templ"), ("powertools", "db"), ("auth", "llm"), ("image", "templ"),
    ("web-api", "http"),
]  # fmt: skip
SINGLES = ["auth", "db", "http", "image", "llm", "powertools", "templ", "web-api"]
STRATEGIES = ["expected-time", "single", "popularity-topk", "nixery"]
CACHE_SHARE = 0.4  # the worker cache: this share of the distinct wheels' unpacked bytes


@dataclass(frozen=True, slots=True)
class Call:
    """One call's REPORT figures (ms and bytes); ``cold`` when it had an Init Duration."""

    strategy: str
    name: str
    cold: bool
    failed: bool
    init_ms: float = 0.0
    fetch_ms: float = 0.0
    extract_ms: float = 0.0
    missed: int = 0
    fetched: int = 0

    @property
    def rest_ms(self) -> float:
        """The interpreter and bootstrap starting, the handler's import."""
        return self.init_ms - self.fetch_ms - self.extract_ms


def zipf_functions() -> dict[str, tuple[str, list[str]]]:
    need = serve_load.corpus_requirements
    functions = {name: (serve_load.ECHO, need(name)) for name in SINGLES}
    for a, b in PAIRS:
        functions[f"{a}-{b}"] = (serve_load.ECHO, sorted(set(need(a)) | set(need(b))))
    return functions


def zipf_weights(names: Sequence[str], seed: int = 7, s: float = 1.1) -> dict[str, float]:
    """Function -> its Zipf weight (the mix the trace is drawn from; the plans are told it)."""
    ranked = list(names)
    random.Random(seed).shuffle(ranked)
    return {name: 1 / (rank + 1) ** s for rank, name in enumerate(ranked)}


def zipf_trace(names: Sequence[str], calls: int, seed: int = 7, s: float = 1.1) -> list[str]:
    rng = random.Random(seed)
    ranked = list(names)
    rng.shuffle(ranked)
    weights = [1 / (rank + 1) ** s for rank in range(len(ranked))]
    return rng.choices(ranked, weights, k=calls)


def write_project(work: Path, row: str, planner: str) -> Path:
    """serve_load's project of the Zipf functions for one row (a strategy, or
    ``expected-time/VARIANT``), each function with its weight in the mix, and the planner's
    lines (``planner``, TOML)."""
    functions = zipf_functions()
    strategy = row.split("/")[0]
    project = serve_load.write_project(work / project_name(row), functions, strategy)
    config = project / "lambda-pack.toml"
    lines = config.read_text().split("\n")
    weights = zipf_weights(sorted(functions))
    for name, weight in weights.items():
        at = lines.index(f"[functions.{name}]")
        lines.insert(at + 1, f"weight = {weight:.6f}")
    if planner:
        lines.insert(lines.index(""), planner)
    config.write_text("\n".join(lines))
    return project


@contextlib.contextmanager
def holding(lock: Path | None, mode: int) -> Iterator[None]:
    """``lock`` held in ``mode`` (fcntl.LOCK_SH or LOCK_EX) for the block; nothing without."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def project_name(row: str) -> str:
    return "zipf-" + row.replace("/", "-")


def planner_for(row: str, measured: str) -> str:
    """The planner's lines of a row: expected-time gets the measured figures, its
    ``/default`` variant none (the defaults: a 500 MB cache, unpacking free), its
    ``/transfer`` variant all but the unpacking (``extract-mb-s``); the peers none."""
    if row == "expected-time":
        return measured
    if row == "expected-time/transfer":
        return "\n".join(x for x in measured.splitlines() if not x.startswith("extract-mb-s"))
    return ""


def push(work: Path, wheelhouse: Path, row: str, planner: str = "") -> int:
    """The row's project built and pushed; its number of layers."""
    from pip_lambda_pack.lock import read_lock

    project = write_project(work, row, planner)
    serve_load.cli("push", "--no-index", "--find-links", str(wheelhouse), cwd=project)
    return len(read_lock(project / "lambda-pack.lock").layers)


@dataclass(frozen=True, slots=True)
class Throughput:
    """What unpacking and fetching cost on this machine, from ``single``'s store: every
    layer fetched and unpacked once into an empty cache by the shim."""

    fetch_bps: float  # compressed bytes per second, download and sha256
    extract_bps: float  # the wheels' unpacked bytes per second (the planner's unit)
    per_blob_s: float  # the fixed cost of one blob (least squares over the layers)
    bytecode: float  # a layer's unpacked bytes (with its .pyc) over its wheels' unpacked

    def planner_lines(self, cap: int, cold_starts: int) -> str:
        return "\n".join(
            [
                f"extract-mb-s = {self.extract_bps / 1e6:.1f}",
                f"bandwidth-mb-s = {self.fetch_bps / 1e6:.1f}",
                f"latency-ms = {self.per_blob_s * 1000:.1f}",
                'fetch = "serial"',
                f"cache-mb = {cap / self.bytecode / 1e6:.1f}",
                f"worker-cold-starts = {cold_starts}",
            ]
        )


def measure(work: Path, strategy: str = "single") -> Throughput:
    from pip_lambda_pack import shim
    from pip_lambda_pack.lock import read_lock

    project = work / project_name(strategy)
    wheels = read_lock(project / "lambda-pack.lock").wheels
    reader = shim.open_reader(str(project / ".lambda-pack" / "store"))
    rows = []  # (wheels' unpacked bytes, compressed, unpacked with .pyc, fetch s, extract s)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        cache = shim.Cache(Path(scratch) / "cache")
        for name in sorted(zipf_functions()):
            for layer in shim.read_task(reader, name).layers:
                before = dict(cache.seconds)
                if cache.ensure(layer, reader).hit:
                    continue
                fetch, extract = (cache.seconds[k] - before[k] for k in ("fetch", "extract"))
                plain = sum(wheels[w].unpacked_size for w in layer.wheels)
                rows.append((plain, layer.size, layer.unzipped_size, fetch, extract))
    n = len(rows)
    mean_u = sum(r[0] for r in rows) / n
    mean_t = sum(r[4] for r in rows) / n
    slope = sum((r[0] - mean_u) * (r[4] - mean_t) for r in rows) / sum(
        (r[0] - mean_u) ** 2 for r in rows
    )
    return Throughput(
        fetch_bps=sum(r[1] for r in rows) / sum(r[3] for r in rows),
        extract_bps=sum(r[0] for r in rows) / sum(r[4] for r in rows),
        per_blob_s=max(0.0, mean_t - slope * mean_u),
        bytecode=sum(r[2] for r in rows) / sum(r[0] for r in rows),
    )


def cache_cap(work: Path, strategy: str) -> int:
    """The one cap for every strategy: CACHE_SHARE of the distinct wheels' unpacked bytes."""
    from pip_lambda_pack.lock import read_lock

    lock = read_lock(work / project_name(strategy) / "lambda-pack.lock")
    return int(sum(pin.unpacked_size for pin in lock.wheels.values()) * CACHE_SHARE)


def one_call(strategy: str, url: str, name: str) -> Call:
    try:
        figures = serve_load.tail_invoke(url, name, {})
    except OSError as exc:  # no answer in time: counted as failed
        print(f"{strategy} {name}: {exc}", file=sys.stderr)
        return Call(strategy, name, cold=False, failed=True)
    return Call(
        strategy,
        name,
        cold="Init Duration" in figures,
        failed=bool(figures["failed"]),
        init_ms=figures.get("Init Duration", 0.0),
        fetch_ms=figures.get("Fetch Duration", 0.0),
        extract_ms=figures.get("Extract Duration", 0.0),
        missed=int(figures.get("Layers Missed", 0)),
        fetched=int(figures.get("Bytes Fetched", 0)),
    )


def play(
    urls: dict[str, str], trace: Sequence[str], block: int, holds: int, lock: Path | None
) -> tuple[list[Call], list[tuple[float, float]]]:
    """The trace in blocks, each on every service in turn; the calls and each hold's load
    average (1 minute) at its start and end."""
    strategies = list(urls)
    blocks = [trace[i : i + block] for i in range(0, len(trace), block)]
    per_hold = -(-len(blocks) // holds)
    calls: list[Call] = []
    loads = []
    for h in range(0, len(blocks), per_hold):
        with holding(lock, fcntl.LOCK_EX):
            start = os.getloadavg()[0]
            for b, names in enumerate(blocks[h : h + per_hold], start=h):
                turn = b % len(strategies)
                for strategy in strategies[turn:] + strategies[:turn]:
                    calls += [one_call(strategy, urls[strategy], n) for n in names]
            loads.append((start, os.getloadavg()[0]))
            print(f"hold {len(loads)}: load {start:.2f} -> {loads[-1][1]:.2f}", file=sys.stderr)
    return calls, loads


def rows(calls: Sequence[Call], layers: dict[str, int]) -> list[str]:
    out = [
        "| strategy | layers | cold starts | mean cold start ms | fetch ms | extract ms | "
        "rest ms | p90 cold start ms | blobs missed | MB fetched | total cold-start s | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy, count in layers.items():
        mine = [c for c in calls if c.strategy == strategy]
        cold = [c for c in mine if c.cold]
        init = sorted(c.init_ms for c in cold)

        def mean(values: list[float]) -> float:
            return statistics.mean(values) if values else 0.0

        out.append(
            f"| {strategy} | {count} | {len(cold)} | {mean(init):.0f} | "
            f"{mean([c.fetch_ms for c in cold]):.0f} | {mean([c.extract_ms for c in cold]):.0f} | "
            f"{mean([c.rest_ms for c in cold]):.0f} | "
            f"{init[int(0.9 * len(init))] if init else 0:.0f} | {sum(c.missed for c in cold)} | "
            f"{sum(c.fetched for c in cold) / 1e6:.1f} | {sum(init) / 1000:.1f} | "
            f"{sum(c.failed for c in mine)} |"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "serve-bench")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--block", type=int, default=4, help="calls per strategy in a turn")
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="rows; expected-time/default and expected-time/transfer plan without the measured "
        "figures, or without the unpacking",
    )
    parser.add_argument("--lock", type=Path, help="take this lock itself (see the top)")
    parser.add_argument("--holds", type=int, default=1, help="exclusive holds for the calls")
    parser.add_argument("--calls-out", type=Path, help="write every call's figures (JSON)")
    parser.add_argument(
        "--planner", default="", help="TOML lines for expected-time (default: from the measurement)"
    )
    args = parser.parse_args()
    work: Path = args.work.resolve()
    wheelhouse = work / "wheelhouse"
    strategies = args.strategies.split(",")
    with holding(args.lock, fcntl.LOCK_SH):
        serve_load.fill_wheelhouse(wheelhouse)
        push(work, wheelhouse, "single")
    cap = cache_cap(work, "single")
    with holding(args.lock, fcntl.LOCK_EX):
        throughput = measure(work)
    planner = args.planner or throughput.planner_lines(cap, args.calls)
    with holding(args.lock, fcntl.LOCK_SH):
        layers = {s: push(work, wheelhouse, s, planner_for(s, planner)) for s in strategies}
    functions = zipf_functions()
    trace = zipf_trace(sorted(functions), args.calls)
    with contextlib.ExitStack() as stack:
        urls = {}
        for strategy in strategies:
            cache = work / f"zipf-cache-{strategy.replace('/', '-')}"
            shutil.rmtree(cache, ignore_errors=True)
            options = ["--cache", str(cache), "--cache-max-bytes", str(cap)]
            project = work / project_name(strategy)
            service = stack.enter_context(
                serve_load.serve(project, *options, "--max-environments", "2")
            )
            urls[strategy] = service.url
        started = time.monotonic()
        calls, loads = play(urls, trace, args.block, args.holds, args.lock)
        seconds = time.monotonic() - started
    if args.calls_out:
        args.calls_out.write_text(json.dumps([dataclasses.asdict(c) for c in calls], indent=1))
    out = rows(calls, layers)
    held = ", ".join(f"{a:.2f} -> {b:.2f}" for a, b in loads)
    out += [
        "",
        f"{len(functions)} functions, {args.calls} calls per strategy (Zipf s=1.1, seed 7) in "
        f"blocks of {args.block}, strategies interleaved; worker cache cap {cap / 1e6:.0f} MB "
        f"({CACHE_SHARE:.0%} of the distinct wheels unpacked), at most 2 environments; "
        f"{seconds:.0f} s of calls; load average (1 min) per hold: {held}.",
    ]
    out.append(
        f"measured (single's store, every layer into an empty cache): fetch "
        f"{throughput.fetch_bps / 1e6:.0f} MB/s, unpacking {throughput.extract_bps / 1e6:.1f} MB/s "
        f"of wheels unpacked, {throughput.per_blob_s * 1000:.1f} ms per blob, layers unpack to "
        f"{throughput.bytecode:.2f}x their wheels (bytecode)."
    )
    out.append(f"expected-time planned with: {'; '.join(planner.splitlines())}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

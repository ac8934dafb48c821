"""Speed of pip-lambda-pack beside pip and uv on the bench corpus, measured in one run.

    .venv/bin/python bench/speed.py [--rounds 3] [--work DIR] [--pypi]

Downloads the corpus wheels once (``pip download`` for python3.12-x86_64) into a wheelhouse,
then runs every tool offline against it (``--no-index --find-links WH``), with a fresh cache
directory for every run, the tools' order rotated each round, and prints the median of the
rounds with the peer beside us and the ratio ours/peer. Peak memory is the largest resident
set of any process of the run (``wait4``). ``--pypi`` times resolution against the real
index instead, with a cold and then a warm cache.

pip and uv run with their configuration files and ``PIP_*``/``UV_*`` variables turned off,
so a machine's pip.conf (find-links, constraints) cannot change what they do. uv is given an
interpreter (``--python``) so its interpreter discovery is not part of the time, and
``--python-platform x86_64-manylinux_2_34`` (the target's glibc: some corpus wheels, e.g.
cryptography's, are ``manylinux_2_34`` only, which ``manylinux_2_28`` would refuse).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SRC = HERE.parent / "src"
BIN = Path(sys.executable).parent
TARGET = "python3.12-x86_64"
UV_PLATFORM = "x86_64-manylinux_2_34"
# Not deployable on Lambda: pandas + pyarrow + numpy unzip to ~291 MB, over the 250 MB
# limit; lock refuses it (correctly), pip and uv would make a zip Lambda rejects.
UNDEPLOYABLE = {"etl": "unzips to ~291 MB, over Lambda's 250 MB limit"}
HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


@dataclass(frozen=True, slots=True)
class Run:
    """One timed run: wall seconds and the peak resident set (KiB) of its processes."""

    seconds: float
    peak_kib: int


@dataclass(frozen=True, slots=True)
class Bench:
    """Everything a scenario needs: paths, tools and the functions."""

    work: Path
    wheelhouse: Path
    project: Path
    functions: tuple[str, ...]
    ours: Path
    uv: Path

    def requirements(self, name: str) -> Path:
        return self.project / "requirements" / f"{name}.txt"


# -- processes ----------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment without pip/uv configuration, so every tool runs on its defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    env.pop("LAMBDA_PACK_CACHE_DIR", None)
    return env


def run(cmd: Sequence[str | Path], cwd: Path | None = None) -> Run:
    """Run ``cmd`` to completion; its wall time and peak RSS. Exits the bench if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{err.decode()[-2000:]}")
    return Run(seconds, usage.ru_maxrss)


def total(runs: Sequence[Run]) -> Run:
    return Run(sum(r.seconds for r in runs), max(r.peak_kib for r in runs))


def fresh(bench: Bench, label: str) -> Path:
    """A new, empty directory for one run (caches, targets, outputs)."""
    return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=bench.work / "runs"))


def zip_version() -> str:
    out = subprocess.run(["zip", "-v"], capture_output=True, text=True).stdout
    return next((ln.split("(")[0].strip() for ln in out.splitlines() if "This is Zip" in ln), "zip")


def version(cmd: Sequence[str | Path]) -> str:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=clean_env())
    return (out.stdout or out.stderr).strip().splitlines()[0]


# -- setup --------------------------------------------------------------------------------


def target_platforms() -> list[str]:
    sys.path.insert(0, str(SRC))
    from pip_lambda_pack.target import get_target, manylinux_platforms

    target = get_target(TARGET)
    return list(manylinux_platforms(target.glibc, "x86_64"))


def pip_target_options() -> list[str]:
    options = ["--only-binary=:all:", "--python-version", "3.12"]
    options += ["--implementation", "cp", "--abi", "cp312"]
    for platform in target_platforms():
        options += ["--platform", platform]
    return options


def fill_wheelhouse(bench: Bench) -> None:
    """``pip download`` every corpus function's wheels for the target, once."""
    done = bench.wheelhouse / ".complete"
    if done.is_file():
        return
    bench.wheelhouse.mkdir(parents=True, exist_ok=True)
    for req in sorted(CORPUS.glob("*.txt")):
        print(f"downloading wheels for {req.stem}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "-d", bench.wheelhouse, "-r", req]
        run([*cmd, *pip_target_options()])
    done.write_text("")


def write_project(bench: Bench) -> None:
    """A lambda-pack.toml with one function per corpus file, each with a tiny handler."""
    lines = [f'target = "{TARGET}"', ""]
    for name in bench.functions:
        code = bench.project / "functions" / name
        code.mkdir(parents=True, exist_ok=True)
        (code / "app.py").write_text(HANDLER)
        bench.requirements(name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / f"{name}.txt", bench.requirements(name))
        lines += [f"[functions.{name}]", 'handler = "app.handler"', f'code = "functions/{name}"']
        lines += [f'requirements = "requirements/{name}.txt"', ""]
    (bench.project / "lambda-pack.toml").write_text("\n".join(lines))


def offline(bench: Bench) -> list[str]:
    return ["--no-index", "--find-links", str(bench.wheelhouse)]


# -- the tools, one run each --------------------------------------------------------------


def ours_lock(bench: Bench, index: Sequence[str], cache: Path | None = None) -> Run:
    (bench.project / "lambda-pack.lock").unlink(missing_ok=True)
    cache = cache or fresh(bench, "ours-cache")
    return run([bench.ours, "lock", "-q", *index, "--cache-dir", cache], cwd=bench.project)


def ours_build(bench: Bench, cache: Path, out: Path, bytecode: str = "checked-hash") -> Run:
    cmd = [bench.ours, "build", "-q", *offline(bench), "--cache-dir", cache, "--out", out]
    return run([*cmd, "--bytecode", bytecode], cwd=bench.project)


def ours_cold_build(bench: Bench, bytecode: str = "none") -> Run:
    """Requirements to zips: no lock, no cache (so no bytecode cache either), no output;
    ``--bytecode none`` unless asked (uv --target compiles nothing either)."""
    (bench.project / "lambda-pack.lock").unlink(missing_ok=True)
    return ours_build(bench, fresh(bench, "ours-cache"), fresh(bench, "ours-out"), bytecode)


def ours_noop(bench: Bench) -> Run:
    """A second build when nothing changed (the first is not timed)."""
    (bench.project / "lambda-pack.lock").unlink(missing_ok=True)
    cache, out = fresh(bench, "ours-cache"), fresh(bench, "ours-out")
    ours_build(bench, cache, out)
    return ours_build(bench, cache, out)


def pip_resolve(bench: Bench, index: Sequence[str], cache: Path | None = None) -> Run:
    cache = cache or fresh(bench, "pip-cache")
    report = cache / "report.json"
    base = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed"]
    base += ["--report", report, "--cache-dir", cache, *pip_target_options(), *index]
    return total([run([*base, "-r", bench.requirements(f)]) for f in bench.functions])


def uv_resolve(
    bench: Bench, index: Sequence[str], cache: Path | None = None, hashes: bool = False
) -> Run:
    """``uv pip compile`` per function; ``hashes``: with ``--generate-hashes``, so that uv
    also produces the sha256 of every pinned wheel, as our lock records."""
    cache = cache or fresh(bench, "uv-cache")
    base = [bench.uv, "pip", "compile", "-q", "--python", sys.executable, "--cache-dir", cache]
    base += ["--python-platform", UV_PLATFORM, "--python-version", "3.12", *index]
    base += ["--generate-hashes"] if hashes else []
    return total([run([*base, "-o", os.devnull, bench.requirements(f)]) for f in bench.functions])


def uv_install(bench: Bench, cache: Path, target: Path, name: str, *compile: str) -> Run:
    cmd = [bench.uv, "pip", "install", "-q", "--python", sys.executable, "--cache-dir", cache]
    cmd += ["--python-platform", UV_PLATFORM, "--python-version", "3.12", *offline(bench)]
    return run([*cmd, *compile, "--target", target, "-r", bench.requirements(name)])


def uv_compiling(bench: Bench, cache: Path, target: Path, name: str) -> Run:
    """``uv pip install --compile-bytecode``: uv compiles with the interpreter it is given
    (this bench's own 3.11, not the 3.12 target), timestamp-based, the nearest peer."""
    return uv_install(bench, cache, target, name, "--compile-bytecode")


def pip_install(bench: Bench, cache: Path, target: Path, name: str) -> Run:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--cache-dir", cache]
    cmd += [*pip_target_options(), *offline(bench), "--target", target]
    return run([*cmd, "-r", bench.requirements(name)])


def zip_function(bench: Bench, target: Path, name: str) -> Run:
    """The deployable zip of a --target install: the handler copied in, ``zip -X -r``."""
    shutil.copyfile(bench.project / "functions" / name / "app.py", target / "app.py")
    return run(["zip", "-X", "-r", "-q", target.parent / f"{name}.zip", "."], cwd=target)


def peer_zips(bench: Bench, install: Callable[[Bench, Path, Path, str], Run], zips: bool) -> Run:
    """Per function: ``install --target`` (one cache for the run), then zip if asked."""
    cache, out = fresh(bench, "peer-cache"), fresh(bench, "peer-out")
    runs = []
    for name in bench.functions:
        target = out / name
        runs.append(install(bench, cache, target, name))
        if zips:
            runs.append(zip_function(bench, target, name))
    return total(runs)


def uv_noop(bench: Bench) -> Run:
    """uv's nearest to a no-op rebuild: ``--target`` again into the filled targets."""
    cache, out = fresh(bench, "uv-cache"), fresh(bench, "uv-out")
    for name in bench.functions:
        uv_install(bench, cache, out / name, name)
    return total([uv_install(bench, cache, out / name, name) for name in bench.functions])


# -- scenarios ----------------------------------------------------------------------------

Scenario = tuple[str, dict[str, Callable[[], Run]]]


def offline_scenarios(bench: Bench) -> list[Scenario]:
    wh = offline(bench)
    return [
        (
            "resolve",
            {
                "ours": lambda: ours_lock(bench, wh),
                "pip": lambda: pip_resolve(bench, wh),
                "uv": lambda: uv_resolve(bench, wh),
                "uv --generate-hashes": lambda: uv_resolve(bench, wh, hashes=True),
            },
        ),
        (
            "zips",
            {
                "ours": lambda: ours_cold_build(bench),
                "uv --target + zip": lambda: peer_zips(bench, uv_install, zips=True),
                "pip --target + zip": lambda: peer_zips(bench, pip_install, zips=True),
                "uv --target": lambda: peer_zips(bench, uv_install, zips=False),
            },
        ),
        (
            "zips with bytecode",
            {
                "ours": lambda: ours_cold_build(bench, "checked-hash"),
                "ours --bytecode none": lambda: ours_cold_build(bench, "none"),
                "uv --target --compile-bytecode + zip": lambda: peer_zips(
                    bench, uv_compiling, zips=True
                ),
            },
        ),
        (
            "no-op rebuild",
            {"ours": lambda: ours_noop(bench), "uv --target": lambda: uv_noop(bench)},
        ),
        (
            "--help",
            {
                "ours": lambda: run([bench.ours, "--help"]),
                "pip": lambda: run([sys.executable, "-m", "pip", "--help"]),
                "uv": lambda: run([bench.uv, "pip", "--help"]),
            },
        ),
    ]


def pypi_scenarios(bench: Bench) -> list[Scenario]:
    """Resolution against the real index: a cold cache, then the same cache again."""
    scenarios: list[Scenario] = []
    for label, resolve in (("ours", ours_lock), ("pip", pip_resolve), ("uv", uv_resolve)):
        cache = fresh(bench, f"{label}-pypi")
        scenarios.append(
            (f"pypi {label}", {"cold": _cold(bench, resolve), "warm": _warm(bench, resolve, cache)})
        )
    return scenarios


def _cold(bench: Bench, resolve: Callable[..., Run]) -> Callable[[], Run]:
    return lambda: resolve(bench, [])


def _warm(bench: Bench, resolve: Callable[..., Run], cache: Path) -> Callable[[], Run]:
    def go() -> Run:
        if not any(cache.iterdir()):
            resolve(bench, [], cache)  # fill it once, untimed
        return resolve(bench, [], cache)

    return go


def measure(scenarios: list[Scenario], rounds: int) -> dict[tuple[str, str], list[Run]]:
    """Every (scenario, tool) ``rounds`` times, the tools' order rotated each round."""
    results: dict[tuple[str, str], list[Run]] = {}
    for number in range(rounds):
        for scenario, tools in scenarios:
            names = list(tools)
            shift = number % len(names)
            for tool in names[shift:] + names[:shift]:
                got = tools[tool]()
                results.setdefault((scenario, tool), []).append(got)
                print(
                    f"round {number + 1} {scenario:<14} {tool:<18} {got.seconds:8.3f} s "
                    f"{got.peak_kib / 1024:7.0f} MiB",
                    file=sys.stderr,
                )
    return results


def median(runs: Sequence[Run]) -> Run:
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_kib for r in runs))


# -- report -------------------------------------------------------------------------------

GOALS = {
    ("resolve", "pip"): 0.35,
    ("resolve", "uv"): 1.0,
    ("zips", "uv --target + zip"): 0.25,
    ("zips", "uv --target"): 1.0,
}


def table(results: dict[tuple[str, str], list[Run]]) -> str:
    rows = [
        "| scenario | ours (s) | peer | peer (s) | ours/peer | goal | met |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    scenarios = dict.fromkeys(s for s, _ in results)
    for scenario in scenarios:
        ours = median(results[(scenario, "ours")])
        for (s, tool), runs in results.items():
            if s != scenario or tool == "ours":
                continue
            peer = median(runs)
            ratio = ours.seconds / peer.seconds
            goal = GOALS.get((scenario, tool))
            met = "" if goal is None else ("yes" if ratio <= goal else "no")
            if scenario == "no-op rebuild":
                goal_text, met = "< 1 s", "yes" if ours.seconds < 1 else "no"
            else:
                goal_text = f"≤ {goal:.2f}×" if goal is not None else ""
            rows.append(
                f"| {scenario} | {ours.seconds:.2f} | {tool} | {peer.seconds:.2f} | "
                f"{ratio:.2f}× | {goal_text} | {met} |"
            )
    return "\n".join(rows)


def memory_table(results: dict[tuple[str, str], list[Run]]) -> str:
    rows = ["| scenario | tool | peak RSS (MiB) |", "| --- | --- | ---: |"]
    for (scenario, tool), runs in results.items():
        rows.append(f"| {scenario} | {tool} | {median(runs).peak_kib / 1024:.0f} |")
    return "\n".join(rows)


def pypi_table(results: dict[tuple[str, str], list[Run]]) -> str:
    rows = ["| tool | cold cache (s) | warm cache (s) |", "| --- | ---: | ---: |"]
    for tool in ("ours", "pip", "uv"):
        cold = median(results[(f"pypi {tool}", "cold")]).seconds
        warm = median(results[(f"pypi {tool}", "warm")]).seconds
        rows.append(f"| {tool} | {cold:.2f} | {warm:.2f} |")
    return "\n".join(rows)


def help_imports(bench: Bench) -> str:
    """Which of httpx, networkx, resolvelib ``--help`` imports (``-X importtime``)."""
    return heavy_imports(bench, ["--help"], ("httpx", "networkx", "resolvelib"))


def lock_imports(bench: Bench) -> str:
    """Which of httpx, networkx an offline ``lock`` imports (neither is needed for it)."""
    (bench.project / "lambda-pack.lock").unlink(missing_ok=True)
    args = ["lock", "-q", *offline(bench), "--cache-dir", str(fresh(bench, "ours-cache"))]
    return heavy_imports(bench, args, ("httpx", "networkx"))


def heavy_imports(bench: Bench, args: Sequence[str], heavy: Sequence[str]) -> str:
    python = bench.ours.parent / "python"
    cmd = [python, "-X", "importtime", "-m", "pip_lambda_pack", *args]
    out = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=clean_env(), cwd=bench.project
    )
    modules = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()}
    found = [m for m in heavy if m in modules]
    return ", ".join(found) if found else f"none of {', '.join(heavy)}"


def versions(bench: Bench) -> str:
    ours = version(
        [bench.ours.parent / "python", "-c", "import pip_lambda_pack as p; print(p.__version__)"]
    )
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return (
        f"pip-lambda-pack {ours} ({rev}), {version([sys.executable, '-m', 'pip', '--version'])}"
        f", {version([bench.uv, '--version'])}, {zip_version()}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "lambda-pack-bench"
    )
    parser.add_argument("--pypi", action="store_true", help="resolution against the real index")
    parser.add_argument(
        "--uv", type=Path, default=None, help="uv executable (default: beside python)"
    )
    return parser.parse_args(argv)


def make_bench(args: argparse.Namespace) -> Bench:
    work = args.work.resolve()
    shutil.rmtree(work / "runs", ignore_errors=True)
    (work / "runs").mkdir(parents=True)
    uv = args.uv or (BIN / "uv" if (BIN / "uv").exists() else Path(shutil.which("uv") or "uv"))
    names = tuple(sorted(p.stem for p in CORPUS.glob("*.txt") if p.stem not in UNDEPLOYABLE))
    return Bench(
        work=work,
        wheelhouse=work / "wheelhouse",
        project=work / "project",
        functions=names,
        ours=BIN / "pip-lambda-pack",
        uv=uv,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = make_bench(args)
    fill_wheelhouse(bench)
    write_project(bench)
    scenarios = pypi_scenarios(bench) if args.pypi else offline_scenarios(bench)
    results = measure(scenarios, args.rounds)
    print(f"\n{versions(bench)}")
    print(
        f"{len(bench.functions)} functions ({', '.join(bench.functions)}); left out: "
        + "; ".join(f"{k} ({v})" for k, v in UNDEPLOYABLE.items())
    )
    print(f"medians of {args.rounds} rounds, cold caches\n")
    if args.pypi:
        print(pypi_table(results))
    else:
        print(table(results) + "\n\n" + memory_table(results))
        print(f"\n--help imports: {help_imports(bench)}")
        print(f"offline lock imports: {lock_imports(bench)}")
    shutil.rmtree(bench.work / "runs", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

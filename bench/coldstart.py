"""Cold start with and without bytecode: import time, full cold start through the shim, sizes.

    .venv/bin/python bench/coldstart.py [--rounds 7] [--build-rounds 3] [--work DIR]
        [--targets 3.11,3.12]

For each target (python3.11-x86_64 and python3.12-x86_64 by default) one project holds the
two examples and import-heavy sets (boto3, pydantic, numpy+pandas, sqlalchemy, requests,
boto3+pydantic+requests); it is locked once against PyPI and built three ways:
``--bytecode none``, ``checked-hash`` and ``unchecked-hash``. Then, side by side in one run,
with the modes' order rotated every round and medians of ``--rounds``:

- import: each function's layers merged into a read-only ``opt/python`` and its code into a
  read-only ``task`` (as Lambda has them), the handler module imported by the target
  interpreter with ``-B`` (nothing written, like PYTHONDONTWRITEBYTECODE=1) and timed
  inside the process (``perf_counter`` around the import);
- cold start: the whole shim process (interpreter start, the shim imported from deploy's
  bootstrap layer built with the same mode, fetch from a local store into an empty cache
  on /dev/shm, unpack or zipimport, import, one invocation), wall time; for pure-Python
  layers both ways the shim can put them on ``sys.path`` ($LAMBDA_PACK_LAYERS=extract|zip);
- sizes of every function's layers (zip and unzipped);
- build time: ``build`` from the lock with the wheels in the cache but no cached layers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
MODES = ("none", "checked-hash", "unchecked-hash")
# bytecode mode / how the shim puts layers on sys.path
COLD_KEYS = ("none/extract", "none/zip", "checked-hash/extract", "checked-hash/zip")
COLD_KEYS += ("unchecked-hash/extract",)
SETS = {
    "boto3": ["boto3"],
    "pydantic": ["pydantic>=2.7,<3"],
    "numpy-pandas": ["numpy", "pandas"],
    "sqlalchemy": ["sqlalchemy"],
    "requests": ["requests"],
    "boto3-pydantic": ["boto3", "pydantic>=2.7,<3", "requests"],
}
IMPORTS = {
    "boto3": "import boto3\nCLIENT = boto3.client('s3', region_name='us-east-1')\n",
    "pydantic": "import pydantic\n",
    "numpy-pandas": "import numpy\nimport pandas\n",
    "sqlalchemy": "import sqlalchemy\nimport sqlalchemy.orm\n",
    "requests": "import requests\n",
    "boto3-pydantic": (
        "import boto3\nimport pydantic\nimport requests\n"
        "CLIENT = boto3.client('s3', region_name='us-east-1')\n"
    ),
}
HANDLER = "\ndef handler(event, context):\n    return {'ok': True}\n"
IMPORT_TIMER = (
    "import sys, time; sys.path[:0] = sys.argv[1:]; start = time.perf_counter();"
    " import app; print(time.perf_counter() - start)"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--build-rounds", type=int, default=3)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--targets", default="3.11,3.12")
    parser.add_argument("--corpus", action="store_true", help="only the bench corpus build time")
    parser.add_argument("--reuse", action="store_true", help="keep the builds a run left in WORK")
    parser.add_argument("--functions", help="only these functions (comma-separated), e.g. validate")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="with --corpus: also time the truly cold builds with the src/ of another commit",
    )
    parser.add_argument(
        "--unpack",
        type=Path,
        nargs="+",
        help="only the shim's unpack time of these layer zips: as built (.pyc stored) and with"
        " the .pyc deflated, by this shim and --baseline-src's, with the first target's Python",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="coldstart-"))
    if args.unpack:
        python = target_python(f"python{args.targets.split(',')[0]}-x86_64")
        print_unpack(unpack_times(work, args.unpack, python, args.rounds, args.baseline_src))
        return 0
    if args.corpus:
        print_corpus(corpus_builds(work / "corpus", args.build_rounds, args.baseline_src))
        return 0
    results = {}
    for version in args.targets.split(","):
        results[version] = bench_target(work / f"py{version}", version, args)
        (work / f"py{version}.json").write_text(json.dumps(results[version], indent=1))
    print(json.dumps(results, indent=1, sort_keys=True), file=sys.stderr)
    print_tables(results)
    return 0


def bench_target(work: Path, version: str, args: argparse.Namespace) -> dict[str, object]:
    target = f"python{version}-x86_64"
    python = target_python(target)
    outs = {mode: work / f"out-{mode}" for mode in MODES}
    builds: dict[str, list[float]] = {mode: [] for mode in MODES}
    if args.reuse and all((out / "manifest.json").is_file() for out in outs.values()):
        project = work / "project"
    else:
        project = make_project(work / "project", target, args.functions)
        cli(project, "lock", "-q")
        warm = work / "warm-cache"
        cli(project, "build", "-q", "--out", str(work / "warmup"), cache=warm)
        for round_ in range(max(args.build_rounds, 1)):
            for mode in rotated(MODES, round_):
                builds[mode].append(timed_build(project, work, mode, warm))
    built = {mode: times for mode, times in builds.items() if times and args.build_rounds}
    figures: dict[str, object] = {"python": python, "build_s": medians(built)}
    figures["sizes"] = {mode: sizes(outs[mode]) for mode in MODES}
    figures["import_s"] = import_times(work, outs, python, args.rounds)
    figures["coldstart_s"] = cold_starts(
        work, project, outs, python, args.rounds, args.baseline_src
    )
    return figures


def corpus_builds(work: Path, rounds: int, baseline: Path | None = None) -> dict[str, float]:
    """Build time of the bench corpus (python3.12-x86_64; etl left out: over Lambda's
    limit) from the lock, per bytecode mode: with the wheels cached and no layer cached;
    with the bytecode cache filled too (``/warm``); and truly cold (``/cold``: an empty
    cache directory, every wheel fetched from PyPI), also with ``baseline``'s src/."""
    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    lines = ['target = "python3.12-x86_64"', ""]
    for requirements in sorted((HERE / "corpus").glob("*.txt")):
        name = requirements.stem
        if name == "etl":
            continue
        (project / "functions" / name).mkdir(parents=True)
        (project / "functions" / name / "app.py").write_text(HANDLER)
        shutil.copyfile(requirements, project / f"{name}.txt")
        lines += [f"[functions.{name}]", 'handler = "app.handler"', f'code = "functions/{name}"']
        lines += [f'requirements = "{name}.txt"', ""]
    (project / "lambda-pack.toml").write_text("\n".join(lines))
    warm = work / "warm-cache"
    cli(project, "lock", "-q", cache=warm)
    cli(project, "build", "-q", "--out", str(work / "warmup"), cache=warm)
    keys = CORPUS_KEYS + (BASELINE_KEYS if baseline else ())
    builds: dict[str, list[float]] = {key: [] for key in keys}
    for round_ in range(rounds):
        for key in rotated(keys, round_):
            key_mode, _, src = key.partition("@")
            mode, _, warmth = key_mode.partition("/")
            print(f"round {round_ + 1}: {key}", end=" ", file=sys.stderr, flush=True)
            if warmth == "cold":
                took = cold_build(project, work, mode, baseline if src else SRC)
            else:
                took = timed_build(project, work, mode, warm, bytecode_cache=warmth == "warm")
            print(f"{took:.2f} s ({load()})", file=sys.stderr, flush=True)
            builds[key].append(took)
    return medians(builds)


# the warm-up build compiled with the default mode, so its bytecode cache serves that mode
CORPUS_KEYS = ("none", "checked-hash", "checked-hash/warm", "none/cold", "checked-hash/cold")
BASELINE_KEYS = ("checked-hash/cold@baseline",)
CACHES = {
    "": "wheels cached, no layer, bytecode cache empty",
    "warm": "wheels and bytecode cached, no layer",
    "cold": "nothing cached (wheels from PyPI)",
}


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def print_corpus(build: dict[str, float]) -> None:
    print("| bytecode | cache | build (s) | vs none, same cache |\n|---|---|---:|---:|")
    for key, took in build.items():
        key_mode, _, src = key.partition("@")
        mode, _, warmth = key_mode.partition("/")
        peer = build["none/cold" if warmth == "cold" else "none"]
        added = "" if mode == "none" else f"{took / peer - 1:+.0%}"
        where = f"{CACHES[warmth]}{', ' + src if src else ''}"
        print(f"| {mode} | {where} | {took:.2f} | {added} |")


def cold_build(project: Path, work: Path, mode: str, src: Path) -> float:
    """``build --bytecode MODE`` from the lock into an empty cache directory: every wheel
    fetched from PyPI, no layer, no bytecode (as uv's benchmarks mean "cold")."""
    cache = work / f"cold-cache-{mode}"
    shutil.rmtree(cache, ignore_errors=True)
    out = work / f"cold-out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    cli(project, "build", "-q", "--bytecode", mode, "--out", str(out), cache=cache, src=src)
    took = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)
    return took


UNPACK_TIMER = (
    "import sys, time, tempfile; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
    " import shim; out = Path(tempfile.mkdtemp(dir=sys.argv[3])); start = time.perf_counter();"
    " [shim.extract(Path(z), (out / str(i)).mkdir() or out / str(i), 'x')"
    " for i, z in enumerate(sys.argv[2].split(','))]; print(time.perf_counter() - start)"
)


def unpack_times(
    work: Path, zips: list[Path], python: str, rounds: int, baseline: Path | None
) -> dict[str, float | int]:
    """Median seconds the shim takes to unpack ``zips`` (one process per sample, the
    variants rotated every round), and the zips' bytes, as built and with the .pyc deflated."""
    work.mkdir(parents=True, exist_ok=True)
    deflated = [deflate_pycs(z, work / f"deflated-{z.name}") for z in zips]
    shims = {"this": SRC / "pip_lambda_pack"}
    if baseline is not None:
        shims["baseline"] = baseline / "pip_lambda_pack"
    variants = {
        f"{name}/{kind}": (folder, files)
        for name, folder in shims.items()
        for kind, files in (("stored", zips), ("deflated", deflated))
    }
    samples: dict[str, list[float]] = {key: [] for key in variants}
    for round_ in range(rounds):
        for key in rotated(tuple(variants), round_):
            folder, files = variants[key]
            into = (SHIM_CACHE or work) / f"lambda-pack-unpack-{os.getpid()}"
            into.mkdir(exist_ok=True)
            joined = ",".join(map(str, files))
            command = [python, "-s", "-E", "-c", UNPACK_TIMER, str(folder), joined, str(into)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            samples[key].append(float(done.stdout.strip().splitlines()[-1]))
            shutil.rmtree(into)
    figures: dict[str, float | int] = dict(medians(samples))
    figures["stored_bytes"] = sum(z.stat().st_size for z in zips)
    figures["deflated_bytes"] = sum(z.stat().st_size for z in deflated)
    return figures


def deflate_pycs(source: Path, target: Path) -> Path:
    """``source`` with every stored .pyc deflated (zlib level 6), the rest as they were."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith(".pyc"):
                info.compress_type = zipfile.ZIP_DEFLATED
            new.writestr(info, data)
    return target


def print_unpack(figures: dict[str, float | int]) -> None:
    print("| shim | .pyc in the zip | unpack (ms) |\n|---|---|---:|")
    for key, value in figures.items():
        if "/" in key:
            shim, kind = key.split("/")
            print(f"| {shim} | {kind} | {value * 1000:.0f} |")
    stored, deflated = figures["stored_bytes"], figures["deflated_bytes"]
    print(f"\nzips: .pyc stored {stored / 1e6:.2f} MB, deflated {deflated / 1e6:.2f} MB")


def target_python(target: str) -> str:
    sys.path.insert(0, str(SRC))
    from pip_lambda_pack.interpreters import find_interpreter
    from pip_lambda_pack.target import get_target

    return str(find_interpreter(get_target(target)).path)


def make_project(root: Path, target: str, only: str | None = None) -> Path:
    if root.exists():
        shutil.rmtree(root)
    wanted = set(only.split(",")) if only else None
    shutil.copytree(ROOT / "examples" / "functions", root / "functions")
    shutil.copytree(ROOT / "examples" / "requirements", root / "requirements")
    shutil.copytree(ROOT / "examples" / "events", root / "events")
    tables = [
        '[functions.fetch]\nhandler = "app.handler"\ncode = "functions/fetch"\n'
        'requirements = "requirements/fetch.txt"\n',
        '[functions.validate]\nhandler = "app.handler"\ncode = "functions/validate"\n'
        'dependencies = ["pydantic>=2.7,<3"]\n',
    ]
    if wanted is not None:
        tables = [t for t in tables if t.split("]")[0].removeprefix("[functions.") in wanted]
    for name, requirements in SETS.items():
        if wanted is not None and name not in wanted:
            continue
        code = root / "sets" / name
        code.mkdir(parents=True)
        (code / "app.py").write_text(IMPORTS[name] + HANDLER)
        tables.append(
            f'[functions.{name}]\nhandler = "app.handler"\ncode = "sets/{name}"\n'
            f"dependencies = {json.dumps(requirements)}\n"
        )
    config = f'target = "{target}"\nmax-layers = 5\n\n' + "\n".join(tables)
    (root / "lambda-pack.toml").write_text(config)
    return root


def cli(project: Path, *args: str, cache: Path | None = None, src: Path = SRC) -> None:
    """The tool on ``project``; its own modules' ``.pyc`` written once and used after, as an
    installed tool's are (with PYTHONDONTWRITEBYTECODE inherited, every build compiled
    ~55 of its modules again: 0.25 s of each timed build)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    if cache is not None:
        env["LAMBDA_PACK_CACHE_DIR"] = str(cache)
    subprocess.run(
        [sys.executable, "-m", "pip_lambda_pack", *args], cwd=project, env=env, check=True
    )


def timed_build(
    project: Path, work: Path, mode: str, warm: Path, *, bytecode_cache: bool = False
) -> float:
    """``build --bytecode MODE`` with the wheels cached but no layer cached, and the
    bytecode cache empty (truly cold) or as the warm-up build left it (``bytecode_cache``)."""
    cache = work / f"cache-{mode}"
    shutil.rmtree(cache, ignore_errors=True)
    skip = ("layers",) if bytecode_cache else ("layers", "bytecode")
    shutil.copytree(warm, cache, ignore=shutil.ignore_patterns(*skip))
    out = work / f"out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    cli(project, "build", "-q", "--bytecode", mode, "--out", str(out), cache=cache)
    return time.perf_counter() - start


def rotated(items: tuple[str, ...], by: int) -> list[str]:
    return list(items[by % len(items) :] + items[: by % len(items)])


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {key: round(statistics.median(values), 4) for key, values in samples.items()}


def manifest(out: Path) -> dict[str, dict[str, object]]:
    return json.loads((out / "manifest.json").read_text())["functions"]  # type: ignore[no-any-return]


def sizes(out: Path) -> dict[str, list[int]]:
    """Per function: [zip bytes, unzipped bytes] of its layers."""
    found = {}
    for name, entry in manifest(out).items():
        layers = entry["layers"]
        assert isinstance(layers, list)
        found[name] = [
            sum(lay["size"] for lay in layers),
            sum(lay["unzipped_size"] for lay in layers),
        ]
    return found


def read_only_layout(out: Path, name: str, into: Path) -> tuple[Path, Path]:
    """The function's layers merged into ``into/opt`` and its code in ``into/task``."""
    entry = manifest(out)[name]
    opt, task = into / "opt", into / "task"
    if not opt.exists():
        for layer in entry["layers"]:  # type: ignore[attr-defined]
            with zipfile.ZipFile(out / layer["path"]) as archive:
                archive.extractall(opt)
        code = entry["code"]["path"]  # type: ignore[index]
        with zipfile.ZipFile(out / code) as archive:
            archive.extractall(task)
        for path in (opt, task):
            subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
    return opt / "python", task


def import_times(
    work: Path, outs: dict[str, Path], python: str, rounds: int
) -> dict[str, dict[str, float]]:
    names = sorted(manifest(outs["none"]))
    samples: dict[str, dict[str, list[float]]] = {n: {m: [] for m in MODES} for n in names}
    for round_ in range(rounds):
        for name in names:
            for mode in rotated(MODES, round_):
                site, task = read_only_layout(outs[mode], name, work / "ro" / mode / name)
                command = [python, "-s", "-E", "-B", "-c", IMPORT_TIMER, str(task), str(site)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                samples[name][mode].append(float(done.stdout.strip().splitlines()[-1]))
    return {name: medians(by_mode) for name, by_mode in samples.items()}


BASELINE_COLD_KEYS = ("none/extract@baseline", "checked-hash/extract@baseline")


def cold_starts(
    work: Path,
    project: Path,
    outs: dict[str, Path],
    python: str,
    rounds: int,
    baseline: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Wall time of the shim process from an empty cache, per function, mode and layer way.

    The shim runs as a deployed function runs it: imported from the bootstrap layer (read
    only, as /opt is) built with the same bytecode mode, so with ``none`` it is compiled at
    every cold start and with the default its ``.pyc`` is used."""
    stores, shims = {}, {}
    for mode in MODES:
        store = work / f"store-{mode}"
        shutil.rmtree(store, ignore_errors=True)
        push = ["push", "-q", "--bytecode", mode, "--out", str(outs[mode]), "--store", str(store)]
        cli(project, *push, cache=work / f"cache-{mode}")  # the build in place: nothing rebuilt
        stores[mode] = store
        shims[mode] = bootstrap_layer(project, mode, work / f"bootstrap-{mode}", SRC)
        if baseline is not None:
            shims[f"{mode}@baseline"] = bootstrap_layer(
                project, mode, work / f"bootstrap-{mode}-baseline", baseline
            )
    keys = list(COLD_KEYS) + (list(BASELINE_COLD_KEYS) if baseline else [])
    names = [n for n in ("validate", "boto3-pydantic", "sqlalchemy") if n in manifest(outs["none"])]
    samples = {name: {key: [] for key in keys} for name in names}
    event = project / "events" / "validate.json"
    for round_ in range(rounds):
        for name in names:
            for key in rotated(tuple(keys), round_):
                mode, way = key.partition("@")[0].split("/")
                shim = shims[f"{mode}@baseline" if "@" in key else mode]
                took = shim_run(python, stores[mode], name, event, way, work, shim)
                samples[name][key].append(took)
    return {name: medians(by_key) for name, by_key in samples.items()}


BOOTSTRAP = (
    "import dataclasses, sys; from pathlib import Path;"
    " from pip_lambda_pack.building import bootstrap_options, find_compiler;"
    " from pip_lambda_pack.config import load_project;"
    " from pip_lambda_pack.deploy import bootstrap_zip;"
    " p = dataclasses.replace(load_project(Path(sys.argv[1])), bytecode=sys.argv[2]);"
    " print(bootstrap_zip(Path(sys.argv[3]), bootstrap_options(p, find_compiler(p, print))).path)"
)


def bootstrap_layer(project: Path, mode: str, into: Path, src: Path) -> Path:
    """``deploy``'s bootstrap layer (the shim) of ``src``, built with bytecode ``mode`` and
    unpacked read-only into ``into``; its ``python`` folder, as /opt/python on Lambda."""
    if into.exists():
        subprocess.run(["chmod", "-R", "u+w", str(into)], check=True)
        shutil.rmtree(into)
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-c", BOOTSTRAP, str(project / "lambda-pack.toml"), mode]
    done = subprocess.run([*command, str(into / "zip")], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"building the bootstrap layer of {src} failed:\n{done.stderr}")
    with zipfile.ZipFile(done.stdout.strip().splitlines()[-1]) as archive:
        archive.extractall(into / "opt")
    subprocess.run(["chmod", "-R", "a-w", str(into / "opt")], check=True)
    return into / "opt" / "python"


# The shim's cache (Lambda's /tmp) is on tmpfs where there is one: on this VM's disk (ext4,
# mounted with discard) creating files in some folders took ~1 ms per openat (strace: 4,558
# calls, 4.9 s of system time for boto3-pydantic's 2,808 files), seconds that belong to the
# disk, not the shim, and twice as many for layers with bytecode (a .pyc beside each .py).
SHIM_CACHE = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


def shim_run(
    python: str, store: Path, name: str, event: Path, way: str, work: Path, shim: Path
) -> float:
    cache = (SHIM_CACHE or work) / f"lambda-pack-bench-{os.getpid()}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(shim),  # as /opt/python is on sys.path on Lambda
        "LAMBDA_PACK_STORE": str(store),
        "LAMBDA_PACK_LAYERS": way,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [python, "-m", "pip_lambda_pack.shim", "--name", name, "--event", str(event)]
    start = time.perf_counter()
    try:
        subprocess.run([*command, "--cache", str(cache)], env=env, check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def print_tables(results: dict[str, dict[str, object]]) -> None:
    for version, figures in results.items():
        print(f"\n### python{version}-x86_64 ({figures['python']})\n")
        print_imports(figures["import_s"])  # type: ignore[arg-type]
        print_coldstarts(figures["coldstart_s"])  # type: ignore[arg-type]
        print_sizes(figures["sizes"])  # type: ignore[arg-type]
        build = figures["build_s"]
        assert isinstance(build, dict)
        if not build:
            continue
        added = {m: build[m] / build["none"] - 1 for m in MODES[1:]}
        print(
            f"\nBuild from the lock (wheels cached, no layer cached): none {build['none']:.2f} s,"
            f" checked-hash {build['checked-hash']:.2f} s ({added['checked-hash']:+.0%}),"
            f" unchecked-hash {build['unchecked-hash']:.2f} s ({added['unchecked-hash']:+.0%})"
        )


def print_imports(times: dict[str, dict[str, float]]) -> None:
    print("Import time, read-only layout, nothing written (median, ms):\n")
    print("| function | no bytecode | checked-hash | vs none | unchecked-hash | vs none |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, by_mode in times.items():
        none = by_mode["none"]
        cells = [f"{none * 1000:.0f}"]
        for mode in MODES[1:]:
            cells += [f"{by_mode[mode] * 1000:.0f}", f"{by_mode[mode] / none - 1:+.0%}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_coldstarts(times: dict[str, dict[str, float]]) -> None:
    print("\nFull cold start through the shim, empty cache (median wall ms):\n")
    keys = [key for key in next(iter(times.values()))] if times else list(COLD_KEYS)
    print("| function | " + " | ".join(keys) + " | best vs none/extract |")
    print("|---|" + "---:|" * (len(keys) + 1))
    for name, by_key in times.items():
        base = by_key["none/extract"]
        best = min(by_key.values())
        cells = [f"{by_key[k] * 1000:.0f}" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + f" | {best / base - 1:+.0%} |")


def print_sizes(found: dict[str, dict[str, list[int]]]) -> None:
    print("\nLayers per function (MB zip / MB unzipped):\n")
    print("| function | no bytecode | checked-hash | unchecked-hash |")
    print("|---|---:|---:|---:|")
    for name in found["none"]:
        cells = [f"{found[m][name][0] / 1e6:.1f} / {found[m][name][1] / 1e6:.1f}" for m in MODES]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())

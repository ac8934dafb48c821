"""Generate lambda-pack-fleet/1 fleets from ReqBench's package statistics.

Each function picks a few top-level packages by how many of ReqBench's 9,678 real
requirements.txt files use them, takes one of their observed dependency closures (again by
frequency) and skips a pick whose closure would put two versions of one package in the
function. Sizes are ReqBench's installed sizes. Weights (each function's share of cold
starts) follow a Zipf law of exponent ``s`` over a random order of the functions.

    .venv/bin/python bench/fleetgen.py --functions 1000 --seed 7 --zipf 1.2 --out FILE
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REQBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "reqbench"
LIMIT = 240 * 1000 * 1000  # closures stay under Lambda's 250 MB with room for code


def load_stats(root: Path = REQBENCH) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pin -> closure string -> count, name -> version -> install figures)."""
    closures = json.loads((root / "top_500_pkgs.json").read_text())
    installs = json.loads((root / "install_import.json").read_text())
    return closures, installs


def _size(pin: str, installs: Mapping[str, Any], fallback: int) -> int:
    name, _, version = pin.partition("==")
    info = installs.get(name, {}).get(version)
    return int(info["disk_size"]) if info and info.get("disk_size") else fallback


def _top_levels(rng: random.Random) -> int:
    """How many packages a function asks for: geometric, like the dev fleet (mean ~2.7)."""
    count = 1
    while count < 15 and rng.random() < 0.62:
        count += 1
    return count


def _function(
    rng: random.Random, closures: Mapping[str, Any], order: list[str], cum: list[int]
) -> tuple[list[str], list[str]]:
    chosen: dict[str, str] = {}  # name -> pin
    top = []
    for _ in range(_top_levels(rng)):
        pin = rng.choices(order, cum_weights=cum)[0]
        variants = closures[pin]
        closure = rng.choices(list(variants), weights=list(variants.values()))[0].split(",")
        names = {p.partition("==")[0]: p for p in closure}
        if any(chosen.get(n, p) != p for n, p in names.items()):
            continue
        chosen.update(names)
        top.append(pin)
    return sorted(chosen.values()), sorted(set(top))


def generate(functions: int, seed: int, zipf: float, root: Path = REQBENCH) -> dict[str, Any]:
    """A fleet document of ``functions`` functions (deterministic for a seed)."""
    closures, installs = load_stats(root)
    rng = random.Random(seed)
    order = sorted(closures)
    counts = [sum(closures[p].values()) for p in order]
    cum = [sum(counts[: i + 1]) for i in range(len(counts))]
    ranks = list(range(1, functions + 1))
    rng.shuffle(ranks)
    raw = [r**-zipf for r in ranks]
    total = sum(raw)
    fallback = _median_size(installs)
    fns: dict[str, Any] = {}
    used: set[str] = set()
    for i in range(functions):
        requires, top = _function(rng, closures, order, cum)
        while sum(_size(p, installs, fallback) for p in requires) > LIMIT:
            requires, top = _function(rng, closures, order, cum)
        used.update(requires)
        fns[f"fn{i:05d}"] = {"requires": requires, "top": top, "weight": raw[i] / total}
    return {
        "format": "lambda-pack-fleet/1",
        "source": f"bench/fleetgen.py from ReqBench statistics: seed {seed}, zipf {zipf}",
        "packages": _packages(used, closures, installs, fallback),
        "functions": fns,
    }


def _median_size(installs: Mapping[str, Any]) -> int:
    sizes = [i["disk_size"] for v in installs.values() for i in v.values() if i.get("disk_size")]
    return int(statistics.median(sizes))


def _packages(
    used: set[str], closures: Mapping[str, Any], installs: Mapping[str, Any], fallback: int
) -> dict[str, Any]:
    packages = {}
    for pin in sorted(used):
        name, _, version = pin.partition("==")
        variants = closures.get(pin, {})
        closure = max(variants, key=variants.get).split(",") if variants else [pin]
        packages[pin] = {
            "name": name,
            "version": version,
            "size": _size(pin, installs, fallback),
            "popularity": sum(variants.values()),
            "requires": sorted(p for p in closure if p != pin),
        }
    return packages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--zipf", type=float, default=1.5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    fleet = generate(args.functions, args.seed, args.zipf)
    text = json.dumps(fleet, indent=1, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
